// An offload request: a blocking job run on the pool, whose completion is a wake-up.
#pragma once

#include "reprise/runtime/internal/private.hpp"
#include "reprise/io/offload.hpp"
#include "reprise/runtime/internal/handle.hpp"
#include "reprise/runtime/unique_function.hpp"
#include "reprise/runtime/wait_list.hpp"

#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <memory>

namespace reprise::detail {

struct OffloadState : Handle {
    OffloadState(Runtime::Impl& rt_, std::uint64_t id_) : Handle{id_, HandleKind::offload, &rt_}, waiter(WaitKind::offload, id_) {}

    UniqueFunction job;            ///< runs on a pool thread, never on the loop
    std::exception_ptr exception;         ///< what escaped the job (set by the pool thread)
    bool done = false;                    ///< the offload_done wake-up was delivered
    WaitList waiter;
    std::shared_ptr<OffloadState> self;   ///< keeps the request alive until its wake-up
    OffloadCodec codec;                   ///< the result as trace bytes and back

    /// The recorded form of the outcome: a flag byte, then the result or what escaped.
    std::string result_bytes() const;
    /// Replay: takes the outcome from its recorded form; false when it does not decode.
    bool set_result(std::string_view bytes);
};

} // namespace reprise::detail
