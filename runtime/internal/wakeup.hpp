// Wake-ups: everything the world tells a runtime, as delivered through the one gate.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include "reprise/runtime/address.hpp"
#include "reprise/runtime/events.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace reprise::detail {

using reprise::WakeKind;

struct Wakeup {
    WakeKind kind;
    std::uint64_t handle = 0;
    std::int32_t value = 0;
    std::uint32_t data_offset = 0;  ///< into WakeBatch::bytes
    std::uint32_t data_bytes = 0;
    Address peer{};
    Address local{};
};

/// The wake-ups of one tick, in delivery order, with the bytes read.
struct WakeBatch {
    std::vector<Wakeup> items;
    std::string bytes;

    std::string_view data(const Wakeup& w) const noexcept {
        return std::string_view(bytes).substr(w.data_offset, w.data_bytes);
    }
    void clear() noexcept {
        items.clear();
        bytes.clear();
    }
};

} // namespace reprise::detail
