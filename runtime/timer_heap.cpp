// The timer heap: a binary heap with back-indices for O(log n) removal.
#include "reprise/runtime/internal/timers.hpp"

#include "reprise/runtime/assert.hpp"

namespace reprise::detail {

void TimerHeap::push(TimerState* t) {
    REPRISE_ASSERT(!t->armed());
    heap_.push_back(t);
    t->heap_index = heap_.size() - 1;
    sift_up(t->heap_index);
}

TimerState* TimerHeap::pop() {
    REPRISE_ASSERT(!heap_.empty());
    TimerState* t = heap_.front();
    remove(t);
    return t;
}

void TimerHeap::remove(TimerState* t) {
    REPRISE_ASSERT(t->armed() && t->heap_index < heap_.size() && heap_[t->heap_index] == t);
    std::size_t i = t->heap_index;
    TimerState* last = heap_.back();
    heap_.pop_back();
    t->heap_index = TimerState::npos;
    if (i == heap_.size())
        return;
    place(i, last);
    sift_up(i);
    sift_down(last->heap_index);
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

void TimerHeap::sift_down(std::size_t i) noexcept {
    TimerState* t = heap_[i];
    const std::size_t n = heap_.size();
    for (;;) {
        std::size_t child = 2 * i + 1;
        if (child >= n)
            break;
        if (child + 1 < n && before(heap_[child + 1], heap_[child]))
            ++child;
        if (!before(heap_[child], t))
            break;
        place(i, heap_[child]);
        i = child;
    }
    place(i, t);
}

} // namespace reprise::detail
