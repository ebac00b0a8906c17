// HandleTable: a runtime's handles by id, in one open-addressing array (linear probing, Fibonacci hashing, backward-shift removal).
//
// Every read with a deadline makes a timer handle and drops it when its bytes come, so adding,
// removing and finding a handle is on the path of nearly every event, in replay as live. The
// table is one flat array of (id, handle) slots: no node per handle, no allocation once it has
// grown to the most handles alive at once, one cache line touched by a hit. Ids are never 0
// (Runtime::Impl::new_id starts at 1), so 0 marks an empty slot.
// Self-contained (no private header): tests/runtime/handle_table_test.cpp checks it against a model.
#pragma once

#include "reprise/runtime/assert.hpp"

#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace reprise::detail {

struct Handle;

class HandleTable {
public:
    HandleTable() : slots_(initial_slots), shift_(64 - std::countr_zero(initial_slots)) {}

    /// Adds `h` under `id`; the id must not be in the table.
    void insert(std::uint64_t id, Handle* h) {
        REPRISE_ASSERT_MSG(id != 0, "handle id 0");
        if ((size_ + 1) * 2 > slots_.size())
            grow();
        std::size_t i = home(id);
        while (slots_[i].id != 0) {
            REPRISE_ASSERT_MSG(slots_[i].id != id, "handle id used twice");
            i = (i + 1) & mask();
        }
        slots_[i] = {id, h};
        ++size_;
    }

    /// The handle under `id`, or null.
    Handle* find(std::uint64_t id) const noexcept {
        for (std::size_t i = home(id);; i = (i + 1) & mask()) {
            const Slot& s = slots_[i];
            if (s.id == id)
                return id == 0 ? nullptr : s.handle;
            if (s.id == 0)
                return nullptr;
        }
    }

    /// Removes `id`; returns its handle, or null when it was not there.
    Handle* erase(std::uint64_t id) noexcept {
        if (id == 0)
            return nullptr;
        std::size_t i = home(id);
        while (slots_[i].id != id) {
            if (slots_[i].id == 0)
                return nullptr;
            i = (i + 1) & mask();
        }
        Handle* const out = slots_[i].handle;
        // Backward shift: each later slot of the run moves into the hole when the hole lies on
        // its probe path (between its home and where it sits), so no tombstone is ever left.
        for (std::size_t j = (i + 1) & mask(); slots_[j].id != 0; j = (j + 1) & mask()) {
            const std::size_t h = home(slots_[j].id);
            if (((j - h) & mask()) >= ((j - i) & mask())) {
                slots_[i] = slots_[j];
                i = j;
            }
        }
        slots_[i] = {};
        --size_;
        return out;
    }

    std::size_t size() const noexcept { return size_; }

    /// Calls f(id, handle) for each handle, in no particular order; f must not change the table.
    template <class F>
    void for_each(F&& f) const {
        for (const Slot& s : slots_)
            if (s.id != 0)
                f(s.id, s.handle);
    }

private:
    struct Slot {
        std::uint64_t id = 0;
        Handle* handle = nullptr;
    };
    static constexpr std::size_t initial_slots = 64;

    std::size_t mask() const noexcept { return slots_.size() - 1; }
    // Fibonacci hashing: the top bits of id x 2^64/phi. Consecutive ids land far apart.
    std::size_t home(std::uint64_t id) const noexcept {
        return static_cast<std::size_t>((id * 0x9E3779B97F4A7C15ULL) >> shift_);
    }

    void grow() {
        std::vector<Slot> old(slots_.size() * 2);
        old.swap(slots_);
        --shift_;
        size_ = 0;
        for (const Slot& s : old)
            if (s.id != 0)
                insert(s.id, s.handle);
    }

    std::vector<Slot> slots_;
    unsigned shift_;
    std::size_t size_ = 0;
};

} // namespace reprise::detail
