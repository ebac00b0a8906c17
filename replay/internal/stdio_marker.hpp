// --mark-stdio: the program's stdout and stderr lines, at replay, marked with node, event number and virtual time.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace reprise::detail {

/// Replay with --mark-stdio (rr's --mark-stdio): fds 1 and 2 become pipes, and each line the
/// program writes to them reaches the original fd with "[NODE #N +S.mmms] " ahead of it.
///
/// A line belongs to the event N during which its newline reached the fd: the last event
/// the replay had handed to the program (or checked against it) by then. stdout is made
/// line-buffered and stderr is unbuffered, so a line reaches the fd when it is printed.
/// The replay's thread drains both pipes at every event boundary (begin_event) before it
/// moves on, so no line slips to a later event; a watcher thread drains them whenever
/// they hold bytes, so a program that prints more than a pipe holds within one event
/// never blocks on it (the writing ends stay blocking: a full non-blocking pipe would make
/// stdio drop bytes). Both take one mutex and tag with the event the replay thread set.
///
/// finish() (at the replay's end, divergence or damage, at exit() through atexit, in the
/// destructor) flushes stdio, writes out everything the pipes hold, a last partial line
/// with a newline added, and gives fds 1 and 2 back; a fatal signal writes out what the
/// pipes hold from a crash hook. Only one marker may exist in a process: it owns fds 1 and 2.
class StdioMarker {
public:
    /// Redirects fds 1 and 2; throws std::runtime_error when it cannot (or when another
    /// marker exists).
    explicit StdioMarker(std::string node);
    ~StdioMarker();
    StdioMarker(const StdioMarker&) = delete;
    StdioMarker& operator=(const StdioMarker&) = delete;

    /// Event `index`, at virtual time `vt_ns`, is handed to the program: what was printed
    /// until now belongs to the event before it.
    void begin_event(std::uint64_t index, std::int64_t vt_ns);
    /// Writes out the whole lines printed so far, then `text` (the replay's own message, not
    /// marked) on the original stderr: before --break-at's SIGTRAP stops the process, nothing
    /// may wait in a pipe.
    void say(std::string_view text);
    /// Writes out everything and gives fds 1 and 2 back; later output is not marked.
    /// Idempotent.
    void finish();

private:
    struct Stream {
        int pipe_read = -1;   ///< the pipe's reading end (non-blocking), -1 once closed
        int original = -1;    ///< the fd the program's output had before (a dup)
        int fd = -1;          ///< 1 or 2
        std::string partial;  ///< bytes of a line whose newline has not come yet
        bool mid_line = false;  ///< within a line longer than limits::mark_stdio_line_bytes_max, marked at its start
    };

    void pump_locked(Stream& s);
    void emit_locked(Stream& s, std::string_view text);
    void watch();
    static void crash_flush(void* self) noexcept;

    std::mutex mu_;
    Stream streams_[2];
    std::string node_;
    std::string prefix_;        ///< "[node #N +S.mmms] " of the current event
    char crash_prefix_[128]{};  ///< the same, NUL-terminated, for the crash path
    int stop_[2] = {-1, -1};    ///< a pipe that wakes the watcher to stop
    std::thread watcher_;  // reprise-allow: thread (drains the program's stdout/stderr; decides nothing)
    bool finished_ = false;
};

} // namespace reprise::detail
