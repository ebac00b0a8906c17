// The runtime's deterministic PRNG (xoshiro256**, seeded through splitmix64).
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include <cstdint>

namespace reprise::detail {

__extension__ typedef unsigned __int128 u128;

/// Deterministic from its seed: the same seed gives the same sequence on every machine.
class Prng {
public:
    explicit Prng(std::uint64_t seed) noexcept {
        for (auto& word : s_) {
            seed += 0x9e3779b97f4a7c15ULL;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            word = z ^ (z >> 31);
        }
    }

    std::uint64_t next() noexcept {
        const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    /// Uniform in [0, bound), without modulo bias (Lemire's method).
    std::uint64_t below(std::uint64_t bound) noexcept {
        if (bound == 0)
            return 0;
        u128 m = static_cast<u128>(next()) * bound;
        auto low = static_cast<std::uint64_t>(m);
        if (low < bound) {
            const std::uint64_t threshold = -bound % bound;
            while (low < threshold) {
                m = static_cast<u128>(next()) * bound;
                low = static_cast<std::uint64_t>(m);
            }
        }
        return static_cast<std::uint64_t>(m >> 64);
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
};

} // namespace reprise::detail
