// The simulated world: TCP semantics between nodes, faults, clocks, crash and restart, and determinism.
#include "../support/reprise_test.hpp"

#include <reprise/io/file.hpp>
#include <reprise/io/signal.hpp>
#include <reprise/sim/world.hpp>
#include <reprise/record/internal/run_order.hpp>
#include <reprise/record/trace.hpp>

#include <csignal>

using namespace reprise;
using namespace reprise::sim;
using namespace std::chrono_literals;
using reprise::test::must;

namespace {

/// What the programs of a test saw, filled from inside the nodes.
struct Seen {
    std::vector<std::string> lines;
    void add(std::string s) { lines.push_back(std::move(s)); }
    bool has(std::string_view s) const {
        return std::find(lines.begin(), lines.end(), s) != lines.end();
    }
    std::string all() const {
        std::string out;
        for (auto& l : lines)
            out += l + "\n";
        return out;
    }
};

/// An echo server on port 7000 that serves `clients` connections, then exits 0.
ProgramEntry echo_server(Seen& seen, int clients = 1) {
    return ProgramEntry{.name = "echo", .main = [&seen, clients](MainContext&) {
        Listener l = must(listen(*Address::parse("0.0.0.0:7000")), "listen");
        for (int i = 0; i < clients; ++i) {
            Connection c = must(l.accept(), "accept");
            seen.add("server sees peer " + c.peer_address().to_string() + " local " + c.local_address().to_string());
            for (;;) {
                auto got = c.read_some(4096);
                if (!got.ok()) {
                    seen.add(std::string("server read ends: ") + errc_name(got.code()));
                    break;
                }
                must(c.write(*got), "echo");
            }
        }
        return 0;
    }};
}

/// Sends `messages` lines to 10.0.0.1:7000 and checks each comes back whole; exit 0 on success.
ProgramEntry echo_client(Seen& seen, int messages, std::string target = "10.0.0.1:7000") {
    return ProgramEntry{.name = "client", .main = [&seen, messages, target](MainContext&) {
        Connection c = must(connect(*Address::parse(target), 10s), "connect");
        seen.add("client local " + c.local_address().to_string() + " peer " + c.peer_address().to_string());
        for (int i = 0; i < messages; ++i) {
            std::string msg = fmt::format("message {} {}\n", i, std::string(static_cast<std::size_t>(i % 50), 'x'));
            must(c.write(msg), "write");
            std::string back = must(c.read_exact(msg.size(), 5s), "read echo");
            if (back != msg)
                return 1;
        }
        seen.add(fmt::format("client done at {}", now().time_since_epoch().count() > 0));
        c.shutdown();
        auto end = c.read_some(16, 5s);
        seen.add(std::string("client sees ") + (end.ok() ? "bytes" : errc_name(end.code())));
        return 0;
    }};
}

struct RunFacts {
    std::uint64_t hash = 0;
    std::uint64_t events = 0;
    std::uint64_t wakeups = 0;
    std::int64_t end_ns = 0;
    std::vector<std::string> seen;
};

RunFacts run_echo(std::uint64_t seed, const std::string& trace_folder = "", int messages = 40) {
    Seen seen;
    WorldOptions o;
    o.seed = seed;
    o.trace_folder = trace_folder;
    World w(o);
    w.add_node({.name = "server", .program = echo_server(seen)});
    w.add_node({.name = "client", .program = echo_client(seen, messages)});
    REQUIRE(w.run_to_completion(60s));
    CHECK(w.exit_code(0) == 0);
    CHECK(w.exit_code(1) == 0);
    return RunFacts{w.hash(), w.events(), w.wakeups(), w.now().count(), seen.lines};
}

} // namespace

TEST_CASE("sim: two nodes talk TCP on virtual time with the addresses a program sees live") {
    Seen seen;
    World w(WorldOptions{.seed = 7});
    w.add_node({.name = "server", .program = echo_server(seen)});
    w.add_node({.name = "client", .program = echo_client(seen, 100)});
    REQUIRE(w.run_to_completion(60s));
    INFO(seen.all());
    CHECK(w.exit_code(0) == 0);
    CHECK(w.exit_code(1) == 0);
    CHECK(seen.has("client local 10.0.0.2:40000 peer 10.0.0.1:7000"));
    CHECK(seen.has("server sees peer 10.0.0.2:40000 local 10.0.0.1:7000"));
    CHECK(seen.has("server read ends: eof"));
    CHECK(seen.has("client sees eof"));
    // 100 round trips of 50..500 us each way: virtual time, not wall time.
    CHECK(w.now() >= 100 * 100us);
    CHECK(w.now() < 1s);
    CHECK(w.wakeups() > 200);
}

TEST_CASE("sim: the same seed gives the same run, event for event; another seed another") {
    const std::uint64_t seed = reprise::test::test_seed("sim determinism");
    RunFacts a = run_echo(seed);
    RunFacts b = run_echo(seed);
    CHECK(a.hash == b.hash);
    CHECK(a.events == b.events);
    CHECK(a.wakeups == b.wakeups);
    CHECK(a.end_ns == b.end_ns);
    CHECK(a.seen == b.seen);
    RunFacts c = run_echo(seed + 1);
    CHECK(c.hash != a.hash);
}

TEST_CASE("sim: recording every node's trace does not change the run, and each trace replays on its own") {
    const std::uint64_t seed = reprise::test::test_seed("sim recording");
    reprise::test::TempDir dir;
    RunFacts plain = run_echo(seed, "", 200);
    RunFacts recorded = run_echo(seed, dir.path(), 200);
    CHECK(plain.hash == recorded.hash);
    CHECK(plain.events == recorded.events);
    CHECK(plain.end_ns == recorded.end_ns);

    // The client's trace is an ordinary trace: a runtime replays it without the world.
    Seen seen;
    Options replay;
    replay.replay_path = dir / "client.1.trace";
    replay.program_name = "client";
    Runtime rt(replay);
    CHECK(run_entry(rt, echo_client(seen, 200), {"client"}) == 0);
    CHECK(rt.stats().clock_waits == 0);
    CHECK(seen.has("client sees eof"));
    Seen server_seen;
    Options replay_server;
    replay_server.replay_path = dir / "server.1.trace";
    replay_server.program_name = "echo";
    Runtime rs(replay_server);
    CHECK(run_entry(rs, echo_server(server_seen), {"echo"}) == 0);
    CHECK(server_seen.has("server sees peer 10.0.0.2:40000 local 10.0.0.1:7000"));

    // The world's run order (sim.order) names both traces, with as many ticks as each holds, and
    // switches between them as often as the two nodes took turns.
    trace::RunOrder order;
    std::string error;
    REQUIRE(trace::read_run_order(dir / "sim.order", order, error));
    REQUIRE(order.traces.size() == 2);
    for (const trace::RunOrderTrace& t : order.traces) {
        INFO(t.file);
        auto reader = trace::Reader::open(dir / t.file, &error);
        REQUIRE(reader.ok());
        CHECK(t.node == reader->header().node);
        CHECK(t.seed == reader->header().seed);
        std::uint64_t ticks = 0;
        trace::Skim r;
        while (reader->skim(r))
            ticks += r.kind == trace::RecordKind::tick ? 1 : 0;
        CHECK(t.ticks == ticks);
    }
    CHECK(order.run_count > 200);  // 200 round trips: the nodes alternate
}

TEST_CASE("sim: connect is refused where nobody listens, and times out into a partition") {
    Seen seen;
    World w(WorldOptions{.seed = 3});
    auto try_connect = [&seen](std::string target) {
        return ProgramEntry{.name = "dialer", .main = [&seen, target](MainContext&) {
            auto c = connect(*Address::parse(target), 30s);
            seen.add(target + " -> " + (c.ok() ? "connected" : errc_name(c.code())));
            return 0;
        }};
    };
    ProgramEntry idle{.name = "idle", .main = [](MainContext&) {
        Listener l = must(listen(*Address::parse("0.0.0.0:9000")), "listen");
        (void)sleep_for(20s);
        return 0;
    }};
    const NodeId server = w.add_node({.name = "server", .program = idle});
    const NodeId a = w.add_node({.name = "a", .program = try_connect("10.0.0.1:9001")});
    const NodeId b = w.add_node({.name = "b", .program = try_connect("10.0.0.1:9000")});
    w.partition(b, server);
    REQUIRE(w.run_to_completion(60s));
    INFO(seen.all());
    (void)a;
    CHECK(seen.has("10.0.0.1:9001 -> refused"));
    CHECK(seen.has("10.0.0.1:9000 -> timed_out"));
}

TEST_CASE("sim: a clogged link holds bytes and delivers them in order when released; a long partition times out") {
    Seen seen;
    World w(WorldOptions{.seed = 11});
    w.add_node({.name = "server", .program = echo_server(seen)});
    ProgramEntry client{.name = "client", .main = [&seen](MainContext&) {
        Connection c = must(connect(*Address::parse("10.0.0.1:7000"), 10s), "connect");
        (void)sleep_for(100ms);
        must(c.write("first\n"), "write");
        seen.add("first: " + must(c.read_exact(6, 30s), "read"));
        (void)sleep_for(1s);
        must(c.write("second\n"), "write");
        auto r = c.read_exact(7, 60s);
        seen.add(std::string("second: ") + (r.ok() ? *r : errc_name(r.code())));
        return 0;
    }};
    const NodeId cl = w.add_node({.name = "client", .program = client});
    w.run_until(50ms);  // connected; the client writes at 100 ms
    w.clog(cl, 0);
    w.at(2s, [&] { w.unclog(cl, 0); });
    REQUIRE(w.run_until([&] { return seen.lines.size() >= 2; }, 10s));
    INFO(seen.all());
    CHECK(seen.has("first: first\n"));
    CHECK(w.now() >= 2s);
    // Now the link breaks for longer than partition_timeout: the client's write never arrives.
    w.partition(cl, 0);
    REQUIRE(w.run_until([&] { return w.state(cl) == NodeState::exited; }, 60s));
    INFO(seen.all());
    CHECK(seen.has("second: timed_out"));
}

TEST_CASE("sim: a slow reader holds the writer back (write backpressure) and every byte arrives in order") {
    Seen seen;
    World w(WorldOptions{.seed = reprise::test::test_seed("sim backpressure")});
    constexpr std::size_t total = 4 * 1024 * 1024;
    ProgramEntry reader{.name = "reader", .main = [&seen](MainContext&) {
        Listener l = must(listen(*Address::parse("0.0.0.0:7000")), "listen");
        Connection c = must(l.accept(), "accept");
        std::size_t got = 0;
        while (got < total) {
            std::string chunk = must(c.read_some(64 * 1024), "read");
            if (auto at = reprise::test::pattern_mismatch(chunk, got); at != std::string_view::npos)
                return 1;
            got += chunk.size();
            (void)sleep_for(1ms);  // reads slowly: at most 64 KiB a millisecond
        }
        seen.add("reader got all");
        return 0;
    }};
    ProgramEntry writer{.name = "writer", .main = [&seen](MainContext&) {
        Connection c = must(connect(*Address::parse("10.0.0.1:7000"), 10s), "connect");
        const Instant start = now();
        for (std::size_t off = 0; off < total; off += 256 * 1024)
            must(c.write(reprise::test::pattern(off, 256 * 1024)), "write");
        seen.add(fmt::format("writer blocked {}ms", (now() - start) / 1ms));
        return 0;
    }};
    w.add_node({.name = "reader", .program = reader});
    w.add_node({.name = "writer", .program = writer});
    const bool completed = w.run_to_completion(120s);
    INFO(seen.all() << "now " << w.now().count() << " reader " << node_state_name(w.state(0)) << " writer "
                    << node_state_name(w.state(1)));
    REQUIRE(completed);
    CHECK(w.exit_code(0) == 0);
    CHECK(w.exit_code(1) == 0);
    CHECK(seen.has("reader got all"));
    // 4 MiB at 64 KiB/ms takes >= 64 ms of virtual time; the writer could not finish far ahead.
    CHECK(w.now() >= 60ms);
}

TEST_CASE("sim: a crashed node loses what it did not sync, peers see resets, and it restarts from its disk") {
    Seen seen;
    World w(WorldOptions{.seed = 5});
    ProgramEntry counter{.name = "counter", .main = [&seen](MainContext&) {
        int value = 0;
        if (auto old = read_file("/counter"); old.ok())
            value = std::stoi(*old);
        seen.add(fmt::format("start at {}", value));
        Listener l = must(listen(*Address::parse("0.0.0.0:7000")), "listen");
        for (;;) {
            ++value;
            must(write_file_atomic("/counter", std::to_string(value)), "save");
            must(write_file("/unsynced", std::to_string(value)), "scratch");
            if (!sleep_for(100ms).ok())
                return 0;
        }
    }};
    ProgramEntry watcher{.name = "watcher", .main = [&seen](MainContext&) {
        (void)sleep_for(50ms);
        Connection c = must(connect(*Address::parse("10.0.0.1:7000"), 10s), "connect");
        auto r = c.read_some(16, 60s);
        seen.add(std::string("watcher: ") + (r.ok() ? "bytes" : errc_name(r.code())));
        return 0;
    }};
    const NodeId n = w.add_node({.name = "counter", .program = counter});
    w.add_node({.name = "watcher", .program = watcher});
    w.run_until(1050ms);
    w.crash(n);
    CHECK(w.state(n) == NodeState::crashed);
    CHECK(w.disk(n).visible_files()["/counter"] == "11");
    w.run_until(2s);
    INFO(seen.all());
    CHECK(seen.has("watcher: reset"));
    w.restart(n);
    w.run_until(2050ms);
    CHECK(w.incarnation(n) == 2);
    INFO(seen.all());
    CHECK(seen.lines.size() >= 3);
    CHECK(seen.has("start at 0"));
    CHECK(seen.has("start at 11"));  // it saved 1..11 at 0, 100, ..., 1000 ms
}

TEST_CASE("sim: a node crashed between two file steps keeps either the old or the new file") {
    // write_file_atomic is several steps (create, write, sync, close, rename, sync the folder):
    // a crash after any of them leaves the previous value or the new one, nothing else.
    int crashed = 0;
    for (std::uint64_t steps = 0; steps < 12; ++steps) {
        Seen seen;
        World w(WorldOptions{.seed = 9 + steps});
        ProgramEntry saver{.name = "saver", .main = [&seen](MainContext&) {
            std::string old = read_file("/f").ok() ? *read_file("/f") : "none";
            seen.add("found " + old);
            if (old == "none") {
                must(write_file_atomic("/f", "one"), "first");
                seen.add("saved one");
                (void)sleep_for(1s);
            }
            must(write_file_atomic("/f", "two"), "second");
            seen.add("saved two");
            (void)sleep_for(10s);
            return 0;
        }};
        const NodeId n = w.add_node({.name = "saver", .program = saver});
        REQUIRE(w.run_until([&] { return seen.has("saved one"); }, 5s));
        w.crash_after_disk_steps(n, steps);
        w.run_until(w.now() + 2s);
        CAPTURE(steps, seen.all());
        if (w.state(n) == NodeState::crashed) {
            ++crashed;
            w.restart(n);
            w.run_until(w.now() + 100ms);
            CHECK((seen.lines.back() == "found one" || seen.lines.back() == "found two" ||
                   seen.lines.back() == "saved two"));
        } else {
            CHECK(seen.has("saved two"));
        }
    }
    CHECK(crashed >= 5);  // every boundary of the second save, and more
}

TEST_CASE("sim: clocks drift per node, wall clocks jump, monotonic time never goes back") {
    Seen seen;
    World w(WorldOptions{.seed = 1});
    auto sleeper = [&seen](std::string name) {
        return ProgramEntry{.name = name, .main = [&seen, name](MainContext&) {
            const Instant m0 = now();
            const WallTime w0 = wall_now();
            (void)sleep_for(10s);
            seen.add(fmt::format("{} mono {} wall {}", name, (now() - m0) / 1ms, (wall_now() - w0) / 1s));
            return 0;
        }};
    };
    const NodeId fast = w.add_node({.name = "fast", .program = sleeper("fast"), .clock_drift_ppm = 100'000});
    w.add_node({.name = "true", .program = sleeper("true")});
    w.at(5s, [&] { w.jump_wall_clock(fast, -3600s); });
    REQUIRE(w.run_to_completion(60s));
    INFO(seen.all());
    // The fast node's 10 s of its own time pass in about 9.09 s of the world's (wall: 9.09 - 3600).
    CHECK(seen.has("fast mono 10000 wall -3590"));
    CHECK(seen.has("true mono 10000 wall 10"));
}

TEST_CASE("sim: a paused node runs nothing until resumed; signals reach a node that waits for them") {
    Seen seen;
    World w(WorldOptions{.seed = 2});
    ProgramEntry ticker{.name = "ticker", .main = [&seen](MainContext&) {
        for (int i = 0; i < 3; ++i) {
            (void)sleep_for(1s);
            seen.add(fmt::format("tick at {}", now().time_since_epoch() / 1ms));
        }
        auto s = wait_signal(SIGUSR1, 30s);
        seen.add(s.ok() ? "got SIGUSR1" : "no signal");
        return 0;
    }};
    const NodeId n = w.add_node({.name = "ticker", .program = ticker});
    w.run_until(1500ms);
    CHECK(seen.lines.size() == 1);
    w.pause(n);
    w.run_until(5s);
    CHECK(seen.lines.size() == 1);
    w.resume(n);
    w.run_until(8s);
    CHECK(seen.lines.size() == 3);
    w.signal(n, SIGUSR1);
    REQUIRE(w.run_to_completion(10s));
    CHECK(seen.has("got SIGUSR1"));
}

TEST_CASE("sim: random faults from the seed replay identically, and the repro line names every option") {
    auto run = [](std::uint64_t seed) {
        Seen seen;
        WorldOptions o;
        o.seed = seed;
        o.faults.mean_interval = 200ms;
        o.faults.mean_duration = 100ms;
        World w(o);
        w.add_node({.name = "server", .program = echo_server(seen, 1000)});
        for (int i = 0; i < 3; ++i)
            w.add_node({.name = fmt::format("client{}", i),
                        .program = ProgramEntry{.name = "client", .main = [&seen](MainContext&) {
                            for (int round = 0; round < 20; ++round) {
                                auto c = connect(*Address::parse("10.0.0.1:7000"), 2s);
                                if (!c.ok())
                                    continue;
                                if (c->write("ping\n").ok()) {
                                    auto r = c->read_exact(5, 1s);
                                    seen.add(r.ok() ? "pong" : errc_name(r.code()));
                                }
                                (void)sleep_for(100ms);
                            }
                            return 0;
                        }}});
        w.run_for(5s);
        return std::make_tuple(w.hash(), w.log(), w.repro_line());
    };
    const std::uint64_t seed = reprise::test::test_seed("sim faults");
    auto [h1, log1, line] = run(seed);
    auto [h2, log2, line2] = run(seed);
    CHECK(h1 == h2);
    CHECK(log1 == log2);
    CHECK(log1.size() > 3);
    CHECK(line.find(fmt::format("seed={}", seed)) != std::string::npos);
    CHECK(line.find("commit=") != std::string::npos);
    CHECK(line.find("compiler=") != std::string::npos);
}

TEST_CASE("sim: a node crashed and restarted by random faults comes back on what its disk kept") {
    Seen seen;
    WorldOptions o;
    o.seed = 21;
    o.faults.mean_interval = 300ms;
    o.faults.mean_duration = 100ms;
    o.faults.partition = o.faults.one_way = o.faults.clog = o.faults.pause = o.faults.clock_jump = 0;
    World w(o);
    ProgramEntry counter{.name = "counter", .main = [&seen](MainContext&) {
        int value = 0;
        if (auto old = read_file("/counter"); old.ok())
            value = std::stoi(*old);
        seen.add(fmt::format("start at {}", value));
        for (;;) {
            ++value;
            must(write_file_atomic("/counter", std::to_string(value)), "save");
            if (!sleep_for(10ms).ok())
                return 0;
        }
    }};
    ProgramEntry idle{.name = "idle", .main = [](MainContext&) {
        (void)sleep_for(10s);
        return 0;
    }};
    const NodeId n = w.add_node({.name = "counter", .program = counter});
    w.add_node({.name = "idle", .program = idle});
    w.run_for(5s);
    INFO(seen.all());
    CHECK(w.incarnation(n) > 2);
    std::size_t restarts_with_data = 0;
    for (auto& line : seen.lines)
        restarts_with_data += line != "start at 0" ? 1 : 0;
    CHECK(restarts_with_data >= 2);
}

TEST_CASE("sim: a crashed node's task that ignores its cancellation is ended, not spun forever") {
    World w(WorldOptions{.seed = 4});
    ProgramEntry stubborn{.name = "stubborn", .main = [](MainContext&) {
        for (;;) {
            // Retries on any error, Errc::cancelled included: it never ends by itself.
            auto c = connect(*Address::parse("10.0.0.9:1"), 10ms);
            if (c.ok())
                return 0;
            (void)sleep_for(1ms);
        }
    }};
    const NodeId n = w.add_node({.name = "stubborn", .program = stubborn});
    w.run_for(100ms);
    w.crash(n);  // returns: the retrying task was ended after a bounded number of cancelled calls
    CHECK(w.state(n) == NodeState::crashed);
    w.restart(n);
    w.run_for(100ms);
    CHECK(w.state(n) == NodeState::running);
}

TEST_CASE("sim: random faults are told as they begin and end, obey a runner's guard, and all end at stop_random_faults") {
    WorldOptions o;
    o.seed = reprise::test::test_seed("sim fault observer");
    o.faults.mean_interval = 100ms;
    o.faults.mean_duration = 400ms;
    o.faults.max_nodes_down = 2;
    World w(o);
    ProgramEntry idle{.name = "idle", .main = [](MainContext&) {
        (void)sleep_for(60s);
        return 0;
    }};
    for (int i = 0; i < 4; ++i)
        w.add_node({.name = fmt::format("n{}", i), .program = idle});
    std::map<std::uint64_t, RandomFault> holding;
    std::size_t began = 0, guarded = 0, node0_down = 0;
    w.on_random_fault([&](const RandomFault& f) {
        if (f.ends) {
            CHECK(holding.erase(f.id) + (f.kind == RandomFault::Kind::clock_jump ? 1 : 0) == 1);
            return;
        }
        ++began;
        if (f.kind != RandomFault::Kind::clock_jump)
            holding.emplace(f.id, f);
        if ((f.kind == RandomFault::Kind::pause || f.kind == RandomFault::Kind::crash_restart) && f.a == 0)
            ++node0_down;
    });
    w.set_random_fault_guard([&](NodeId id) {
        ++guarded;
        return id != 0;
    });
    w.run_for(10s);
    INFO(fmt::format("seed {}", o.seed));
    CHECK(began > 20);
    CHECK(guarded > 0);
    CHECK(node0_down == 0);  // the guard said no, every time
    w.stop_random_faults();
    CHECK(holding.empty());  // every fault still holding ended there and then
    for (NodeId n = 0; n < 4; ++n)
        CHECK(w.state(n) == NodeState::running);
    const std::size_t began_before = began;
    w.run_for(10s);
    CHECK(began == began_before);  // none began after
    CHECK(holding.empty());
    CHECK(std::any_of(w.log().begin(), w.log().end(),
                      [](const std::string& line) { return line.find("random faults stop") != std::string::npos; }));
}
