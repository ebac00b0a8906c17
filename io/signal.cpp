// wait_signal: a signal watch of the runtime and the tasks waiting on it.
#include "reprise/io/signal.hpp"

#include "reprise/runtime/internal/core.hpp"

namespace reprise {

Result<std::uint64_t> wait_signal(int signo, Deadline deadline) {
    Runtime::Impl& rt = detail::current_runtime("wait_signal()");
    rt.backend->watch_signal(signo);
    detail::SignalWatch& watch = rt.signals[signo];
    while (watch.pending == 0) {
        if (auto r = watch.waiters.wait(deadline); !r.ok())
            return r.error();
    }
    std::uint64_t n = watch.pending;
    watch.pending = 0;
    return n;
}

} // namespace reprise
