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
    std::size_t heap_index = npos;       ///< position in the heap while armed
    Fiber* fiber = nullptr;              ///< park_timeout: the parked fiber
    std::uint64_t park_seq = 0;          ///< park_timeout: which park it bounds
    std::uint64_t fires_pending = 0;     ///< user: fires not yet taken by wait()
    std::uint64_t cancels = 0;           ///< user: cancel() calls, so a waiter learns it was cancelled
    WaitList waiters;                    ///< user: tasks in Timer::wait()
    std::function<void()> action;        ///< action: what firing does

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    bool armed() const noexcept { return heap_index != npos; }
};

/// A binary min-heap of armed timers keyed by (deadline_ns, id): timers with equal
/// deadlines fire in creation order. Removal is O(log n) via each timer's index.
class TimerHeap {
public:
    void push(TimerState* t);
    void remove(TimerState* t);
    TimerState* top() const noexcept { return heap_.empty() ? nullptr : heap_.front(); }
    TimerState* pop();
    std::size_t size() const noexcept { return heap_.size(); }
    bool empty() const noexcept { return heap_.empty(); }

private:
    static bool before(const TimerState* a, const TimerState* b) noexcept {
        return a->deadline_ns != b->deadline_ns ? a->deadline_ns < b->deadline_ns : a->id < b->id;
    }
    void sift_up(std::size_t i) noexcept;
    void sift_down(std::size_t i) noexcept;
    void place(std::size_t i, TimerState* t) noexcept {
        heap_[i] = t;
        t->heap_index = i;
    }
    std::vector<TimerState*> heap_;
};

} // namespace reprise::detail
