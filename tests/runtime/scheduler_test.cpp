// Tests of the scheduler: spawn, join, FIFO order, yield, cancellation, draining, deadlock.
//
// Every scenario runs live and then recorded, replayed and compared (run_main_task, or
// run_and_round_trip below for the checks made after run() returned).
// Scenarios that run live only, and why:
// - "an exception escaping a detached task is fatal and names the task" and "a deadlock is
//   reported with the names of the blocked tasks": the program ends by abort in a forked
//   child; the round trip of a crashing program is tests/replay/crash_test.cpp's.
#include <reprise/runtime/reprise.hpp>
#include "../support/reprise_test.hpp"


#include <catch2/catch.hpp>
#include <fmt/core.h>

#include <csignal>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace reprise;
using namespace std::chrono_literals;
using test::outcome_name;
using test::run_live_only;
using test::run_main_task;

namespace {

/// How one run of a scenario ended, for the checks a test makes after run() returned
/// (the exit code, what the drain left in the log, the final counts).
struct RunEnd {
    const char* how;
    int exit_code;
    std::string log;
    RuntimeStats stats;
};

/// Runs `scenario` as main of a fresh runtime live, then recorded, replayed in a child
/// and compared (the same log, exit code and counts; see record_and_replay), and returns
/// how the live run and the recording ended. The scenario keeps its state inside it.
std::vector<RunEnd> run_and_round_trip(const test::Scenario& scenario) {
    std::vector<RunEnd> ends;
    {
        Runtime rt;
        std::string log;
        const int code = rt.run([&] { return scenario(log); });
        ends.push_back({"live", code, log, rt.stats()});
    }
    test::TempDir dir;
    const test::RoundTrip trip = test::record_and_replay(dir / "trace", scenario);
    ends.push_back({"recorded (and replayed alike)", trip.recorded.exit_code, trip.recorded.log, trip.recorded.stats});
    return ends;
}

} // namespace

TEST_CASE("ready tasks run in spawn order") {
    run_main_task([] {
        std::vector<int> order;
        std::vector<Task<void>> tasks;
        for (int i = 0; i < 5; ++i)
            tasks.push_back(spawn("t", [&order, i] { order.push_back(i); }));
        for (auto& t : tasks)
            t.join().value();
        REQUIRE(order == std::vector<int>{0, 1, 2, 3, 4});
    });
}

TEST_CASE("ten thousand tasks run and yield and finish in FIFO order") {
    static constexpr int tasks_n = 10'000;
    run_main_task([] {
        std::vector<int> first_run;
        std::vector<int> after_yield;
        first_run.reserve(tasks_n);
        after_yield.reserve(tasks_n);
        std::vector<Task<int>> tasks;
        tasks.reserve(tasks_n);
        for (int i = 0; i < tasks_n; ++i)
            tasks.push_back(spawn("many", [&, i] {
                first_run.push_back(i);
                yield();
                after_yield.push_back(i);
                return i * 2;
            }));
        long long sum = 0;
        for (auto& t : tasks)
            sum += t.join().value();
        REQUIRE(sum == 2LL * tasks_n * (tasks_n - 1) / 2);
        REQUIRE(first_run.size() == tasks_n);
        REQUIRE(after_yield.size() == tasks_n);
        for (int i = 0; i < tasks_n; ++i) {
            REQUIRE(first_run[i] == i);
            REQUIRE(after_yield[i] == i);
        }
        const RuntimeStats stats = Runtime::current()->stats();
        REQUIRE(stats.fibers_spawned == tasks_n + 1);   // and main
        REQUIRE(stats.fibers_alive == 1);               // main only; a runtime asserts 0 when it is destroyed
    });
}

TEST_CASE("yield lets every other ready task run before the yielder runs again") {
    run_main_task([] {
        std::string log;
        auto worker = [&log](char name) {
            return [&log, name] {
                for (int round = 0; round < 3; ++round) {
                    log += name;
                    log += static_cast<char>('0' + round);
                    log += ' ';
                    yield();
                }
            };
        };
        auto a = spawn("a", worker('a'));
        auto b = spawn("b", worker('b'));
        auto c = spawn("c", worker('c'));
        a.join().value();
        b.join().value();
        c.join().value();
        REQUIRE(log == "a0 b0 c0 a1 b1 c1 a2 b2 c2 ");
    });
}

TEST_CASE("yield with no other ready task returns at once in the same tick") {
    run_main_task([] {
        const std::uint64_t ticks = Runtime::current()->stats().ticks;
        const Instant t0 = now();
        for (int i = 0; i < 100; ++i)
            yield();
        REQUIRE(Runtime::current()->stats().ticks == ticks);
        REQUIRE(now() == t0);
    });
}

TEST_CASE("a woken task runs after the tasks that were already ready") {
    run_main_task([] {
        std::string log;
        Event go;
        auto waiter = spawn("waiter", [&] {
            go.wait().value();
            log += "W";
        });
        yield();   // the waiter blocks
        auto a = spawn("a", [&] { log += "A"; });
        auto b = spawn("b", [&] { log += "B"; });
        go.set();  // the waiter is queued behind a and b
        waiter.join().value();
        a.join().value();
        b.join().value();
        REQUIRE(log == "ABW");
    });
}

TEST_CASE("a task spawned by a task runs after the tasks already ready") {
    run_main_task([] {
        std::string log;
        Task<void> child;
        auto parent = spawn("parent", [&] {
            log += "P";
            child = spawn("child", [&] { log += "C"; });
        });
        auto other = spawn("other", [&] { log += "O"; });
        parent.join().value();
        other.join().value();
        child.join().value();
        REQUIRE(log == "POC");
    });
}

TEST_CASE("task ids are unique and increase in spawn order and name the running task") {
    run_main_task([] {
        REQUIRE(current_task_name() == "main");
        const std::uint64_t main_id = current_task_id();
        REQUIRE(main_id != 0);
        std::uint64_t seen_id = 0;
        std::string seen_name;
        auto a = spawn("alpha", [&] {
            seen_id = current_task_id();
            seen_name = std::string(current_task_name());
        });
        auto b = spawn("beta", [] {});
        REQUIRE(a.id() > main_id);
        REQUIRE(b.id() > a.id());
        REQUIRE(a.name() == "alpha");
        a.join().value();
        b.join().value();
        REQUIRE(seen_id == a.id());
        REQUIRE(seen_name == "alpha");
    });
    // Outside any task.
    REQUIRE(current_task_id() == 0);
    REQUIRE(current_task_name() == "loop");
}

TEST_CASE("join returns the task's value even a move-only one") {
    run_main_task([] {
        auto number = spawn("number", [] { return 42; });
        auto text = spawn("text", [] { return std::string("forty-two"); });
        auto boxed = spawn("boxed", [] { return std::make_unique<int>(7); });
        REQUIRE(number.join().value() == 42);
        REQUIRE(text.join().value() == "forty-two");
        std::unique_ptr<int> box = boxed.join().value();
        REQUIRE(box != nullptr);
        REQUIRE(*box == 7);
    });
}

TEST_CASE("join waits for a task that blocks before it finishes") {
    run_main_task([] {
        const Instant t0 = now();
        auto sleeper = spawn("sleeper", [] {
            sleep_for(20ms).value();
            return 5;
        });
        REQUIRE_FALSE(sleeper.done());
        REQUIRE(sleeper.join().value() == 5);
        REQUIRE(sleeper.done());
        REQUIRE(now() - t0 >= 20ms);
    });
}

TEST_CASE("join of a finished task returns at once") {
    run_main_task([] {
        auto t = spawn("quick", [] { return 1; });
        yield();   // it runs and finishes
        REQUIRE(t.done());
        const std::uint64_t ticks = Runtime::current()->stats().ticks;
        REQUIRE(t.join(Deadline(now())).value() == 1);   // even with a deadline that has passed
        REQUIRE(Runtime::current()->stats().ticks == ticks);
    });
}

TEST_CASE("join with a deadline times out while the task still runs") {
    run_main_task([] {
        auto slow = spawn("slow", [] { return sleep_for(1h); });
        const Instant t0 = now();
        auto r = slow.join(20ms);
        REQUIRE_FALSE(r.ok());
        REQUIRE(r.code() == Errc::timed_out);
        REQUIRE(now() - t0 >= 20ms);
        REQUIRE_FALSE(slow.done());
        slow.cancel();
        auto slept = slow.join();
        REQUIRE(slept.ok());
        REQUIRE(slept.value().code() == Errc::cancelled);
    });
}

TEST_CASE("an exception escaping a task is rethrown by join") {
    run_main_task([] {
        auto failing = spawn("failing", []() -> int { throw std::runtime_error("boom in task"); });
        REQUIRE_THROWS_WITH((void)failing.join(), "boom in task");
        auto failing_void = spawn("failing-void", [] {
            sleep_for(1ms).value();
            throw std::logic_error("late boom");
        });
        REQUIRE_THROWS_AS((void)failing_void.join(), std::logic_error);
    });
}

TEST_CASE("an exception escaping main is rethrown by run after the other tasks were drained") {
    // Not through run_and_round_trip: run() throws instead of returning. The recording is
    // checked as the live run is, and its replay must throw the same at the same end.
    const test::Scenario scenario = [](std::string& log) -> int {
        spawn("other", [&] { log += "other:" + outcome_name(sleep_for(1h)) + "\n"; });
        yield();
        throw std::runtime_error("boom in main");
    };
    test::TempDir dir;
    for (const bool recording : {false, true}) {
        CAPTURE(recording);
        Options options;
        if (recording)
            options.record_path = dir / "trace";
        Runtime rt(options);
        std::string log;
        REQUIRE_THROWS_WITH(rt.run([&] { return scenario(log); }), "boom in main");
        REQUIRE(log == "other:cancelled\n");
        REQUIRE(rt.stats().fibers_alive == 0);
    }
    const test::TraceFacts trace = test::read_trace(dir / "trace");
    REQUIRE(trace.saw_end);
    REQUIRE_FALSE(trace.error.has_value());
    const test::Replay replayed = test::replay(dir / "trace", scenario);
    INFO(replayed.child.describe());
    // The replay child leaves through run_in_child's handler of the rethrown exception.
    REQUIRE(replayed.child.exited_with(99));
    REQUIRE_THAT(replayed.child.err, Catch::Contains("child: exception: boom in main"));
    REQUIRE(replayed.summary_events.has_value());
    REQUIRE(*replayed.summary_events == trace.records);
}

TEST_CASE("an exception escaping a detached task is fatal and names the task") {
    auto child = test::run_in_child([] {
        run_live_only("the program ends by abort; tests/replay/crash_test.cpp replays crashes", [] {
            spawn("reckless", [] {
                sleep_for(1ms).value();
                throw std::runtime_error("nobody catches this");
            });
            sleep_for(1h).value();
        });
        return 0;
    });
    INFO(child.describe());
    REQUIRE(child.died_by(SIGABRT));
    REQUIRE_THAT(child.err, Catch::Contains("reckless") && Catch::Contains("nobody catches this"));
}

TEST_CASE("a detached task keeps running to completion") {
    run_main_task([] {
        bool finished = false;
        spawn("detached", [&] {
            sleep_for(5ms).value();
            finished = true;
        });   // the handle is dropped at once
        sleep_for(30ms).value();
        REQUIRE(finished);
    });
}

TEST_CASE("a cancelled task's blocked sleep returns cancelled") {
    run_main_task([] {
        auto sleeper = spawn("sleeper", [] { return sleep_for(1h); });
        yield();   // the sleeper blocks
        sleeper.cancel();
        auto r = sleeper.join(10s);
        REQUIRE(r.ok());
        REQUIRE_FALSE(r.value().ok());
        REQUIRE(r.value().code() == Errc::cancelled);
    });
}

TEST_CASE("a task cancelled before it first runs still runs and sees cancelled() and fails its first block") {
    run_main_task([] {
        bool ran = false;
        bool flag_at_start = false;
        Result<void> slept;
        auto t = spawn("early", [&] {
            ran = true;
            flag_at_start = cancelled();
            slept = sleep_for(1h);
        });
        t.cancel();
        t.join().value();
        REQUIRE(ran);
        REQUIRE(flag_at_start);
        REQUIRE(slept.code() == Errc::cancelled);
    });
}

TEST_CASE("cancelled() turns true only when the task is cancelled") {
    run_main_task([] {
        REQUIRE_FALSE(cancelled());
        int rounds = 0;
        auto spinner = spawn("spinner", [&] {
            while (!cancelled()) {
                ++rounds;
                yield();
            }
            return rounds;
        });
        for (int i = 0; i < 10; ++i)
            yield();
        REQUIRE(rounds == 10);   // one round per yield of main: it was never cancelled so far
        spinner.cancel();
        REQUIRE(spinner.join().value() == 10);
        REQUIRE_FALSE(cancelled());   // cancelling another task does not touch this one
    });
    REQUIRE_FALSE(cancelled());   // outside any task
}

TEST_CASE("cancellation is sticky: every later blocking operation of the task fails") {
    run_main_task([] {
        std::vector<Errc> codes;
        Channel<int> ch(1);
        Event never;
        auto t = spawn("doomed", [&] {
            codes.push_back(sleep_for(1h).code());
            codes.push_back(ch.recv().code());
            codes.push_back(never.wait().code());
            codes.push_back(sleep_for(0ms).code());
        });
        yield();
        t.cancel();
        t.join().value();
        REQUIRE(codes == std::vector<Errc>{Errc::cancelled, Errc::cancelled, Errc::cancelled, Errc::cancelled});
    });
}

TEST_CASE("a cancelled joiner's join returns cancelled and the joined task keeps running") {
    run_main_task([] {
        Event release;
        auto worker = spawn("worker", [&] {
            release.wait().value();
            return 9;
        });
        auto joiner = spawn("joiner", [&] { return outcome_name(worker.join()); });
        yield();   // both block
        joiner.cancel();
        REQUIRE(joiner.join().value() == "cancelled");
        REQUIRE_FALSE(worker.done());
        release.set();
        REQUIRE(worker.join().value() == 9);
    });
}

TEST_CASE("cancelling a finished task changes nothing") {
    run_main_task([] {
        auto t = spawn("done", [] { return 3; });
        yield();
        REQUIRE(t.done());
        t.cancel();
        REQUIRE(t.join().value() == 3);
        REQUIRE_FALSE(cancelled());
    });
}

TEST_CASE("run returns main's exit code") {
    for (const RunEnd& end : run_and_round_trip([](std::string&) { return 42; })) {
        CAPTURE(end.how);
        REQUIRE(end.exit_code == 42);
    }
    const test::Scenario after_a_sleep = [](std::string&) {
        sleep_for(1ms).value();
        return 3;
    };
    for (const RunEnd& end : run_and_round_trip(after_a_sleep)) {
        CAPTURE(end.how);
        REQUIRE(end.exit_code == 3);
    }
    // A runtime runs again and returns the new main's code.
    Runtime rt;
    REQUIRE(rt.run([] { return 42; }) == 42);
    REQUIRE(rt.run([] {
        sleep_for(1ms).value();
        return 0;
    }) == 0);
}

TEST_CASE("when main returns the remaining tasks are cancelled and drained") {
    const test::Scenario scenario = [](std::string& log) {
        auto chan = std::make_shared<Channel<int>>(1);
        spawn("sleeper", [&] {
            log += "sleeper:" + outcome_name(sleep_for(1h)) + "\n";
            // A task spawned while the runtime drains starts out cancelled.
            spawn("late", [&] { log += "late:" + outcome_name(sleep_for(1h)) + "\n"; });
        });
        spawn("receiver", [&, chan] { log += "receiver:" + outcome_name(chan->recv()) + "\n"; });
        yield();
        log += fmt::format("spawned before main returns: {}\n", Runtime::current()->stats().fibers_spawned);
        return 17;
    };
    for (const RunEnd& end : run_and_round_trip(scenario)) {
        CAPTURE(end.how);
        REQUIRE(end.exit_code == 17);
        // main, sleeper, receiver; then "late" while draining.
        REQUIRE(end.log == "spawned before main returns: 3\nsleeper:cancelled\nreceiver:cancelled\nlate:cancelled\n");
        REQUIRE(end.stats.fibers_spawned == 3 + 1);
        REQUIRE(end.stats.fibers_alive == 0);
    }
}

// A task that yields in a loop until cancelled() must not keep the drain from
// starting. The spin is bounded so that a regression shows as a failure, not a hang.
TEST_CASE("a task that yields until cancelled() is stopped when main returns") {
    static constexpr int rounds_max = 10'000;
    const test::Scenario scenario = [](std::string& log) {
        spawn("spinner", [&] {
            int rounds = 0;
            while (!cancelled() && rounds < rounds_max) {
                ++rounds;
                yield();
            }
            log += fmt::format("rounds={} saw_cancel={}", rounds, cancelled());
        });
        yield();
        return 0;
    };
    for (const RunEnd& end : run_and_round_trip(scenario)) {
        CAPTURE(end.how, end.log);
        REQUIRE(end.exit_code == 0);
        REQUIRE_THAT(end.log, Catch::EndsWith("saw_cancel=true"));
        const int rounds = std::stoi(end.log.substr(end.log.find('=') + 1));
        REQUIRE(rounds < rounds_max);
    }
}

TEST_CASE("a deadlock is reported with the names of the blocked tasks") {
    auto child = test::run_in_child([] {
        Options options;
        options.node_name = "stuck-node";
        run_live_only("the program ends by abort; tests/replay/crash_test.cpp replays crashes", [] {
            Channel<int> a(1);
            Channel<int> b(1);
            auto left = spawn("left", [&] { return a.recv().ok(); });
            auto right = spawn("right", [&] { return b.recv().ok(); });
            (void)left.join();
            (void)right.join();
        }, options);
        return 0;
    });
    INFO(child.describe());
    REQUIRE(child.died_by(SIGABRT));
    REQUIRE_THAT(child.err, Catch::Contains("deadlock") && Catch::Contains("stuck-node") &&
                                Catch::Contains("'left'") && Catch::Contains("'right'") &&
                                Catch::Contains("'main'"));
    // Each says what it waits on.
    REQUIRE_THAT(child.err, Catch::Contains("'left' (id 2) blocked forever: channel_receive") &&
                                Catch::Contains("'main' (id 1) blocked forever: join of task #2"));
}

TEST_CASE("Runtime::tasks says what each task waits on, on which handle, until when") {
    run_main_task([] {
        Timer timer;
        const std::uint64_t timer_id = timer.id();
        timer.start(1h);
        Listener listener = test::must(listen(Address::loopback(0)), "listen");
        const std::uint64_t listener_id = listener.id();
        Listener other = test::must(listen(Address::loopback(0)), "listen");
        Connection conn = test::must(connect(Address::loopback(other.port()), 10s), "connect");
        Connection served = test::must(other.accept(10s), "accept");
        const std::uint64_t conn_id = conn.id();
        Channel<int> channel(1);
        Mutex mutex;
        mutex.lock().value();
        Event event;
        std::vector<Task<void>> tasks;
        const std::int64_t sleep_until_ns = (now() + 1h).time_since_epoch().count();
        tasks.push_back(spawn("sleeper", [] { (void)sleep_for(1h); }));
        const std::uint64_t sleeper_id = tasks.back().id();
        tasks.push_back(spawn("timer-waiter", [&] { (void)timer.wait(); }));
        tasks.push_back(spawn("acceptor", [&] { (void)listener.accept(); }));
        tasks.push_back(spawn("reader", [&] { (void)conn.read_some(); }));
        tasks.push_back(spawn("receiver", [&] { (void)channel.recv(); }));
        tasks.push_back(spawn("locker", [&] { (void)mutex.lock(); }));
        tasks.push_back(spawn("event-waiter", [&] { (void)event.wait(); }));
        tasks.push_back(spawn("joiner", [&] { (void)tasks[0].join(); }));
        yield();  // the others run up to their waits
        tasks.push_back(spawn("ready", [] {}));  // spawned, not run yet
        const std::vector<TaskInfo> seen = Runtime::current()->tasks();
        for (auto& t : tasks)
            t.cancel();
        mutex.unlock();
        for (auto& t : tasks)
            (void)t.join();

        auto find = [&](const std::string& name) {
            for (const TaskInfo& t : seen)
                if (t.name == name)
                    return t;
            FAIL("no task " << name);
            return TaskInfo{};
        };
        // REQUIRE, not CHECK: a failed CHECK would not end the replay child.
        REQUIRE(seen.size() == 10);
        REQUIRE(find("main").state == TaskInfo::State::running);
        TaskInfo sleeper = find("sleeper");
        REQUIRE(sleeper.state == TaskInfo::State::waiting);
        REQUIRE(sleeper.waits_on == WaitKind::sleep);
        REQUIRE(sleeper.deadline_ns == sleep_until_ns);
        REQUIRE((find("timer-waiter").waits_on == WaitKind::timer && find("timer-waiter").handle == timer_id));
        REQUIRE(find("timer-waiter").deadline_ns == -1);
        REQUIRE((find("acceptor").waits_on == WaitKind::accept && find("acceptor").handle == listener_id));
        REQUIRE((find("reader").waits_on == WaitKind::read && find("reader").handle == conn_id));
        REQUIRE(find("receiver").waits_on == WaitKind::channel_receive);
        REQUIRE(find("locker").waits_on == WaitKind::mutex);
        REQUIRE(find("event-waiter").waits_on == WaitKind::event);
        REQUIRE((find("joiner").waits_on == WaitKind::join && find("joiner").handle == sleeper_id));
        REQUIRE(find("ready").state == TaskInfo::State::ready);
    });
    CHECK(std::string(wait_kind_name(WaitKind::channel_receive)) == "channel_receive");
}

TEST_CASE("a task waiting only for a timer is not a deadlock") {
    run_main_task([] {
        Event never;
        auto r = never.wait(10ms);
        REQUIRE(r.code() == Errc::timed_out);
    });
}
