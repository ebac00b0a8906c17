// The runtime's PRNG draws and the operating system's random bytes.
#include "reprise/io/random.hpp"

#include "reprise/io/internal/os_random.hpp"
#include "reprise/runtime/internal/core.hpp"

#include <cerrno>
#include <sys/random.h>

namespace reprise {

namespace detail {

void os_random_bytes(void* out, std::size_t n) {
    auto* p = static_cast<unsigned char*>(out);
    while (n > 0) {
        ssize_t got = ::getrandom(p, n, 0);
        if (got < 0 && errno == EINTR)
            continue;
        REPRISE_ASSERT_MSG(got > 0, "getrandom failed");
        p += got;
        n -= static_cast<std::size_t>(got);
    }
}

std::uint64_t os_random_u64() {
    std::uint64_t v = 0;
    os_random_bytes(&v, sizeof v);
    return v;
}

} // namespace detail

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
    return detail::current_runtime("secure_random()").sync_input(trace::InputKind::secure_random, "", [n] {
        std::string out(n, '\0');
        detail::os_random_bytes(out.data(), n);
        return out;
    });
}

} // namespace reprise
