// Tests of the scheduler: spawn, join, FIFO order, yield, cancellation, draining, deadlock.
#include <reprise/runtime/reprise.hpp>
#include "test_support.hpp"

#include "child_process.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace reprise;
using namespace std::chrono_literals;
using test::outcome_name;


TEST_CASE("ready tasks run in spawn order") {
    Runtime rt;
    std::vector<int> order;
    rt.run([&] {
        std::vector<Task<void>> tasks;
        for (int i = 0; i < 5; ++i)
            tasks.push_back(spawn("t", [&order, i] { order.push_back(i); }));
        for (auto& t : tasks)
            t.join().value();
        return 0;
    });
    REQUIRE(order == std::vector<int>{0, 1, 2, 3, 4});
}

TEST_CASE("ten thousand tasks run and yield and finish in FIFO order") {
    constexpr int tasks_n = 10'000;
    Runtime rt;
    std::vector<int> first_run;
    std::vector<int> after_yield;
    first_run.reserve(tasks_n);
    after_yield.reserve(tasks_n);
    rt.run([&] {
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
        return 0;
    });
    REQUIRE(first_run.size() == tasks_n);
    REQUIRE(after_yield.size() == tasks_n);
    for (int i = 0; i < tasks_n; ++i) {
        REQUIRE(first_run[i] == i);
        REQUIRE(after_yield[i] == i);
    }
    RuntimeStats stats = rt.stats();
    REQUIRE(stats.fibers_spawned == tasks_n + 1);   // and main
    REQUIRE(stats.fibers_alive == 0);
}

TEST_CASE("yield lets every other ready task run before the yielder runs again") {
    Runtime rt;
    std::string log;
    rt.run([&] {
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
        return 0;
    });
    REQUIRE(log == "a0 b0 c0 a1 b1 c1 a2 b2 c2 ");
}

TEST_CASE("yield with no other ready task returns at once in the same tick") {
    Runtime rt;
    rt.run([&] {
        const std::uint64_t ticks = Runtime::current()->stats().ticks;
        const Instant t0 = now();
        for (int i = 0; i < 100; ++i)
            yield();
        REQUIRE(Runtime::current()->stats().ticks == ticks);
        REQUIRE(now() == t0);
        return 0;
    });
}

TEST_CASE("a woken task runs after the tasks that were already ready") {
    Runtime rt;
    std::string log;
    rt.run([&] {
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
        return 0;
    });
    REQUIRE(log == "ABW");
}

TEST_CASE("a task spawned by a task runs after the tasks already ready") {
    Runtime rt;
    std::string log;
    rt.run([&] {
        Task<void> child;
        auto parent = spawn("parent", [&] {
            log += "P";
            child = spawn("child", [&] { log += "C"; });
        });
        auto other = spawn("other", [&] { log += "O"; });
        parent.join().value();
        other.join().value();
        child.join().value();
        return 0;
    });
    REQUIRE(log == "POC");
}

TEST_CASE("task ids are unique and increase in spawn order and name the running task") {
    Runtime rt;
    rt.run([&] {
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
        return 0;
    });
    REQUIRE(current_task_id() == 0);
    REQUIRE(current_task_name() == "loop");
}

TEST_CASE("join returns the task's value even a move-only one") {
    Runtime rt;
    rt.run([&] {
        auto number = spawn("number", [] { return 42; });
        auto text = spawn("text", [] { return std::string("forty-two"); });
        auto boxed = spawn("boxed", [] { return std::make_unique<int>(7); });
        REQUIRE(number.join().value() == 42);
        REQUIRE(text.join().value() == "forty-two");
        std::unique_ptr<int> box = boxed.join().value();
        REQUIRE(box != nullptr);
        REQUIRE(*box == 7);
        return 0;
    });
}

TEST_CASE("join waits for a task that blocks before it finishes") {
    Runtime rt;
    rt.run([&] {
        const Instant t0 = now();
        auto sleeper = spawn("sleeper", [] {
            sleep_for(20ms).value();
            return 5;
        });
        REQUIRE_FALSE(sleeper.done());
        REQUIRE(sleeper.join().value() == 5);
        REQUIRE(sleeper.done());
        REQUIRE(now() - t0 >= 20ms);
        return 0;
    });
}

TEST_CASE("join of a finished task returns at once") {
    Runtime rt;
    rt.run([&] {
        auto t = spawn("quick", [] { return 1; });
        yield();   // it runs and finishes
        REQUIRE(t.done());
        const std::uint64_t ticks = Runtime::current()->stats().ticks;
        REQUIRE(t.join(Deadline(now())).value() == 1);   // even with a deadline that has passed
        REQUIRE(Runtime::current()->stats().ticks == ticks);
        return 0;
    });
}

TEST_CASE("join with a deadline times out while the task still runs") {
    Runtime rt;
    rt.run([&] {
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
        return 0;
    });
}

TEST_CASE("an exception escaping a task is rethrown by join") {
    Runtime rt;
    rt.run([&] {
        auto failing = spawn("failing", []() -> int { throw std::runtime_error("boom in task"); });
        REQUIRE_THROWS_WITH((void)failing.join(), "boom in task");
        auto failing_void = spawn("failing-void", [] {
            sleep_for(1ms).value();
            throw std::logic_error("late boom");
        });
        REQUIRE_THROWS_AS((void)failing_void.join(), std::logic_error);
        return 0;
    });
}

TEST_CASE("an exception escaping main is rethrown by run after the other tasks were drained") {
    Runtime rt;
    bool other_saw_cancel = false;
    REQUIRE_THROWS_WITH(rt.run([&]() -> int {
                            spawn("other", [&] { other_saw_cancel = sleep_for(1h).code() == Errc::cancelled; });
                            yield();
                            throw std::runtime_error("boom in main");
                        }),
                        "boom in main");
    REQUIRE(other_saw_cancel);
    REQUIRE(rt.stats().fibers_alive == 0);
}

TEST_CASE("an exception escaping a detached task is fatal and names the task") {
    auto child = test::run_in_child([] {
        Runtime rt;
        return rt.run([] {
            spawn("reckless", [] {
                sleep_for(1ms).value();
                throw std::runtime_error("nobody catches this");
            });
            sleep_for(1h).value();
            return 0;
        });
    });
    INFO(child.describe());
    REQUIRE(child.died_by(SIGABRT));
    REQUIRE_THAT(child.err, Catch::Contains("reckless") && Catch::Contains("nobody catches this"));
}

TEST_CASE("a detached task keeps running to completion") {
    Runtime rt;
    bool finished = false;
    rt.run([&] {
        spawn("detached", [&] {
            sleep_for(5ms).value();
            finished = true;
        });   // the handle is dropped at once
        sleep_for(30ms).value();
        return 0;
    });
    REQUIRE(finished);
}

TEST_CASE("a cancelled task's blocked sleep returns cancelled") {
    Runtime rt;
    rt.run([&] {
        auto sleeper = spawn("sleeper", [] { return sleep_for(1h); });
        yield();   // the sleeper blocks
        sleeper.cancel();
        auto r = sleeper.join(10s);
        REQUIRE(r.ok());
        REQUIRE_FALSE(r.value().ok());
        REQUIRE(r.value().code() == Errc::cancelled);
        return 0;
    });
}

TEST_CASE("a task cancelled before it first runs still runs and sees cancelled() and fails its first block") {
    Runtime rt;
    bool ran = false;
    bool flag_at_start = false;
    Result<void> slept;
    rt.run([&] {
        auto t = spawn("early", [&] {
            ran = true;
            flag_at_start = cancelled();
            slept = sleep_for(1h);
        });
        t.cancel();
        t.join().value();
        return 0;
    });
    REQUIRE(ran);
    REQUIRE(flag_at_start);
    REQUIRE(slept.code() == Errc::cancelled);
}

TEST_CASE("cancelled() turns true only when the task is cancelled") {
    Runtime rt;
    rt.run([&] {
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
        return 0;
    });
    REQUIRE_FALSE(cancelled());   // outside any task
}

TEST_CASE("cancellation is sticky: every later blocking operation of the task fails") {
    Runtime rt;
    rt.run([&] {
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
        return 0;
    });
}

TEST_CASE("a cancelled joiner's join returns cancelled and the joined task keeps running") {
    Runtime rt;
    rt.run([&] {
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
        return 0;
    });
}

TEST_CASE("cancelling a finished task changes nothing") {
    Runtime rt;
    rt.run([&] {
        auto t = spawn("done", [] { return 3; });
        yield();
        REQUIRE(t.done());
        t.cancel();
        REQUIRE(t.join().value() == 3);
        REQUIRE_FALSE(cancelled());
        return 0;
    });
}

TEST_CASE("run returns main's exit code") {
    Runtime rt;
    REQUIRE(rt.run([] { return 42; }) == 42);
    REQUIRE(rt.run([] {
        sleep_for(1ms).value();
        return 0;
    }) == 0);
}

TEST_CASE("when main returns the remaining tasks are cancelled and drained") {
    Runtime rt;
    std::string sleeper_end;
    std::string receiver_end;
    std::string late_end;
    std::uint64_t spawned_before = 0;
    int code = rt.run([&] {
        auto chan = std::make_shared<Channel<int>>(1);
        spawn("sleeper", [&] {
            sleeper_end = outcome_name(sleep_for(1h));
            // A task spawned while the runtime drains starts out cancelled.
            spawn("late", [&] { late_end = outcome_name(sleep_for(1h)); });
        });
        spawn("receiver", [&, chan] { receiver_end = outcome_name(chan->recv()); });
        yield();
        spawned_before = Runtime::current()->stats().fibers_spawned;
        return 17;
    });
    REQUIRE(code == 17);
    REQUIRE(sleeper_end == "cancelled");
    REQUIRE(receiver_end == "cancelled");
    REQUIRE(late_end == "cancelled");
    REQUIRE(rt.stats().fibers_spawned == spawned_before + 1);   // "late"
    REQUIRE(rt.stats().fibers_alive == 0);
}

// A task that yields in a loop until cancelled() must not keep the drain from
// starting. The spin is bounded so that a regression shows as a failure, not a hang.
TEST_CASE("a task that yields until cancelled() is stopped when main returns") {
    constexpr int rounds_max = 10'000;
    Runtime rt;
    int rounds = 0;
    bool saw_cancel = false;
    rt.run([&] {
        spawn("spinner", [&] {
            while (!cancelled() && rounds < rounds_max) {
                ++rounds;
                yield();
            }
            saw_cancel = cancelled();
        });
        yield();
        return 0;
    });
    CAPTURE(rounds);
    REQUIRE(saw_cancel);
    REQUIRE(rounds < rounds_max);
}

TEST_CASE("a deadlock is reported with the names of the blocked tasks") {
    auto child = test::run_in_child([] {
        Options options;
        options.node_name = "stuck-node";
        Runtime rt(options);
        return rt.run([] {
            Channel<int> a(1);
            Channel<int> b(1);
            auto left = spawn("left", [&] { return a.recv().ok(); });
            auto right = spawn("right", [&] { return b.recv().ok(); });
            (void)left.join();
            (void)right.join();
            return 0;
        });
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
    Runtime rt;
    std::vector<TaskInfo> seen;
    std::uint64_t timer_id = 0, listener_id = 0, conn_id = 0, sleeper_id = 0;
    std::int64_t sleep_until_ns = 0;
    rt.run([&] {
        Timer timer;
        timer_id = timer.id();
        timer.start(1h);
        Listener listener = listen(Address::loopback(0)).value();
        listener_id = listener.id();
        Listener other = listen(Address::loopback(0)).value();
        Connection conn = connect(Address::loopback(other.port()), 10s).value();
        Connection served = other.accept(10s).value();
        conn_id = conn.id();
        Channel<int> channel(1);
        Mutex mutex;
        mutex.lock().value();
        Event event;
        std::vector<Task<void>> tasks;
        sleep_until_ns = (now() + 1h).time_since_epoch().count();
        tasks.push_back(spawn("sleeper", [] { (void)sleep_for(1h); }));
        sleeper_id = tasks.back().id();
        tasks.push_back(spawn("timer-waiter", [&] { (void)timer.wait(); }));
        tasks.push_back(spawn("acceptor", [&] { (void)listener.accept(); }));
        tasks.push_back(spawn("reader", [&] { (void)conn.read_some(); }));
        tasks.push_back(spawn("receiver", [&] { (void)channel.recv(); }));
        tasks.push_back(spawn("locker", [&] { (void)mutex.lock(); }));
        tasks.push_back(spawn("event-waiter", [&] { (void)event.wait(); }));
        tasks.push_back(spawn("joiner", [&] { (void)tasks[0].join(); }));
        yield();  // the others run up to their waits
        tasks.push_back(spawn("ready", [] {}));  // spawned, not run yet
        seen = Runtime::current()->tasks();
        for (auto& t : tasks)
            t.cancel();
        mutex.unlock();
        for (auto& t : tasks)
            (void)t.join();
        return 0;
    });
    auto find = [&](const std::string& name) {
        for (const TaskInfo& t : seen)
            if (t.name == name)
                return t;
        FAIL("no task " << name);
        return TaskInfo{};
    };
    REQUIRE(seen.size() == 10);
    CHECK(find("main").state == TaskInfo::State::running);
    TaskInfo sleeper = find("sleeper");
    CHECK(sleeper.state == TaskInfo::State::waiting);
    CHECK(sleeper.waits_on == WaitKind::sleep);
    CHECK(sleeper.deadline_ns == sleep_until_ns);
    CHECK((find("timer-waiter").waits_on == WaitKind::timer && find("timer-waiter").handle == timer_id));
    CHECK(find("timer-waiter").deadline_ns == -1);
    CHECK((find("acceptor").waits_on == WaitKind::accept && find("acceptor").handle == listener_id));
    CHECK((find("reader").waits_on == WaitKind::read && find("reader").handle == conn_id));
    CHECK(find("receiver").waits_on == WaitKind::channel_receive);
    CHECK(find("locker").waits_on == WaitKind::mutex);
    CHECK(find("event-waiter").waits_on == WaitKind::event);
    CHECK((find("joiner").waits_on == WaitKind::join && find("joiner").handle == sleeper_id));
    CHECK(find("ready").state == TaskInfo::State::ready);
    CHECK(std::string(wait_kind_name(WaitKind::channel_receive)) == "channel_receive");
}

TEST_CASE("a task waiting only for a timer is not a deadlock") {
    Runtime rt;
    REQUIRE(rt.run([] {
        Event never;
        auto r = never.wait(10ms);
        return r.code() == Errc::timed_out ? 0 : 1;
    }) == 0);
}
