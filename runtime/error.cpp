// Error messages and the errno mapping, plus the always-on assertion's failure path.
#include "reprise/runtime/assert.hpp"
#include "reprise/runtime/result.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace reprise {

namespace detail {
void assert_fail(const char* expr, const char* file, int line, const char* msg) noexcept {
    std::fprintf(stderr, "reprise: assertion failed: %s at %s:%d%s%s\n", expr, file, line,
                 msg ? ": " : "", msg ? msg : "");
    std::fflush(stderr);
    std::abort();
}
} // namespace detail

const char* errc_name(Errc code) noexcept {
    switch (code) {
    case Errc::cancelled: return "cancelled";
    case Errc::timed_out: return "timed_out";
    case Errc::closed: return "closed";
    case Errc::eof: return "eof";
    case Errc::refused: return "refused";
    case Errc::reset: return "reset";
    case Errc::broken_pipe: return "broken_pipe";
    case Errc::address_in_use: return "address_in_use";
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::limit: return "limit";
    case Errc::io: return "io";
    }
    return "unknown";
}

static const char* errc_text(Errc code) noexcept {
    switch (code) {
    case Errc::cancelled: return "operation cancelled";
    case Errc::timed_out: return "timed out";
    case Errc::closed: return "closed";
    case Errc::eof: return "end of stream";
    case Errc::refused: return "connection refused";
    case Errc::reset: return "connection reset by peer";
    case Errc::broken_pipe: return "broken pipe";
    case Errc::address_in_use: return "address already in use";
    case Errc::invalid_argument: return "invalid argument";
    case Errc::not_found: return "no such file or directory";
    case Errc::limit: return "limit exceeded";
    case Errc::io: return "I/O error";
    }
    return "unknown error";
}

std::string Error::message() const {
    std::string text = errc_text(code);
    if (sys_errno != 0) {
        text += " (";
        const char* name = strerrorname_np(sys_errno);
        text += name ? name : std::strerror(sys_errno);
        text += ")";
    }
    return text;
}

Error error_from_errno(int e) noexcept {
    switch (e) {
    case ECONNREFUSED: return {Errc::refused, e};
    case ECONNRESET: return {Errc::reset, e};
    case EPIPE: return {Errc::broken_pipe, e};
    case ETIMEDOUT: return {Errc::timed_out, e};
    case EADDRINUSE: return {Errc::address_in_use, e};
    case EINVAL: return {Errc::invalid_argument, e};
    case ENOENT: return {Errc::not_found, e};
    case ECANCELED: return {Errc::cancelled, e};
    default: return {Errc::io, e};
    }
}

} // namespace reprise
