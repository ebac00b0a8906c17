// World: many nodes' runtimes in one thread on one virtual clock, with a simulated network, disks and faults, all from one seed.
#pragma once

#include "reprise/runtime/main.hpp"
#include "reprise/runtime/runtime.hpp"
#include "reprise/runtime/time.hpp"
#include "reprise/sim/disk.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace reprise::sim {

/// A node of a world: its index in the order nodes were added.
using NodeId = std::uint32_t;

/// Latency of one direction of a link: each segment takes a time drawn uniformly in [min, max].
struct Latency {
    Duration min = std::chrono::microseconds(50);
    Duration max = std::chrono::microseconds(500);
};

/// Faults the world injects on its own, drawn from its seed. All off by default.
struct FaultPlan {
    /// Mean virtual time between two faults (exponential); zero: no random faults.
    Duration mean_interval{};
    /// How long a partition, clog or pause lasts before it heals (drawn in [0, 2x]).
    Duration mean_duration = std::chrono::seconds(2);
    /// Relative weights of the kinds of fault drawn.
    unsigned crash_restart = 1;   ///< a node crashes and restarts from its disk after the duration
    unsigned partition = 1;       ///< two nodes cannot reach each other (both ways)
    unsigned one_way = 1;         ///< one node cannot reach another
    unsigned clog = 1;            ///< a link holds its segments, then delivers them
    unsigned pause = 1;           ///< a node stops running (as SIGSTOP), then resumes
    unsigned clock_jump = 1;      ///< a node's wall clock jumps by up to +-10 s
    /// Never crash or pause more than this many nodes at once (a cluster keeps a majority).
    std::size_t max_nodes_down = 1;
};

/// A random fault (FaultPlan) as it begins or ends, told to a runner's checkers (World::on_random_fault).
struct RandomFault {
    enum class Kind : std::uint8_t { crash_restart, partition, one_way, clog, pause, clock_jump };
    Kind kind = Kind::pause;
    std::uint64_t id = 0;  ///< the same at its beginning and its end
    NodeId a = 0;          ///< the node it strikes (a link's first end)
    NodeId b = 0;          ///< a link's other end (a for a node's own fault)
    bool ends = false;     ///< false when it begins; a clock jump begins and ends at once
};

/// How a world runs. Same options, same binary: same run, event for event.
struct WorldOptions {
    std::uint64_t seed = 1;
    /// Latency of every link unless set_latency() says otherwise.
    Latency latency{};
    /// A flush is cut into up to this many segments at random boundaries (reads see them apart).
    std::size_t max_segments_per_flush = 3;
    /// Bytes one direction of a connection holds unread (sent, not yet taken by the reader's
    /// runtime) before the writer's flush stops: write backpressure.
    std::size_t socket_buffer_bytes = 256 * 1024;
    /// A connect whose SYN is lost in a partition fails with ETIMEDOUT after this long.
    Duration connect_timeout = std::chrono::seconds(3);
    /// Bytes sent into a partition are held (TCP retransmits them): they arrive if the link
    /// heals within this long, else the sender's connection fails with ETIMEDOUT (TCP gives up).
    Duration partition_timeout = std::chrono::seconds(5);
    /// An offloaded job (file steps, blocking work) completes after a time drawn in [min, max].
    Latency offload_latency{std::chrono::microseconds(20), std::chrono::microseconds(400)};
    /// Wall-clock time of the world's start (nanoseconds since the epoch): fixed, so wall
    /// time is part of the seed's run too.
    std::int64_t start_wall_ns = 1'767'225'600'000'000'000;  // 2026-01-01T00:00:00Z
    /// Each node records its trace into this folder (<node>.<incarnation>.trace); empty: none.
    std::string trace_folder = {};
    /// Hash every event into hash() (the determinism self-check).
    bool hash_events = true;
    /// Every node's disk faults when set (instead of each NodeSpec::disk): a runner's flags.
    std::optional<DiskFaults> disk_faults = {};
    /// Random faults; off unless mean_interval is set.
    FaultPlan faults{};
};

/// One node: a program's entry with its own arguments, name and address.
struct NodeSpec {
    std::string name = {};
    ProgramEntry program = {};
    /// The program's arguments, argv[0] first (empty: the program's name alone).
    std::vector<std::string> args = {};
    /// The node's IPv4 address (empty: 10.0.0.<index + 1>). A node also reaches listeners
    /// on 127.0.0.1: its own first, else another node's (a cluster run on one host).
    std::string ip = {};
    DiskFaults disk{};
    /// A node's monotonic clock runs this many parts per million fast (negative: slow).
    std::int64_t clock_drift_ppm = 0;
};

enum class NodeState : std::uint8_t { running, paused, crashed, exited, killed };
const char* node_state_name(NodeState s) noexcept;

/// The simulated world. Everything it does is drawn from WorldOptions::seed; nothing reads
/// the real clock, opens a real socket or touches the real disk (a node's trace, when
/// recorded, is the one real file written).
class World {
public:
    explicit World(WorldOptions options = {});
    ~World();
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    /// Adds a node and starts its program now (nothing of it runs before the world steps).
    NodeId add_node(NodeSpec spec);

    // --- running -----------------------------------------------------------------------
    /// Runs the next event in virtual time (ties broken by the seed). False when nothing is
    /// left that could ever happen.
    bool step();
    /// Runs every event up to virtual time `until` (since the world's start, as now() and at()
    /// count) and stops there.
    void run_until(Duration until);
    void run_for(Duration d);
    /// Runs until `done()` holds (checked after each event) or `limit` of virtual time has
    /// passed from now (not from the start); whether it held.
    bool run_until(const std::function<bool()>& done, Duration limit);
    /// Runs until every node's program has ended or `limit` has passed; whether they all ended.
    bool run_to_completion(Duration limit);
    /// Virtual time since the world started.
    Duration now() const noexcept;
    /// Runs `action` at virtual time `when` (since the start), between two events; a time
    /// already past runs it next.
    void at(Duration when, std::function<void()> action);

    // --- network -----------------------------------------------------------------------
    /// Nothing gets through between a and b, either way, until heal().
    void partition(NodeId a, NodeId b);
    /// Nothing gets from `from` to `to` (the other way works) until heal().
    void partition_one_way(NodeId from, NodeId to);
    /// Every node in `group` is cut off from every node outside it.
    void isolate(const std::vector<NodeId>& group);
    /// The link from `from` to `to` holds its segments (nothing is lost) until unclog().
    void clog(NodeId from, NodeId to);
    void unclog(NodeId from, NodeId to);
    /// Ends every partition and clog.
    void heal();

    // --- random faults (WorldOptions::faults) ------------------------------------------------
    /// Calls `observer` as each random fault begins and ends (one observer; a new one replaces it):
    /// a runner's checkers count them and tell a node a fault touched from an untroubled one.
    void on_random_fault(std::function<void(const RandomFault&)> observer);
    /// A random fault crashes or pauses `node` only when `may_take_down(node)` holds, beside
    /// FaultPlan::max_nodes_down: a runner that takes nodes down too (a nemesis) keeps its own
    /// bound (a majority up) over both.
    void set_random_fault_guard(std::function<bool(NodeId)> may_take_down);
    /// No random fault begins from now on, and every one still holding ends now (its link heals,
    /// its node resumes or restarts; a wall clock that jumped stays where it is): a runner's quiet
    /// end of the run (a liveness check's settle time).
    void stop_random_faults();
    /// Resets every connection between a and b: both ends see ECONNRESET.
    void reset_connections(NodeId a, NodeId b);
    void set_latency(NodeId from, NodeId to, Latency latency);

    // --- nodes -------------------------------------------------------------------------
    /// Power loss: the node's memory and unsynced disk are gone, its peers see resets.
    void crash(NodeId node);
    /// Crashes the node between two file steps: after `steps` more steps of its disk.
    void crash_after_disk_steps(NodeId node, std::uint64_t steps);
    /// Forgets a crash planned by crash_after_disk_steps that has not happened yet.
    void cancel_disk_crash(NodeId node);
    /// Starts a crashed (or exited) node's program again, on what its disk kept.
    void restart(NodeId node);
    /// Crashes the node for good.
    void kill(NodeId node);
    /// Stops running the node (its kernel still receives bytes), as SIGSTOP would; resume() goes on.
    void pause(NodeId node);
    void resume(NodeId node);
    /// Sends `signo` to the node's program (delivered when it watches that signal).
    void signal(NodeId node, int signo);
    /// Sets the node's monotonic clock rate (parts per million fast; negative: slow) from now.
    void set_clock_drift(NodeId node, std::int64_t ppm);
    /// Moves the node's wall clock by `delta` (either way); its monotonic clock never goes back.
    void jump_wall_clock(NodeId node, Duration delta);

    // --- looking at it -------------------------------------------------------------------
    std::size_t node_count() const noexcept;
    NodeId node_id(const std::string& name) const;
    const std::string& node_name(NodeId node) const;
    NodeState state(NodeId node) const;
    /// The exit code of a node whose program ended (nullopt while it runs or after a crash).
    std::optional<int> exit_code(NodeId node) const;
    /// The node's runtime while its program runs (else null).
    Runtime* runtime(NodeId node);
    SimDisk& disk(NodeId node);
    /// Times the node was started (1 + restarts).
    std::uint32_t incarnation(NodeId node) const;
    /// The trace files the node recorded, one per incarnation (WorldOptions::trace_folder).
    std::vector<std::string> traces(NodeId node) const;
    /// A running hash of every event so far (what, where, when; bytes included).
    std::uint64_t hash() const noexcept;
    /// Events run so far (node ticks, segments, connects, jobs, faults).
    std::uint64_t events() const noexcept;
    /// Wake-ups delivered to all nodes so far.
    std::uint64_t wakeups() const noexcept;
    /// What happened, one line per fault and node event ("1.234567s crash n2"), in order.
    const std::vector<std::string>& log() const noexcept;
    /// Adds a line to that log, stamped with the virtual time: a runner's own faults (a disk's
    /// failing fsyncs) beside the world's.
    void log_line(std::string line);
    /// One line that repeats this run: the seed, every option, the commit, build type and compiler.
    std::string repro_line() const;
    const WorldOptions& options() const noexcept;

    struct Impl;

private:
    std::unique_ptr<Impl> impl_;
};

/// The commit, build type and compiler this library was built with ("3f2a1b0 debugoptimized g++ 12.2.0").
std::string build_description();

} // namespace reprise::sim
