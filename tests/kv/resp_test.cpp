// The RESP2 request parser and reply writers of examples/common: framing, splits, pipelining, limits, inline.
#include "resp.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace reprise::resp;

namespace {

std::vector<std::string> strings(const std::vector<std::string_view>& args) {
    return {args.begin(), args.end()};
}

struct Outcome {
    Parsed parsed;
    std::vector<std::string> args;
};

Outcome parse(std::string_view input, const Limits& limits = Limits{}) {
    std::vector<std::string_view> args;
    std::string scratch;
    Outcome o;
    o.parsed = parse_command(input, args, limits, &scratch);
    o.args = strings(args);
    return o;
}

std::string error_of(std::string_view input, const Limits& limits = Limits{}) {
    Outcome o = parse(input, limits);
    REQUIRE(o.parsed.status == Status::error);
    return o.parsed.error;
}

} // namespace

TEST_CASE("a multibulk request parses into views of its bulk strings") {
    const std::string in = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
    std::vector<std::string_view> args;
    Parsed p = parse_command(in, args);
    REQUIRE(p.status == Status::complete);
    CHECK(p.consumed == in.size());
    REQUIRE(args.size() == 3);
    CHECK(args[0] == "SET");
    CHECK(args[2] == "va\r\nl");  // binary-safe
    CHECK(args[1].data() == in.data() + 17);  // a view, not a copy
}

TEST_CASE("empty multibulks and empty inline lines are complete requests with no arguments") {
    for (std::string_view in : {"*0\r\n", "*-1\r\n", "\r\n", "   \n"}) {
        Outcome o = parse(in);
        INFO(in);
        CHECK(o.parsed.status == Status::complete);
        CHECK(o.parsed.consumed == in.size());
        CHECK(o.args.empty());
    }
}

TEST_CASE("malformed multibulk requests get Redis's protocol error texts") {
    CHECK(error_of("*x\r\n") == "Protocol error: invalid multibulk length");
    CHECK(error_of("*+1\r\n") == "Protocol error: invalid multibulk length");
    CHECK(error_of("*01\r\n") == "Protocol error: invalid multibulk length");
    CHECK(error_of("*99999999999999999999999\r\n") == "Protocol error: invalid multibulk length");
    CHECK(error_of("*1\r\n:1\r\n") == "Protocol error: expected '$', got ':'");
    CHECK(error_of("*1\r\n\r\n") == "Protocol error: expected '$', got ' '");
    CHECK(error_of("*1\r\n$-1\r\n") == "Protocol error: invalid bulk length");
    CHECK(error_of("*1\r\n$abc\r\n") == "Protocol error: invalid bulk length");
    CHECK(error_of("*1\r\n$3\r\nabcde") == "Protocol error: expected CRLF after bulk data");
    CHECK(error_of("*1\r\n$3\rxabc\r\n") == "Protocol error: invalid bulk length");
}

TEST_CASE("limits bound bulk length, multibulk count, header and inline line length") {
    Limits small;
    small.max_bulk_bytes = 10;
    small.max_args = 3;
    small.max_inline_bytes = 64;
    CHECK(parse("*1\r\n$10\r\n0123456789\r\n", small).parsed.status == Status::complete);
    CHECK(error_of("*1\r\n$11\r\n", small) == "Protocol error: invalid bulk length");
    CHECK(parse("*3\r\n", small).parsed.status == Status::incomplete);
    CHECK(error_of("*4\r\n", small) == "Protocol error: invalid multibulk length");
    CHECK(error_of("*" + std::string(100, '1'), small) == "Protocol error: too big mbulk count string");
    CHECK(error_of("*1\r\n$" + std::string(100, '1'), small) == "Protocol error: too big bulk count string");
    CHECK(parse(std::string(64, 'a'), small).parsed.status == Status::incomplete);
    CHECK(error_of(std::string(65, 'a'), small) == "Protocol error: too big inline request");
    CHECK(error_of(std::string(70, 'a') + "\n", small) == "Protocol error: too big inline request");
    // The defaults are the documented ones.
    const Limits d;
    CHECK(d.max_bulk_bytes == 8u * 1024 * 1024);
    CHECK(d.max_args == 1024u * 1024);
    CHECK(d.max_inline_bytes == 64u * 1024);
}

TEST_CASE("a request split at every byte is incomplete until its last byte, then parses whole") {
    const std::vector<std::string> requests = {
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n",
        "*1\r\n$0\r\n\r\n",
        "set k \"a b\\x41\" 'c'\r\n",
        "PING\n",
    };
    for (const std::string& req : requests) {
        INFO(req);
        const Outcome whole = parse(req);
        REQUIRE(whole.parsed.status == Status::complete);
        Parser incremental;
        std::vector<std::string_view> args;
        for (std::size_t cut = 0; cut < req.size(); ++cut) {
            const std::string prefix = req.substr(0, cut);  // a fresh copy: the parser keeps offsets only
            INFO("cut at " << cut);
            Outcome o = parse(prefix);
            CHECK(o.parsed.status == Status::incomplete);
            CHECK(o.parsed.needed > cut);
            CHECK(o.parsed.needed <= req.size());
            Parsed p = incremental.parse(prefix, args);
            CHECK(p.status == Status::incomplete);
        }
        Parsed p = incremental.parse(req, args);
        REQUIRE(p.status == Status::complete);
        CHECK(p.consumed == req.size());
        CHECK(strings(args) == whole.args);
    }
}

TEST_CASE("a big bulk reports how many bytes it needs, so it is parsed once when they are there") {
    std::string req = "*2\r\n$3\r\nGET\r\n$1048576\r\n" + std::string(1024 * 1024, 'v') + "\r\n";
    std::vector<std::string_view> args;
    Parsed p = parse_command(std::string_view(req).substr(0, 100), args);
    REQUIRE(p.status == Status::incomplete);
    CHECK(p.needed == req.size());
}

TEST_CASE("the incremental parser fed in 1 KiB pieces is linear: each byte is looked at a bounded number of times") {
    // 20000 tiny arguments arriving 1 KiB at a time: a parser that restarted from the
    // front each time would scan about 20000^2 * 8 / 2 / 1024 bytes; this one resumes.
    std::vector<std::string_view> words(20000, "ab");
    const std::string req = encode_command(words);
    Parser parser;
    std::vector<std::string_view> args;
    std::string buffer;
    Parsed p;
    std::size_t calls = 0;
    for (std::size_t at = 0; at < req.size(); at += 1024) {
        buffer.append(req, at, 1024);
        p = parser.parse(buffer, args);
        ++calls;
        if (p.status != Status::incomplete)
            break;
    }
    REQUIRE(p.status == Status::complete);
    CHECK(args.size() == 20000);
    CHECK(calls == (req.size() + 1023) / 1024);
}

TEST_CASE("pipelined requests parse one after another from the front") {
    const std::string in = "*1\r\n$4\r\nPING\r\nECHO hi\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI";
    std::vector<std::vector<std::string>> seen;
    std::size_t at = 0;
    std::vector<std::string_view> args;
    for (;;) {
        Parsed p = parse_command(std::string_view(in).substr(at), args);
        if (p.status != Status::complete)
            break;
        seen.push_back(strings(args));
        at += p.consumed;
    }
    REQUIRE(seen.size() == 3);
    CHECK(seen[0] == std::vector<std::string>{"PING"});
    CHECK(seen[1] == std::vector<std::string>{"ECHO", "hi"});
    CHECK(seen[2] == std::vector<std::string>{"GET", "k"});
    CHECK(in.substr(at) == "*1\r\n$4\r\nPI");
}

TEST_CASE("inline commands split on whitespace with Redis's quoting rules") {
    CHECK(parse("set  k\tv\r\n").args == std::vector<std::string>{"set", "k", "v"});
    CHECK(parse("set k \"hello world\"\n").args == std::vector<std::string>{"set", "k", "hello world"});
    CHECK(parse("set k \"a\\n\\x41\\\"\"\n").args == std::vector<std::string>{"set", "k", "a\nA\""});
    CHECK(parse("set k 'it\\'s'\n").args == std::vector<std::string>{"set", "k", "it's"});
    CHECK(parse("set k \"\"\n").args == std::vector<std::string>{"set", "k", ""});
    CHECK(error_of("set k \"abc\n") == "Protocol error: unbalanced quotes in request");
    CHECK(error_of("set k \"abc\"x\n") == "Protocol error: unbalanced quotes in request");
    CHECK(error_of("set k 'abc\n") == "Protocol error: unbalanced quotes in request");
    // Without a scratch string, a word that needs decoding is refused rather than mangled.
    std::vector<std::string_view> args;
    Parsed p = parse_command("set k \"a b\"\n", args);
    CHECK(p.status == Status::error);
    p = parse_command("set k v\n", args);
    CHECK(p.status == Status::complete);
}

TEST_CASE("random garbage never reads out of bounds and always ends in one of the three outcomes") {
    std::uint64_t seed = std::random_device{}();
    if (const char* env = std::getenv("REPRISE_TEST_SEED"); env && *env)
        seed = std::strtoull(env, nullptr, 0);
    std::printf("resp garbage: seed=%llu (REPRISE_TEST_SEED repeats it)\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    const std::string alphabet = "*$\r\n0123456789-+ \"'\\xabAB:";
    Limits small;
    small.max_bulk_bytes = 16;
    small.max_args = 8;
    small.max_inline_bytes = 32;
    for (int i = 0; i < 20000; ++i) {
        std::string in(rng() % 40, '\0');
        for (char& c : in)
            c = alphabet[rng() % alphabet.size()];
        std::vector<char> exact(in.begin(), in.end());  // no spare bytes past the end for ASan to miss
        const std::string_view view(exact.data(), exact.size());
        std::vector<std::string_view> args;
        std::string scratch;
        Parsed p = parse_command(view, args, small, &scratch);
        if (p.status == Status::complete) {
            CHECK(p.consumed <= in.size());
            CHECK(p.consumed > 0);
        } else if (p.status == Status::incomplete) {
            CHECK(p.needed > in.size());
        } else {
            CHECK(p.error.rfind("Protocol error: ", 0) == 0);
        }
    }
}

TEST_CASE("reply writers produce RESP2 framing") {
    std::string out;
    append_simple(out, "OK");
    append_error(out, "ERR bad\r\nthing");
    append_integer(out, -9223372036854775807LL - 1);
    append_bulk(out, "hi");
    append_bulk(out, "");
    append_null(out);
    append_null_array(out);
    append_array_header(out, 2);
    CHECK(out == "+OK\r\n-ERR bad  thing\r\n:-9223372036854775808\r\n$2\r\nhi\r\n$0\r\n\r\n$-1\r\n*-1\r\n*2\r\n");
    CHECK(encode_command({"GET", "k"}) == "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
}

TEST_CASE("integers parse as strictly as Redis's string2ll") {
    long long v = 0;
    CHECK((parse_integer("0", v) && v == 0));
    CHECK((parse_integer("-42", v) && v == -42));
    CHECK((parse_integer("9223372036854775807", v) && v == 9223372036854775807LL));
    CHECK((parse_integer("-9223372036854775808", v) && v == -9223372036854775807LL - 1));
    for (std::string_view bad : {"", "-", "+1", "01", "-0", " 1", "1 ", "9223372036854775808", "1x", "0x10"})
        CHECK_FALSE(parse_integer(bad, v));
}
