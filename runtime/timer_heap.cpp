// The timer heap: a queue of timers armed in expiry order (O(1) removal) beside a binary heap with back-indices (O(log n)).
#include "reprise/runtime/internal/timers.hpp"

#include "reprise/runtime/assert.hpp"

namespace reprise::detail {

void TimerHeap::push(TimerState* t) {
    REPRISE_ASSERT(!t->armed());
    if (queue_tail_ == nullptr || before(queue_tail_, t)) {
        t->heap_index = TimerState::queued;
        t->queue_prev = queue_tail_;
        t->queue_next = nullptr;
        (queue_tail_ != nullptr ? queue_tail_->queue_next : queue_head_) = t;
        queue_tail_ = t;
        ++queued_;
        return;
    }
    heap_.push_back(t);
    t->heap_index = heap_.size() - 1;
    sift_up(t->heap_index);
}

TimerState* TimerHeap::pop() {
    TimerState* t = top();
    REPRISE_ASSERT(t != nullptr);
    remove(t);
    return t;
}

void TimerHeap::remove(TimerState* t) {
    REPRISE_ASSERT(t->armed());
    if (t->heap_index == TimerState::queued)
        remove_from_queue(t);
    else
        remove_from_heap(t);
}

void TimerHeap::remove_from_queue(TimerState* t) noexcept {
    REPRISE_ASSERT(queued_ > 0 && (t->queue_prev != nullptr ? t->queue_prev->queue_next : queue_head_) == t);
    REPRISE_ASSERT((t->queue_next != nullptr ? t->queue_next->queue_prev : queue_tail_) == t);
    (t->queue_prev != nullptr ? t->queue_prev->queue_next : queue_head_) = t->queue_next;
    (t->queue_next != nullptr ? t->queue_next->queue_prev : queue_tail_) = t->queue_prev;
    t->queue_prev = t->queue_next = nullptr;
    t->heap_index = TimerState::npos;
    --queued_;
}

void TimerHeap::remove_from_heap(TimerState* t) noexcept {
    REPRISE_ASSERT(t->heap_index < heap_.size() && heap_[t->heap_index] == t);
    std::size_t i = t->heap_index;
    TimerState* last = heap_.back();
    heap_.pop_back();
    t->heap_index = TimerState::npos;
    if (i == heap_.size())
        return;
    // The hole moves down to a leaf along the earlier child (one comparison a level), and
    // `last`, a leaf already, is sifted up from there: it seldom rises far, where placing it
    // at the hole and sifting it down would compare it with both children at every level.
    const std::size_t n = heap_.size();
    for (std::size_t child = 2 * i + 1; child < n; child = 2 * i + 1) {
        if (child + 1 < n && before(heap_[child + 1], heap_[child]))
            ++child;
        place(i, heap_[child]);
        i = child;
    }
    place(i, last);
    sift_up(i);
}

void TimerHeap::sift_up(std::size_t i) noexcept {
    TimerState* t = heap_[i];
    while (i > 0) {
        std::size_t parent = (i - 1) / 2;
        if (!before(t, heap_[parent]))
            break;
        place(i, heap_[parent]);
        i = parent;
    }
    place(i, t);
}

} // namespace reprise::detail
