// Randomness of the current runtime: a seeded deterministic PRNG, and secure random bytes.
#pragma once

#include "reprise/runtime/result.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace reprise {

/// The next number of the runtime's PRNG. Deterministic from Runtime::seed().
std::uint64_t random_u64();
/// Uniform in [0, bound) from the runtime's PRNG (0 when bound is 0).
std::uint64_t random_below(std::uint64_t bound);
/// Uniform in [lo, hi] from the runtime's PRNG.
std::int64_t random_between(std::int64_t lo, std::int64_t hi);
/// `n` bytes from the operating system's secure source (getrandom). A synchronous
/// input. Errors: limit (n above limits::secure_random_bytes_max).
Result<std::string> secure_random(std::size_t n);

} // namespace reprise
