// The debug table: what a debugger reads of a running or dumped process (tasks, events, virtual time) and the break targets it sets.
//
// One global C object, `reprise_debug`, that the gdb extension (tools/gdb/reprise_gdb.py) finds
// by name. It describes the runtime's private structures by their offsets, computed by the
// compiler, so a refactor moves fields without breaking the debugger; what a field means changes
// only with `version`, and the extension refuses a table of a version it does not know. The
// debugger reads it from memory alone (a core file works), and writes the break-target fields to
// make the replaying process stop itself: conditions are evaluated in process, at the cost of a
// test of one byte per event when nothing is armed. docs/debugging.md documents every field.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include <cstdint>

extern "C" {

/// The table's version: it changes whenever a field is added, removed or changes meaning.
#define REPRISE_DEBUG_TABLE_VERSION 2

/// Why the replay stopped (reprise_debug_table::stop_reason).
enum reprise_debug_stop_reason : std::uint32_t {
    reprise_stop_none = 0,
    reprise_stop_event = 1,       ///< stop_event reached: the event is about to be delivered
    reprise_stop_kind = 2,        ///< the next event of stop_kinds (and stop_handle)
    reprise_stop_output = 3,      ///< output_needle appeared in a connection's output
    reprise_stop_checkpoint = 4,  ///< checkpoint_every: a place for the debugger to take a checkpoint
    reprise_stop_divergence = 5,  ///< the program differs from the trace: stop_text is the report
    reprise_stop_end = 6,         ///< the trace's end: the program ended as recorded
    reprise_stop_break_at = 7,    ///< --break-at=N
    reprise_stop_started = 8,     ///< a replay starts under the extension: break targets can be set
};

/// Where a runtime (node) stands in its run (reprise_debug_runtime::state).
enum reprise_debug_node_state : std::uint8_t {
    reprise_node_not_started = 0,  ///< created, not started (a joint replay starts each node at its first tick)
    reprise_node_running = 1,      ///< started, its run not ended
    reprise_node_ended = 2,        ///< its run ended (in replay: as recorded)
    reprise_node_frozen = 3,       ///< joint replay: replayed to its trace's end, which is not an exit; it stays there
};

/// One runtime (node) of the process. Pointers point at the runtime's own fields, so nothing is
/// copied while it runs.
struct reprise_debug_runtime {
    reprise_debug_runtime* next;        ///< the next runtime, in creation order (null: the last)
    const char* node;                   ///< the node's name (NUL-terminated)
    void* const* fibers_head;           ///< the first live fiber (spawn order); fibers chain through fiber.all_next
    void* const* current_fiber;         ///< the fiber running now (null: the loop)
    const std::int64_t* now_ns;         ///< the loop's monotonic time (ns) of the current tick
    const std::int64_t* wall_ns;        ///< the loop's wall time (ns since the epoch) of the current tick
    const char* trace_path;             ///< replay: the trace (null: live)
    const std::uint64_t* events;        ///< replay: events handed over so far = the number of the next event
    const std::int64_t* tick_mono_ns;   ///< replay: the recorded monotonic time of the current tick
    const std::int64_t* first_mono_ns;  ///< replay: the recording's first tick (virtual time = tick - first)
    std::uint32_t index;                ///< the node's index (0 .. runtimes - 1), as stop_node names it
    std::uint32_t replaying;            ///< 1 when this runtime replays a trace
    std::int64_t start_wall_ns;         ///< the run's start (wall ns); replay: the trace header's (0: not known yet)
    std::uint64_t events_total;         ///< replay: the trace's events when known (a joint replay counts them; a single one under the extension too); 0: not
    std::uint8_t state;                 ///< reprise_debug_node_state, kept current by the runtime and the replayer
    std::uint8_t reserved[7];
};

/// Byte offsets of the fields of a fiber (runtime/internal/core.hpp) the debugger reads.
struct reprise_debug_fiber_layout {
    std::uint32_t size;              ///< sizeof the fiber object
    std::uint32_t id;                ///< uint64: the task id
    std::uint32_t name;              ///< const char*: the task name (NUL-terminated)
    std::uint32_t state;             ///< uint8: an index into fiber_state_names
    std::uint32_t context;           ///< void*: Boost.Context's saved stack pointer while not running
    std::uint32_t all_next;          ///< fiber*: the next live fiber in spawn order
    std::uint32_t waiting_on;        ///< wait list*: what a parked fiber waits on (null: a sleep)
    std::uint32_t park_deadline_ns;  ///< int64: the loop time a parked fiber's wait ends at (-1: never)
    std::uint32_t stack_base;        ///< void*: the stack mapping (its lowest byte: the guard page)
    std::uint32_t stack_mapped_bytes;  ///< size_t: the mapping's bytes (the stack's top is base + this)
};

/// Byte offsets of a wait list's fields (runtime/wait_list.hpp).
struct reprise_debug_wait_list_layout {
    std::uint32_t kind;    ///< uint8: an index into wait_kind_names
    std::uint32_t handle;  ///< uint64: the timer, connection, listener, task or job waited on (0: none)
};

/// Byte offsets of a timer's fields (runtime/internal/timers.hpp's TimerState): a task in
/// Timer::wait() waits on the timer's wait list, and the timer is found from it (container_of).
struct reprise_debug_timer_layout {
    std::uint32_t waiters;      ///< the timer's wait list
    std::uint32_t deadline_ns;  ///< int64: the loop time it fires at, while armed
    std::uint32_t heap_index;   ///< uint64: its place in the timer heap; UINT64_MAX: not armed (the deadline is stale)
    std::uint32_t reserved;
};

/// Boost.Context's fcontext ABI this process was built with: where a parked fiber's registers are.
enum reprise_debug_arch : std::uint32_t {
    reprise_arch_unknown = 0,
    reprise_arch_x86_64_sysv = 1,
    reprise_arch_aarch64_aapcs = 2,
};

struct reprise_debug_table {
    char magic[8];                 ///< "reprise" and a NUL
    std::uint32_t version;         ///< REPRISE_DEBUG_TABLE_VERSION
    std::uint32_t table_bytes;     ///< sizeof(reprise_debug_table)
    std::uint32_t boost_version;   ///< BOOST_VERSION the runtime was built with (fcontext's layout follows it)
    std::uint32_t arch;            ///< reprise_debug_arch
    const char* runtime_version;   ///< REPRISE_VERSION
    reprise_debug_fiber_layout fiber;
    reprise_debug_wait_list_layout wait_list;
    reprise_debug_timer_layout timer;
    const char* const* fiber_state_names;  ///< "ready", "running", "parked", "done"
    std::uint32_t fiber_state_count;
    std::uint32_t wait_kind_count;
    const char* const* wait_kind_names;    ///< WaitKind's names, by value
    const char* const* record_kind_names;  ///< trace::RecordKind's names, by value (0: "")
    std::uint32_t record_kind_count;
    std::uint32_t wake_kind_count;
    const char* const* wake_kind_names;    ///< WakeKind's names, by value (0: "")
    reprise_debug_runtime* runtimes;       ///< the process's runtimes, in creation order
    std::uint32_t runtime_count;

    // --- break targets: written by the debugger, read by the replay at each event -----------
    /// Non-zero while any target below is set: the one byte tested per event. The debugger sets
    /// it after the targets, and clears it to disarm them all.
    volatile std::uint8_t armed;
    /// Non-zero once a debugger is attached: a stop calls reprise_debug_stop() (where the
    /// debugger has its breakpoint) instead of raising SIGTRAP, and a divergence stops there
    /// before the process exits.
    volatile std::uint8_t attached;
    std::uint8_t reserved0[2];
    /// The node the targets concern (-1: every node).
    volatile std::int32_t stop_node;
    /// Stop before the event with this number is delivered (UINT64_MAX: no such target).
    volatile std::uint64_t stop_event;
    /// Stop before the next event whose class is in this mask: bit (record kind) for records,
    /// bit (16 + wake kind) for wake-ups of that kind (0: no such target).
    volatile std::uint32_t stop_kinds;
    std::uint32_t reserved1;
    /// With stop_kinds: only events of this handle (timer, connection, listener; 0: any).
    volatile std::uint64_t stop_handle;
    /// Stop every this many events (reprise_stop_checkpoint) so that the debugger can take a
    /// checkpoint; 0: never.
    volatile std::uint64_t checkpoint_every;
    /// Stop when a connection's output (stop_handle: of that connection; 0: any) contains these
    /// output_needle_bytes bytes (0: no such target). Needles spanning two writes are found.
    volatile std::uint32_t output_needle_bytes;
    std::uint32_t reserved2;
    char output_needle[256];

    // --- the last stop: written by the replay just before it calls reprise_debug_stop() -----
    volatile std::uint32_t stop_reason;     ///< reprise_debug_stop_reason
    volatile std::int32_t stopped_node;     ///< the node's index
    volatile std::uint64_t stopped_event;   ///< the event about to be delivered (or that diverged)
    volatile std::int64_t stopped_virtual_ns;  ///< the node's virtual time at the stop
    volatile std::uint64_t stopped_handle;     ///< output: the connection whose output matched
    char stop_text[4096];                   ///< the event's description, or the divergence report
};

/// The table (one per process).
extern reprise_debug_table reprise_debug;

/// Called at every stop while a debugger is attached; it does nothing. The debugger's
/// breakpoint sits here, and the caller's frames are the stopped program's.
void reprise_debug_stop(void);

} // extern "C"

#include <string_view>

namespace reprise::detail {

/// Adds a runtime to the table (its index is the next free one) / takes it off.
void debug_register(reprise_debug_runtime& runtime) noexcept;
void debug_unregister(reprise_debug_runtime& runtime) noexcept;

/// Records why and where the process stops, then calls reprise_debug_stop() when a debugger is
/// attached; returns whether one is (without one, the caller decides: SIGTRAP, or nothing).
bool debug_stop(reprise_debug_stop_reason reason, const reprise_debug_runtime& node, std::uint64_t event,
                std::int64_t virtual_ns, std::string_view text, std::uint64_t handle = 0) noexcept;

/// Whether the debugger's targets are armed: the one test made per event.
inline bool debug_armed() noexcept { return reprise_debug.armed != 0; }
/// Whether the targets concern `node`.
inline bool debug_targets(const reprise_debug_runtime& node) noexcept {
    return reprise_debug.stop_node < 0 || static_cast<std::uint32_t>(reprise_debug.stop_node) == node.index;
}

/// A replay starts: under the extension (REPRISE_DEBUGGER in the environment) the debugger
/// is marked attached and the process stops, once (the first node of a joint replay), so that
/// it can set its targets.
void debug_replay_starts(const reprise_debug_runtime& node) noexcept;
/// Whether the extension runs this process (REPRISE_DEBUGGER in the environment).
bool debugger_expected() noexcept;

} // namespace reprise::detail
