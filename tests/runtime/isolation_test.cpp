// Tests that runtimes sharing a thread do not see each other: ids, tasks, timers, PRNG, stats.
//
// Scenarios that run live only, and why:
// - every test that builds two or more runtimes: a recording and its replay are of one
//   runtime; joint record and replay of several is the stepping driver's future.
// - "a runtime's ids keep counting across its runs and are not reused": one runtime run
//   twice; a recording covers one run.
// - "runtimes without a seed draw theirs from the operating system": runs nothing.
// - "running a runtime again from inside its own task is refused": the program ends by
//   abort in a forked child.
// "a runtime stepped by hand runs as run() does" is recorded while stepped by hand and
// replayed by run(): the replay must leave the same log and counts.
#include <reprise/runtime/reprise.hpp>
#include "../support/reprise_test.hpp"


#include <catch2/catch.hpp>
#include <fmt/core.h>

#include <csignal>
#include <sys/resource.h>
#include <ctime>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

using namespace reprise;
using test::run_live_only;
using namespace std::chrono_literals;

namespace {

/// The ids a fixed sequence of actions gets from the current runtime.
std::vector<std::uint64_t> ids_of_fixed_actions() {
    std::vector<std::uint64_t> ids;
    ids.push_back(current_task_id());
    auto a = spawn("a", [] {});
    auto b = spawn("b", [] { sleep_for(1ms).value(); });
    Timer t;
    ids.push_back(a.id());
    ids.push_back(b.id());
    ids.push_back(t.id());
    a.join().value();
    b.join().value();
    ids.push_back(spawn("c", [] {}).id());
    return ids;
}

Options seeded(std::uint64_t seed) {
    Options options;
    options.seed = seed;
    return options;
}

Options named(std::string name) {
    Options options;
    options.node_name = std::move(name);
    return options;
}

std::vector<std::uint64_t> draws(int n) {
    std::vector<std::uint64_t> out;
    for (int i = 0; i < n; ++i)
        out.push_back(random_u64());
    return out;
}

} // namespace

TEST_CASE("two runtimes in one thread hand out the same ids for the same actions") {
    Runtime first;
    Runtime second;
    std::vector<std::uint64_t> ids_first;
    std::vector<std::uint64_t> ids_second;
    first.run([&] {
        ids_first = ids_of_fixed_actions();
        return 0;
    });
    second.run([&] {
        ids_second = ids_of_fixed_actions();
        return 0;
    });
    REQUIRE(ids_first.size() == 5);
    REQUIRE(ids_first == ids_second);
    REQUIRE(ids_first[0] == 1);   // main is the first handle of a fresh runtime
}

TEST_CASE("a runtime's ids keep counting across its runs and are not reused") {
    Runtime rt;
    std::uint64_t first_main = 0;
    std::uint64_t second_main = 0;
    std::uint64_t last_task = 0;
    rt.run([&] {
        first_main = current_task_id();
        last_task = spawn("t", [] {}).id();
        return 0;
    });
    rt.run([&] {
        second_main = current_task_id();
        return 0;
    });
    REQUIRE(second_main > last_task);
    REQUIRE(last_task > first_main);
}

TEST_CASE("runtimes with the same seed draw the same sequence and other seeds another") {
    Runtime a(seeded(1234));
    Runtime b(seeded(1234));
    Runtime c(seeded(1235));
    CAPTURE(a.seed(), c.seed());
    std::vector<std::uint64_t> from_a;
    std::vector<std::uint64_t> from_b;
    std::vector<std::uint64_t> from_c;
    a.run([&] {
        from_a = draws(16);
        return 0;
    });
    b.run([&] {
        from_b = draws(16);
        return 0;
    });
    c.run([&] {
        from_c = draws(16);
        return 0;
    });
    REQUIRE(a.seed() == 1234);
    REQUIRE(from_a == from_b);
    REQUIRE(from_a != from_c);
}

TEST_CASE("drawing from one runtime does not advance another's PRNG") {
    constexpr std::uint64_t seed = 987654321;
    CAPTURE(seed);
    Runtime reference(seeded(seed));
    std::vector<std::uint64_t> expected;
    reference.run([&] {
        expected = draws(6);
        return 0;
    });

    Runtime a(seeded(seed));
    Runtime b(seeded(seed));
    std::vector<std::uint64_t> from_a;
    std::vector<std::uint64_t> from_b;
    auto draw_into = [](std::vector<std::uint64_t>& into, int n) {
        return [&into, n] {
            for (auto v : draws(n))
                into.push_back(v);
            return 0;
        };
    };
    a.run(draw_into(from_a, 3));
    b.run(draw_into(from_b, 5));
    a.run(draw_into(from_a, 3));   // continues where a stopped, whatever b drew
    b.run(draw_into(from_b, 1));
    REQUIRE(from_a == expected);
    REQUIRE(from_b == expected);
}

TEST_CASE("runtimes without a seed draw theirs from the operating system") {
    Runtime a;
    Runtime b;
    CAPTURE(a.seed(), b.seed());
    REQUIRE(a.seed() != b.seed());   // equal with probability 2^-64
}

TEST_CASE("stats and node names and the current runtime are kept per runtime") {
    Runtime a(named("alpha"));
    Runtime b(named("beta"));
    REQUIRE(Runtime::current() == nullptr);
    a.run([&] {
        REQUIRE(Runtime::current() == &a);
        for (int i = 0; i < 4; ++i)
            spawn("a-task", [] { yield(); });
        return 0;
    });
    REQUIRE(Runtime::current() == nullptr);
    b.run([&] {
        REQUIRE(Runtime::current() == &b);
        spawn("b-task", [] {});
        return 0;
    });
    REQUIRE(Runtime::current() == nullptr);
    REQUIRE(a.node_name() == "alpha");
    REQUIRE(b.node_name() == "beta");
    REQUIRE(a.stats().fibers_spawned == 5);
    REQUIRE(b.stats().fibers_spawned == 2);
    REQUIRE(a.stats().fibers_alive == 0);
    REQUIRE(b.stats().fibers_alive == 0);
    REQUIRE(b.stats().switches < a.stats().switches);
}

TEST_CASE("a timer of one runtime never fires in another runtime's loop") {
    Runtime a;
    Runtime b;
    std::optional<Timer> timer_of_a;
    a.run([&] {
        timer_of_a.emplace();
        timer_of_a->start(1ms);
        return 0;   // returns before the timer is due; it stays armed
    });
    // CHECK, not REQUIRE: the Timer must still be destroyed inside a's run below.
    CHECK(timer_of_a->armed());
    b.run([&] {
        sleep_for(30ms).value();   // well past the deadline of a's timer
        return 0;
    });
    CHECK(timer_of_a->armed());   // b's loop did not fire it
    std::uint64_t fires = 0;
    a.run([&] {
        fires = timer_of_a->wait(10s).value();   // due: fires in a's next tick
        timer_of_a.reset();
        return 0;
    });
    REQUIRE(fires == 1);
}

TEST_CASE("a handle of one runtime destroyed while another runs leaves the other's handle of the same id") {
    Runtime a;
    Runtime b;
    // The same actions in both runtimes: a's and b's timers and listeners get equal ids.
    std::optional<Timer> timer_of_a;
    std::optional<Listener> listener_of_a;
    a.run([&] {
        timer_of_a.emplace();
        timer_of_a->start(1h);
        listener_of_a.emplace(listen(Address::loopback(0)).value());
        return 0;
    });
    std::uint64_t timer_id = timer_of_a->id(), listener_id = listener_of_a->id();
    std::string seen_by_b;
    b.run([&] {
        Timer timer_of_b;
        timer_of_b.start(5ms);
        Listener listener_of_b = listen(Address::loopback(0)).value();
        REQUIRE(timer_of_b.id() == timer_id);
        REQUIRE(listener_of_b.id() == listener_id);
        // Destroyed while b runs: they must leave b's handles of the same ids alone.
        timer_of_a.reset();
        listener_of_a->close();
        listener_of_a.reset();
        auto client = spawn("client", [&] { return connect(Address::loopback(listener_of_b.port()), 10s).ok(); });
        auto accepted = listener_of_b.accept(10s);
        seen_by_b += fmt::format("accepted={} client={} ", accepted.ok(), client.join().value());
        seen_by_b += fmt::format("fires={}", timer_of_b.wait(10s).value());
        return 0;
    });
    REQUIRE(seen_by_b == "accepted=true client=true fires=1");
    // And a's runtime no longer holds them: it runs and ends with nothing left behind.
    REQUIRE(a.run([] { return sleep_for(1ms).ok() ? 0 : 1; }) == 0);
}

TEST_CASE("a task that blocks on a handle of another runtime is stopped with a message") {
    auto child = reprise::test::run_in_child([] {
        Runtime a(named("node-a"));
        Runtime b(named("node-b"));
        std::optional<Timer> timer_of_a;
        a.run([&] {
            timer_of_a.emplace();
            timer_of_a->start(1ms);
            return 0;
        });
        return b.run([&] { return timer_of_a->wait(1s).ok() ? 0 : 1; });
    });
    INFO(child.describe());
    REQUIRE_FALSE(child.exited_with(0));
    REQUIRE_THAT(child.err, Catch::Contains("Timer::wait on a handle") && Catch::Contains("of node 'node-a'") &&
                                Catch::Contains("from a task of node 'node-b'"));
}

TEST_CASE("each runtime's tasks run only in its own run") {
    Runtime a;
    Runtime b;
    std::vector<std::string> log;
    a.run([&] {
        spawn("a-side", [&] { log.push_back("a"); });
        return 0;   // a-side is drained by a's run, never by b's
    });
    REQUIRE(log == std::vector<std::string>{"a"});
    b.run([&] {
        log.push_back("b-main");
        return 0;
    });
    REQUIRE(log == std::vector<std::string>{"a", "b-main"});
}

TEST_CASE("running a runtime from inside a task of another runtime is refused") {
    auto child = test::run_in_child([] {
        Runtime outer;
        Runtime inner;
        return outer.run([&] { return inner.run([] { return 0; }); });
    });
    INFO(child.describe());
    REQUIRE(child.died_by(SIGABRT));
    REQUIRE_THAT(child.err, Catch::Contains("called from inside a task of node"));
}

TEST_CASE("running a runtime again from inside its own task is refused") {
    auto child = test::run_in_child([] {
        run_live_only("the program ends by abort", [] { (void)Runtime::current()->run([] { return 0; }); });
        return 0;
    });
    INFO(child.describe());
    REQUIRE(child.died_by(SIGABRT));
    REQUIRE_THAT(child.err, Catch::Contains("not reentrant"));
}

// --- stepping: several runtimes driven by one loop of the test's own ------------------

namespace {

/// CPU time of this thread (user + system), in nanoseconds.
std::int64_t thread_cpu_ns() {
    rusage usage{};
    REQUIRE(::getrusage(RUSAGE_THREAD, &usage) == 0);
    auto ns = [](const timeval& tv) { return std::int64_t{tv.tv_sec} * 1'000'000'000 + std::int64_t{tv.tv_usec} * 1000; };
    return ns(usage.ru_utime) + ns(usage.ru_stime);
}

/// Steps every runtime until all have finished, blocking once per round until the
/// earliest next event of any of them (the driver of simulation and joint replay).
void drive(std::vector<Runtime*> runtimes, int rounds_max) {
    for (int round = 0; round < rounds_max; ++round) {
        std::int64_t wait_until = -1;
        bool all_done = true;
        for (Runtime* rt : runtimes) {
            if (rt->finished())
                continue;
            all_done = false;
            std::int64_t next = rt->next_event_ns();
            if (next >= 0 && (wait_until < 0 || next < wait_until))
                wait_until = next;
        }
        if (all_done)
            return;
        // The first unfinished runtime waits (on the shared loop) for everyone; the
        // others only take what arrived.
        bool waited = false;
        for (Runtime* rt : runtimes) {
            if (rt->finished())
                continue;
            rt->step(waited ? 0 : wait_until);
            waited = true;
        }
    }
    FAIL("the runtimes did not finish within " << rounds_max << " rounds");
}

} // namespace

TEST_CASE("a runtime stepped by hand runs as run() does and reports its next event") {
    const test::Scenario scenario = [](std::string& log) {
        log += "main starts\n";
        auto t = spawn("sleeper", [&] {
            sleep_for(20ms).value();
            log += "slept\n";
        });
        t.join().value();
        return 7;
    };
    const bool recording = GENERATE(false, true);
    CAPTURE(recording);
    test::TempDir dir;
    Options options;
    if (recording)
        options.record_path = dir / "trace";
    std::optional<Runtime> stepped(std::in_place, options);
    Runtime& rt = *stepped;
    std::string log;
    rt.start([&] { return scenario(log); });
    REQUIRE(log.empty());  // nothing runs before the first step
    REQUIRE_FALSE(rt.finished());
    // A step that must not wait: main and the sleeper run up to their waits.
    REQUIRE_FALSE(rt.step(0));
    REQUIRE(log == "main starts\n");
    bool saw_sleeper = false;
    for (const TaskInfo& t : rt.tasks())
        if (t.name == "sleeper") {
            saw_sleeper = true;
            REQUIRE(t.waits_on == WaitKind::sleep);
            REQUIRE(rt.next_event_ns() == t.deadline_ns);  // its timer is the next event
        }
    REQUIRE(saw_sleeper);
    int steps = 0;
    while (!rt.step()) {
        ++steps;
        REQUIRE(steps < 1000);
    }
    REQUIRE(rt.finished());
    REQUIRE(rt.result() == 7);
    REQUIRE(log == "main starts\nslept\n");
    REQUIRE(rt.next_event_ns() == -1);
    if (!recording)
        return;
    // The trace of the stepped run replays by run() to the same end.
    const RuntimeStats stats = rt.stats();
    stepped.reset();
    const test::TraceFacts trace = test::read_trace(dir / "trace");
    REQUIRE(trace.saw_end);
    REQUIRE_FALSE(trace.error.has_value());
    const test::Replay replayed = test::replay(dir / "trace", scenario);
    INFO(replayed.child.describe());
    REQUIRE(replayed.finished);
    REQUIRE(replayed.exit_code == 7);
    REQUIRE(replayed.log == log);
    REQUIRE(replayed.summary_events == trace.records);
    REQUIRE(replayed.stats.ticks == stats.ticks);
    REQUIRE(replayed.stats.wakeups == stats.wakeups);
    REQUIRE(replayed.stats.switches == stats.switches);
    REQUIRE(replayed.stats.fibers_spawned == stats.fibers_spawned);
    REQUIRE(replayed.stats.clock_waits == 0);
}

TEST_CASE("two live runtimes on one LiveWorld, stepped alternately, talk over TCP and idle without spinning") {
    auto world = make_live_world();
    Options a_options;
    a_options.node_name = "server";
    a_options.live_world = world;
    Options b_options;
    b_options.node_name = "client";
    b_options.live_world = world;
    Runtime a(a_options);
    Runtime b(b_options);
    std::optional<Listener> listener;
    std::string served, got;
    a.start([&] {
        listener.emplace(listen(Address::loopback(0)).value());
        Connection conn = listener->accept(10s).value();
        for (int i = 0; i < 3; ++i) {
            auto line = conn.read_until("\n", 100, 10s);
            if (!line.ok())
                return 1;
            served += *line;
            conn.write("ok " + *line).value();
        }
        return 0;
    });
    a.step(0);  // main runs up to accept: the listener exists
    REQUIRE(listener.has_value());
    const std::uint16_t port = listener->port();
    const std::int64_t cpu_before = thread_cpu_ns();
    const auto wall_before = std::chrono::steady_clock::now();
    b.start([&] {
        Connection conn = connect(Address::loopback(port), 10s).value();
        for (int i = 0; i < 3; ++i) {
            // Idle between requests: both runtimes wait, neither spins.
            sleep_for(150ms).value();
            conn.write(fmt::format("req {}\n", i)).value();
            got += conn.read_until("\n", 100, 10s).value();
        }
        return 0;
    });
    drive({&a, &b}, 10'000);
    const std::int64_t cpu_ns = thread_cpu_ns() - cpu_before;
    const auto wall = std::chrono::steady_clock::now() - wall_before;
    REQUIRE(a.result() == 0);
    REQUIRE(b.result() == 0);
    REQUIRE(served == "req 0\nreq 1\nreq 2\n");
    REQUIRE(got == "ok req 0\nok req 1\nok req 2\n");
    // 450 ms of idle: a spinning driver burns all of it; a waiting one a few ms (tens under TSan).
    INFO("cpu " << cpu_ns / 1'000'000 << " ms over " << std::chrono::duration_cast<std::chrono::milliseconds>(wall).count()
                << " ms of wall time");
    REQUIRE(wall >= 450ms);
    REQUIRE(cpu_ns < 200'000'000);
}

TEST_CASE("a driver bounds a step's wait by another runtime's earlier timer") {
    auto world = make_live_world();
    Options with_world;
    with_world.live_world = world;
    Runtime slow(with_world);
    Runtime fast(with_world);
    std::vector<std::string> order;
    slow.start([&] {
        sleep_for(200ms).value();
        order.push_back("slow");
        return 0;
    });
    fast.start([&] {
        sleep_for(20ms).value();
        order.push_back("fast");
        return 0;
    });
    // Both run up to their sleeps; then slow waits, bounded by fast's earlier deadline.
    slow.step(0);
    fast.step(0);
    const std::int64_t fast_due = fast.next_event_ns();
    REQUIRE(fast_due > 0);
    REQUIRE(slow.next_event_ns() > fast_due);
    drive({&slow, &fast}, 10'000);
    REQUIRE(order == std::vector<std::string>{"fast", "slow"});
}

TEST_CASE("one process hosts two programs' mains, each on its own runtime, stepped by one driver") {
    // Two programs as they would be declared for run_main: a server and a client.
    std::uint16_t port = 0;
    std::vector<std::string> server_args, client_log;
    const ProgramEntry server{.name = "tiny-server", .main = [&](MainContext& ctx) {
        server_args = ctx.args;
        Listener listener = listen(Address::loopback(0)).value();
        port = listener.port();
        Connection conn = listener.accept(10s).value();
        std::string line = conn.read_until("\n", 100, 10s).value();
        conn.write(ctx.runtime.node_name() + " got " + line).value();
        return 0;
    }};
    const ProgramEntry client{.name = "tiny-client", .main = [&](MainContext& ctx) {
        Connection conn = connect(Address::loopback(static_cast<std::uint16_t>(std::stoi(ctx.args.at(1)))), 10s).value();
        conn.write("hello from " + ctx.runtime.node_name() + "\n").value();
        client_log.push_back(conn.read_until("\n", 100, 10s).value());
        return 5;
    }};
    auto world = make_live_world();
    Options a_options, b_options;
    a_options.node_name = "node-a";
    a_options.live_world = world;
    b_options.node_name = "node-b";
    b_options.live_world = world;
    Runtime a(a_options), b(b_options);
    start_entry(a, server, {"tiny-server", "--verbose"});
    a.step(0);  // the server listens
    REQUIRE(port != 0);
    start_entry(b, client, {"tiny-client", std::to_string(port)});
    drive({&a, &b}, 10'000);
    REQUIRE(a.result() == 0);
    REQUIRE(b.result() == 5);
    REQUIRE(server_args == std::vector<std::string>{"tiny-server", "--verbose"});
    REQUIRE(client_log == std::vector<std::string>{"node-a got hello from node-b\n"});
}

TEST_CASE("a reply written just before the program ends still reaches its client") {
    auto world = make_live_world();
    Options options;
    options.live_world = world;
    std::optional<Runtime> server(std::in_place, options);
    Runtime client(options);
    std::optional<Listener> listener;
    server->start([&] {
        listener.emplace(listen(Address::loopback(0)).value());
        Connection conn = listener->accept(10s).value();
        std::string request = conn.read_until("\n", 100, 10s).value();
        // The last thing the program does: the reply is still buffered when it ends.
        conn.write(std::string(200'000, 'x') + " bye after " + request).value();
        return 0;
    });
    server->step(0);
    REQUIRE(listener.has_value());
    const std::uint16_t port = listener->port();
    std::string got;
    client.start([&] {
        Connection conn = connect(Address::loopback(port), 10s).value();
        conn.write("stop\n").value();
        auto reply = conn.read_until("\n", 300'000, 10s);
        got = reply.ok() ? reply->substr(200'000) : std::string(reply.error().message());
        return 0;
    });
    // Both run until the server's program has ended; then the server's runtime goes away.
    for (int round = 0; round < 10'000; ++round) {
        if (server->step(0))
            break;  // its last step closed the connection with the reply unsent: nobody polled since
        client.step(0);
    }
    REQUIRE(server->finished());
    REQUIRE(server->result() == 0);
    listener.reset();
    server.reset();
    drive({&client}, 10'000);
    REQUIRE(client.result() == 0);
    REQUIRE(got == " bye after stop\n");
}
