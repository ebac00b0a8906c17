// Joint replay: the traces of several nodes (and several runs of one node) replayed in one process, one runtime each, stepped in happens-before order.
//
// Each node replays its own trace, as alone: no byte passes between them. What the driver adds
// is the order, so that a debugger stopped anywhere sees a cluster state that could have
// happened. A node is held just before each of its ticks, and the driver lets one go at a time;
// a node's tick and the tasks it wakes run together. The order comes from one of two places.
//
// - A simulation's traces: its world wrote down which node took each tick (sim.order beside the
//   traces, record/internal/run_order.hpp). The driver takes the ticks in that order, exactly as
//   the world ran them, and reads nothing ahead of the replay.
// - Any other traces (separate processes, separate machines, separate clocks): the driver lets go
//   the node whose next tick came first by its recorded wall clock, unless that tick reads bytes
//   the other end of its connection (paired by addresses, as `reprise cluster` pairs them) has
//   not written yet in this replay: then that node waits. One scan of each trace before the
//   replay finds every tick's wall time, the connections' ends and which tick of the writer
//   completes the bytes each read needs, so that the replay itself only compares tick counts.
#include "reprise/replay/internal/replayer.hpp"

#include "reprise/clock/internal/system_clock.hpp"
#include "reprise/record/chunk.hpp"
#include "reprise/record/internal/run_order.hpp"
#include "reprise/runtime/main.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unistd.h>

namespace reprise::detail {
namespace {

/// A connection as a trace opened it: its id in that node, its two ends, and when.
struct OpenedConn {
    std::uint64_t id = 0;
    Address local;
    Address peer;
    std::int64_t wall_ns = 0;
    bool inbound = false;  ///< accepted (else connected)
};

/// A tick that reads bytes on a connection: the bytes read on it up to and with this tick.
struct ReadNeed {
    std::uint64_t tick = 0;  ///< the tick's ordinal in the trace (0: the first)
    std::uint64_t conn = 0;
    std::uint64_t bytes_through = 0;
};

/// Bytes written on a connection up to the tasks after a tick.
struct WriteMark {
    std::uint64_t tick = 0;  ///< written by the tasks that ran after this tick (ordinal)
    std::uint64_t bytes_through = 0;
};

/// REPRISE_JOINT_VERIFY_ORDER found ticks of the run order that read bytes before they were
/// written (the order and the traces contradict each other).
constexpr int joint_exit_order_contradicted = 4;

/// The opened chunks the scans keep for the replays, all traces together; a trace's chunks
/// past its share are read from the file a second time.
constexpr std::size_t joint_chunk_share_bytes = std::size_t{512} << 20;

/// What the scan of one trace finds.
struct TraceScan {
    std::vector<std::int64_t> tick_wall_ns;  ///< every tick's wall time, in order
    std::vector<OpenedConn> opened;
    std::vector<ReadNeed> reads;
    std::unordered_map<std::uint64_t, std::vector<WriteMark>> writes;  ///< by connection, a mark per tick
    std::uint64_t events = 0;  ///< the events the replay can deliver (the debug table's events_total)
};

/// A tick that must wait for another node: node `writer` must have taken `ticks` ticks.
struct Wait {
    std::size_t writer = 0;
    std::uint64_t ticks = 0;
};

struct JointNode {
    std::string trace;
    trace::Header header;
    TraceScan scan;
    /// Per tick ordinal with reads of paired connections: what it waits for (sorted by tick).
    std::vector<std::pair<std::uint64_t, Wait>> waits;
    std::size_t next_wait = 0;      ///< the first of `waits` not behind us
    std::string label;              ///< the node's name, with /K when it ran several times
    std::shared_ptr<trace::ChunkShare> chunks;  ///< opened by the scan, for the replay
    std::unique_ptr<Runtime> runtime;
    Replayer* replayer = nullptr;
    bool started = false;
    bool done = false;              ///< ended as recorded, or frozen at its trace's end
    std::uint64_t ticks = 0;        ///< ticks taken so far (the first is taken at start)
    std::uint64_t break_at = 0;
    std::size_t order_index = SIZE_MAX;  ///< its trace in a simulation's run order (SIZE_MAX: none)
};

bool scan_trace(const std::string& path, const trace::TraceKey* key, TraceScan& out,
                std::shared_ptr<trace::ChunkShare> share, std::string& error) {
    auto reader = trace::Reader::open(path, &error, key);
    if (!reader.ok())
        return false;
    reader->keep_chunks(std::move(share));
    std::int64_t wall_ns = reader->header().start_wall_ns;
    // Bytes read and written so far by connection; the last connection looked up is kept
    // (a tick's reads and a task's writes come in runs on one connection).
    std::unordered_map<std::uint64_t, std::uint64_t> read;
    std::uint64_t last_read_conn = UINT64_MAX, *last_read = nullptr;
    std::uint64_t last_write_conn = UINT64_MAX;
    std::vector<WriteMark>* last_writes = nullptr;
    trace::Skim r;
    while (reader->skim(r)) {
        if (trace::delivered_event(r))
            ++out.events;
        const std::uint64_t tick = out.tick_wall_ns.empty() ? 0 : out.tick_wall_ns.size() - 1;
        switch (r.kind) {
        case trace::RecordKind::tick:
            wall_ns = r.wall_ns;
            out.tick_wall_ns.push_back(r.wall_ns);
            break;
        case trace::RecordKind::wake:
            if (static_cast<WakeKind>(r.sub) != WakeKind::bytes_read)
                break;
            if (r.handle != last_read_conn) {
                last_read_conn = r.handle;
                last_read = &read[r.handle];
            }
            *last_read += r.length - static_cast<std::uint64_t>(r.value);  // without a redaction trailer
            out.reads.push_back({tick, r.handle, *last_read});
            break;
        case trace::RecordKind::output: {
            if (static_cast<trace::OutputKind>(r.sub) != trace::OutputKind::conn_write)
                break;
            if (r.handle != last_write_conn) {
                last_write_conn = r.handle;
                last_writes = &out.writes[r.handle];
            }
            const std::uint64_t before = last_writes->empty() ? 0 : last_writes->back().bytes_through;
            if (!last_writes->empty() && last_writes->back().tick == tick)
                last_writes->back().bytes_through = before + r.length;  // one mark per tick is enough
            else
                last_writes->push_back({tick, before + r.length});
            break;
        }
        case trace::RecordKind::accepted:
            out.opened.push_back({r.handle, r.local, r.peer, wall_ns, true});
            break;
        case trace::RecordKind::connected:
            if (r.value == 0)
                out.opened.push_back({r.handle, r.local, r.peer, wall_ns, false});
            break;
        default:
            break;
        }
    }
    return true;
}

class JointDriver {
public:
    JointDriver(std::vector<JointNode>& nodes, const ProgramEntry& entry, std::string program)
        : nodes_(nodes), entry_(entry), program_(std::move(program)) {}

    // The ticks are taken in a simulation's run order (every node's order_index set) instead of
    // a plan.
    // With `verify`, plan() ran too, and each tick the order takes is checked against the plan:
    // its reads must have been written.
    void follow(const trace::RunOrder& order, std::string path, bool verify) {
        order_ = &order;
        verify_ = verify;
        order_path_ = std::move(path);
        node_of_trace_.assign(order.traces.size(), SIZE_MAX);
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            node_of_trace_[nodes_[i].order_index] = i;
    }

    // Pairs every connection with the other end's (the connection of another node whose ends
    // are this one's, swapped; nearest in time when a port was used again), and turns each
    // read of a paired connection into the writer's tick count it waits for.
    void plan() {
        std::map<std::pair<std::string, std::string>, std::vector<std::pair<std::size_t, const OpenedConn*>>> by_ends;
        for (std::size_t j = 0; j < nodes_.size(); ++j)
            for (const OpenedConn& c : nodes_[j].scan.opened)
                by_ends[{c.local.to_string(), c.peer.to_string()}].emplace_back(j, &c);
        std::map<std::pair<std::size_t, std::uint64_t>, std::pair<std::size_t, std::uint64_t>> writer_of;
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            for (const OpenedConn& c : nodes_[i].scan.opened) {
                auto it = by_ends.find({c.peer.to_string(), c.local.to_string()});
                if (it == by_ends.end())
                    continue;
                const std::pair<std::size_t, const OpenedConn*>* best = nullptr;
                for (const auto& cand : it->second)
                    if (cand.first != i &&
                        (best == nullptr || std::llabs(cand.second->wall_ns - c.wall_ns) < std::llabs(best->second->wall_ns - c.wall_ns)))
                        best = &cand;
                if (best != nullptr)
                    writer_of[{i, c.id}] = {best->first, best->second->id};
            }
        // Connections whose other end is in none of these traces: a node whose trace is missing,
        // or a client that is not a node. Their reads are taken as recorded, unordered.
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            for (const OpenedConn& c : nodes_[i].scan.opened)
                if (!writer_of.contains({i, c.id}))
                    unpaired_.push_back(fmt::format("  {} connection #{} {} {} {}", nodes_[i].label, c.id,
                                                    c.local.to_string(), c.inbound ? "<-" : "->", c.peer.to_string()));
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            JointNode& n = nodes_[i];
            // The writer's marks of each read connection, and how far its reads have got in them
            // (a connection's reads need ever more bytes: the search only moves forward).
            struct Source {
                std::size_t writer = 0;
                const std::vector<WriteMark>* marks = nullptr;
                std::size_t at = 0;
            };
            std::unordered_map<std::uint64_t, Source> sources;
            std::uint64_t last_conn = UINT64_MAX;
            Source* last = nullptr;
            for (const ReadNeed& need : n.scan.reads) {
                if (need.conn != last_conn) {
                    last_conn = need.conn;
                    auto [it, added] = sources.try_emplace(need.conn);
                    if (added) {
                        auto w = writer_of.find({i, need.conn});
                        if (w != writer_of.end()) {
                            it->second.writer = w->second.first;
                            it->second.marks = &nodes_[w->second.first].scan.writes[w->second.second];
                        }
                    }
                    last = &it->second;
                }
                if (last->marks == nullptr)
                    continue;
                // The first write that completes the bytes; past the writer's trace (a cut
                // writer's lost records): waits for all of it.
                const std::vector<WriteMark>& marks = *last->marks;
                while (last->at < marks.size() && marks[last->at].bytes_through < need.bytes_through)
                    ++last->at;
                const std::uint64_t ticks = last->at == marks.size() ? UINT64_MAX : marks[last->at].tick + 1;
                REPRISE_ASSERT(n.waits.empty() || n.waits.back().first <= need.tick);  // the scan read in tick order
                n.waits.push_back({need.tick, Wait{last->writer, ticks}});
                ++paired_reads_;
            }
        }
    }

    int run() {
        const std::int64_t wall_start = read_monotonic_ns();
        if (order_ != nullptr)
            run_in_order();
        else
            run_planned();
        report_progress(true);
        return finish(read_monotonic_ns() - wall_start);
    }

private:
    // Each run of the order: that node takes that many ticks (a trace not given is skipped).
    // Once a node has taken every tick the order gives it, it takes what is left of its trace at
    // once (its end record, or its cut: a crashed node freezes where it crashed). Nodes with
    // ticks left after the order (a trace and an order that disagree) take them at the end, in
    // the order of their last ticks.
    void run_in_order() {
        std::vector<std::uint64_t> left(nodes_.size(), 0);
        std::vector<std::size_t> last_run(nodes_.size(), 0);
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            left[i] = order_->traces[nodes_[i].order_index].ticks;
        std::size_t run = 0;
        trace::RunCursor runs(*order_);
        std::uint32_t index = 0;
        std::uint64_t count = 0;
        while (runs.next(index, count)) {
            const std::size_t i = node_of_trace_[index];
            ++run;
            if (i == SIZE_MAX)
                continue;
            last_run[i] = run;
            JointNode& n = nodes_[i];
            last_ = &n;
            std::uint64_t k = 0;
            if (!n.started && !n.done) {
                advance(n);  // its start: the run's first tick
                ++k;
            }
            if (verify_) {
                for (; k < count && !n.done; ++k) {
                    if (!reads_written(n) && order_early_reads_++ == 0)
                        first_early_read_ = fmt::format("node {} before its event #{}", n.label, n.replayer->events());
                    advance(n);
                }
            } else if (k < count && !n.done) {
                k += advance_run(n, count - k);
            }
            if (k < count)
                order_skipped_ += count - k;  // the trace ends before the order says
            left[i] -= std::min(left[i], count);
            if (left[i] == 0)
                finish_node(n);
            report_progress(false);
        }
        std::vector<std::size_t> tails(nodes_.size());
        for (std::size_t i = 0; i < tails.size(); ++i)
            tails[i] = i;
        std::stable_sort(tails.begin(), tails.end(), [&](std::size_t a, std::size_t b) { return last_run[a] < last_run[b]; });
        for (const std::size_t i : tails)
            if (!nodes_[i].done) {
                last_ = &nodes_[i];
                finish_node(nodes_[i]);
            }
    }

    // The node takes what is left of its trace: its end, or where it was cut.
    void finish_node(JointNode& n) {
        while (!n.done)
            advance(n);
    }

    void run_planned() {
        for (;;) {
            JointNode* next = pick();
            if (next == nullptr)
                break;
            last_ = next;
            advance(*next);
            // The node goes on, without a new pick, while its next tick still comes before every
            // other node's and reads only bytes already written (what pick() would choose).
            if (next->started) {
                const std::int64_t others_ns = earliest_other(*next);
                while (!next->done && next->ticks < next->scan.tick_wall_ns.size() &&
                       next->scan.tick_wall_ns[next->ticks] < others_ns && reads_written(*next))
                    advance(*next);
            }
            report_progress(false);
        }
    }

    // The node whose next tick comes first among those whose reads are all written; when every
    // node waits for another (traces that contradict each other), the first by wall clock.
    JointNode* pick() {
        JointNode* best = nullptr;
        JointNode* best_forced = nullptr;
        std::int64_t best_ns = 0, best_forced_ns = 0;
        for (JointNode& n : nodes_) {
            if (n.done)
                continue;
            if (!n.started) {
                // A run that has not started yet starts at its header's wall time.
                consider(n, n.header.start_wall_ns, true, best, best_ns, best_forced, best_forced_ns);
                continue;
            }
            if (n.ticks >= n.scan.tick_wall_ns.size())
                return &n;  // no tick left: its end (or a divergence to report) comes next
            consider(n, n.scan.tick_wall_ns[n.ticks], reads_written(n), best, best_ns, best_forced, best_forced_ns);
        }
        if (best == nullptr && best_forced != nullptr) {
            ++forced_;
            return best_forced;
        }
        return best;
    }

    // The earliest next tick of the nodes other than `n` (their start for those not started);
    // the smallest time when one of them has no tick left (its end must be taken first).
    std::int64_t earliest_other(const JointNode& n) const {
        std::int64_t earliest = INT64_MAX;
        for (const JointNode& o : nodes_) {
            if (&o == &n || o.done)
                continue;
            std::int64_t at = INT64_MIN;
            if (!o.started)
                at = o.header.start_wall_ns;
            else if (o.ticks < o.scan.tick_wall_ns.size())
                at = o.scan.tick_wall_ns[o.ticks];
            earliest = std::min(earliest, at);
        }
        return earliest;
    }

    static void consider(JointNode& n, std::int64_t ns, bool free, JointNode*& best, std::int64_t& best_ns,
                         JointNode*& best_forced, std::int64_t& best_forced_ns) {
        if (free && (best == nullptr || ns < best_ns)) {
            best = &n;
            best_ns = ns;
        }
        if (best_forced == nullptr || ns < best_forced_ns) {
            best_forced = &n;
            best_forced_ns = ns;
        }
    }

    // Whether every byte the node's next tick (ordinal n.ticks) reads was written already.
    bool reads_written(JointNode& n) {
        while (n.next_wait < n.waits.size() && n.waits[n.next_wait].first < n.ticks)
            ++n.next_wait;
        for (std::size_t k = n.next_wait; k < n.waits.size() && n.waits[k].first == n.ticks; ++k) {
            const Wait& w = n.waits[k].second;
            const JointNode& writer = nodes_[w.writer];
            // A writer that ended wrote all it ever will: a cut writer's lost bytes are not waited for.
            if (!writer.done && writer.ticks < w.ticks)
                return false;
        }
        return true;
    }

    // One step of the node: its next tick delivered and the tasks it woke run, then held
    // before the tick after.
    void advance(JointNode& n) {
        if (!n.started) {
            n.started = true;
            std::vector<std::string> args = n.runtime->recorded_argv();
            if (args.empty())
                args.push_back(program_);
            n.replayer->set_hold(false);
            start_entry(*n.runtime, entry_, std::move(args));  // takes the run's first tick
            n.ticks = n.scan.tick_wall_ns.empty() ? 0 : 1;
            settle(n);
            return;
        }
        n.replayer->set_hold(false);
        const bool ended_now = n.runtime->step();
        if (n.ticks < n.scan.tick_wall_ns.size())
            ++n.ticks;
        if (ended_now) {
            ended(n);
            return;
        }
        settle(n);
    }

    // `count` ticks of a started node in a row, each followed by the tasks it woke (a step runs
    // the tasks of the tick before its own; settle() runs the last one's and holds the node
    // again): the steps a single replay takes. Returns the ticks taken (fewer when the node's
    // trace ends first).
    std::uint64_t advance_run(JointNode& n, std::uint64_t count) {
        n.replayer->set_hold(false);
        for (std::uint64_t k = 0; k < count; ++k) {
            if (n.runtime->step()) {
                ended(n);
                return k;
            }
            if (n.replayer->joint_end() != Replayer::JointEnd::running) {
                n.done = true;
                return k;
            }
        }
        settle(n);
        return count;
    }

    // Runs the node's ready tasks (those its tick woke, and those they wake); the node is held
    // before its next tick.
    void settle(JointNode& n) {
        n.replayer->set_hold(true);
        if (n.runtime->impl().run_tasks())
            ended(n);
        else if (n.replayer->joint_end() != Replayer::JointEnd::running)
            n.done = true;
    }

    void ended(JointNode& n) {
        n.done = true;
        int code = 1;  // main threw: the recorded run's exit code was 1 too
        try {
            code = n.runtime->result();
        } catch (...) {
        }
        exit_codes_[static_cast<std::size_t>(&n - nodes_.data())] = code;
    }

    void report_progress(bool last) {
        if (!progress_)
            return;
        if ((++steps_ & 1023) != 0 && !last)
            return;
        const std::int64_t t = read_monotonic_ns();
        if (!last && t - last_progress_ns_ < 500'000'000)
            return;
        last_progress_ns_ = t;
        std::uint64_t events = 0;
        for (const JointNode& n : nodes_)
            events += n.replayer->events();
        fmt::print(stderr, "\rjoint replay: {} events over {} nodes   {}", events, nodes_.size(), last ? "\n" : "");
    }

    int finish(std::int64_t wall_ns) {
        std::uint64_t events = 0;
        bool frozen = false, damaged = false;
        std::string lines;
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            const JointNode& n = nodes_[i];
            events += n.replayer->events();
            const auto end = n.replayer->joint_end();
            frozen = frozen || end != Replayer::JointEnd::running;
            damaged = damaged || end == Replayer::JointEnd::damaged;
            std::string how;
            switch (end) {
            case Replayer::JointEnd::running: how = fmt::format("ended as recorded (exit code {})", exit_codes_[i]); break;
            case Replayer::JointEnd::cut: how = "replayed to its cut (the trace has no end record)"; break;
            case Replayer::JointEnd::damaged: how = "replayed up to the damage in its trace"; break;
            case Replayer::JointEnd::still_running: how = "replayed to where the recording stopped"; break;
            }
            lines += fmt::format("  {} ({}): {} events, {}\n", n.label, n.trace, n.replayer->events(), how);
        }
        std::string how;
        if (order_ != nullptr)
            how = fmt::format("ticks taken in the order the simulation ran them ({}){}", order_path_,
                              !verify_               ? std::string()
                              : order_early_reads_ == 0 ? fmt::format("; checked against a scan of the traces: {} reads "
                                                                      "of connections between the nodes after their writes",
                                                                      paired_reads_)
                                                     : fmt::format("; CHECKED AGAINST A SCAN OF THE TRACES: {} tick(s) "
                                                                   "read bytes before they were written (the first: {})",
                                                                   order_early_reads_, first_early_read_));
        else
            how = fmt::format("{} reads of connections between the nodes ordered after their writes{}", paired_reads_,
                              forced_ == 0 ? std::string()
                                           : fmt::format("; the traces contradict each other's order {} time(s) (a "
                                                         "read before its write: taken by wall clock)",
                                                         forced_));
        fmt::print(stderr, "reprise: joint replay done: {} nodes, {} events, wall time {:.3f} s, no divergence; {}\n{}",
                   nodes_.size(), events, static_cast<double>(wall_ns) / 1e9, how, lines);
        if (order_ != nullptr) {
            // The replay took each node's ticks as its trace holds them; the order only said when.
            std::string differ;
            for (const JointNode& n : nodes_) {
                const std::uint64_t taken = n.started ? 1 + n.runtime->stats().ticks : 0;
                const std::uint64_t ordered = order_->traces[n.order_index].ticks;
                if (taken != ordered)
                    differ += fmt::format("  {}: the order gives it {} ticks, its trace had {}\n", n.label, ordered, taken);
            }
            if (!differ.empty() || order_skipped_ != 0)
                fmt::print(stderr,
                           "reprise: note: the run order {} and the traces disagree (a recording that stopped early: "
                           "its byte budget, a failed write; or a trace from another run): ticks past the order were "
                           "taken at the end{}\n{}",
                           order_path_, order_skipped_ != 0 ? fmt::format("; {} ticks of the order had no trace left", order_skipped_) : std::string(), differ);
        }
        if (!unpaired_.empty()) {
            fmt::print(stderr, "  connections whose other end is in none of these traces ({}; its reads are not ordered):\n",
                       unpaired_.size());
            for (std::size_t i = 0; i < unpaired_.size() && i < unpaired_listed_max; ++i)
                fmt::print(stderr, "{}\n", unpaired_[i]);
            if (unpaired_.size() > unpaired_listed_max)
                fmt::print(stderr, "  ... {} more\n", unpaired_.size() - unpaired_listed_max);
        }
        std::fflush(stdout);
        std::fflush(stderr);
        int code = damaged ? replay_exit_damaged : 0;
        if (order_early_reads_ != 0)
            code = joint_exit_order_contradicted;
        for (const JointNode& n : nodes_)
            if (n.break_at != 0 && n.replayer->events() <= n.break_at) {
                fmt::print(stderr, "reprise: error: --break-at {}:{} is past that node's end: it has {} events, #0 to #{}; "
                                   "it was never reached\n",
                           n.label, n.break_at, n.replayer->events(), n.replayer->events() == 0 ? 0 : n.replayer->events() - 1);
                code = replay_exit_break_at_past_end;
            }
        std::fflush(stderr);
        // Under a debugger the session stays: stopped on the node that took the last step.
        if (last_ != nullptr)
            last_->replayer->stop_at_joint_end(fmt::format(
                "the joint replay's end: every node is done ({} events; node {} took the last step){}", events,
                last_->label, code == replay_exit_break_at_past_end ? " (a --break-at was past its node's end)" : ""));
        // A frozen node's tasks are parked for good: its runtime cannot be taken down.
        if (frozen)
            std::_Exit(code);
        return code;
    }

    std::vector<JointNode>& nodes_;
    const ProgramEntry& entry_;
    std::string program_;
    std::map<std::size_t, int> exit_codes_;
    std::uint64_t forced_ = 0;
    std::uint64_t paired_reads_ = 0;
    const trace::RunOrder* order_ = nullptr;  ///< a simulation's run order, followed (else the plan)
    std::string order_path_;
    std::vector<std::size_t> node_of_trace_;  ///< by the order's trace index: the node (SIZE_MAX: not given)
    std::uint64_t order_skipped_ = 0;         ///< ticks of the order a node's trace did not have
    bool verify_ = false;                     ///< the order is checked against the plan
    std::uint64_t order_early_reads_ = 0;     ///< ticks the order took before the bytes they read were written
    std::string first_early_read_;            ///< where the first of them was
    static constexpr std::size_t unpaired_listed_max = 10;
    std::vector<std::string> unpaired_;  ///< one line each
    std::uint64_t steps_ = 0;
    JointNode* last_ = nullptr;  ///< the node that took the last step
    std::int64_t last_progress_ns_ = 0;
    bool progress_ = ::isatty(STDERR_FILENO) != 0;
};

// A simulation's run order for these traces: sim.order in the folder that holds them all,
// naming each of them (its file, node and seed); sets each node's order_index. false when there
// is none to follow, with `why` when the folder has one that cannot be followed.
bool find_run_order(std::vector<JointNode>& nodes, trace::RunOrder& order, std::string& path, std::string& why) {
    std::filesystem::path folder;
    for (std::size_t i = 0; i < nodes.size(); ++i) {
        std::error_code ec;
        std::filesystem::path f = std::filesystem::weakly_canonical(nodes[i].trace, ec).parent_path();
        if (ec)
            f = std::filesystem::path(nodes[i].trace).lexically_normal().parent_path();
        if (i == 0)
            folder = f;
        else if (f != folder)
            return false;  // traces from several folders: not one simulation's as it left them
    }
    path = (folder / trace::run_order_file_name).string();
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        return false;
    try {
        if (!trace::read_run_order(path, order, why))
            return false;
    } catch (const std::bad_alloc&) {
        why = fmt::format("{}: not enough memory to read it", path);
        return false;
    }
    for (JointNode& n : nodes) {
        const std::string file = std::filesystem::path(n.trace).filename().string();
        for (std::size_t k = 0; k < order.traces.size() && n.order_index == SIZE_MAX; ++k) {
            const trace::RunOrderTrace& t = order.traces[k];
            if (t.file == file && t.node == n.header.node && t.seed == n.header.seed)
                n.order_index = k;
        }
        if (n.order_index == SIZE_MAX) {
            why = fmt::format("{} names no trace {} of node '{}' with seed {} (another run's traces?)", path, file,
                              n.header.node, n.header.seed);
            for (JointNode& m : nodes)
                m.order_index = SIZE_MAX;
            return false;
        }
    }
    return true;
}

// "NODE:N" or "N" of --break-at: the node (a label, a name or an index) and the event.
bool parse_break_at(std::string_view text, std::string& node, std::uint64_t& event) {
    const auto colon = text.rfind(':');
    std::string_view number = colon == std::string_view::npos ? text : text.substr(colon + 1);
    node = colon == std::string_view::npos ? std::string() : std::string(text.substr(0, colon));
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), event);
    return !number.empty() && ec == std::errc{} && ptr == number.data() + number.size() && event > 0;
}

} // namespace

int run_joint_replay(const ProgramEntry& entry, const Options& base, const std::vector<std::string>& traces,
                     const std::string& break_at, const std::string& program) {
    // Each node registers a crash hook (two with --mark-stdio): their table bounds the nodes.
    if (traces.size() > limits::crash_hooks_max / 2) {
        fmt::print(stderr, "{}: a joint replay takes at most {} traces, got {}\n", program, limits::crash_hooks_max / 2,
                   traces.size());
        return 2;
    }
    // One trace given twice would be replayed as two runs of its node.
    {
        std::map<std::string, std::string> seen_paths;
        for (const std::string& t : traces) {
            std::error_code ec;
            const std::filesystem::path real = std::filesystem::weakly_canonical(t, ec);
            const std::string key = ec ? t : real.string();
            if (auto [it, fresh] = seen_paths.emplace(key, t); !fresh) {
                fmt::print(stderr, "{}: the trace {} is given twice ({} and {}): give each trace once\n", program, key,
                           it->second, t);
                return 2;
            }
        }
    }
    std::vector<JointNode> nodes(traces.size());
    std::optional<trace::TraceKey> key;
    if (!base.trace_key_path.empty()) {
        std::string error;
        auto loaded = trace::load_trace_key(base.trace_key_path, error);
        if (!loaded.ok()) {
            fmt::print(stderr, "{}: {}\n", program, error);
            return 2;
        }
        key = *loaded;
    }
    std::string break_node;
    std::uint64_t break_event = 0;
    if (!break_at.empty() && !parse_break_at(break_at, break_node, break_event)) {
        fmt::print(stderr, "{}: --break-at takes N or NODE:N (N from 1), got '{}'\n", program, break_at);
        return 2;
    }
    // Headers first: labels, and runs of one node in the order they started.
    for (std::size_t i = 0; i < traces.size(); ++i) {
        std::string error;
        auto header = trace::Reader::read_header(traces[i], &error);  // headers are never sealed
        if (!header.ok()) {
            fmt::print(stderr, "{}: {}\n", program, error);
            return 2;
        }
        // Every node runs this program's main: a trace of another program is refused up front
        // (a simulation's folder holds its clients' traces too).
        if (!header->program.empty() && !entry.name.empty() && header->program != entry.name && !base.replay_any_program) {
            fmt::print(stderr,
                       "{}: {} was recorded by program '{}', not '{}': a joint replay runs one program; give only "
                       "its traces\n",
                       program, traces[i], header->program, entry.name);
            return 2;
        }
        nodes[i].trace = traces[i];
        nodes[i].header = *header;
    }
    trace::RunOrder order;
    std::string order_path, order_why;
    const bool in_order = find_run_order(nodes, order, order_path, order_why);
    if (!order_why.empty())
        fmt::print(stderr, "reprise: note: {}: the traces are scanned for an order instead\n", order_why);
    // REPRISE_JOINT_VERIFY_ORDER (set, not empty, not 0): a run order is followed and checked
    // against the scan's plan.
    const char* verify_env = std::getenv("REPRISE_JOINT_VERIFY_ORDER");  // reprise-allow: env (the replay driver's own check)
    const bool verify_asked = verify_env != nullptr && *verify_env != '\0' && std::string_view(verify_env) != "0";
    const bool verify = in_order && verify_asked;
    if (verify_asked && !in_order)
        fmt::print(stderr, "reprise: note: REPRISE_JOINT_VERIFY_ORDER: these traces come with no run order to check "
                           "(no sim.order beside them that names them all): they are scanned for an order\n");
    for (std::size_t i = 0; i < nodes.size() && (!in_order || verify); ++i) {
        // The scan: ticks, connections, reads and writes, to plan the order before replaying.
        // The scan keeps the chunks it opened for the replay, which reads them only once so.
        std::string error;
        nodes[i].chunks = std::make_shared<trace::ChunkShare>(joint_chunk_share_bytes / traces.size());
        if (!scan_trace(traces[i], key ? &*key : nullptr, nodes[i].scan, nodes[i].chunks, error)) {
            fmt::print(stderr, "{}: {}\n", program, error);
            return 2;
        }
    }
    std::stable_sort(nodes.begin(), nodes.end(), [](const JointNode& a, const JointNode& b) {
        return a.header.start_wall_ns < b.header.start_wall_ns;
    });
    std::map<std::string, int> runs, seen;
    for (const JointNode& n : nodes)
        ++runs[n.header.node];
    for (JointNode& n : nodes)
        n.label = runs[n.header.node] > 1 ? fmt::format("{}/{}", n.header.node, ++seen[n.header.node]) : n.header.node;
    if (!break_node.empty()) {
        std::size_t matches = 0;
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            JointNode& n = nodes[i];
            if (n.label == break_node || (runs[n.header.node] == 1 && n.header.node == break_node) ||
                break_node == std::to_string(i)) {
                n.break_at = break_event;
                ++matches;
            }
        }
        if (matches != 1) {
            std::string labels;
            for (std::size_t i = 0; i < nodes.size(); ++i)
                labels += fmt::format("{}{} ({})", i == 0 ? "" : ", ", nodes[i].label, i);
            fmt::print(stderr, "{}: --break-at {}: {} node '{}' among {}\n", program, break_at,
                       matches == 0 ? "no" : "more than one", break_node, labels);
            return 2;
        }
    } else if (break_event != 0) {
        fmt::print(stderr, "{}: --break-at {} names no node: a joint replay takes --break-at=NODE:N\n", program, break_at);
        return 2;
    }

    for (std::size_t i = 0; i < nodes.size(); ++i) {
        JointNode& n = nodes[i];
        Options o = base;
        o.replay_path = n.trace;
        o.break_at = n.break_at;
        o.record_path.clear();
        o.on_divergence = [label = n.label, program](std::string_view) {
            fmt::print(stderr, "{}: joint replay: node '{}' diverged; every node stops here\n", program, label);
            std::fflush(stderr);
        };
        try {
            n.runtime = std::make_unique<Runtime>(o);
        } catch (const std::exception& e) {
            fmt::print(stderr, "{}: {}\n", program, e.what());
            return 2;
        }
        n.replayer = dynamic_cast<Replayer*>(n.runtime->impl().backend.get());
        REPRISE_ASSERT_MSG(n.replayer != nullptr, "a joint replay's runtime replays");
        n.replayer->set_joint(true);
        n.runtime->impl().debug.node = n.label.c_str();
        if (in_order && !verify) {
            n.replayer->count_events_for_debugger(true);  // no scan counted them
        } else {
            n.replayer->take_chunks(std::move(n.chunks));
            n.runtime->impl().debug.events_total = n.scan.events;
        }
    }
    fmt::print(stderr, "reprise: joint replay of {} nodes:", nodes.size());
    for (const JointNode& n : nodes)
        fmt::print(stderr, " {}", n.label);
    fmt::print(stderr, "\n");
    std::fflush(stderr);
    JointDriver driver(nodes, entry, program);
    if (!in_order || verify)
        driver.plan();
    if (in_order)
        driver.follow(order, order_path, verify);
    return driver.run();
}

} // namespace reprise::detail
