// offload(): run blocking work on the runtime's thread pool; its result arrives as a wake-up.
#pragma once

#include "clock/time.hpp"
#include "runtime/result.hpp"
#include "runtime/unique_function.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

namespace reprise {

namespace detail {
/// Runs `job` on the offload pool and blocks the current task until it finished
/// (rethrowing what escaped it). Errors: timed_out, cancelled (the job still runs
/// to its end; its result is dropped), limit (too many jobs in flight).
Result<void> run_offload(UniqueFunction job, Deadline deadline);
} // namespace detail

/// Runs `fn` on a pool thread while the current task waits; the loop keeps serving
/// other tasks. `fn` must not touch the runtime or its handles: it runs on another
/// thread. Use it for blocking calls (DNS, compression, a legacy client library).
template <class F>
auto offload(F&& fn, Deadline deadline = Deadline::never()) -> Result<std::invoke_result_t<std::decay_t<F>>> {
    using T = std::invoke_result_t<std::decay_t<F>>;
    if constexpr (std::is_void_v<T>) {
        return detail::run_offload(UniqueFunction(std::forward<F>(fn)), deadline);
    } else {
        auto slot = std::make_shared<std::optional<T>>();
        auto r = detail::run_offload([slot, fn = std::forward<F>(fn)]() mutable { slot->emplace(fn()); }, deadline);
        if (!r.ok())
            return r.error();
        return std::move(**slot);
    }
}

} // namespace reprise
