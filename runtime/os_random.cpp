// Randomness from the operating system: the seed of every runtime's PRNG, and secure_random()'s bytes.
#include "reprise/runtime/internal/os_random.hpp"

#include "reprise/runtime/assert.hpp"

#include <cerrno>
#include <sys/random.h>

namespace reprise::detail {

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

} // namespace reprise::detail
