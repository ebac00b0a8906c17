// Mutex and Condition: ownership checks and hand-off in FIFO order.
#include "runtime/sync.hpp"

#include "runtime/task.hpp"

namespace reprise {

Result<void> Mutex::lock(Deadline deadline) {
    const std::uint64_t me = current_task_id();
    REPRISE_ASSERT_MSG(me != 0, "Mutex::lock outside a task");
    REPRISE_ASSERT_MSG(owner_ != me, "Mutex is not recursive: the holder locked it again");
    while (owner_ != 0) {
        if (auto r = waiters_.wait(deadline); !r.ok())
            return r;
    }
    owner_ = me;
    return {};
}

void Mutex::relock() {
    const std::uint64_t me = current_task_id();
    while (owner_ != 0)
        waiters_.wait_uncancellable();
    owner_ = me;
}

bool Mutex::try_lock() noexcept {
    if (owner_ != 0)
        return false;
    owner_ = current_task_id();
    return true;
}

void Mutex::unlock() {
    REPRISE_ASSERT_MSG(owner_ == current_task_id(), "Mutex unlocked by a task that does not hold it");
    owner_ = 0;
    waiters_.notify_one();
}

Result<void> Condition::wait(Mutex& m, Deadline deadline) {
    m.unlock();
    Result<void> r = waiters_.wait(deadline);
    m.relock();
    return r;
}

} // namespace reprise
