// Reads of the operating system's clocks; the only place in reprise that reads a clock.
#pragma once

#include "runtime/internal/private.hpp"

#include <cstdint>

namespace reprise::detail {

std::int64_t read_monotonic_ns() noexcept;
std::int64_t read_realtime_ns() noexcept;

} // namespace reprise::detail
