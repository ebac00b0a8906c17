// Signals as wake-ups: a task waits for a signal instead of installing a handler.
#pragma once

#include "reprise/clock/time.hpp"
#include "reprise/runtime/result.hpp"

#include <cstdint>

namespace reprise {

/// Blocks until `signo` arrives (delivered through the loop, so it is an ordinary
/// wake-up). Returns how many arrived since the last wait for it. Only one runtime
/// per process can watch signals (libevent's rule). Errors: timed_out, cancelled.
Result<std::uint64_t> wait_signal(int signo, Deadline deadline = Deadline::never());

} // namespace reprise
