// Tests of the fiber-aware synchronization: bounded channels, mutex, condition, event, wait group.
#include <reprise/runtime/reprise.hpp>
#include "../support/reprise_test.hpp"


#include <catch2/catch.hpp>

#include <csignal>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace reprise;
using namespace std::chrono_literals;
using test::outcome_name;
using test::run_main_task;
using test::run_on_virtual_time;
using test::ticks_now;

namespace {




} // namespace

// --- Channel ------------------------------------------------------------------

TEST_CASE("a channel delivers values in the order they were sent") {
    run_main_task([] {
        Channel<int> ch(8);
        auto producer = spawn("producer", [&] {
            for (int i = 0; i < 100; ++i)
                ch.send(i).value();
            ch.close();
        });
        std::vector<int> got;
        for (;;) {
            auto r = ch.recv();
            if (!r.ok()) {
                REQUIRE(r.code() == Errc::closed);
                break;
            }
            got.push_back(*r);
        }
        producer.join().value();
        REQUIRE(got.size() == 100);
        for (int i = 0; i < 100; ++i)
            REQUIRE(got[i] == i);
    });
}

TEST_CASE("send blocks while the channel is full and resumes when a value is received") {
    run_main_task([] {
        Channel<int> ch(2);
        int sent = 0;
        auto producer = spawn("producer", [&] {
            for (int i = 0; i < 5; ++i) {
                ch.send(i).value();
                ++sent;
            }
        });
        yield();
        REQUIRE(sent == 2);   // blocked on the third: the capacity is 2
        REQUIRE(ch.size() == 2);
        REQUIRE(ch.capacity() == 2);
        REQUIRE(ch.recv().value() == 0);
        yield();
        REQUIRE(sent == 3);
        REQUIRE(ch.size() == 2);
        for (int expected = 1; expected < 5; ++expected)
            REQUIRE(ch.recv().value() == expected);
        producer.join().value();
        REQUIRE(sent == 5);
        REQUIRE(ch.size() == 0);
    });
}

TEST_CASE("recv blocks while the channel is empty and returns the first value sent") {
    run_main_task([] {
        Channel<std::string> ch(1);
        auto consumer = spawn("consumer", [&] { return ch.recv().value(); });
        yield();
        REQUIRE_FALSE(consumer.done());
        ch.send("hello").value();
        REQUIRE(consumer.join().value() == "hello");
    });
}

TEST_CASE("blocked receivers are served in the order they started waiting") {
    run_main_task([] {
        Channel<int> ch(4);
        std::vector<std::string> log;
        std::vector<Task<void>> receivers;
        for (int i = 0; i < 3; ++i)
            receivers.push_back(spawn("receiver", [&, i] { log.push_back(std::to_string(i) + ":" + std::to_string(ch.recv().value())); }));
        yield();
        for (int v = 10; v < 13; ++v)
            ch.send(v).value();
        for (auto& r : receivers)
            r.join().value();
        REQUIRE(log == std::vector<std::string>{"0:10", "1:11", "2:12"});
    });
}

TEST_CASE("a closed channel drains what is buffered and then fails recv with closed") {
    run_main_task([] {
        Channel<int> ch(4);
        ch.send(1).value();
        ch.send(2).value();
        ch.send(3).value();
        ch.close();
        ch.close();   // idempotent
        REQUIRE(ch.closed());
        REQUIRE(ch.send(4).code() == Errc::closed);
        int four = 4;
        REQUIRE_FALSE(ch.try_send(four));
        REQUIRE(ch.recv().value() == 1);
        REQUIRE(ch.try_recv() == std::optional<int>(2));
        REQUIRE(ch.recv().value() == 3);
        REQUIRE(ch.recv().code() == Errc::closed);
        REQUIRE(ch.recv(Deadline(now())).code() == Errc::closed);
        REQUIRE_FALSE(ch.try_recv().has_value());
    });
}

TEST_CASE("close wakes blocked receivers and senders with closed") {
    run_main_task([] {
        Channel<int> empty(1);
        Channel<int> full(1);
        full.send(1).value();
        auto receiver = spawn("receiver", [&] { return outcome_name(empty.recv()); });
        auto sender = spawn("sender", [&] { return outcome_name(full.send(2)); });
        yield();
        REQUIRE_FALSE(receiver.done());
        REQUIRE_FALSE(sender.done());
        empty.close();
        full.close();
        REQUIRE(receiver.join().value() == "closed");
        REQUIRE(sender.join().value() == "closed");
        // The buffered value stays receivable; the blocked sender's did not get in.
        REQUIRE(full.recv().value() == 1);
        REQUIRE(full.recv().code() == Errc::closed);
    });
}

TEST_CASE("try_send fails on a full channel and try_recv on an empty one without blocking") {
    run_main_task([] {
        Channel<std::unique_ptr<int>> ch(1);
        const std::uint64_t ticks = ticks_now();
        REQUIRE_FALSE(ch.try_recv().has_value());
        auto first = std::make_unique<int>(1);
        REQUIRE(ch.try_send(first));
        REQUIRE(first == nullptr);   // moved into the channel
        auto second = std::make_unique<int>(2);
        REQUIRE_FALSE(ch.try_send(second));
        REQUIRE(second != nullptr);   // a failed try_send leaves the value to the caller
        REQUIRE(*second == 2);
        auto got = ch.try_recv();
        REQUIRE(got.has_value());
        REQUIRE(**got == 1);
        REQUIRE(ticks_now() == ticks);
    });
}

TEST_CASE("try_recv releases a blocked sender and try_send a blocked receiver") {
    run_main_task([] {
        Channel<int> full(1);
        full.send(1).value();
        auto sender = spawn("sender", [&] { full.send(2).value(); });
        yield();
        REQUIRE_FALSE(sender.done());
        REQUIRE(full.try_recv() == std::optional<int>(1));
        sender.join().value();
        REQUIRE(full.try_recv() == std::optional<int>(2));

        Channel<int> empty(1);
        auto receiver = spawn("receiver", [&] { return empty.recv().value(); });
        yield();
        int v = 7;
        REQUIRE(empty.try_send(v));
        REQUIRE(receiver.join().value() == 7);
    });
}

TEST_CASE("channel operations with a deadline time out when the channel stays empty or full") {
    run_on_virtual_time([] {
        Channel<int> ch(1);
        Instant t0 = now();
        REQUIRE(ch.recv(20ms).code() == Errc::timed_out);
        REQUIRE(now() - t0 == 20ms);
        ch.send(1).value();
        t0 = now();
        REQUIRE(ch.send(2, 20ms).code() == Errc::timed_out);
        REQUIRE(now() - t0 == 20ms);
        REQUIRE(ch.size() == 1);
        REQUIRE(ch.recv().value() == 1);   // the timed-out value was dropped
        REQUIRE_FALSE(ch.try_recv().has_value());
    });
}

TEST_CASE("a channel operation that can proceed succeeds even with a deadline in the past") {
    run_main_task([] {
        Channel<int> ch(1);
        REQUIRE(ch.send(5, Deadline(now() - 1s)).ok());
        REQUIRE(ch.recv(Deadline(now() - 1s)).value() == 5);
        const std::uint64_t ticks = ticks_now();
        REQUIRE(ch.recv(Deadline(now() - 1s)).code() == Errc::timed_out);
        REQUIRE(ticks_now() == ticks);
    });
}

TEST_CASE("a cancelled task's blocked channel send and recv return cancelled") {
    run_main_task([] {
        Channel<int> ch(1);
        auto receiver = spawn("receiver", [&] { return outcome_name(ch.recv()); });
        yield();
        receiver.cancel();
        REQUIRE(receiver.join().value() == "cancelled");

        ch.send(1).value();
        auto sender = spawn("sender", [&] { return outcome_name(ch.send(2)); });
        yield();
        sender.cancel();
        REQUIRE(sender.join().value() == "cancelled");
        REQUIRE(ch.size() == 1);
    });
}

TEST_CASE("a channel of capacity one passes values back and forth") {
    run_main_task([] {
        Channel<int> ping(1);
        Channel<int> pong(1);
        auto echo = spawn("echo", [&] {
            for (;;) {
                auto v = ping.recv();
                if (!v.ok())
                    return;
                pong.send(*v + 1).value();
            }
        });
        int v = 0;
        for (int i = 0; i < 1000; ++i) {
            ping.send(v).value();
            v = pong.recv().value();
        }
        ping.close();
        echo.join().value();
        REQUIRE(v == 1000);
    });
}

// --- Mutex ----------------------------------------------------------------------

TEST_CASE("try_lock fails while the mutex is held and succeeds once it is free") {
    run_main_task([] {
        Mutex m;
        REQUIRE_FALSE(m.locked());
        REQUIRE(m.try_lock());
        REQUIRE(m.locked());
        auto other = spawn("other", [&] { return m.try_lock(); });
        REQUIRE_FALSE(other.join().value());
        m.unlock();
        REQUIRE_FALSE(m.locked());
        auto again = spawn("again", [&] {
            bool got = m.try_lock();
            if (got)
                m.unlock();
            return got;
        });
        REQUIRE(again.join().value());
    });
}

TEST_CASE("lock blocks until the holder unlocks") {
    run_main_task([] {
        Mutex m;
        std::string log;
        m.lock().value();
        auto waiter = spawn("waiter", [&] {
            m.lock().value();
            log += "W";
            m.unlock();
        });
        sleep_for(5ms).value();   // the waiter stays blocked over ticks
        log += "M";
        REQUIRE_FALSE(waiter.done());
        m.unlock();
        waiter.join().value();
        REQUIRE(log == "MW");
    });
}

TEST_CASE("a mutex serves its waiters in the order they started waiting") {
    run_main_task([] {
        Mutex m;
        std::vector<int> order;
        m.lock().value();
        std::vector<Task<void>> waiters;
        for (int i = 0; i < 5; ++i)
            waiters.push_back(spawn("waiter", [&, i] {
                m.lock().value();
                order.push_back(i);
                yield();   // hold it across a switch
                m.unlock();
            }));
        yield();
        m.unlock();
        for (auto& w : waiters)
            w.join().value();
        REQUIRE(order == std::vector<int>{0, 1, 2, 3, 4});
    });
}

// unlock() hands the lock to its longest waiter: an unlocker that locks again
// before the woken waiter runs must queue behind it.
TEST_CASE("unlock hands the mutex to the longest waiter ahead of a task that locks again") {
    run_main_task([] {
        Mutex m;
        std::string log;
        m.lock().value();
        auto waiter = spawn("waiter", [&] {
            m.lock().value();
            log += "W";
            m.unlock();
        });
        yield();   // the waiter blocks
        m.unlock();
        m.lock().value();   // must queue behind the waiter
        log += "M";
        m.unlock();
        waiter.join().value();
        REQUIRE(log == "WM");
    });
}

TEST_CASE("a mutex handed to a waiter stays its even if the waiter is cancelled before it runs") {
    run_main_task([] {
        Mutex m;
        m.lock().value();
        bool got = false;
        auto waiter = spawn("waiter", [&] {
            got = m.lock().ok();
            if (got)
                m.unlock();   // asserts that the waiter holds it
        });
        yield();   // the waiter blocks
        m.unlock();
        REQUIRE(m.locked());           // already the waiter's
        REQUIRE_FALSE(m.try_lock());   // so nobody else can take it
        waiter.cancel();               // too late: the hand-off happened
        waiter.join().value();
        REQUIRE(got);
        REQUIRE_FALSE(m.locked());
    });
}

TEST_CASE("lock with a deadline times out while the mutex stays held and does not take it") {
    run_on_virtual_time([] {
        Mutex m;
        m.lock().value();
        auto waiter = spawn("waiter", [&] {
            const Instant t0 = now();
            auto r = m.lock(20ms);
            return std::make_pair(r.ok() ? Errc{} : r.code(), now() - t0);
        });
        auto [code, waited] = waiter.join().value();
        REQUIRE(code == Errc::timed_out);
        REQUIRE(waited == 20ms);
        // The main task still holds the lock: unlock() would assert otherwise.
        REQUIRE(m.locked());
        m.unlock();
    });
}

TEST_CASE("a lock waiter that timed out does not swallow the wake-up of the next one") {
    run_main_task([] {
        Mutex m;
        m.lock().value();
        auto impatient = spawn("impatient", [&] { return outcome_name(m.lock(5ms)); });
        auto patient = spawn("patient", [&] {
            m.lock().value();
            m.unlock();
            return true;
        });
        REQUIRE(impatient.join().value() == "timed_out");
        m.unlock();
        REQUIRE(patient.join(10s).value());
    });
}

TEST_CASE("a cancelled task's blocked lock returns cancelled and the next waiter gets the mutex") {
    run_main_task([] {
        Mutex m;
        m.lock().value();
        auto cancelled_waiter = spawn("cancelled", [&] { return outcome_name(m.lock()); });
        auto next_waiter = spawn("next", [&] {
            m.lock().value();
            m.unlock();
            return true;
        });
        yield();
        cancelled_waiter.cancel();
        REQUIRE(cancelled_waiter.join().value() == "cancelled");
        m.unlock();
        REQUIRE(next_waiter.join(10s).value());
        REQUIRE_FALSE(m.locked());
    });
}

TEST_CASE("LockGuard holds the mutex for its scope and reports a timed-out lock") {
    run_main_task([] {
        Mutex m;
        {
            LockGuard guard(m);
            REQUIRE(guard.ok());
            REQUIRE(m.locked());
            auto blocked = spawn("blocked", [&] {
                LockGuard inner(m, 5ms);
                return outcome_name(inner.result());
            });
            REQUIRE(blocked.join().value() == "timed_out");
        }
        REQUIRE_FALSE(m.locked());
    });
}

TEST_CASE("unlocking a mutex held by another task is fatal") {
    auto child = test::run_in_child([] {
        Runtime rt;
        return rt.run([] {
            Mutex m;
            m.lock().value();
            auto thief = spawn("thief", [&] { m.unlock(); });
            thief.join().value();
            return 0;
        });
    });
    INFO(child.describe());
    REQUIRE(child.died_by(SIGABRT));
    REQUIRE_THAT(child.err, Catch::Contains("does not hold it"));
}

// --- Condition --------------------------------------------------------------------

TEST_CASE("notify_one wakes the longest waiting task and notify_all the rest") {
    run_main_task([] {
        Condition cond;
        std::vector<int> woken;
        std::vector<Task<void>> waiters;
        for (int i = 0; i < 4; ++i)
            waiters.push_back(spawn("waiter", [&, i] {
                cond.wait().value();
                woken.push_back(i);
            }));
        yield();
        cond.notify_one();
        yield();
        REQUIRE(woken == std::vector<int>{0});
        cond.notify_all();
        for (auto& w : waiters)
            w.join().value();
        REQUIRE(woken == std::vector<int>{0, 1, 2, 3});
    });
}

TEST_CASE("a condition wait with a mutex releases it while waiting and holds it again on return") {
    run_main_task([] {
        Mutex m;
        Condition cond;
        bool ready = false;
        bool held_on_return = false;
        auto waiter = spawn("waiter", [&] {
            m.lock().value();
            while (!ready)
                cond.wait(m).value();
            held_on_return = m.locked();
            m.unlock();   // asserts that the waiter holds it
        });
        yield();
        REQUIRE(m.try_lock());   // released while the waiter waits
        ready = true;
        cond.notify_one();
        yield();
        REQUIRE_FALSE(waiter.done());   // woken, but the mutex is still ours
        m.unlock();
        waiter.join().value();
        REQUIRE(held_on_return);
    });
}

TEST_CASE("a cancelled condition wait with a mutex returns cancelled holding the mutex again") {
    run_main_task([] {
        Mutex m;
        Condition cond;
        Errc code{};
        bool held_on_return = false;
        auto waiter = spawn("waiter", [&] {
            m.lock().value();
            code = cond.wait(m).code();
            held_on_return = m.locked();
            m.unlock();   // asserts that the waiter holds it
        });
        yield();
        m.lock().value();   // the waiter released it while waiting
        waiter.cancel();
        yield();
        sleep_for(1ms).value();
        REQUIRE_FALSE(waiter.done());   // cancelled, but it waits for the mutex
        m.unlock();
        waiter.join().value();
        REQUIRE(code == Errc::cancelled);
        REQUIRE(held_on_return);
    });
}

TEST_CASE("a timed-out condition wait with a mutex holds the mutex again") {
    run_on_virtual_time([] {
        Mutex m;
        Condition cond;
        m.lock().value();
        const Instant t0 = now();
        REQUIRE(cond.wait(m, 20ms).code() == Errc::timed_out);
        REQUIRE(now() - t0 == 20ms);
        REQUIRE(m.locked());
        m.unlock();
    });
}

TEST_CASE("a condition wait without a mutex times out and is cancelled like any wait") {
    run_on_virtual_time([] {
        Condition cond;
        const Instant t0 = now();
        REQUIRE(cond.wait(20ms).code() == Errc::timed_out);
        REQUIRE(now() - t0 == 20ms);
        auto waiter = spawn("waiter", [&] { return outcome_name(cond.wait()); });
        yield();
        waiter.cancel();
        REQUIRE(waiter.join().value() == "cancelled");
    });
}

// --- Event ------------------------------------------------------------------------

TEST_CASE("an event releases every waiter when set and later waits return at once until cleared") {
    run_main_task([] {
        Event ev;
        REQUIRE_FALSE(ev.is_set());
        int released = 0;
        std::vector<Task<void>> waiters;
        for (int i = 0; i < 3; ++i)
            waiters.push_back(spawn("waiter", [&] {
                ev.wait().value();
                ++released;
            }));
        yield();
        REQUIRE(released == 0);
        ev.set();
        for (auto& w : waiters)
            w.join().value();
        REQUIRE(released == 3);
        const std::uint64_t ticks = ticks_now();
        REQUIRE(ev.wait().ok());
        REQUIRE(ev.wait(Deadline(now() - 1s)).ok());
        REQUIRE(ticks_now() == ticks);
        ev.clear();
        REQUIRE_FALSE(ev.is_set());
        REQUIRE(ev.wait(5ms).code() == Errc::timed_out);
    });
}

TEST_CASE("a cancelled task's event wait returns cancelled") {
    run_main_task([] {
        Event ev;
        auto waiter = spawn("waiter", [&] { return outcome_name(ev.wait()); });
        yield();
        waiter.cancel();
        REQUIRE(waiter.join().value() == "cancelled");
    });
}

// --- WaitGroup ----------------------------------------------------------------------

TEST_CASE("a wait group's wait returns once every added task is done") {
    run_main_task([] {
        WaitGroup wg;
        REQUIRE(wg.wait(Deadline(now())).ok());   // empty: returns at once
        int finished = 0;
        for (int i = 0; i < 5; ++i) {
            wg.add();
            spawn("member", [&, i] {
                sleep_for(std::chrono::milliseconds(i)).value();
                ++finished;
                wg.done();
            });
        }
        REQUIRE(wg.count() == 5);
        wg.wait().value();
        REQUIRE(finished == 5);
        REQUIRE(wg.count() == 0);
    });
}

TEST_CASE("a wait group's wait times out or is cancelled while members remain") {
    run_on_virtual_time([] {
        WaitGroup wg;
        wg.add(2);
        const Instant t0 = now();
        REQUIRE(wg.wait(20ms).code() == Errc::timed_out);
        REQUIRE(now() - t0 == 20ms);
        auto waiter = spawn("waiter", [&] { return outcome_name(wg.wait()); });
        yield();
        waiter.cancel();
        REQUIRE(waiter.join().value() == "cancelled");
        wg.done();
        REQUIRE(wg.count() == 1);
        wg.done();
        REQUIRE(wg.wait(Deadline(now())).ok());
    });
}
