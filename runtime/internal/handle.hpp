// Handle: the base of every long-lived object a runtime names by id in its wake-ups.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include "reprise/runtime/runtime.hpp"

#include <cstdint>

namespace reprise::detail {

enum class HandleKind : std::uint8_t { timer, connection, listener, offload };

/// Ids come from the runtime's own counter at creation; execution is deterministic,
/// so the same program gets the same ids in replay and a trace can name handles by id.
/// A handle knows its runtime: every operation on it goes to that runtime, whichever
/// runtime is current (several live in one thread).
struct Handle {
    std::uint64_t id;
    HandleKind kind;
    Runtime::Impl* rt;
};

} // namespace reprise::detail
