// Errors as values: the error codes of every runtime operation and Result<T>.
#pragma once

#include "reprise/runtime/assert.hpp"

#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace reprise {

/// What went wrong, as the application sees it. Operating errors (a peer reset,
/// a timeout, a missing file) are values; only broken invariants crash.
enum class Errc : unsigned char {
    cancelled = 1,     ///< the task was cancelled while (or before) blocking
    timed_out,         ///< the operation's deadline passed
    closed,            ///< the handle was closed (channel closed, connection closed locally)
    eof,               ///< the peer closed its side; no more bytes will come
    refused,           ///< connection refused
    reset,             ///< connection reset by the peer
    broken_pipe,       ///< the peer stopped reading
    address_in_use,    ///< listen address taken
    invalid_argument,  ///< a bad address, size or flag
    not_found,         ///< no such file or directory
    limit,             ///< a documented limit was hit (buffer, queue, record size)
    io,                ///< any other operating-system error; see sys_errno
};

/// An error: a code, and the operating system's errno where one caused it.
struct Error {
    Errc code;
    int sys_errno = 0;

    /// A clear message for logs: "timed out", "connection refused (ECONNREFUSED)".
    std::string message() const;
    friend bool operator==(const Error& a, const Error& b) = default;
};

/// Name of an error code ("timed_out").
const char* errc_name(Errc code) noexcept;
/// Maps an errno value to the runtime's error.
Error error_from_errno(int sys_errno) noexcept;

/// The value of an operation or the reason it has none. Accessing the value of
/// an error is a bug and asserts.
template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(error) {}
    /// An error from its code alone (not offered for Result<Errc>, whose value is an Errc).
    template <class U = T, std::enable_if_t<!std::is_same_v<U, Errc>, int> = 0>
    Result(Errc code) : v_(Error{code}) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { check(); return std::get<0>(v_); }
    const T& value() const& { check(); return std::get<0>(v_); }
    T&& value() && { check(); return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const {
        REPRISE_ASSERT_MSG(!ok(), "error() of a successful Result");
        return std::get<1>(v_);
    }
    Errc code() const { return error().code; }

private:
    void check() const {
        if (!ok())
            detail::assert_fail("ok()", __FILE__, __LINE__, std::get<1>(v_).message().c_str());
    }
    std::variant<T, Error> v_;
};

/// Success or an error, for operations that produce no value.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(error), ok_(false) {}
    Result(Errc code) : error_{code}, ok_(false) {}

    bool ok() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    /// Asserts success (the counterpart of Result<T>::value()).
    void value() const {
        if (!ok_)
            detail::assert_fail("ok()", __FILE__, __LINE__, error_.message().c_str());
    }
    const Error& error() const {
        REPRISE_ASSERT_MSG(!ok_, "error() of a successful Result");
        return error_;
    }
    Errc code() const { return error().code; }

private:
    Error error_{Errc::io};
    bool ok_ = true;
};

} // namespace reprise
