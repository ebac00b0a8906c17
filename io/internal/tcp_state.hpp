// The runtime-side state of TCP listeners and connections (the handles behind Listener and Connection).
#pragma once

#include "reprise/runtime/internal/private.hpp"
#include "reprise/runtime/internal/handle.hpp"
#include "reprise/io/address.hpp"
#include "reprise/io/internal/byte_buffer.hpp"
#include "reprise/runtime/limits.hpp"
#include "reprise/runtime/result.hpp"
#include "reprise/runtime/wait_list.hpp"

#include <deque>
#include <optional>

namespace reprise::detail {

/// A connection's state, owned by its Connection object. close() hands the socket
/// and the unsent output to the backend, which finishes sending them on its own.
struct ConnState : Handle {
    ConnState(Runtime::Impl& rt_, std::uint64_t id_)
        : Handle{id_, HandleKind::connection, &rt_}, readers(WaitKind::read, id_), writers(WaitKind::write, id_) {}

    ByteBuffer input;                 ///< harvested by the loop, consumed by readers
    ByteBuffer output;                ///< appended by writers, flushed by the loop
    /// The output the program sees as unsent: what Connection::write blocks on. It
    /// changes only at recorded points (a write; a flush the kernel took only part of;
    /// a `drained` wake-up), never as the kernel takes bytes in between, so that a
    /// replay blocks and returns exactly where the recording did.
    std::size_t output_pending = 0;
    WaitList readers;                 ///< tasks waiting for bytes, EOF or an error
    WaitList writers;                 ///< tasks waiting for connect or for output to drain
    Address local;
    Address peer;
    std::optional<Error> error;       ///< first error seen; ends both directions
    bool connecting = false;          ///< connect() in flight
    bool eof = false;                 ///< the peer closed its side
    bool read_paused = false;         ///< input reached input_limit; the loop stopped reading
    /// Input buffered before the loop stops reading: limits::input_buffer_bytes_max,
    /// or more while a read_exact/read_until asks for more than that.
    std::size_t input_limit = limits::input_buffer_bytes_max;
    bool write_shut = false;          ///< shutdown() was called
    bool closed = false;              ///< close() was called; the socket belongs to the backend
    bool in_flush_list = false;
    /// The backend's name for this connection's socket (0: none). What a backend keeps
    /// per socket (the live one: the fd and its libevent events) is its own.
    std::uint32_t backend_token = 0;
};

/// A listener's state; it owns the accepted connections the app has not taken yet.
struct ListenerState : Handle {
    ListenerState(Runtime::Impl& rt_, std::uint64_t id_) : Handle{id_, HandleKind::listener, &rt_}, acceptors(WaitKind::accept, id_) {}

    std::deque<ConnState*> ready;     ///< accepted by the loop, not yet by the app
    WaitList acceptors;
    Address local;
    bool paused = false;              ///< the ready queue is full
    bool closed = false;
    std::uint32_t backend_token = 0;  ///< the backend's name for the listening socket (0: none)
};

} // namespace reprise::detail
