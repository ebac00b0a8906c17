// Runtime: everything of one node — its fibers, handles, clock, backend — and its event loop.
#pragma once

#include "reprise/runtime/limits.hpp"
#include "reprise/runtime/wait_list.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reprise {

class FileWorld;
class BackendSource;

/// How a runtime starts. Every field has a sensible default.
/// One event loop that several live runtimes of one thread share, so that a driver
/// stepping them (Runtime::step) blocks once for all of them instead of spinning.
class LiveWorld;
std::shared_ptr<LiveWorld> make_live_world();

struct Options {
    /// Name of the node (it appears in traces and reports).
    std::string node_name = "node";
    /// Seed of the runtime's PRNG; drawn from the OS when absent (see Runtime::seed()).
    std::optional<std::uint64_t> seed;
    /// Stack size of fibers unless a spawn asks otherwise.
    std::size_t stack_bytes = limits::stack_bytes_default;
    /// Threads of the offload pool (blocking work and files).
    std::size_t offload_threads = limits::offload_threads_default;
    /// Turn SIGINT/SIGTERM into a graceful stop (request_stop()).
    bool stop_on_signals = false;

    /// Record every input of the run into this trace (empty: do not record). With
    /// replay_path too, the replay is recorded again under the replayed trace's header.
    /// An existing file is never overwritten (the runtime refuses to start); the trace is
    /// created 0600. A pattern: %c one past the highest number of the pattern's traces, %p pid, %t start time, %n node, %%.
    std::string record_path;
    /// Replay this trace: it is the world; no socket, timer or clock is touched.
    std::string replay_path;
    /// Replay pace: 0 jumps straight to each recorded tick (time warp); N replays
    /// at N times the recorded pace (1: as recorded).
    std::uint32_t replay_speed = 0;
    /// Replay: raise SIGTRAP just before event N is delivered (0: never).
    std::uint64_t break_at = 0;
    /// Replay: prefix each line the program prints on stdout and stderr with the node, the
    /// event number and the virtual time (see docs/porting.md, "Marking the program's output").
    bool mark_stdio = false;
    /// Replay: a trace whose header names another program is replayed (with a notice)
    /// instead of refused.
    bool replay_any_program = false;
    /// Record written bytes in full rather than as length + digest.
    bool record_full_outputs = false;
    /// Split the recording into numbered segment files of about this size (0: one file).
    std::uint64_t record_segment_bytes = 0;
    /// Retention of record_path's earlier runs (a pattern), applied when this run starts: at
    /// most this many runs with this one (0: no limit)...
    std::uint64_t record_keep_runs = 0;
    /// ... and together within this many bytes (0: no limit). Runs that crashed, exited
    /// non-zero, were cut off or are still being written are never removed; when they alone
    /// fill the budget, the run records nothing (and says so).
    std::uint64_t record_keep_bytes = 0;
    /// This run's trace stops growing at this many bytes, all segments (0: no limit): the
    /// recording stops, says so once, and the program goes on unrecorded.
    std::uint64_t record_max_bytes = 0;
    /// fsync the trace after every chunk (else only when the recording ends).
    bool record_fsync_every_chunk = false;
    /// Compress the trace's chunks (zstd, on the recorder's writer thread).
    bool record_compress = true;
    /// A key file (64 hex digits, mode 0600): the recording is sealed with it, and a
    /// sealed trace is replayed with it. Empty: recorded in the clear.
    std::string trace_key_path;
    /// The program's arguments, kept in the trace header.
    std::vector<std::string> argv;
    /// The program's name, kept in the trace header: replay refuses a trace of another
    /// program (empty: the file name of argv[0]; run_main uses its entry's name).
    std::string program_name;
    /// Live: wait for the world on this shared loop (null: a loop of the runtime's own).
    /// Every runtime of one LiveWorld must be used from one thread.
    std::shared_ptr<LiveWorld> live_world;
    /// Live and recording: the world file operations act on, step by step (null: the
    /// machine's file system, real_file_world()). A replay acts on no file.
    std::shared_ptr<FileWorld> file_world;
    /// Simulation: the simulated world this runtime's backend comes from (sim/ sets it;
    /// null: live, or the trace when replaying). Programs never set it.
    std::shared_ptr<BackendSource> backend_source;
    /// Replay: called with the divergence report (also printed on stderr) before the
    /// process exits with code 3, so that a driver of several runtimes can say which
    /// node diverged and stop the others first.
    std::function<void(std::string_view report)> on_divergence;
};

/// Counters of a runtime, for tests, benchmarks and diagnostics. They are not
/// inputs: a program must not decide anything on them (replay reproduces ticks,
/// wake-ups, switches and spawns, but clock_waits is 0 in a warped replay).
struct RuntimeStats {
    std::uint64_t ticks = 0;           ///< loop iterations that waited for the world
    std::uint64_t wakeups = 0;         ///< wake-ups delivered through the gate
    std::uint64_t switches = 0;        ///< fiber resumptions
    std::uint64_t fibers_spawned = 0;
    std::uint64_t fibers_alive = 0;
    std::uint64_t handles_alive = 0;   ///< timers, connections, listeners, offload requests
    /// Times the backend blocked on the real world or clock. A time-warped replay
    /// never does: it stays 0 there.
    std::uint64_t clock_waits = 0;
};

/// One task as Runtime::tasks() reports it: for diagnostics and the debugger.
struct TaskInfo {
    enum class State : std::uint8_t { ready, running, waiting };
    std::uint64_t id = 0;
    std::string name;
    State state = State::ready;
    WaitKind waits_on = WaitKind::none;  ///< while waiting: what on
    std::uint64_t handle = 0;            ///< the timer, connection, listener, task or job waited on (0: none)
    std::int64_t deadline_ns = -1;       ///< while waiting: the loop time the wait gives up at (-1: never)
};

/// One node. Several runtimes may live in one thread; nothing of a node lives in a
/// global. While a runtime runs, it is the thread's current runtime, which the free
/// functions (`spawn`, `now`, `connect`, ...) use.
class Runtime {
public:
    struct Impl;

    /// Starts a node. Throws std::runtime_error with a clear message when a trace
    /// cannot be created (recording) or read (replay).
    explicit Runtime(Options options = {});
    ~Runtime();
    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;

    /// Runs `entry` as the task "main" until it returns, then cancels the tasks still
    /// alive and waits for them. Returns `entry`'s result (the exit code). It is
    /// `start(entry); while (!step()) {} return result();`.
    int run(std::function<int()> entry);

    // --- stepping: a driver runs several runtimes in one thread ------------------------
    /// Starts `entry` as the task "main" (the run's first tick is read now); nothing of
    /// it runs before the first step().
    void start(std::function<int()> entry);
    /// One loop tick: runs the ready tasks, flushes output, waits for the world until
    /// this runtime's next event but not past the monotonic `wait_until_ns` (-1: no
    /// bound of the driver's; a time already past: do not wait), and delivers what came.
    /// Returns true once main and every other task have ended (then call result()).
    bool step(std::int64_t wait_until_ns = -1);
    /// The monotonic time this runtime next has something to do at: now when a task is
    /// ready, else its earliest timer (or the recorder's seal), else -1: only the world
    /// (bytes, connections, signals, jobs) can wake it. A driver of several live
    /// runtimes on one LiveWorld waits until the earliest of them.
    std::int64_t next_event_ns() const noexcept;
    /// Whether the run started by start() has ended.
    bool finished() const noexcept;
    /// After the run ended: main's exit code (1 when main threw); rethrows what escaped main.
    int result();

    /// Asks for a graceful stop: the main task is cancelled, so its blocking
    /// operation returns Errc::cancelled. Safe to call from a fiber of this runtime.
    void request_stop();
    bool stop_requested() const noexcept;

    /// The PRNG seed in use (reported so that a run can be repeated).
    std::uint64_t seed() const noexcept;
    const std::string& node_name() const noexcept;
    RuntimeStats stats() const noexcept;
    /// Every live task in spawn order: its state and, for a waiting one, what it waits
    /// on and until when. Not an input: a program must not decide anything on it.
    std::vector<TaskInfo> tasks() const;

    /// Whether this runtime replays a trace (and so touches nothing of the world).
    bool replaying() const noexcept;
    /// The trace's header arguments in replay (empty otherwise).
    const std::vector<std::string>& recorded_argv() const noexcept;

    /// The runtime running on this thread now, or nullptr.
    static Runtime* current() noexcept;

    Impl& impl() noexcept { return *impl_; }

private:
    std::unique_ptr<Impl> impl_;
};

} // namespace reprise
