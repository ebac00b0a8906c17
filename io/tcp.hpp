// TCP for tasks: listen, accept, connect, buffered reads and writes, shutdown, close.
#pragma once

#include "reprise/clock/time.hpp"
#include "reprise/io/address.hpp"
#include "reprise/runtime/limits.hpp"
#include "reprise/runtime/result.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace reprise {

namespace detail {
struct ConnState;
struct ListenerState;
} // namespace detail

/// A TCP connection of the current runtime. Bytes are harvested by the loop and
/// buffered (reads return what is buffered, blocking only when nothing is);
/// writes are buffered and flushed by the loop, and a writer blocks only past
/// the high-water mark (limits::output_high_water_bytes) until the loop drained it.
/// Errors are values: eof, reset, broken_pipe, timed_out, cancelled, closed.
/// Dropping the Connection closes it; unsent output is still sent (bounded by
/// limits::close_linger_ns).
class Connection {
public:
    Connection() = default;
    explicit Connection(detail::ConnState* state) noexcept : state_(state) {}
    ~Connection();
    Connection(Connection&& other) noexcept : state_(other.state_) { other.state_ = nullptr; }
    Connection& operator=(Connection&& other) noexcept;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    /// Copies up to `buffer.size()` buffered bytes into `buffer`, waiting for at
    /// least one. Errors: eof (nothing more will come), reset, timed_out, ...
    Result<std::size_t> read_some(std::span<char> buffer, Deadline deadline = Deadline::never());
    /// Up to `max_bytes` bytes, waiting for at least one.
    Result<std::string> read_some(std::size_t max_bytes = limits::read_chunk_bytes,
                                  Deadline deadline = Deadline::never());
    /// Exactly `buffer.size()` bytes. On eof before that, Errc::eof (the bytes that
    /// did come stay buffered for the next read).
    Result<void> read_exact(std::span<char> buffer, Deadline deadline = Deadline::never());
    Result<std::string> read_exact(std::size_t n, Deadline deadline = Deadline::never());
    /// Bytes up to and including `delimiter`. Errors: limit when `max_bytes` come
    /// without the delimiter (they stay buffered), eof, timed_out, ...
    Result<std::string> read_until(std::string_view delimiter, std::size_t max_bytes,
                                   Deadline deadline = Deadline::never());
    /// Bytes buffered now (a read of that many does not block).
    std::size_t buffered() const noexcept;
    /// Takes up to `max_bytes` of what is buffered now, without waiting: an empty string
    /// when nothing is. Errors only when nothing is buffered and nothing more will come:
    /// eof, reset, closed. A server that gathers its replies uses it to learn whether a
    /// client sent more before it flushes (docs/porting.md, "gather, then flush").
    Result<std::string> try_read(std::size_t max_bytes = limits::read_chunk_bytes);
    /// Copies what is buffered now into `buffer` without waiting (0 when nothing is).
    Result<std::size_t> try_read(std::span<char> buffer);
    /// The bytes buffered now, neither waiting nor consuming them: a parser looks, then
    /// discard()s what it used. Valid until this connection is next read, discarded from,
    /// or the task blocks.
    std::string_view peek() const noexcept;
    /// Drops up to `n` buffered bytes without copying them; returns how many it dropped.
    std::size_t discard(std::size_t n) noexcept;
    /// Waits until at least `n` bytes are buffered, consuming none (with peek(): a parser
    /// holding part of a request waits for buffered() + 1). Errors: eof when fewer will
    /// ever come (those stay buffered), reset, closed, timed_out, cancelled.
    Result<void> wait_buffered(std::size_t n, Deadline deadline = Deadline::never());

    /// Buffers `bytes` for the loop to send. Blocks only while the buffered output
    /// is above the high-water mark. Errors: reset, broken_pipe, closed, timed_out, ...
    Result<void> write(std::string_view bytes, Deadline deadline = Deadline::never());
    /// Shuts the write side (the peer reads eof) once buffered output is sent.
    void shutdown();
    /// Closes the connection; tasks blocked on it get Errc::closed.
    void close() noexcept;

    bool is_open() const noexcept;
    Address local_address() const;
    Address peer_address() const;
    /// The handle id (traces name connections by it).
    std::uint64_t id() const noexcept;
    explicit operator bool() const noexcept { return state_ != nullptr; }

private:
    detail::ConnState* state_ = nullptr;
};

/// A listening TCP socket of the current runtime.
class Listener {
public:
    Listener() = default;
    explicit Listener(detail::ListenerState* state) noexcept : state_(state) {}
    ~Listener();
    Listener(Listener&& other) noexcept : state_(other.state_) { other.state_ = nullptr; }
    Listener& operator=(Listener&& other) noexcept;
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;

    /// The next connection. Errors: closed (the listener was closed), timed_out, cancelled.
    Result<Connection> accept(Deadline deadline = Deadline::never());
    /// The bound address; with port 0 asked for, it holds the port the system chose.
    Address local_address() const;
    std::uint16_t port() const;
    void close() noexcept;
    std::uint64_t id() const noexcept;
    explicit operator bool() const noexcept { return state_ != nullptr; }

private:
    detail::ListenerState* state_ = nullptr;
};

/// Listens on `address` (SO_REUSEADDR; port 0 picks a free port). Errors:
/// address_in_use, invalid_argument, io.
Result<Listener> listen(const Address& address);
/// Connects to `address`. Errors: refused, timed_out, cancelled, io.
Result<Connection> connect(const Address& address, Deadline deadline = Deadline::never());

} // namespace reprise
