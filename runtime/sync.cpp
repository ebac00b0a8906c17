// Mutex and Condition: ownership checks and hand-off in FIFO order.
#include "reprise/runtime/sync.hpp"

#include "reprise/runtime/task.hpp"

namespace reprise {

Result<void> Mutex::lock(Deadline deadline) {
    const std::uint64_t me = current_task_id();
    REPRISE_ASSERT_MSG(me != 0, "Mutex::lock outside a task");
    REPRISE_ASSERT_MSG(owner_ != me, "Mutex is not recursive: the holder locked it again");
    if (owner_ == 0) {
        owner_ = me;
        return {};
    }
    // unlock() hands the mutex straight to the longest waiter, so a task that
    // locks again right after unlocking cannot overtake the ones waiting.
    while (owner_ != me) {
        if (auto r = waiters_.wait(deadline); !r.ok())
            return r;
    }
    return {};
}

void Mutex::relock() {
    const std::uint64_t me = current_task_id();
    if (owner_ == 0) {
        owner_ = me;
        return;
    }
    while (owner_ != me)
        waiters_.wait_uncancellable();
}

bool Mutex::try_lock() noexcept {
    if (owner_ != 0)
        return false;
    owner_ = current_task_id();
    return true;
}

void Mutex::unlock() {
    REPRISE_ASSERT_MSG(owner_ == current_task_id(), "Mutex unlocked by a task that does not hold it");
    owner_ = waiters_.notify_one_task();
}

Result<void> Condition::wait(Mutex& m, Deadline deadline) {
    m.unlock();
    Result<void> r = waiters_.wait(deadline);
    m.relock();
    return r;
}

} // namespace reprise
