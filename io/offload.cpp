// run_offload: an offload request's life from the asking task to the pool and back through the gate.
#include "reprise/io/offload.hpp"

#include "reprise/io/internal/offload_state.hpp"
#include "reprise/runtime/internal/core.hpp"

#include <stdexcept>

namespace reprise::detail {

std::string OffloadState::result_bytes() const {
    if (exception) {
        std::string what = "unknown exception";
        try {
            std::rethrow_exception(exception);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        return '\x01' + what;
    }
    return '\x00' + codec.encode();
}

bool OffloadState::set_result(std::string_view bytes) {
    if (bytes.empty())
        return false;
    if (bytes[0] == '\x01') {
        // Replay cannot recreate the exception's type; its message survives.
        exception = std::make_exception_ptr(std::runtime_error(std::string(bytes.substr(1))));
        return true;
    }
    return bytes[0] == '\x00' && codec.decode(bytes.substr(1));
}

Result<void> run_offload(UniqueFunction job, OffloadCodec codec, Deadline deadline) {
    Runtime::Impl& rt = current_runtime("offload()");
    rt.running_fiber("offload()");
    if (cancelled())
        return Errc::cancelled;
    if (rt.offloads_in_flight >= limits::offload_queue_max)
        return Errc::limit;
    auto request = std::make_shared<OffloadState>(rt, rt.new_id());
    request->job = std::move(job);
    request->codec = std::move(codec);
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

namespace reprise {

using namespace detail;

// --- the runtime's side: the gate's handler and the requests left at the end --------------

void Runtime::Impl::deliver_offload(const Wakeup& w, std::string_view data, Handle& request) {
    auto& o = static_cast<OffloadState&>(request);
    // An offloaded job's result is an input: recorded here, fed back in replay.
    if (journal)
        journal->offload_done(w, data, o);
    o.done = true;
    --offloads_in_flight;
    remove_handle(&o);
    o.waiter.notify_all();
    o.self.reset();  // the loop's reference; the waiter may hold another
}

void Runtime::Impl::drop_unfinished_offloads() noexcept {
    // Offload requests whose results never reached the loop still hold themselves.
    std::vector<OffloadState*> orphans;
    handles.for_each([&](std::uint64_t, Handle* h) {
        if (h->kind == HandleKind::offload)
            orphans.push_back(static_cast<OffloadState*>(h));
    });
    for (OffloadState* o : orphans)
        o->self.reset();
}

} // namespace reprise
