// The offload pool: threads that run blocking jobs and report their completion to one loop.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include "reprise/io/internal/offload_state.hpp"

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace reprise::detail {

/// Runs jobs on a few threads (started on first use). Completions are queued in
/// finishing order and announced through an eventfd that the loop watches.
class OffloadPool {
public:
    explicit OffloadPool(std::size_t threads);
    ~OffloadPool();  ///< waits for running jobs; queued ones are dropped
    OffloadPool(const OffloadPool&) = delete;
    OffloadPool& operator=(const OffloadPool&) = delete;

    void submit(std::shared_ptr<OffloadState> request);
    /// The eventfd that becomes readable when completions are queued.
    int notify_fd() const noexcept { return notify_fd_; }
    /// Takes the ids of finished requests, in finishing order.
    void take_completions(std::vector<std::uint64_t>& out);

private:
    void worker();

    std::size_t threads_max_;
    int notify_fd_ = -1;
    std::mutex mutex_;
    std::condition_variable work_ready_;
    std::deque<std::shared_ptr<OffloadState>> jobs_;
    std::vector<std::uint64_t> completions_;
    std::vector<std::thread> threads_;
    std::size_t idle_ = 0;
    bool stopping_ = false;
};

} // namespace reprise::detail
