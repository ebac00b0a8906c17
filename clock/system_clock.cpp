// The operating system's clocks, read with clock_gettime.
#include "reprise/clock/internal/system_clock.hpp"

#include "reprise/runtime/assert.hpp"

#include <cerrno>
#include <ctime>

namespace reprise::detail {

static std::int64_t read_ns(clockid_t id) noexcept {
    timespec ts{};
    REPRISE_ASSERT(::clock_gettime(id, &ts) == 0);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t read_monotonic_ns() noexcept { return read_ns(CLOCK_MONOTONIC); }
std::int64_t read_realtime_ns() noexcept { return read_ns(CLOCK_REALTIME); }

} // namespace reprise::detail

namespace reprise::detail {
void sleep_until_monotonic_ns(std::int64_t deadline_ns) noexcept {
    timespec ts{static_cast<time_t>(deadline_ns / 1'000'000'000), static_cast<long>(deadline_ns % 1'000'000'000)};
    while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
    }
}
} // namespace reprise::detail
