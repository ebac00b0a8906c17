// A trace on disk beside its records: whether a recorder still writes it (its lock), how its run ended (the outcome file), and retention.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reprise::trace {

/// How a recorded run ended, written by its recorder when the recording closes, into a small
/// file beside the trace (PATH.outcome, 0600, replaced atomically). A trace without one was
/// cut off: its process was killed (SIGKILL, the OOM killer) or the machine stopped.
struct Outcome {
    enum class Ended : std::uint8_t {
        exited,   ///< the program ended with exit_code
        crashed,  ///< a fatal signal (signal) killed it; the recorder flushed first
        cut_off,  ///< the recording was closed before the program ended (a simulated crash)
    };
    /// How the recording itself went: to the end, or stopped while the program went on.
    enum class Recording : std::uint8_t {
        complete,  ///< every event up to the end is in the trace
        budget,    ///< stopped at its byte budget (budget_bytes); the program went on unrecorded
        failed,    ///< a write failed (disk full, I/O error); the program went on unrecorded
    };
    Ended ended = Ended::cut_off;
    int exit_code = 0;
    int signal = 0;
    Recording recording = Recording::complete;
    std::uint64_t stored_bytes = 0;    ///< bytes of the trace's files when it closed
    std::uint64_t budget_bytes = 0;    ///< the run's budget (0: none)
    std::int64_t start_wall_ns = 0;    ///< the recording's start (orders runs oldest first)
};

/// PATH.outcome, the outcome file of the trace named PATH (a segmented trace's name, without .N).
std::string outcome_path(std::string_view trace_path);
/// Reads a trace's outcome file: nullopt when there is none; also nullopt, with a message in
/// `error`, when it is there but unreadable or damaged.
std::optional<Outcome> read_outcome(const std::string& trace_path, std::string* error = nullptr);
/// The outcome an outcome file's bytes hold, or nullopt with the reason in `why` (pure, bounded:
/// the fuzz target tests/fuzz/fuzz_outcome.cpp feeds it anything).
std::optional<Outcome> parse_outcome(std::string_view text, std::string& why);
/// Writes `o` into `path` through `tmp_path` and a rename (mode 0600): a reader sees the whole file
/// or none. Allocates nothing and calls only async-signal-safe functions: the crash path uses it.
bool write_outcome(const char* path, const char* tmp_path, const Outcome& o) noexcept;
/// "exit code 3", "crashed with SIGSEGV", ...: how the run ended, in a few words.
std::string describe_outcome(const Outcome& o);

/// Whether a recording process writes the trace PATH now: its recorder holds an exclusive flock
/// on PATH (or PATH.0, a segmented trace's first file) for the life of the recording; this tries
/// a shared one without waiting. A process killed in any way releases it.
bool being_written(const std::string& trace_path);

/// Why retention keeps a trace whatever the budget ("run crashed with SIGSEGV", "exit code 3",
/// "cut off: no outcome recorded", "still being written"); nullopt when it may be removed (its run
/// exited with code 0).
std::optional<std::string> kept_because(bool live, const std::optional<Outcome>& outcome);

/// How a trace without an end record came to end, in a sentence, for the tools and the replayer:
/// still being written, stopped at its budget, or cut off (crashed, killed, no outcome).
std::string describe_cut(const std::string& trace_path);

/// What --record-keep and --record-keep-bytes ask of one --record pattern.
struct RetentionPolicy {
    std::uint64_t keep_runs = 0;   ///< at most this many runs, the new one included (0: no limit)
    std::uint64_t keep_bytes = 0;  ///< the pattern's traces together within this (0: no limit)
    /// Room a new run needs within keep_bytes: old runs are removed until it is free.
    std::uint64_t reserve_bytes = 0;
};

/// One earlier run of a pattern, as found in its folder.
struct OldRun {
    std::string path;                ///< the trace's name (a segmented trace's without .N)
    std::vector<std::string> files;  ///< the trace, or its segments; then its outcome file
    std::uint64_t bytes = 0;         ///< of all its files
    std::optional<std::uint64_t> counter;  ///< what %c stood for
    bool live = false;
    std::optional<Outcome> outcome;
    std::int64_t order_ns = 0;       ///< its start (the outcome's), else its last change
};

/// Whether `name` (a file name, no folder) is one the file-name pattern gives: %c and %p stand for
/// digits, %t for a start time (20261130T151000Z), %n for any name, %% for a percent sign.
/// `counter` gets what %c stood for.
bool pattern_matches(std::string_view pattern, std::string_view name, std::uint64_t* counter = nullptr);

/// The runs in `folder` whose names `name_pattern` gives (their segments and outcome files
/// included), oldest first. The folder is the --record pattern's, expanded; the file name part is
/// the pattern as written. An unreadable folder gives no run and a message in `error`.
std::vector<OldRun> find_runs(const std::string& folder, std::string_view name_pattern, std::string* error);

/// What retention does before a new run records.
struct RetentionPlan {
    std::vector<std::size_t> remove;  ///< indexes into the runs, oldest first
    std::uint64_t kept_runs = 0;      ///< old runs that stay
    std::uint64_t kept_bytes = 0;     ///< their bytes
    std::uint64_t pinned_bytes = 0;   ///< bytes of the runs kept whatever the budget
    /// The runs kept whatever the budget fill keep_bytes: the new run records nothing.
    bool over_budget = false;
    /// Bytes the new run may take within keep_bytes (UINT64_MAX: no byte budget).
    std::uint64_t room_bytes = UINT64_MAX;
};
RetentionPlan plan_retention(const std::vector<OldRun>& runs, const RetentionPolicy& policy);

} // namespace reprise::trace
