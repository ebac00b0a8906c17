// The random API: draws from the runtime's PRNG, and secure_random()'s bytes from the OS (a recorded input).
#include "reprise/io/random.hpp"

#include "reprise/runtime/internal/core.hpp"

namespace reprise {

std::uint64_t random_u64() { return detail::current_runtime("random_u64()").prng.next(); }

std::uint64_t random_below(std::uint64_t bound) { return detail::current_runtime("random_below()").prng.below(bound); }

std::int64_t random_between(std::int64_t lo, std::int64_t hi) {
    REPRISE_ASSERT_MSG(lo <= hi, "random_between(lo, hi) needs lo <= hi");
    auto span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    auto& prng = detail::current_runtime("random_between()").prng;
    std::uint64_t offset = span == UINT64_MAX ? prng.next() : prng.below(span + 1);
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + offset);
}

Result<std::string> secure_random(std::size_t n) {
    detail::current_runtime("secure_random()");
    if (n > limits::secure_random_bytes_max)
        return Errc::limit;
    Runtime::Impl& rt = detail::current_runtime("secure_random()");
    return rt.sync_input(InputKind::secure_random, "", [&rt, n] { return rt.backend->secure_random_bytes(n); });
}

} // namespace reprise
