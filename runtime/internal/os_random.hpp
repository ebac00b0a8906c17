// Randomness from the operating system (seeds and secure_random), the only source besides the PRNG.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include <cstddef>
#include <cstdint>

namespace reprise::detail {

/// Fills `out` with `n` bytes from getrandom(2); fatal if the kernel refuses.
void os_random_bytes(void* out, std::size_t n);
std::uint64_t os_random_u64();

} // namespace reprise::detail
