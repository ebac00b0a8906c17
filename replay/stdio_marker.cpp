// --mark-stdio: fds 1 and 2 become pipes whose lines reach the original fds marked with node, event and virtual time.
#include "reprise/replay/internal/stdio_marker.hpp"

#include "reprise/runtime/assert.hpp"
#include "reprise/runtime/internal/stack.hpp"
#include "reprise/runtime/limits.hpp"

#include <fmt/core.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <stdexcept>
#include <unistd.h>

namespace reprise::detail {

namespace {

// The one marker of the process (it owns fds 1 and 2), for atexit.
std::atomic<StdioMarker*> active_marker{nullptr};

// Bytes from a pipe's non-blocking end: >0 read, 0 nothing there (or its writers are
// gone), -1 an error. Async-signal-safe.
ssize_t read_some(int fd, char* buf, std::size_t n) noexcept {
    for (;;) {
        ssize_t got = ::read(fd, buf, n);  // reprise-allow: io (the program's own stdout/stderr, never an input)
        if (got >= 0)
            return got;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

// All of `text` to fd (the original stdout or stderr), as far as it takes it. Async-signal-safe.
void write_all(int fd, const char* p, std::size_t n) noexcept {
    while (n > 0) {
        ssize_t put = ::write(fd, p, n);  // reprise-allow: io (the program's own output, marked, to where it went)
        if (put < 0 && errno == EINTR)
            continue;
        if (put <= 0)
            return;  // the reader is gone (a closed terminal, `| head`): as unmarked output would be lost
        p += put;
        n -= static_cast<std::size_t>(put);
    }
}

void finish_at_exit() {
    if (StdioMarker* m = active_marker.load())
        m->finish();
}

} // namespace

StdioMarker::StdioMarker(std::string node) : node_(std::move(node)) {
    StdioMarker* none = nullptr;
    if (!active_marker.compare_exchange_strong(none, this))
        throw std::runtime_error("--mark-stdio: another replay of this process already marks stdout and stderr");
    // What was printed before the replay starts goes out unmarked; from here on stdout
    // hands each line to its fd as it is printed (stderr is unbuffered already).
    std::fflush(stdout);
    std::fflush(stderr);
    // A buffer of our own: glibc only sets a flag when given none, which a stream that has
    // been written to before (or inherited through fork()) does not always honour.
    static char stdout_buffer[BUFSIZ];
    std::setvbuf(stdout, stdout_buffer, _IOLBF, sizeof stdout_buffer);
    auto fail = [&](const char* what) {
        const int e = errno;
        for (Stream& s : streams_) {
            if (s.original >= 0)
                ::dup2(s.original, s.fd);
            for (int fd : {s.pipe_read, s.original})
                if (fd >= 0)
                    ::close(fd);
        }
        active_marker.store(nullptr);
        throw std::runtime_error(fmt::format("--mark-stdio: {}: {}", what, std::strerror(e)));
    };
    for (int i = 0; i < 2; ++i) {
        Stream& s = streams_[i];
        s.fd = i == 0 ? STDOUT_FILENO : STDERR_FILENO;
        int ends[2];
        if (::pipe2(ends, O_CLOEXEC) != 0)
            fail("cannot make a pipe");
        s.pipe_read = ends[0];
        // Larger than the default 64 KiB where the system allows: fewer wake-ups of the watcher.
        (void)::fcntl(ends[1], F_SETPIPE_SZ, static_cast<int>(limits::mark_stdio_pipe_bytes));
        if (::fcntl(s.pipe_read, F_SETFL, O_NONBLOCK) != 0)
            fail("cannot make a pipe non-blocking");
        s.original = ::fcntl(s.fd, F_DUPFD_CLOEXEC, 3);
        if (s.original < 0 || ::dup2(ends[1], s.fd) < 0) {
            ::close(ends[1]);
            fail("cannot redirect fd 1 or 2");
        }
        ::close(ends[1]);
    }
    if (::pipe2(stop_, O_CLOEXEC) != 0)
        fail("cannot make a pipe");
    begin_event(0, 0);
    add_crash_hook(&StdioMarker::crash_flush, this);
    static const bool registered = std::atexit(finish_at_exit) == 0;
    REPRISE_ASSERT_MSG(registered, "--mark-stdio: atexit");
    watcher_ = std::thread([this] { watch(); });  // reprise-allow: thread (drains the program's stdout/stderr; decides nothing)
}

StdioMarker::~StdioMarker() { finish(); }

void StdioMarker::begin_event(std::uint64_t index, std::int64_t vt_ns) {
    std::lock_guard lock(mu_);
    if (finished_)
        return;
    for (Stream& s : streams_)
        pump_locked(s);
    const std::uint64_t magnitude = vt_ns < 0 ? 0 - static_cast<std::uint64_t>(vt_ns) : static_cast<std::uint64_t>(vt_ns);
    prefix_ = fmt::format("[{} #{} {}{}.{:03}s] ", node_, index, vt_ns < 0 ? "-" : "+", magnitude / 1'000'000'000u,
                          magnitude % 1'000'000'000u / 1'000'000u);
    const std::size_t n = std::min(prefix_.size(), sizeof crash_prefix_ - 1);
    std::memcpy(crash_prefix_, prefix_.data(), n);
    crash_prefix_[n] = '\0';
}

void StdioMarker::say(std::string_view text) {
    std::fflush(stdout);
    std::lock_guard lock(mu_);
    if (finished_) {
        write_all(STDERR_FILENO, text.data(), text.size());
        return;
    }
    for (Stream& s : streams_)
        pump_locked(s);
    write_all(streams_[1].original, text.data(), text.size());
}

void StdioMarker::finish() {
    std::fflush(stdout);
    std::fflush(stderr);
    {
        std::lock_guard lock(mu_);
        if (finished_)
            return;
        finished_ = true;
    }
    remove_crash_hook(&StdioMarker::crash_flush, this);
    const char stop = 's';
    write_all(stop_[1], &stop, 1);
    if (watcher_.joinable())
        watcher_.join();
    // The watcher has stopped: only this thread touches the streams now.
    for (Stream& s : streams_) {
        pump_locked(s);
        // The last line had no newline: it gets one, so that what follows starts a line.
        if (!s.partial.empty()) {
            s.partial += '\n';
            emit_locked(s, s.partial);
            s.partial.clear();
        } else if (s.mid_line) {
            write_all(s.original, "\n", 1);
        }
        s.mid_line = false;
        ::dup2(s.original, s.fd);
        for (int fd : {s.pipe_read, s.original})
            if (fd >= 0)
                ::close(fd);
        s.pipe_read = s.original = -1;
    }
    for (int fd : stop_)
        ::close(fd);
    stop_[0] = stop_[1] = -1;
    active_marker.store(nullptr);
}

// Reads what the pipe holds; whole lines go out marked, the rest waits for its newline.
void StdioMarker::pump_locked(Stream& s) {
    char buf[limits::mark_stdio_read_bytes];
    while (s.pipe_read >= 0) {
        const ssize_t got = read_some(s.pipe_read, buf, sizeof buf);
        if (got <= 0)
            return;
        std::string_view in(buf, static_cast<std::size_t>(got));
        while (!in.empty()) {
            const std::size_t nl = in.find('\n');
            const std::size_t take = nl == std::string_view::npos ? in.size() : nl + 1;
            const std::string_view piece = in.substr(0, take);
            in.remove_prefix(take);
            if (s.mid_line) {
                // The rest of an overlong line, already marked at its start: as it comes.
                write_all(s.original, piece.data(), piece.size());
                s.mid_line = nl == std::string_view::npos;
                continue;
            }
            s.partial.append(piece);
            if (nl != std::string_view::npos || s.partial.size() >= limits::mark_stdio_line_bytes_max) {
                emit_locked(s, s.partial);
                s.mid_line = nl == std::string_view::npos;
                s.partial.clear();
            }
        }
    }
}

void StdioMarker::emit_locked(Stream& s, std::string_view text) {
    std::string line = prefix_;
    line.append(text);
    write_all(s.original, line.data(), line.size());
}

// The watcher: drains the pipes whenever they hold bytes, so that a writer never waits
// for the replay thread's next event boundary.
void StdioMarker::watch() {
    pollfd fds[3] = {{streams_[0].pipe_read, POLLIN, 0}, {streams_[1].pipe_read, POLLIN, 0}, {stop_[0], POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (fds[2].revents != 0)
            return;
        std::lock_guard lock(mu_);
        for (int i = 0; i < 2; ++i) {
            // A program that closed fd 1 or 2 leaves the pipe without writers: stop watching it.
            if ((fds[i].revents & (POLLHUP | POLLERR | POLLNVAL)) && !(fds[i].revents & POLLIN))
                fds[i].fd = -1;
            else if (fds[i].revents != 0)
                pump_locked(streams_[i]);
        }
    }
}

// A fatal signal: what the pipes hold goes out marked with the current event, without
// allocating or locking (the watcher may hold the lock; its partial lines are written as
// they are).
void StdioMarker::crash_flush(void* self) noexcept {
    auto* m = static_cast<StdioMarker*>(self);
    char buf[limits::mark_stdio_read_bytes];
    for (Stream& s : m->streams_) {
        if (s.pipe_read < 0)
            continue;
        bool line_start = s.partial.empty() && !s.mid_line;
        if (!s.partial.empty()) {
            write_all(s.original, m->crash_prefix_, std::strlen(m->crash_prefix_));
            write_all(s.original, s.partial.data(), s.partial.size());
        }
        for (;;) {
            const ssize_t got = read_some(s.pipe_read, buf, sizeof buf);
            if (got <= 0)
                break;
            const char* p = buf;
            const char* end = buf + got;
            while (p < end) {
                if (line_start)
                    write_all(s.original, m->crash_prefix_, std::strlen(m->crash_prefix_));
                const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
                const char* stop = nl ? nl + 1 : end;
                write_all(s.original, p, static_cast<std::size_t>(stop - p));
                line_start = nl != nullptr;
                p = stop;
            }
        }
        if (!line_start)
            write_all(s.original, "\n", 1);
        // The process dies next: its last words (the crash message) go where they went before.
        ::dup2(s.original, s.fd);
    }
}

} // namespace reprise::detail
