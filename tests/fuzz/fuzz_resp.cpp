// Fuzz target: bytes as what a client sends, through resp::parse_command and the incremental resp::Parser.
//
// The input is the bytes as they are (so real requests are the seeds). Each runs three
// ways: default limits all at once, default limits arriving in small pieces, and tiny
// limits (that every input can reach) in pieces. Checks:
// both parsers agree on every request of a pipeline; views lie inside the input or the
// scratch string; an error has a message; an incomplete parse asks for more than it
// has; a parsed request re-encoded with encode_command parses back to itself.
#include "resp.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace reprise::resp;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_resp: %s\n", what);
    std::abort();
}

void check(bool ok, const char* what) {
    if (!ok)
        fail(what);
}

bool inside(std::string_view part, std::string_view whole) {
    return part.empty() || (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void check_result(const Parsed& p, std::string_view input, const std::vector<std::string_view>& args,
                  const std::string* scratch) {
    switch (p.status) {
    case Status::complete:
        check(p.consumed >= 1 && p.consumed <= input.size(), "complete: consumed is outside 1..input size");
        for (std::string_view a : args)
            check(inside(a, input.substr(0, p.consumed)) || (scratch && inside(a, *scratch)),
                  "an argument views memory outside the request and the scratch string");
        break;
    case Status::incomplete:
        check(p.needed > input.size(), "incomplete: `needed` is not more than the input holds");
        break;
    case Status::error:
        check(!p.error.empty(), "error without a message");
        break;
    }
}

std::vector<std::string> copies(const std::vector<std::string_view>& args) {
    return {args.begin(), args.end()};
}

// Parses the pipeline `input` both ways; the incremental parser gets it `piece` bytes
// at a time (0: all at once).
void run(std::string_view input, const Limits& limits, std::size_t piece) {
    std::vector<std::string_view> args, inc_args;
    std::string scratch;
    Parser parser(limits);
    std::size_t at = 0;
    for (int requests = 0; requests < 64 && at < input.size(); ++requests) {
        const std::string_view rest = input.substr(at);
        // Without a scratch string: the same outcome, or an error for an escaped inline argument.
        std::vector<std::string_view> plain_args;
        const Parsed plain = parse_command(rest, plain_args, limits, nullptr);
        check_result(plain, rest, plain_args, nullptr);
        const Parsed whole = parse_command(rest, args, limits, &scratch);
        check_result(whole, rest, args, &scratch);
        if (plain.status == Status::complete)
            check(whole.status == Status::complete && whole.consumed == plain.consumed &&
                      copies(args) == copies(plain_args),
                  "a request parses differently with a scratch string");

        // The incremental parser, fed the same bytes in pieces.
        Parsed inc;
        std::size_t given = piece == 0 ? rest.size() : std::min(piece, rest.size());
        for (;;) {
            inc = parser.parse(rest.substr(0, given), inc_args);
            if (inc.status != Status::incomplete || given == rest.size())
                break;
            given = std::min(rest.size(), std::max(given + std::max<std::size_t>(piece, 1), std::min(inc.needed, rest.size())));
        }
        check(inc.status == whole.status, "the incremental parser and parse_command disagree on the status");
        if (whole.status == Status::complete) {
            check(inc.consumed == whole.consumed, "the parsers disagree on the bytes a request uses");
            check(copies(inc_args) == copies(args), "the parsers disagree on the arguments");
        }
        if (whole.status == Status::error)
            check(inc.error == whole.error, "the parsers disagree on the error message");
        if (whole.status != Status::complete)
            break;

        // A parsed request, re-encoded as a multibulk, parses back to the same arguments.
        if (!args.empty()) {
            const std::vector<std::string> kept = copies(args);
            const std::string encoded = encode_command(args);
            std::vector<std::string_view> back;
            std::string scratch2;
            const Parsed again = parse_command(encoded, back, Limits{}, &scratch2);
            check(again.status == Status::complete && again.consumed == encoded.size() && copies(back) == kept,
                  "encode_command's output does not parse back to the same arguments");
        }
        at += whole.consumed;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    run(input, Limits{}, 0);
    run(input, Limits{}, 1 + size % 5);
    Limits tiny;
    tiny.max_bulk_bytes = 16;
    tiny.max_args = 8;
    tiny.max_inline_bytes = 32;
    run(input, tiny, 1 + size % 3);
    return 0;
}
