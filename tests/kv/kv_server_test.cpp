// reprise-kv's commands over real loopback sockets, on an in-process runtime: replies byte for byte as Redis words them.
#include "kv_test_support.hpp"

#include <fmt/core.h>

using namespace reprise;
using namespace reprise::test;

namespace {

std::string bulk(std::string_view s) { return fmt::format("${}\r\n{}\r\n", s.size(), s); }
std::string integer(long long v) { return fmt::format(":{}\r\n", v); }
std::string err(std::string_view s) { return fmt::format("-{}\r\n", s); }
const std::string ok = "+OK\r\n";
const std::string nil = "$-1\r\n";

long long as_integer(const std::string& reply) {
    if (reply.size() < 4 || reply[0] != ':')
        FAIL("not an integer reply: " << reply);
    return std::stoll(reply.substr(1));
}

} // namespace

TEST_CASE("PING, ECHO, GET and SET with its options answer as Redis does") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        CHECK(c.call({"PING"}) == "+PONG\r\n");
        CHECK(c.call({"ping", "hi there"}) == bulk("hi there"));
        CHECK(c.call({"ECHO", "x\r\ny"}) == bulk("x\r\ny"));
        CHECK(c.call({"GET", "k"}) == nil);
        CHECK(c.call({"SET", "k", "v1"}) == ok);
        CHECK(c.call({"GET", "k"}) == bulk("v1"));
        CHECK(c.call({"set", "k", "v2", "nx"}) == nil);
        CHECK(c.call({"GET", "k"}) == bulk("v1"));
        CHECK(c.call({"SET", "other", "x", "XX"}) == nil);
        CHECK(c.call({"EXISTS", "other"}) == integer(0));
        CHECK(c.call({"SET", "k", "v3", "XX", "GET"}) == bulk("v1"));
        CHECK(c.call({"SET", "k", "v4", "GET"}) == bulk("v3"));
        CHECK(c.call({"SET", "k", "", "KEEPTTL"}) == ok);
        CHECK(c.call({"GET", "k"}) == bulk(""));
        CHECK(c.call({"SETNX", "k", "z"}) == integer(0));
        CHECK(c.call({"GETSET", "k", "g"}) == bulk(""));
        CHECK(c.call({"APPEND", "k", "h"}) == integer(2));
        CHECK(c.call({"STRLEN", "k"}) == integer(2));
        CHECK(c.call({"TYPE", "k"}) == "+string\r\n");
        CHECK(c.call({"TYPE", "nothing"}) == "+none\r\n");
        CHECK(c.call({"GETDEL", "k"}) == bulk("gh"));
        CHECK(c.call({"GET", "k"}) == nil);
    });
}

TEST_CASE("errors are worded exactly as Redis words them") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        CHECK(c.call({"foo"}) == err("ERR unknown command 'foo', with args beginning with: "));
        CHECK(c.call({"foo", "bar", "baz"}) == err("ERR unknown command 'foo', with args beginning with: 'bar' 'baz' "));
        CHECK(c.call({"get"}) == err("ERR wrong number of arguments for 'get' command"));
        CHECK(c.call({"GET", "a", "b"}) == err("ERR wrong number of arguments for 'get' command"));
        CHECK(c.call({"PING", "a", "b"}) == err("ERR wrong number of arguments for 'ping' command"));
        CHECK(c.call({"MSET", "a", "1", "b"}) == err("ERR wrong number of arguments for 'mset' command"));
        CHECK(c.call({"SET", "k", "v", "EX", "0"}) == err("ERR invalid expire time in 'set' command"));
        CHECK(c.call({"SET", "k", "v", "PX", "-5"}) == err("ERR invalid expire time in 'set' command"));
        CHECK(c.call({"SET", "k", "v", "EX", "9223372036854775807"}) == err("ERR invalid expire time in 'set' command"));
        CHECK(c.call({"SET", "k", "v", "EX", "abc"}) == err("ERR value is not an integer or out of range"));
        CHECK(c.call({"SET", "k", "v", "NX", "XX"}) == err("ERR syntax error"));
        CHECK(c.call({"SET", "k", "v", "EX"}) == err("ERR syntax error"));
        CHECK(c.call({"SET", "k", "v", "EX", "1", "PX", "1"}) == err("ERR syntax error"));
        CHECK(c.call({"SET", "k", "v", "KEEPTTL", "EX", "1"}) == err("ERR syntax error"));
        CHECK(c.call({"SET", "k", "v", "bogus"}) == err("ERR syntax error"));
        CHECK(c.call({"SET", "k", "abc"}) == ok);
        CHECK(c.call({"INCR", "k"}) == err("ERR value is not an integer or out of range"));
        CHECK(c.call({"INCRBY", "n", "1.5"}) == err("ERR value is not an integer or out of range"));
        CHECK(c.call({"EXPIRE", "k", "soon"}) == err("ERR value is not an integer or out of range"));
        CHECK(c.call({"EXPIRE", "k", "10", "NX", "XX"}) ==
              err("ERR NX and XX, GT or LT options at the same time are not compatible"));
        CHECK(c.call({"EXPIRE", "k", "10", "GT", "LT"}) == err("ERR GT and LT options at the same time are not compatible"));
        CHECK(c.call({"EXPIRE", "k", "10", "SOON"}) == err("ERR Unsupported option SOON"));
        CHECK(c.call({"CLIENT", "NOPE"}) == err("ERR unknown subcommand 'NOPE'. Try CLIENT HELP."));
        CHECK(c.call({"CLIENT", "SETNAME"}) == err("ERR wrong number of arguments for 'client|setname' command"));
        CHECK(c.call({"CLIENT", "SETNAME", "a b"}) ==
              err("ERR Client names cannot contain spaces, newlines or special characters."));
        CHECK(c.call({"FLUSHALL", "NOW"}) == err("ERR syntax error"));
        CHECK(c.call({"SELECT", "1"}) == err("ERR DB index is out of range"));
        // Only strings exist, so WRONGTYPE never arises: every key is a string.
        CHECK(c.call({"TYPE", "k"}) == "+string\r\n");
        // The connection survives every command error.
        CHECK(c.call({"PING"}) == "+PONG\r\n");
    });
}

TEST_CASE("INCR, DECR, INCRBY and DECRBY count and refuse to overflow") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        CHECK(c.call({"INCR", "n"}) == integer(1));
        CHECK(c.call({"INCRBY", "n", "41"}) == integer(42));
        CHECK(c.call({"DECR", "n"}) == integer(41));
        CHECK(c.call({"DECRBY", "n", "-9"}) == integer(50));
        CHECK(c.call({"GET", "n"}) == bulk("50"));
        CHECK(c.call({"SET", "n", "9223372036854775807"}) == ok);
        CHECK(c.call({"INCR", "n"}) == err("ERR increment or decrement would overflow"));
        CHECK(c.call({"SET", "n", "-9223372036854775808"}) == ok);
        CHECK(c.call({"DECR", "n"}) == err("ERR increment or decrement would overflow"));
        CHECK(c.call({"DECRBY", "m", "-9223372036854775808"}) == err("ERR decrement would overflow"));
        CHECK(c.call({"SET", "n", "007"}) == ok);
        CHECK(c.call({"INCR", "n"}) == err("ERR value is not an integer or out of range"));
        CHECK(c.call({"SET", "t", "5", "EX", "100"}) == ok);
        CHECK(c.call({"INCR", "t"}) == integer(6));
        CHECK(c.call({"TTL", "t"}) == integer(100));  // INCR keeps the TTL, as in Redis
    });
}

TEST_CASE("MGET, MSET, DEL, EXISTS, DBSIZE and FLUSHALL work on many keys") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        CHECK(c.call({"MSET", "a", "1", "b", "2", "c", "3"}) == ok);
        CHECK(c.call({"MGET", "a", "nope", "c"}) == "*3\r\n" + bulk("1") + nil + bulk("3"));
        CHECK(c.call({"EXISTS", "a", "a", "nope", "b"}) == integer(3));
        CHECK(c.call({"DBSIZE"}) == integer(3));
        CHECK(c.call({"DEL", "a", "nope", "b"}) == integer(2));
        CHECK(c.call({"DBSIZE"}) == integer(1));
        CHECK(c.call({"FLUSHALL"}) == ok);
        CHECK(c.call({"DBSIZE"}) == integer(0));
        CHECK(c.call({"FLUSHDB", "ASYNC"}) == ok);
        CHECK(server.key_count() == 0);
    });
}

TEST_CASE("EXPIRE, PEXPIRE, TTL, PTTL and PERSIST follow loop time; expired keys vanish on access and on their own") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        CHECK(c.call({"TTL", "missing"}) == integer(-2));
        CHECK(c.call({"PTTL", "missing"}) == integer(-2));
        CHECK(c.call({"EXPIRE", "missing", "10"}) == integer(0));
        CHECK(c.call({"SET", "k", "v"}) == ok);
        CHECK(c.call({"TTL", "k"}) == integer(-1));
        CHECK(c.call({"EXPIRE", "k", "100"}) == integer(1));
        const long long ttl = as_integer(c.call({"TTL", "k"}));
        CHECK((ttl >= 99 && ttl <= 100));
        const long long pttl = as_integer(c.call({"PTTL", "k"}));
        CHECK((pttl > 98'000 && pttl <= 100'000));
        CHECK(c.call({"EXPIRE", "k", "50", "GT"}) == integer(0));
        CHECK(c.call({"EXPIRE", "k", "50", "LT"}) == integer(1));
        CHECK(c.call({"EXPIRE", "k", "500", "NX"}) == integer(0));
        CHECK(c.call({"PERSIST", "k"}) == integer(1));
        CHECK(c.call({"TTL", "k"}) == integer(-1));
        CHECK(c.call({"EXPIRE", "k", "500", "XX"}) == integer(0));
        CHECK(c.call({"SET", "k", "v2"}) == ok);  // a plain SET clears a TTL
        CHECK(c.call({"TTL", "k"}) == integer(-1));
        CHECK(c.call({"EXPIRE", "k", "-1"}) == integer(1));  // in the past: deleted at once
        CHECK(c.call({"EXISTS", "k"}) == integer(0));

        // Lazy: the key is gone for GET as soon as loop time passes its deadline.
        CHECK(c.call({"SET", "lazy", "v", "PX", "40"}) == ok);
        CHECK(c.call({"PEXPIRE", "lazy", "40"}) == integer(1));
        must(sleep_for(60ms), "sleep");
        CHECK(c.call({"GET", "lazy"}) == nil);
        CHECK(c.call({"TTL", "lazy"}) == integer(-2));

        // Active: keys nobody touches are removed by the expiry timer.
        CHECK(c.call({"SET", "a1", "v", "PX", "30"}) == ok);
        CHECK(c.call({"SET", "a2", "v", "PX", "20"}) == ok);
        CHECK(c.call({"SET", "keep", "v", "EX", "1000"}) == ok);
        CHECK(server.key_count() == 3);
        CHECK(eventually([&] { return server.key_count() == 1; }, 2000));
        CHECK(c.call({"GET", "keep"}) == bulk("v"));
        const std::string info = c.call({"INFO", "stats"});
        CHECK(info.find("expired_keys:3\r\n") != std::string::npos);
    });
}

TEST_CASE("a key whose deadline moves earlier is still removed by the active expiry at the new deadline") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        CHECK(c.call({"SET", "k", "v", "EX", "1000"}) == ok);
        CHECK(c.call({"PEXPIRE", "k", "20"}) == integer(1));
        CHECK(eventually([&] { return server.key_count() == 0; }, 2000));
    });
}

TEST_CASE("INFO, CLIENT, COMMAND, CONFIG GET, SELECT and TIME give what redis-cli and redis-benchmark ask for") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        CHECK(c.call({"SET", "k", "v", "EX", "100"}) == ok);
        const std::string info = c.call({"INFO"});
        const std::string port_line = fmt::format("tcp_port:{}\r\n", server.port());
        for (std::string_view part : std::vector<std::string_view>{"# Server\r\n", "redis_version:", "# Clients\r\nconnected_clients:1\r\n", "# Stats\r\n",
                                      "total_commands_processed:1\r\n", "# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=0\r\n",
                                      std::string_view(port_line)}) {
            INFO(part);
            CHECK(info.find(part) != std::string::npos);
        }
        const std::string only = c.call({"info", "keyspace"});
        CHECK(only.find("# Server") == std::string::npos);
        CHECK(only.find("db0:keys=1") != std::string::npos);
        CHECK(c.call({"CLIENT", "GETNAME"}) == nil);
        CHECK(c.call({"CLIENT", "SETNAME", "worker-1"}) == ok);
        CHECK(c.call({"client", "getname"}) == bulk("worker-1"));
        CHECK(c.call({"CLIENT", "ID"}).rfind(":", 0) == 0);
        CHECK(c.call({"COMMAND"}) == "*0\r\n");
        CHECK(c.call({"COMMAND", "DOCS"}) == "*0\r\n");
        CHECK(as_integer(c.call({"COMMAND", "COUNT"})) > 20);
        CHECK(c.call({"CONFIG", "GET", "save"}) == "*2\r\n" + bulk("save") + bulk(""));
        CHECK(c.call({"CONFIG", "GET", "appendonly"}) == "*2\r\n" + bulk("appendonly") + bulk("no"));
        CHECK(c.call({"CONFIG", "GET", "nothing"}) == "*0\r\n");
        CHECK(c.call({"SELECT", "0"}) == ok);
        CHECK(c.call({"TIME"}).rfind("*2\r\n", 0) == 0);
        KvClient other(server.port());
        CHECK(other.call({"CLIENT", "GETNAME"}) == nil);  // names are per client
        CHECK(c.call({"INFO", "clients"}).find("connected_clients:2\r\n") != std::string::npos);
    });
}

TEST_CASE("inline commands work as typed into nc, quotes included") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        c.send("PING\r\n");
        CHECK(c.reply() == "+PONG\r\n");
        c.send("set greeting \"hello world\"\nget greeting\r\n\r\nEXISTS greeting nope\n");
        CHECK(c.reply() == ok);
        CHECK(c.reply() == bulk("hello world"));
        CHECK(c.reply() == integer(1));
    });
}

TEST_CASE("a pipelined batch is answered in order, and a request split at every byte is answered once whole") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        std::string batch;
        for (int i = 0; i < 500; ++i)
            batch += resp::encode_command({"INCR", "counter"});
        c.send(batch);
        for (int i = 1; i <= 500; ++i) {
            const std::string r = c.reply();
            if (r != integer(i))
                FAIL("reply " << i << " was " << r);
        }
        const std::string req = resp::encode_command({"SET", "split", std::string(3000, 'x')}) + "GET split\r\n";
        for (char byte : req) {
            c.send(std::string_view(&byte, 1));
            must(sleep_for(0ns), "yield");
        }
        CHECK(c.reply() == ok);
        CHECK(c.reply() == bulk(std::string(3000, 'x')));
    });
}

TEST_CASE("QUIT answers OK and closes the connection") {
    with_kv_server([](kv::Server& server) {
        KvClient c(server.port());
        c.send("*1\r\n$4\r\nQUIT\r\nPING\r\n");
        CHECK(c.reply() == ok);
        CHECK(c.reply() == "<eof>");  // the PING after QUIT is not answered
    });
}

TEST_CASE("malformed protocol gets a protocol error and that connection is closed; other clients keep being served") {
    with_kv_server([](kv::Server& server) {
        KvClient good(server.port());
        CHECK(good.call({"SET", "k", "v"}) == ok);
        const std::vector<std::pair<std::string, std::string>> cases = {
            {"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"},
            {"*x\r\n", "ERR Protocol error: invalid multibulk length"},
            {"*1\r\n+PING\r\n", "ERR Protocol error: expected '$', got '+'"},
            {"SET k \"unbalanced\r\n", "ERR Protocol error: unbalanced quotes in request"},
            {"*1\r\n$9999999999\r\n", "ERR Protocol error: invalid bulk length"},
        };
        for (const auto& [bytes, error] : cases) {
            INFO(bytes);
            KvClient bad(server.port());
            bad.send("PING\r\n" + bytes);
            CHECK(bad.reply() == "+PONG\r\n");
            CHECK(bad.reply() == err(error));
            CHECK(bad.reply() == "<eof>");
            CHECK(good.call({"GET", "k"}) == bulk("v"));
        }
    });
}

TEST_CASE("configured limits close a connection at the bound and not before") {
    kv::Config config = test_config();
    config.limits.resp.max_bulk_bytes = 1024;
    config.limits.resp.max_args = 4;
    config.limits.resp.max_inline_bytes = 128;
    config.limits.max_client_input_bytes = 4096;
    with_kv_server(
        [](kv::Server& server) {
            {
                KvClient c(server.port());
                CHECK(c.call({"SET", "k", std::string(1024, 'v')}) == ok);
                CHECK(c.call({"SET", "k", std::string(1025, 'v')}) == err("ERR Protocol error: invalid bulk length"));
                CHECK(c.reply() == "<eof>");
            }
            {
                KvClient c(server.port());
                CHECK(c.call({"MSET", "a", "1", "b"}) == err("ERR wrong number of arguments for 'mset' command"));
                CHECK(c.call({"MSET", "a", "1", "b", "2"}) == err("ERR Protocol error: invalid multibulk length"));
                CHECK(c.reply() == "<eof>");
            }
            {
                KvClient c(server.port());
                c.send(std::string(129, 'a'));
                CHECK(c.reply() == err("ERR Protocol error: too big inline request"));
                CHECK(c.reply() == "<eof>");
            }
            {
                // Four maximal bulks fit no 4 KiB input buffer: the request is refused once it is known to be too big.
                KvClient c(server.port());
                std::string big = "*4\r\n";
                for (int i = 0; i < 4; ++i)
                    big += fmt::format("$1024\r\n{}\r\n", std::string(1024, 'x'));
                c.send(big);
                CHECK(c.reply() == err("ERR Protocol error: request exceeds the client input limit"));
                CHECK(c.reply() == "<eof>");
            }
        },
        config);
}

TEST_CASE("clients past max_clients are refused with Redis's message") {
    kv::Config config = test_config();
    config.limits.max_clients = 2;
    with_kv_server(
        [](kv::Server& server) {
            KvClient a(server.port());
            KvClient b(server.port());
            CHECK(a.call({"PING"}) == "+PONG\r\n");
            CHECK(b.call({"PING"}) == "+PONG\r\n");
            KvClient c(server.port());
            CHECK(c.reply() == err("ERR max number of clients reached"));
            CHECK(c.reply() == "<eof>");
            CHECK(server.stats().connections_rejected == 1);
        },
        config);
}

TEST_CASE("reprise-kv's arguments are parsed and bad ones refused") {
    kv::Config config;
    CHECK(kv::parse_args({"reprise-kv", "--port=0", "--bind=::1", "--max-bulk=1m", "--max-clients=5"}, config).empty());
    CHECK(config.port == 0);
    CHECK(config.bind == "::1");
    CHECK(config.limits.resp.max_bulk_bytes == 1024 * 1024);
    CHECK(config.limits.max_clients == 5);
    CHECK_FALSE(kv::parse_args({"reprise-kv", "--port=70000"}, config).empty());
    CHECK_FALSE(kv::parse_args({"reprise-kv", "--port=x"}, config).empty());
    CHECK_FALSE(kv::parse_args({"reprise-kv", "--what"}, config).empty());
    CHECK_FALSE(kv::parse_args({"reprise-kv", "--max-bulk=64m"}, config).empty());  // above the client input bound
    CHECK(kv::usage_text().find("--max-client-input") != std::string::npos);
}

TEST_CASE("reprise-kv's flags take their value after a space or '=', and a typo names the closest flag") {
    kv::Config config;
    CHECK(kv::parse_args({"reprise-kv", "--port", "7000", "--bind", "::1", "--max-clients=5", "--max-bulk", "1m"}, config)
              .empty());
    CHECK(config.port == 7000);
    CHECK(config.bind == "::1");
    CHECK(config.limits.max_clients == 5);
    CHECK(config.limits.resp.max_bulk_bytes == 1024 * 1024);
    CHECK(kv::parse_args({"reprise-kv", "--port", "1", "--port=2"}, config).empty());
    CHECK(config.port == 2);  // the last one given wins
    CHECK(kv::parse_args({"reprise-kv", "--prot", "7000"}, config) == "unknown flag --prot; did you mean --port?");
    CHECK(kv::parse_args({"reprise-kv", "--prot=7000"}, config) == "unknown flag --prot; did you mean --port?");
    CHECK(kv::parse_args({"reprise-kv", "--maxclients", "5"}, config) ==
          "unknown flag --maxclients; did you mean --max-clients?");
    CHECK(kv::parse_args({"reprise-kv", "-port", "1"}, config) == "unknown flag -port; did you mean --port?");
    CHECK(kv::parse_args({"reprise-kv", "--verbose"}, config) == "unknown flag --verbose");
    CHECK(kv::parse_args({"reprise-kv", "--port"}, config) == "--port needs a value");
    CHECK(kv::parse_args({"reprise-kv", "--port", "--bind", "x"}, config) == "--port needs a value");
    CHECK(kv::parse_args({"reprise-kv", "--bind="}, config) == "--bind needs a value");
    CHECK(kv::parse_args({"reprise-kv", "7000"}, config) == "unexpected argument '7000'");
    CHECK(kv::parse_args({"reprise-kv", "--port", "x"}, config) == "--port needs a number from 0 to 65535, got 'x'");
}

TEST_CASE("SHUTDOWN stops the server gracefully: no reply, every client closed, serve() returns 0") {
    Runtime rt;
    const int rc = rt.run([&] {
        kv::Server server(test_config());
        must(server.listen(), "kv listen");
        auto serving = spawn("kv-server", [&] { return server.serve(); });
        KvClient other(server.port());
        CHECK(other.call({"SET", "k", "v"}) == ok);
        KvClient c(server.port());
        CHECK(c.call({"SHUTDOWN", "BOGUS"}) == err("ERR syntax error"));
        CHECK(c.call({"SHUTDOWN", "SAVE", "NOSAVE"}) == err("ERR syntax error"));
        CHECK(c.call({"SHUTDOWN", "ABORT"}) == err("ERR No shutdown in progress."));
        c.send("*2\r\n$8\r\nshutdown\r\n$6\r\nNOSAVE\r\nPING\r\n");
        CHECK(c.reply() == "<eof>");  // no reply, as Redis; the PING after it is not answered
        CHECK(serving.join(5s).value() == 0);
        CHECK(other.reply() == "<eof>");
        auto late = connect(Address::loopback(server.port()), 1s);
        CHECK_FALSE(late.ok());  // no longer listening
        return 0;
    });
    CHECK(rc == 0);
}

TEST_CASE("a graceful stop with clients connected, one mid-request, ends every task of the server") {
    Runtime rt;
    const int rc = rt.run([&] {
        kv::Server server(test_config());
        must(server.listen(), "kv listen");
        auto serving = spawn("kv-server", [&] { return server.serve(); });
        std::vector<KvClient> clients;
        for (int i = 0; i < 3; ++i) {
            clients.emplace_back(server.port());
            CHECK(clients.back().call({"SET", "k", "v", "EX", "100"}) == ok);
        }
        clients[0].send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc");  // a request in flight
        must(sleep_for(10ms), "sleep");
        serving.cancel();
        CHECK(serving.join().value() == 0);
        for (auto& c : clients)
            CHECK(c.reply() == "<eof>");  // the server closed each connection
        return 0;
    });
    CHECK(rc == 0);
}
