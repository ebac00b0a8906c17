// Tests of loop time, sleeps, timers and deadlines. Those that check timing semantics run on
// virtual time (run_on_virtual_time: one simulated node, its trace replayed), where times are
// exact and no wall time passes; those of the live clock path (precise_now() moving within a
// tick, a loop blocked by busy work) stay live and are recorded and replayed (run_main_task).
#include <reprise/runtime/reprise.hpp>
#include "../support/reprise_test.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace reprise;
using namespace std::chrono_literals;
using test::outcome_name;
using test::run_main_task;
using test::run_on_virtual_time;
using test::test_seed;
using test::ticks_now;

namespace {




/// Timers created in index order, each started at `base` plus its offset.
struct RandomTimers {
    std::vector<Timer> timers;
    std::vector<std::int64_t> offsets_ms;
    Instant base;
};

/// `n` timers started at now() + 2 ms plus 0 to `offsets_n` - 1 ms drawn from `rng` (few values: many ties).
RandomTimers start_at_random(std::size_t n, std::mt19937_64& rng, std::uint64_t offsets_n) {
    RandomTimers t{std::vector<Timer>(n), std::vector<std::int64_t>(n), now() + 2ms};
    for (std::size_t i = 0; i < n; ++i) {
        t.offsets_ms[i] = static_cast<std::int64_t>(rng() % offsets_n);
        t.timers[i].start_at(t.base + std::chrono::milliseconds(t.offsets_ms[i]));
    }
    return t;
}

/// The indices 0 to n - 1 but those marked in `left_out` (which may be shorter than n).
std::vector<int> all_but(std::size_t n, const std::vector<bool>& left_out) {
    std::vector<int> v;
    for (std::size_t i = 0; i < n; ++i)
        if (i >= left_out.size() || !left_out[i])
            v.push_back(static_cast<int>(i));
    return v;
}

/// The indices 0 to n - 1 in an order drawn from `rng`.
std::vector<int> shuffled(std::size_t n, std::mt19937_64& rng) {
    std::vector<int> v(n);
    std::iota(v.begin(), v.end(), 0);
    std::shuffle(v.begin(), v.end(), rng);
    return v;
}

/// The order the timers `which` fire in: a waiter each, spawned in the order given.
std::vector<int> fire_order(std::vector<Timer>& timers, const std::vector<int>& which) {
    std::vector<int> fired;
    std::vector<Task<void>> waiters;
    for (int i : which)
        waiters.push_back(spawn("waiter", [&, i] {
            timers[i].wait().value();
            fired.push_back(i);
        }));
    for (auto& w : waiters)
        w.join().value();
    return fired;
}

/// The timers `which` (created in index order) in the order they must fire: by deadline, then
/// equal deadlines in creation order.
std::vector<int> deadline_order(const std::vector<std::int64_t>& offsets_ms, std::vector<int> which) {
    std::sort(which.begin(), which.end());
    std::stable_sort(which.begin(), which.end(), [&](int a, int b) { return offsets_ms[a] < offsets_ms[b]; });
    return which;
}

/// Keeps the loop busy (no tick) for at least `d`, measured with the precise clock.
void busy_for(Duration d) {
    const Instant until = precise_now() + d;
    volatile std::uint64_t spin = 0;
    while (precise_now() < until)
        spin = spin + 1;
}

} // namespace

// --- loop time ---------------------------------------------------------------------

TEST_CASE("now() stays the same within a tick across yields and busy work") {
    run_main_task([] {
        const Instant t0 = now();
        const WallTime w0 = wall_now();
        auto other = spawn("other", [] { return now(); });
        busy_for(3ms);
        yield();
        REQUIRE(now() == t0);
        REQUIRE(wall_now() == w0);
        REQUIRE(other.join().value() == t0);   // finished in the same tick: nothing blocked
    });
}

TEST_CASE("precise_now() moves within a tick and is never before the tick's now()") {
    run_main_task([] {
        const Instant t0 = now();
        const Instant p0 = precise_now();
        REQUIRE(p0 >= t0);
        busy_for(2ms);
        const Instant p1 = precise_now();
        REQUIRE(p1 - p0 >= 2ms);
        REQUIRE(now() == t0);
    });
}

TEST_CASE("now() never goes backwards across ticks") {
    run_on_virtual_time([] {
        Instant previous = now();
        for (int i = 0; i < 50; ++i) {
            sleep_for(std::chrono::microseconds(100 * (i % 3))).value();
            const Instant t = now();
            REQUIRE(t >= previous);
            previous = t;
        }
    });
}

TEST_CASE("sleep_for advances now() by exactly the duration on virtual time") {
    run_on_virtual_time([] {
        const Instant t0 = now();
        const std::uint64_t ticks = ticks_now();
        sleep_for(20ms).value();
        REQUIRE(now() - t0 == 20ms);
        REQUIRE(ticks_now() > ticks);
    });
}

TEST_CASE("sleep_until returns at the instant on virtual time") {
    run_on_virtual_time([] {
        const Instant target = now() + 15ms;
        sleep_until(target).value();
        REQUIRE(now() == target);
    });
}

TEST_CASE("sleeping for zero or until a past instant returns at once without an error") {
    run_main_task([] {
        const std::uint64_t ticks = ticks_now();
        const Instant t0 = now();
        REQUIRE(sleep_for(0ms).ok());
        REQUIRE(sleep_for(-5ms).ok());
        REQUIRE(sleep_until(t0 - 1s).ok());
        REQUIRE(sleep_until(Instant{}).ok());
        REQUIRE(ticks_now() == ticks);
    });
}

TEST_CASE("sleeps ending at the same instant wake in the order they started") {
    run_on_virtual_time([] {
        constexpr int sleepers_n = 8;
        const Instant target = now() + 5ms;
        std::vector<int> started;
        std::vector<int> woke;
        std::vector<Task<void>> sleepers;
        // Sleeper i yields sleepers_n - i times first, so they start sleeping in
        // the reverse of their spawn order.
        for (int i = 0; i < sleepers_n; ++i)
            sleepers.push_back(spawn("sleeper", [&, i] {
                for (int k = 0; k < sleepers_n - i; ++k)
                    yield();
                started.push_back(i);
                sleep_until(target).value();
                woke.push_back(i);
            }));
        for (auto& s : sleepers)
            s.join().value();
        REQUIRE(started == std::vector<int>{7, 6, 5, 4, 3, 2, 1, 0});
        REQUIRE(woke == started);
    });
}

// --- timers ------------------------------------------------------------------------

TEST_CASE("a one-shot timer fires once and not before its deadline") {
    run_on_virtual_time([] {
        Timer t;
        REQUIRE_FALSE(t.armed());
        REQUIRE(t.id() != 0);
        const Instant t0 = now();
        t.start(20ms);
        REQUIRE(t.armed());
        REQUIRE(t.deadline() == t0 + 20ms);
        REQUIRE(t.wait().value() == 1);
        REQUIRE(now() == t0 + 20ms);
        REQUIRE_FALSE(t.armed());
        REQUIRE(t.wait().code() == Errc::closed);   // nothing more will come
    });
}

TEST_CASE("a timer started at an instant fires at that instant") {
    run_on_virtual_time([] {
        Timer t;
        const Instant when = now() + 10ms;
        t.start_at(when);
        REQUIRE(t.deadline() == when);
        REQUIRE(t.wait().value() == 1);
        REQUIRE(now() == when);
    });
}

TEST_CASE("a periodic timer fires every period") {
    run_on_virtual_time([] {
        Timer t;
        const Instant t0 = now();
        t.start(5ms, 5ms);
        std::uint64_t fires = 0;
        for (int i = 0; i < 4; ++i) {
            const std::uint64_t n = t.wait().value();
            REQUIRE(n == 1);  // virtual time: no fire is ever missed
            fires += n;
            REQUIRE(now() == t0 + static_cast<std::int64_t>(fires) * 5ms);
            REQUIRE(t.armed());
        }
        REQUIRE(fires >= 4);
        t.cancel();
    });
}

TEST_CASE("a periodic timer that fell behind reports the missed fires and keeps its phase") {
    run_main_task([] {
        Timer t;
        const Instant start = now();
        t.start(10ms, 10ms);
        // Block the loop for 35 ms: the next tick is at least 25 ms past the first deadline.
        busy_for(35ms);
        const std::uint64_t fires = t.wait().value();
        REQUIRE(fires >= 3);
        REQUIRE(t.deadline() == start + 10ms * static_cast<std::int64_t>(fires + 1));
        REQUIRE(t.deadline() > now());   // no burst of catch-up fires is pending
        t.cancel();
    });
}

TEST_CASE("cancel disarms a timer and a later wait returns closed") {
    run_main_task([] {
        Timer t;
        t.start(10ms);
        t.cancel();
        REQUIRE_FALSE(t.armed());
        const std::uint64_t ticks = ticks_now();
        REQUIRE(t.wait().code() == Errc::closed);
        REQUIRE(ticks_now() == ticks);
        sleep_for(20ms).value();   // past the old deadline: it does not fire
        REQUIRE(t.wait().code() == Errc::closed);
    });
}

TEST_CASE("cancel wakes a blocked waiter with closed") {
    run_main_task([] {
        Timer t;
        t.start(1h);
        auto waiter = spawn("waiter", [&] { return outcome_name(t.wait()); });
        yield();
        REQUIRE_FALSE(waiter.done());
        t.cancel();
        REQUIRE(waiter.join().value() == "closed");
    });
}

TEST_CASE("cancel drops the fires not yet waited for") {
    run_main_task([] {
        Timer t;
        t.start(1ms, 1ms);
        sleep_for(10ms).value();   // fires pile up
        t.cancel();
        REQUIRE(t.wait().code() == Errc::closed);
    });
}

TEST_CASE("reset moves a timer's deadline") {
    run_on_virtual_time([] {
        Timer t;
        const Instant t0 = now();
        t.start(5ms);
        t.reset(40ms);
        REQUIRE(t.deadline() == t0 + 40ms);
        REQUIRE(t.wait().value() == 1);
        REQUIRE(now() >= t0 + 40ms);
    });
}

TEST_CASE("reset of a periodic timer keeps its period") {
    run_on_virtual_time([] {
        Timer t;
        t.start(1h, 7ms);
        const Instant t0 = now();
        t.reset(3ms);
        REQUIRE(t.deadline() == t0 + 3ms);
        const std::uint64_t fires = t.wait().value();
        REQUIRE(t.deadline() == t0 + 3ms + 7ms * static_cast<std::int64_t>(fires));
        t.cancel();
    });
}

TEST_CASE("a timer can be started again after it fired or was cancelled") {
    run_main_task([] {
        Timer t;
        t.start(1ms);
        REQUIRE(t.wait().value() == 1);
        t.start(1ms);
        REQUIRE(t.wait().value() == 1);
        t.cancel();
        t.start(1ms);
        REQUIRE(t.wait().value() == 1);
    });
}

TEST_CASE("a moved timer keeps its id and deadline and fires") {
    run_main_task([] {
        Timer a;
        a.start(5ms);
        const std::uint64_t id = a.id();
        const Instant deadline = a.deadline();
        Timer b(std::move(a));
        REQUIRE(a.id() == 0);
        REQUIRE_FALSE(a.armed());
        REQUIRE(b.id() == id);
        REQUIRE(b.deadline() == deadline);
        Timer c;
        c = std::move(b);
        REQUIRE(c.wait().value() == 1);
    });
}

TEST_CASE("timers with equal deadlines fire in creation order") {
    run_on_virtual_time([] {
        constexpr int timers_n = 16;
        std::vector<Timer> timers(timers_n);   // created in index order
        const Instant when = now() + 5ms;
        // Started and waited for in reverse order, so only creation order can explain the result.
        for (int i = timers_n - 1; i >= 0; --i)
            timers[i].start_at(when);
        std::vector<int> order;
        std::vector<Task<void>> waiters;
        for (int i = timers_n - 1; i >= 0; --i)
            waiters.push_back(spawn("waiter", [&, i] {
                timers[i].wait().value();
                order.push_back(i);
            }));
        for (auto& w : waiters)
            w.join().value();
        std::vector<int> expected(timers_n);
        std::iota(expected.begin(), expected.end(), 0);
        REQUIRE(order == expected);
    });
}

TEST_CASE("timers fire in order of deadline and then of creation") {
    const std::uint64_t seed = test_seed("timers fire in order of deadline and then of creation");
    CAPTURE(seed);
    run_main_task([&] {
        std::mt19937_64 rng(seed);  // in the body: each of its runs (live, recording, replay) draws the same
        RandomTimers t = start_at_random(64, rng, 6);
        REQUIRE(fire_order(t.timers, shuffled(t.timers.size(), rng)) ==
                deadline_order(t.offsets_ms, all_but(t.timers.size(), {})));
    });
}

TEST_CASE("timers cancelled or reset anywhere in the heap leave the rest firing in order of deadline and creation") {
    const std::uint64_t seed = test_seed("timers cancelled or reset anywhere in the heap");
    CAPTURE(seed);
    run_main_task([&] {
        std::mt19937_64 rng(seed);  // in the body: each of its runs (live, recording, replay) draws the same
        RandomTimers t = start_at_random(96, rng, 8);
        // Removals from every depth of the heap: a third cancelled, a third moved to another
        // deadline (removed and pushed again), in a random order.
        const std::vector<int> order = shuffled(t.timers.size(), rng);
        std::vector<bool> cancelled(t.timers.size(), false);
        for (std::size_t k = 0; k < t.timers.size() * 2 / 3; ++k) {
            const int i = order[k];
            if (k % 2 == 0) {
                t.timers[i].cancel();
                cancelled[i] = true;
            } else {
                t.offsets_ms[i] = static_cast<std::int64_t>(rng() % 8);
                t.timers[i].start_at(t.base + std::chrono::milliseconds(t.offsets_ms[i]));
            }
        }
        const std::vector<int> armed = all_but(t.timers.size(), cancelled);
        REQUIRE(fire_order(t.timers, armed) == deadline_order(t.offsets_ms, armed));
    });
}

TEST_CASE("Timer::wait with a deadline before the timer's times out and leaves the timer armed") {
    run_on_virtual_time([] {
        Timer t;
        t.start(1h);
        const Instant t0 = now();
        REQUIRE(t.wait(20ms).code() == Errc::timed_out);
        REQUIRE(now() - t0 >= 20ms);
        REQUIRE(t.armed());
        t.cancel();
    });
}

TEST_CASE("a cancelled task's Timer::wait returns cancelled") {
    run_main_task([] {
        Timer t;
        t.start(1h);
        auto waiter = spawn("waiter", [&] { return outcome_name(t.wait()); });
        yield();
        waiter.cancel();
        REQUIRE(waiter.join().value() == "cancelled");
        REQUIRE(t.armed());
        t.cancel();
    });
}

TEST_CASE("a cancelled task's sleep returns cancelled before its deadline") {
    run_main_task([] {
        const Instant t0 = now();
        auto sleeper = spawn("sleeper", [] { return outcome_name(sleep_for(1h)); });
        yield();
        sleeper.cancel();
        REQUIRE(sleeper.join().value() == "cancelled");
        REQUIRE(now() - t0 < 1h);
    });
}

// --- deadlines --------------------------------------------------------------------

TEST_CASE("a deadline in the past fails a blocking operation at once with timed_out") {
    run_main_task([] {
        Event ev;
        Condition cond;
        Mutex m;
        Channel<int> ch(1);
        WaitGroup wg;
        wg.add();
        Timer t;
        t.start(1h);
        auto sleeper = spawn("sleeper", [] { (void)sleep_for(1h); });
        auto holder = spawn("holder", [&] {
            m.lock().value();
            (void)ev.wait();
            m.unlock();
        });
        yield();
        const std::uint64_t ticks = ticks_now();
        const Instant t0 = now();
        for (Deadline past : {Deadline(t0 - 1s), Deadline(t0), Deadline(0ms), Deadline(Instant{})}) {
            REQUIRE(ev.wait(past).code() == Errc::timed_out);
            REQUIRE(cond.wait(past).code() == Errc::timed_out);
            REQUIRE(m.lock(past).code() == Errc::timed_out);
            REQUIRE(ch.recv(past).code() == Errc::timed_out);
            REQUIRE(wg.wait(past).code() == Errc::timed_out);
            REQUIRE(t.wait(past).code() == Errc::timed_out);
            REQUIRE(sleeper.join(past).code() == Errc::timed_out);
        }
        REQUIRE(ticks_now() == ticks);   // no tick passed: nothing waited
        REQUIRE(now() == t0);
        sleeper.cancel();
        ev.set();
        holder.join().value();
        wg.done();
        t.cancel();
    });
}

TEST_CASE("deadlines bound every WaitList-based operation") {
    run_main_task([] {
        Mutex m;
        auto holder = spawn("holder", [&] {
            m.lock().value();
            (void)sleep_for(1h);
            m.unlock();
        });
        yield();
        auto check = [](const char* what, auto&& op) {
            INFO(what);
            const Instant t0 = now();
            REQUIRE(op(Deadline(10ms)) == "timed_out");
            REQUIRE(now() - t0 >= 10ms);
        };
        Event ev;
        Condition cond;
        Channel<int> ch(1);
        WaitGroup wg;
        wg.add();
        check("event", [&](Deadline d) { return outcome_name(ev.wait(d)); });
        check("condition", [&](Deadline d) { return outcome_name(cond.wait(d)); });
        check("mutex", [&](Deadline d) { return outcome_name(m.lock(d)); });
        check("recv", [&](Deadline d) { return outcome_name(ch.recv(d)); });
        ch.send(1).value();
        check("send", [&](Deadline d) { return outcome_name(ch.send(2, d)); });
        check("wait group", [&](Deadline d) { return outcome_name(wg.wait(d)); });
        check("join", [&](Deadline d) { return outcome_name(holder.join(d)); });
        holder.cancel();
        holder.join().value();
        wg.done();
    });
}

TEST_CASE("an operation that completes before its deadline is not disturbed by it later") {
    run_on_virtual_time([] {
        Channel<int> ch(1);
        Event later;
        auto waiter = spawn("waiter", [&] {
            ch.recv(20ms).value();       // completes at once: a value is there
            return later.wait().ok();    // no deadline: the old one must not end it
        });
        ch.send(1).value();
        sleep_for(40ms).value();   // well past the first deadline
        REQUIRE_FALSE(waiter.done());
        later.set();
        REQUIRE(waiter.join().value());
    });
}

TEST_CASE("a deadline too far to represent never expires") {
    run_main_task([] {
        REQUIRE(Deadline(Duration::max()).is_never());
        REQUIRE(Deadline::never().is_never());
        REQUIRE_FALSE(Deadline(1h).is_never());
        REQUIRE(Deadline(1h).at() == now() + 1h);
    });
}
