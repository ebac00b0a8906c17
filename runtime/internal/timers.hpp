// Timer state and the runtime's timer heap, ordered by (deadline, creation id).
#pragma once

#include "reprise/runtime/internal/private.hpp"
#include "reprise/runtime/internal/handle.hpp"
#include "reprise/runtime/wait_list.hpp"

#include <cstdint>
#include <functional>
#include <vector>

namespace reprise::detail {

struct Fiber;

/// One timer of a runtime: a user Timer, a sleep, an operation's timeout, or an
/// internal action (a closing connection's linger). Every firing is a wake-up.
struct TimerState : Handle {
    enum class Role : std::uint8_t { park_timeout, user, action };

    TimerState(Runtime::Impl& rt_, std::uint64_t id_, Role role_)
        : Handle{id_, HandleKind::timer, &rt_}, role(role_), waiters(WaitKind::timer, id_) {}

    Role role;
    std::int64_t deadline_ns = 0;
    std::int64_t period_ns = 0;          ///< user timers: 0 = one-shot
    std::size_t heap_index = npos;       ///< position in the heap while armed (queued: in the queue)
    TimerState* queue_prev = nullptr;    ///< in TimerHeap's queue: the timer before, and after
    TimerState* queue_next = nullptr;
    Fiber* fiber = nullptr;              ///< park_timeout: the parked fiber
    std::uint64_t park_seq = 0;          ///< park_timeout: which park it bounds
    std::uint64_t fires_pending = 0;     ///< user: fires not yet taken by wait()
    std::uint64_t cancels = 0;           ///< user: cancel() calls, so a waiter learns it was cancelled
    WaitList waiters;                    ///< user: tasks in Timer::wait()
    std::function<void()> action;        ///< action: what firing does

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    /// heap_index of a timer armed in TimerHeap's queue rather than its heap (not UINT64_MAX:
    /// the debugger reads UINT64_MAX as not armed).
    static constexpr std::size_t queued = npos - 1;
    bool armed() const noexcept { return heap_index != npos; }
};

/// The armed timers, in order of (deadline_ns, id): timers with equal deadlines fire in
/// creation order. Most timers are a blocking call's timeout of a fixed length (a read's
/// 30 s), armed in the order they expire and disarmed long before: a timer that comes after
/// every queued one joins a queue (a list: O(1) to add and to remove), the others a binary
/// min-heap (O(log n) removal via each timer's index). The earliest is the earlier of the
/// queue's head and the heap's top.
class TimerHeap {
public:
    void push(TimerState* t);
    void remove(TimerState* t);
    TimerState* top() const noexcept {
        if (heap_.empty())
            return queue_head_;
        return queue_head_ != nullptr && before(queue_head_, heap_.front()) ? queue_head_ : heap_.front();
    }
    TimerState* pop();
    std::size_t size() const noexcept { return heap_.size() + queued_; }
    bool empty() const noexcept { return heap_.empty() && queue_head_ == nullptr; }

private:
    static bool before(const TimerState* a, const TimerState* b) noexcept {
        return a->deadline_ns != b->deadline_ns ? a->deadline_ns < b->deadline_ns : a->id < b->id;
    }
    void sift_up(std::size_t i) noexcept;
    void place(std::size_t i, TimerState* t) noexcept {
        heap_[i] = t;
        t->heap_index = i;
    }
    void remove_from_heap(TimerState* t) noexcept;
    void remove_from_queue(TimerState* t) noexcept;
    std::vector<TimerState*> heap_;
    TimerState* queue_head_ = nullptr;  ///< the queue, earliest first
    TimerState* queue_tail_ = nullptr;
    std::size_t queued_ = 0;
};

} // namespace reprise::detail
