// Every limit of the runtime in one place, with the relations between them checked.
#pragma once

#include <cstddef>
#include <cstdint>

namespace reprise::limits {

inline constexpr std::size_t page_bytes = 4096;

/// Fiber stacks: virtual size reserved per fiber; pages are committed lazily.
inline constexpr std::size_t stack_bytes_default = 256 * 1024;
inline constexpr std::size_t stack_bytes_min = 16 * 1024;
inline constexpr std::size_t stack_bytes_max = 8 * 1024 * 1024;
/// Guard pages below each stack: an overflow faults here instead of corrupting memory.
inline constexpr std::size_t stack_guard_bytes = page_bytes;
/// Finished fibers' stacks kept for reuse, per runtime.
inline constexpr std::size_t stack_cache_max = 64;
/// Alternate signal stack used to report a fiber's stack overflow.
inline constexpr std::size_t signal_stack_bytes = 64 * 1024;

/// Recording runtimes alive at once in one process (simulation and joint replay record
/// every node): each holds a slot of the crash-flush table, which the fatal-signal path
/// reads without allocating or locking. One more is refused with an assertion.
inline constexpr std::size_t crash_hooks_max = 128;
/// Simulation: blocking calls that may return cancelled to one task of a crashed node before
/// the next one throws to end it (a task that retries on any error would spin forever).
inline constexpr std::uint32_t unwind_cancelled_returns_max = 1000;
/// Simulation: loop steps a crashed or stopped node's tasks get to end (they are cancelled).
inline constexpr std::size_t sim_unwind_steps_max = 100'000;
/// --record=PATH with %c: the counters tried before giving up (each one's file exists).
inline constexpr std::uint64_t trace_counter_max = 1'000'000;
/// --record-keep-bytes: a run whose room (what the kept runs leave, or half the budget) is under this
/// records nothing and says so, rather than write a trace too short to be of use.
inline constexpr std::uint64_t trace_run_bytes_min = 64 * 1024;
/// --record-segment: the smallest segment (a header and whole chunks fit many times over).
inline constexpr std::uint64_t trace_segment_bytes_min = 1024 * 1024;
/// --record-keep-bytes: the smallest budget of a pattern's traces (two runs' minimum many times over).
inline constexpr std::uint64_t trace_keep_bytes_min = 1024 * 1024;
static_assert(trace_keep_bytes_min / 2 >= trace_run_bytes_min, "half the smallest budget (one run's share) is a usable run");
/// --record-keep*: entries of the pattern's folder looked at for old runs, at most.
inline constexpr std::size_t retention_folder_entries_max = 1'000'000;
/// Time all crash hooks together may wait for their writer threads inside a fatal
/// signal handler, spent in steps of crash_wait_step_ns: however many runtimes record,
/// a crash is held up at most this long.
inline constexpr std::int64_t crash_wait_total_ns = 2'000'000'000;
inline constexpr std::int64_t crash_wait_step_ns = 1'000'000;
/// Replay with --mark-stdio: the size asked of each pipe that stands in for fds 1 and 2
/// (F_SETPIPE_SZ; Linux's default cap, /proc/sys/fs/pipe-max-size, is 1 MiB). A smaller
/// pipe only wakes the draining thread more often: it never blocks the program for long.
inline constexpr std::size_t mark_stdio_pipe_bytes = 1024 * 1024;
/// --mark-stdio: bytes of a line held back for its newline; a longer line is marked at its start
/// and the rest goes out as it comes.
inline constexpr std::size_t mark_stdio_line_bytes_max = 64 * 1024;
/// --mark-stdio: bytes read from a pipe at once (and on the crash path, from the stack).
inline constexpr std::size_t mark_stdio_read_bytes = 16 * 1024;

/// Fibers alive at once in one runtime.
inline constexpr std::size_t fibers_max = 1 << 20;
/// Length of a fiber's name (longer names are cut).
inline constexpr std::size_t fiber_name_bytes_max = 64;

/// Bytes the loop reads from one socket per readiness event.
inline constexpr std::size_t read_chunk_bytes = 64 * 1024;
/// Input buffered for a connection before the loop stops reading it.
inline constexpr std::size_t input_buffer_bytes_max = 1024 * 1024;
/// Output buffered for a connection past which a writer blocks until drained.
inline constexpr std::size_t output_high_water_bytes = 1024 * 1024;
/// Output level below which a blocked writer is woken again.
inline constexpr std::size_t output_low_water_bytes = 256 * 1024;
/// Connections accepted by the loop but not yet taken by `accept()`.
inline constexpr std::size_t accept_queue_max = 1024;
/// Connections the loop accepts per readiness event of a listener.
inline constexpr std::size_t accepts_per_event_max = 64;
/// A closed connection's unsent output is dropped after this long.
inline constexpr std::int64_t close_linger_ns = 5'000'000'000;
/// listen() backlog.
inline constexpr int listen_backlog = 1024;

/// Threads of the offload pool (started on first use) and jobs queued at once.
inline constexpr std::size_t offload_threads_default = 4;
inline constexpr std::size_t offload_threads_max = 64;
inline constexpr std::size_t offload_queue_max = 65536;

/// Capacity of a channel (a channel must hold at least one item).
inline constexpr std::size_t channel_capacity_max = 1 << 20;

/// Largest single file read through the runtime.
/// (Its result is an input: it must fit in one trace record, trace::record_payload_bytes_max.)
inline constexpr std::size_t file_read_bytes_max = 64 * 1024 * 1024;
/// Largest secret read_secret() accepts (a password, a cluster key): small, so a wrong file
/// (a log, a trace) is refused rather than taken as a secret.
inline constexpr std::size_t secret_bytes_max = 4096;
/// Secrets one runtime holds (each is looked for in every read, to redact it from the trace).
inline constexpr std::size_t secrets_max = 8;

/// Largest secure_random() request.
inline constexpr std::size_t secure_random_bytes_max = 1024 * 1024;

/// Linearizability checker (sim/linearizability.hpp): search steps a check spends by default
/// before it answers unknown, and steps one attempt to shrink a witness may spend.
inline constexpr std::uint64_t linearizability_steps_default = 50'000'000;
inline constexpr std::uint64_t linearizability_shrink_attempt_steps_default = 1'000'000;

static_assert(stack_bytes_min <= stack_bytes_default && stack_bytes_default <= stack_bytes_max);
static_assert(stack_bytes_min % page_bytes == 0 && stack_bytes_max % page_bytes == 0);
static_assert(stack_guard_bytes % page_bytes == 0 && stack_guard_bytes > 0);
static_assert(mark_stdio_read_bytes <= mark_stdio_line_bytes_max && mark_stdio_read_bytes <= signal_stack_bytes / 2,
              "--mark-stdio's crash path reads into a buffer on the alternate signal stack");
static_assert(output_low_water_bytes < output_high_water_bytes);
static_assert(read_chunk_bytes <= input_buffer_bytes_max);
static_assert(accepts_per_event_max <= accept_queue_max);
static_assert(offload_threads_default <= offload_threads_max);
static_assert(crash_hooks_max >= 64, "simulation and joint replay record 64 nodes in one process");
static_assert(crash_wait_step_ns > 0 && crash_wait_step_ns <= crash_wait_total_ns);

static_assert(linearizability_shrink_attempt_steps_default <= linearizability_steps_default);

} // namespace reprise::limits
