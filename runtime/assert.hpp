// Always-on assertions: a broken invariant crashes at once with a message, in every build.
#pragma once

namespace reprise::detail {
[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept;
}

/// Checks an invariant in every build (independent of NDEBUG); on failure prints
/// the expression and its place to stderr and aborts.
#define REPRISE_ASSERT(expr)                                                      \
    ((expr) ? static_cast<void>(0)                                              \
            : ::reprise::detail::assert_fail(#expr, __FILE__, __LINE__, nullptr))

/// Same as REPRISE_ASSERT with an explanation for the reader of the crash.
#define REPRISE_ASSERT_MSG(expr, msg)                                             \
    ((expr) ? static_cast<void>(0)                                              \
            : ::reprise::detail::assert_fail(#expr, __FILE__, __LINE__, (msg)))
