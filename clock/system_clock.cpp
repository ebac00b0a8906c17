// The operating system's clocks, read with clock_gettime.
#include "clock/internal/system_clock.hpp"

#include "runtime/assert.hpp"

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
