// Wake-ups: everything the world tells a runtime, as delivered through the one gate.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include "reprise/io/address.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace reprise::detail {

/// The kinds of asynchronous input. Each wake-up concerns one handle and wakes at
/// most one kind of waiter of it; the recorder journals exactly these.
enum class WakeKind : std::uint8_t {
    timer_fired = 1,    ///< handle: timer
    bytes_read,         ///< handle: connection; data: the bytes
    eof,                ///< handle: connection; the peer closed its side
    io_error,           ///< handle: connection; value: errno (reset, broken pipe, ...)
    accepted,           ///< handle: listener; value: fd (live only); peer/local addresses
    connected,          ///< handle: connection; value: 0 or the connect errno
    drained,            ///< handle: connection; output fell below the low-water mark
    signal,             ///< handle: 0; value: signal number
    offload_done,       ///< handle: offload request
};

const char* wake_kind_name(WakeKind kind) noexcept;

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
