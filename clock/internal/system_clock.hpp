// Reads of the operating system's clocks; the only place in reprise that reads a clock.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include <cstdint>

namespace reprise::detail {

std::int64_t read_monotonic_ns() noexcept;
std::int64_t read_realtime_ns() noexcept;

} // namespace reprise::detail

namespace reprise::detail {
/// Blocks the thread until the monotonic clock reaches `deadline_ns` (replay pacing).
void sleep_until_monotonic_ns(std::int64_t deadline_ns) noexcept;
} // namespace reprise::detail
