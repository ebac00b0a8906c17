// WaitList: the one blocking primitive every fiber-aware object (channel, mutex, timer) is built on.
#pragma once

#include "reprise/clock/time.hpp"
#include "reprise/runtime/result.hpp"

#include <cstddef>
#include <cstdint>

namespace reprise {

namespace detail {
struct Fiber;
}

/// A FIFO of tasks blocked on something. `wait()` blocks the current task until
/// `notify_one()`/`notify_all()` wakes it, its deadline passes (Errc::timed_out) or
/// the task is cancelled (Errc::cancelled). Waking is FIFO, so it is deterministic.
/// A WaitList belongs to one runtime and must be empty when destroyed.
class WaitList {
public:
    WaitList() = default;
    WaitList(const WaitList&) = delete;
    WaitList& operator=(const WaitList&) = delete;
    ~WaitList();

    /// Blocks the current task until notified; errors: timed_out, cancelled.
    Result<void> wait(Deadline deadline = Deadline::never());
    /// Blocks until notified, ignoring cancellation: for primitives that must get a
    /// resource back whatever happens (a condition re-taking its mutex).
    void wait_uncancellable();
    /// Wakes the longest waiting task; false when none waits.
    bool notify_one();
    /// Wakes the longest waiting task and returns its task id (0 when none waits),
    /// for hand-over primitives such as Mutex.
    std::uint64_t notify_one_task();
    /// Wakes every waiting task; returns how many.
    std::size_t notify_all();
    bool empty() const noexcept { return head_ == nullptr; }

private:
    friend struct detail::Fiber;
    void push_back(detail::Fiber* fiber) noexcept;
    void remove(detail::Fiber* fiber) noexcept;
    detail::Fiber* head_ = nullptr;
    detail::Fiber* tail_ = nullptr;
};

} // namespace reprise
