// reprise-kv under record → replay: expiry driven by loop time and timers happens at the same event in a warped replay.
#include "../support/reprise_test.hpp"
#include "kv_test_support.hpp"

#include <fmt/core.h>

using namespace reprise;
using namespace reprise::test;

namespace {

/// A minimal client for scenarios: no Catch macros (a replay runs in a child), errors end the scenario.
class ScenarioClient {
public:
    explicit ScenarioClient(std::uint16_t port) : conn_(must(connect(Address::loopback(port), generous), "connect")) {}
    std::string call(std::vector<std::string_view> args) {
        must(conn_.write(resp::encode_command(args)), "write");
        for (;;) {
            if (std::size_t end = reply_end(buffer_); end != 0) {
                std::string r = buffer_.substr(0, end);
                buffer_.erase(0, end);
                return r;
            }
            buffer_ += must(conn_.read_some(64 * 1024, generous), "read");
        }
    }

private:
    Connection conn_;
    std::string buffer_;
};

std::string printable(std::string s) {
    for (auto at = s.find("\r\n"); at != std::string::npos; at = s.find("\r\n", at))
        s.replace(at, 2, "\\r\\n");
    return s;
}

/// A server and a client in one runtime: keys with 1.5 s and 5 s expiries, one kept; the
/// client waits 5.2 s of loop time, then looks. The log names the tick of each expiry.
int five_second_expiry(std::string& log) {
    const Instant start = now();
    kv::Server server(test_config());
    must(server.listen(), "listen");
    server.on_active_expire([&](std::string_view key) {
        log += fmt::format("active expiry of '{}' at +{} ms, tick {}\n", key,
                           std::chrono::duration_cast<std::chrono::milliseconds>(now() - start).count(),
                           Runtime::current()->stats().ticks);
    });
    auto serving = spawn("kv-server", [&] { return server.serve(); });
    {
        ScenarioClient c(server.port());
        for (auto args : std::vector<std::vector<std::string_view>>{
                 {"SET", "five", "v", "EX", "5"}, {"SET", "short", "v", "PX", "1500"}, {"SET", "kept", "v"},
                 {"TTL", "five"}, {"DBSIZE"}})
            log += printable(c.call(args)) + "\n";
        must(sleep_for(std::chrono::milliseconds(2000)), "sleep");
        log += "after 2 s: " + printable(c.call({"DBSIZE"})) + " " + printable(c.call({"GET", "five"})) + "\n";
        must(sleep_for(std::chrono::milliseconds(3200)), "sleep");
        log += "after 5.2 s: " + printable(c.call({"GET", "five"})) + " " + printable(c.call({"DBSIZE"})) + "\n";
        const std::string info = c.call({"INFO", "stats"});
        const auto at = info.find("expired_keys:");
        log += info.substr(at, info.find("\r\n", at) - at) + "\n";
    }
    serving.cancel();
    return serving.join().value();
}

/// Several clients, pipelined batches, inline commands, a protocol error and QUIT: the
/// replay must write the same bytes (the replayer compares every output's digest).
int busy_session(std::string& log) {
    kv::Server server(test_config());
    must(server.listen(), "listen");
    auto serving = spawn("kv-server", [&] { return server.serve(); });
    std::vector<Task<std::string>> clients;
    for (int i = 0; i < 4; ++i) {
        clients.push_back(spawn(fmt::format("client-{}", i), [&server, i] {
            Connection conn = must(connect(Address::loopback(server.port()), generous), "connect");
            std::string batch;
            for (int j = 0; j < 50; ++j)
                batch += resp::encode_command({"INCRBY", "counter", std::to_string(i + 1)});
            batch += fmt::format("SET inline-{} \"quoted value\"\r\nGET inline-{}\r\n", i, i);
            if (i == 3)
                batch += "*1\r\n$-7\r\n";  // a protocol error ends this client
            else
                batch += "QUIT\r\n";
            must(conn.write(batch), "write");
            std::string got;
            for (;;) {
                auto more = conn.read_some(64 * 1024, generous);
                if (!more.ok())
                    break;
                got += *more;
            }
            return fmt::format("client {} got {} bytes ending {}\n", i, got.size(), printable(got.substr(got.size() > 20 ? got.size() - 20 : 0)));
        }));
    }
    for (auto& c : clients)
        log += c.join().value();
    {
        ScenarioClient c(server.port());
        log += "counter " + printable(c.call({"GET", "counter"})) + "\n";
    }
    serving.cancel();
    return serving.join().value();
}

/// A client writes, then sends SHUTDOWN: serve() ends on its own (nobody cancels it).
int shutdown_session(std::string& log) {
    kv::Server server(test_config());
    must(server.listen(), "listen");
    auto serving = spawn("kv-server", [&] { return server.serve(); });
    ScenarioClient idle(server.port());
    log += "idle " + printable(idle.call({"PING"})) + "\n";
    {
        Connection conn = must(connect(Address::loopback(server.port()), generous), "connect");
        must(conn.write(resp::encode_command({"SET", "k", "v"}) + resp::encode_command({"SHUTDOWN", "NOSAVE"})), "write");
        std::string got;
        for (;;) {
            auto more = conn.read_some(64 * 1024, generous);
            if (!more.ok()) {
                log += fmt::format("read ends: {}\n", errc_name(more.code()));
                break;
            }
            got += *more;
        }
        log += "shutdown client got " + printable(got) + "\n";
    }
    const int status = serving.join(generous).value();
    log += fmt::format("serve() returned {}\n", status);
    return status;
}

} // namespace

TEST_CASE("SHUTDOWN, recorded, replays to the same graceful stop") {
    TempDir dir;
    RoundTrip trip = record_and_replay(dir / "kv-shutdown.trace", shutdown_session);
    const std::string& log = trip.recorded.log;
    INFO(log);
    CHECK(log.find("shutdown client got +OK\\r\\n\n") != std::string::npos);  // SET answered, SHUTDOWN not
    CHECK(log.find("serve() returned 0") != std::string::npos);
}

TEST_CASE("a key with a 5 s expiry, recorded, expires at the same event in a time-warped replay") {
    TempDir dir;
    RoundTrip trip = record_and_replay(dir / "kv-expiry.trace", five_second_expiry);
    const std::string& log = trip.recorded.log;
    INFO(log);
    // Deadlines count from each SET, a few milliseconds after the scenario started.
    auto expired_at_ms = [&](std::string_view key) -> long long {
        const std::string head = fmt::format("active expiry of '{}' at +", key);
        const auto at = log.find(head);
        return at == std::string::npos ? -1 : std::stoll(log.substr(at + head.size()));
    };
    CHECK(expired_at_ms("short") >= 1500);
    CHECK(expired_at_ms("short") < 1700);
    CHECK(expired_at_ms("five") >= 5000);
    CHECK(expired_at_ms("five") < 5200);
    CHECK(log.find("after 2 s: :2\\r\\n $1\\r\\nv\\r\\n") != std::string::npos);
    CHECK(log.find("after 5.2 s: $-1\\r\\n :1\\r\\n") != std::string::npos);
    CHECK(log.find("expired_keys:2") != std::string::npos);
    // record_and_replay checked the same log (so the same tick of each expiry), the same
    // counts and that the replay ended at the trace's last event; the replay was warped:
    CHECK(trip.replayed.summary_virtual_s >= 5.0);
    CHECK(trip.replayed.run_wall_ns < 2'000'000'000);
}

TEST_CASE("a busy session with pipelining, inline commands, a protocol error and QUIT replays byte for byte") {
    TempDir dir;
    RoundTrip trip = record_and_replay(dir / "kv-busy.trace", busy_session);
    const std::string& log = trip.recorded.log;
    INFO(log);
    CHECK(log.find("counter $3\\r\\n500\\r\\n") != std::string::npos);  // 50 x (1 + 2 + 3 + 4)
    CHECK(log.find("client 3 got") != std::string::npos);
    CHECK(log.find("bulk length\\r\\n") != std::string::npos);
}
