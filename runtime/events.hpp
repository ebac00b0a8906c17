// The kinds of events a runtime exchanges with the world: one list, shared by the gate, the journal and the trace.
#pragma once

#include <cstdint>

namespace reprise {

/// The kinds of asynchronous input. Each wake-up concerns one handle and wakes at
/// most one kind of waiter of it; the recorder journals exactly these.
enum class WakeKind : std::uint8_t {
    timer_fired = 1,    ///< handle: timer
    bytes_read = 2,     ///< handle: connection; data: the bytes
    eof = 3,            ///< handle: connection; the peer closed its side
    io_error = 4,       ///< handle: connection; value: errno (reset, broken pipe, ...)
    accepted = 5,       ///< handle: listener; the new connection's id, peer and local addresses
    connected = 6,      ///< handle: connection; value: 0 or the connect errno
    drained = 7,        ///< handle: connection; output fell below the low-water mark
    signal = 8,         ///< handle: 0; value: signal number
    offload_done = 9,   ///< handle: offload request; data: its result
};
inline constexpr std::uint8_t wake_kind_last = 9;

/// Kinds of synchronous inputs (a task asks, the world answers at once).
enum class InputKind : std::uint8_t {
    precise_clock = 1,  ///< precise_now()
    secure_random = 2,  ///< secure_random(n)
    env = 3,            ///< env(name)
    app = 4,            ///< input(name, produce)
    listen = 5,         ///< the result of listen() (bound address or error)
    connect = 6,        ///< the immediate result of starting a connect
    output_left = 7,    ///< bytes of a connection's output the kernel had not taken at a flush
    secret = 8,         ///< read_secret(name, path): only a salted digest is recorded, never the secret
};
inline constexpr std::uint8_t input_kind_last = 8;

/// Kinds of outputs the program sends to the world.
enum class OutputKind : std::uint8_t {
    conn_write = 1,  ///< bytes written to a connection
    exit = 2,        ///< the exit code (as its length)
};
inline constexpr std::uint8_t output_kind_last = 2;

/// Names as the tools print them ("unknown" outside the enum).
const char* wake_kind_name(WakeKind k) noexcept;
const char* input_kind_name(InputKind k) noexcept;
const char* output_kind_name(OutputKind k) noexcept;

} // namespace reprise
