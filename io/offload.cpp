// run_offload: an offload request's life from the asking task to the pool and back through the gate.
#include "io/offload.hpp"

#include "io/internal/offload_state.hpp"
#include "runtime/internal/core.hpp"

namespace reprise::detail {

Result<void> run_offload(UniqueFunction job, Deadline deadline) {
    Runtime::Impl& rt = current_runtime("offload()");
    rt.running_fiber("offload()");
    if (cancelled())
        return Errc::cancelled;
    if (rt.offloads_in_flight >= limits::offload_queue_max)
        return Errc::limit;
    auto request = std::make_shared<OffloadState>(rt.new_id());
    request->job = std::move(job);
    request->self = request;
    rt.add_handle(request.get());
    ++rt.offloads_in_flight;
    rt.backend->submit_offload(request);
    while (!request->done) {
        if (auto r = request->waiter.wait(deadline); !r.ok())
            return r;
    }
    if (request->exception)
        std::rethrow_exception(request->exception);
    return {};
}

} // namespace reprise::detail
