// offload(): run blocking work on the runtime's thread pool; its result arrives as a wake-up.
#pragma once

#include "reprise/clock/time.hpp"
#include "reprise/runtime/codec.hpp"
#include "reprise/runtime/result.hpp"
#include "reprise/runtime/unique_function.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace reprise {

namespace detail {
/// How an offloaded result becomes trace bytes and back (it is an input).
struct OffloadCodec {
    std::function<std::string()> encode;
    std::function<bool(std::string_view)> decode;  ///< false: the bytes do not decode
};
/// Runs `job` on the offload pool and blocks the current task until it finished
/// (rethrowing what escaped it). In replay the job does not run: its recorded
/// result is decoded instead. Errors: timed_out, cancelled (the job still runs to
/// its end; its result is dropped), limit (too many jobs in flight).
Result<void> run_offload(UniqueFunction job, OffloadCodec codec, Deadline deadline);
} // namespace detail

/// Runs `fn` on a pool thread while the current task waits; the loop keeps serving
/// other tasks. `fn` must not touch the runtime or its handles: it runs on another
/// thread. Use it for blocking calls (DNS, compression, a legacy client library).
/// The result is an input of the program: it is recorded, and in replay `fn` is not
/// run at all. So the result type needs a reprise::Codec (runtime/codec.hpp). An
/// exception escaping `fn` is rethrown in the task; in replay it comes back as a
/// std::runtime_error with the recorded what() (its type is not recorded), so catch
/// std::exception around offload() in code that must replay.
template <class F>
auto offload(F&& fn, Deadline deadline = Deadline::never()) -> Result<std::invoke_result_t<std::decay_t<F>>> {
    using T = std::invoke_result_t<std::decay_t<F>>;
    if constexpr (std::is_void_v<T>) {
        return detail::run_offload(UniqueFunction(std::forward<F>(fn)),
                                   detail::OffloadCodec{[] { return std::string(); },
                                                        [](std::string_view b) { return b.empty(); }},
                                   deadline);
    } else {
        auto slot = std::make_shared<std::optional<T>>();
        detail::OffloadCodec codec{
            [slot] { return encode_value(**slot); },
            [slot](std::string_view bytes) {
                auto v = decode_value<T>(bytes);
                if (v)
                    slot->emplace(std::move(*v));
                return v.has_value();
            }};
        auto r = detail::run_offload([slot, fn = std::forward<F>(fn)]() mutable { slot->emplace(fn()); },
                                     std::move(codec), deadline);
        if (!r.ok())
            return r.error();
        return std::move(**slot);
    }
}

} // namespace reprise
