// Fiber-aware synchronization: bounded channels, mutex, condition, event, wait group.
#pragma once

#include "reprise/runtime/limits.hpp"
#include "reprise/runtime/result.hpp"
#include "reprise/runtime/wait_list.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <utility>

namespace reprise {

/// A mutual exclusion lock for tasks. Needed only when a task blocks while holding
/// state others may see (tasks are cooperative: code without a blocking call between
/// two points is already atomic). Not recursive.
class Mutex {
public:
    /// Errors: timed_out, cancelled (the lock is then not held).
    Result<void> lock(Deadline deadline = Deadline::never());
    bool try_lock() noexcept;
    void unlock();
    bool locked() const noexcept { return owner_ != 0; }

private:
    friend class Condition;
    /// Takes the lock ignoring cancellation: a condition's waiter must hold the
    /// mutex again when it returns, whatever ended its wait.
    void relock();
    std::uint64_t owner_ = 0;  ///< task id of the holder
    WaitList waiters_{WaitKind::mutex};
};

/// Holds a Mutex for a scope. Check `ok()` when the lock had a deadline.
class LockGuard {
public:
    explicit LockGuard(Mutex& m, Deadline deadline = Deadline::never()) : m_(m), r_(m.lock(deadline)) {}
    ~LockGuard() {
        if (r_.ok())
            m_.unlock();
    }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;
    bool ok() const noexcept { return r_.ok(); }
    const Result<void>& result() const noexcept { return r_; }

private:
    Mutex& m_;
    Result<void> r_;
};

/// A condition variable for tasks.
class Condition {
public:
    /// Unlocks `m`, waits for a notify, and locks `m` again (also on error).
    /// Errors: timed_out, cancelled. Spurious wake-ups do not happen, but the
    /// predicate may have changed again: wait in a loop.
    Result<void> wait(Mutex& m, Deadline deadline = Deadline::never());
    /// Waits without a mutex (enough when no blocking call separates the check of
    /// the condition from the wait, which is the usual case with cooperative tasks).
    Result<void> wait(Deadline deadline = Deadline::never()) { return waiters_.wait(deadline); }
    void notify_one() { waiters_.notify_one(); }
    void notify_all() { waiters_.notify_all(); }

private:
    WaitList waiters_{WaitKind::condition};
};

/// A flag tasks can wait for: set() releases every waiter, and later waits return
/// at once until clear().
class Event {
public:
    void set() {
        set_ = true;
        ++generation_;
        waiters_.notify_all();
    }
    void clear() noexcept { set_ = false; }
    bool is_set() const noexcept { return set_; }
    /// Returns once the event is set, or was set since this wait began (even if
    /// cleared again before the waiter ran). Errors: timed_out, cancelled.
    Result<void> wait(Deadline deadline = Deadline::never()) {
        const std::uint64_t began = generation_;
        while (!set_ && generation_ == began) {
            if (auto r = waiters_.wait(deadline); !r.ok())
                return r;
        }
        return {};
    }

private:
    bool set_ = false;
    std::uint64_t generation_ = 0;  ///< counts set() calls
    WaitList waiters_{WaitKind::event};
};

/// Waits for a group of tasks: add() before starting each, done() when each ends.
class WaitGroup {
public:
    void add(std::size_t n = 1) noexcept { count_ += n; }
    void done() {
        REPRISE_ASSERT_MSG(count_ > 0, "WaitGroup::done() without a matching add()");
        if (--count_ == 0) {
            ++drained_;
            waiters_.notify_all();
        }
    }
    std::size_t count() const noexcept { return count_; }
    /// Returns once the count is zero, or reached zero since this wait began (even
    /// if add() raised it again before the waiter ran). Errors: timed_out, cancelled.
    Result<void> wait(Deadline deadline = Deadline::never()) {
        const std::uint64_t began = drained_;
        while (count_ > 0 && drained_ == began) {
            if (auto r = waiters_.wait(deadline); !r.ok())
                return r;
        }
        return {};
    }

private:
    std::size_t count_ = 0;
    std::uint64_t drained_ = 0;  ///< times the count reached zero
    WaitList waiters_{WaitKind::wait_group};
};

/// A bounded FIFO channel between tasks of one runtime. send() blocks while full,
/// recv() while empty. After close(), send() fails with Errc::closed and recv()
/// drains what is left, then fails with Errc::closed.
template <class T>
class Channel {
public:
    explicit Channel(std::size_t capacity) : capacity_(capacity) {
        REPRISE_ASSERT_MSG(capacity >= 1 && capacity <= limits::channel_capacity_max,
                           "a channel's capacity is in [1, limits::channel_capacity_max]");
    }

    /// Errors: closed, timed_out, cancelled (the value is then dropped).
    Result<void> send(T value, Deadline deadline = Deadline::never()) {
        while (!closed_ && items_.size() >= capacity_) {
            if (auto r = senders_.wait(deadline); !r.ok())
                return r;
        }
        if (closed_)
            return Errc::closed;
        items_.push_back(std::move(value));
        receivers_.notify_one();
        return {};
    }

    /// False when full or closed.
    bool try_send(T& value) {
        if (closed_ || items_.size() >= capacity_)
            return false;
        items_.push_back(std::move(value));
        receivers_.notify_one();
        return true;
    }

    /// Errors: closed (and drained), timed_out, cancelled.
    Result<T> recv(Deadline deadline = Deadline::never()) {
        while (items_.empty()) {
            if (closed_)
                return Errc::closed;
            if (auto r = receivers_.wait(deadline); !r.ok())
                return r.error();
        }
        T value = std::move(items_.front());
        items_.pop_front();
        senders_.notify_one();
        return value;
    }

    std::optional<T> try_recv() {
        if (items_.empty())
            return std::nullopt;
        T value = std::move(items_.front());
        items_.pop_front();
        senders_.notify_one();
        return value;
    }

    /// Wakes every blocked sender and receiver; idempotent.
    void close() {
        closed_ = true;
        senders_.notify_all();
        receivers_.notify_all();
    }

    bool closed() const noexcept { return closed_; }
    std::size_t size() const noexcept { return items_.size(); }
    std::size_t capacity() const noexcept { return capacity_; }

private:
    std::deque<T> items_;
    std::size_t capacity_;
    bool closed_ = false;
    WaitList senders_{WaitKind::channel_send};
    WaitList receivers_{WaitKind::channel_receive};
};

} // namespace reprise
