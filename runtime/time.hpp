// Time types of reprise: integer nanoseconds, loop instants, wall times and deadlines (the core's vocabulary).
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>

namespace reprise {

using Duration = std::chrono::nanoseconds;

/// The monotonic clock of a runtime. It has no static now(): time is read through
/// the runtime (`reprise::now()`), so that replay can warp it.
struct MonoClock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = Duration;
    using time_point = std::chrono::time_point<MonoClock, Duration>;
    static constexpr bool is_steady = true;
};

/// A point of monotonic (loop) time.
using Instant = MonoClock::time_point;
/// A point of wall-clock (realtime) time.
using WallTime = std::chrono::time_point<std::chrono::system_clock, Duration>;

/// When a blocking operation gives up with Errc::timed_out. Built from a duration
/// (relative to the current tick's loop time) or from an Instant; the default never expires.
class Deadline {
public:
    constexpr Deadline() = default;
    /// Expires `after` from the loop time of the current tick.
    template <class Rep, class Period>
    Deadline(std::chrono::duration<Rep, Period> after)
        : Deadline(from_now(std::chrono::duration_cast<Duration>(after))) {}
    constexpr Deadline(Instant at) : at_ns_(at.time_since_epoch().count()) {}

    static constexpr Deadline never() { return Deadline{}; }
    constexpr bool is_never() const { return at_ns_ == never_ns; }
    constexpr std::int64_t at_ns() const { return at_ns_; }
    constexpr Instant at() const { return Instant{Duration{at_ns_}}; }

private:
    static constexpr std::int64_t never_ns = std::numeric_limits<std::int64_t>::max();
    static Deadline from_now(Duration after);
    std::int64_t at_ns_ = never_ns;
};

} // namespace reprise
