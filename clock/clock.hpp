// Loop time, precise reads, sleeps and timers of the current runtime.
#pragma once

#include "reprise/clock/time.hpp"
#include "reprise/runtime/result.hpp"

#include <cstdint>

namespace reprise {

namespace detail {
struct TimerState;
}

/// Loop time: the monotonic time read once at the start of the current tick
/// (like libuv's uv_now()). Cheap, and the same for every task in the tick.
Instant now();
/// Wall-clock time read once at the start of the current tick.
WallTime wall_now();
/// The monotonic clock read at this moment. A synchronous input: use it for
/// measuring work within a tick, not for scheduling.
Instant precise_now();

/// Blocks the current task for `d` of loop time. Errors: cancelled.
Result<void> sleep_for(Duration d);
/// Blocks the current task until loop time reaches `t`. Errors: cancelled.
Result<void> sleep_until(Instant t);

/// A timer of the current runtime: one-shot or periodic, cancellable, resettable.
/// Tasks block in wait() until it fires. Timers with equal deadlines fire in
/// creation order. A Timer belongs to the runtime it was created in.
class Timer {
public:
    Timer();
    ~Timer();
    Timer(Timer&& other) noexcept;
    Timer& operator=(Timer&& other) noexcept;
    Timer(const Timer&) = delete;
    Timer& operator=(const Timer&) = delete;

    /// Arms the timer to fire `after` from now(), then every `period` (0: once).
    /// Re-arming an armed timer moves it (that is how a timer is reset).
    void start(Duration after, Duration period = Duration::zero());
    /// Arms the timer to fire at `when`, then every `period` (0: once).
    void start_at(Instant when, Duration period = Duration::zero());
    /// Same as start(after, same period as before).
    void reset(Duration after);
    /// Disarms the timer, drops fires not yet waited for, and wakes its waiters
    /// with Errc::closed.
    void cancel();

    /// Blocks until the timer fires; returns the number of fires since the last
    /// wait (more than 1 when a periodic timer fell behind). Errors: closed
    /// (the timer is or gets cancelled), timed_out, cancelled.
    /// A timer that is not armed and has no fire pending returns Errc::closed at once:
    /// one never started, one cancelled, or a one-shot whose fire was taken, so that
    /// `while (timer.wait())` ends with its timer. To wait on a timer that another task
    /// arms later (an idle timeout), use wait_until_fired().
    Result<std::uint64_t> wait(Deadline deadline = Deadline::never());
    /// Blocks until the timer fires, also while it is not armed yet: it waits for
    /// another task to start() it and for that fire. Returns the fires since the last
    /// wait. Errors: closed (cancel() is called while it waits), timed_out, cancelled.
    Result<std::uint64_t> wait_until_fired(Deadline deadline = Deadline::never());

    bool armed() const noexcept;
    /// When it fires next (meaningful only while armed).
    Instant deadline() const noexcept;
    std::uint64_t id() const noexcept;

private:
    void release() noexcept;
    detail::TimerState* state_ = nullptr;
};

} // namespace reprise
