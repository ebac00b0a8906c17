// The offload pool's threads and its completion queue.
#include "reprise/io/internal/offload_pool.hpp"

#include "reprise/runtime/assert.hpp"

#include <cerrno>
#include <sys/eventfd.h>
#include <unistd.h>

namespace reprise::detail {

OffloadPool::OffloadPool(std::size_t threads) : threads_max_(threads) {
    notify_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    REPRISE_ASSERT_MSG(notify_fd_ >= 0, "eventfd for the offload pool");
}

OffloadPool::~OffloadPool() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        jobs_.clear();
    }
    work_ready_.notify_all();
    for (std::thread& t : threads_)
        t.join();
    ::close(notify_fd_);
}

void OffloadPool::submit(std::shared_ptr<OffloadState> request) {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(request));
    if (idle_ == 0 && threads_.size() < threads_max_)
        threads_.emplace_back([this] { worker(); });
    else
        work_ready_.notify_one();
}

void OffloadPool::take_completions(std::vector<std::uint64_t>& out) {
    std::uint64_t counter = 0;
    ssize_t n = ::read(notify_fd_, &counter, sizeof counter);
    REPRISE_ASSERT(n == sizeof counter || (n < 0 && errno == EAGAIN));
    std::lock_guard lock(mutex_);
    out.insert(out.end(), completions_.begin(), completions_.end());
    completions_.clear();
}

void OffloadPool::worker() {
    std::unique_lock lock(mutex_);
    for (;;) {
        ++idle_;
        work_ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        --idle_;
        if (stopping_)
            return;
        std::shared_ptr<OffloadState> request = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        try {
            request->job();
        } catch (...) {
            request->exception = std::current_exception();
        }
        std::uint64_t id = request->id;
        request.reset();
        lock.lock();
        completions_.push_back(id);
        const std::uint64_t one = 1;
        ssize_t n = ::write(notify_fd_, &one, sizeof one);
        REPRISE_ASSERT(n == sizeof one);
    }
}

} // namespace reprise::detail
