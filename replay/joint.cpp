// Joint replay: the traces of several nodes (and several runs of one node) replayed in one process, one runtime each, stepped in happens-before order.
//
// Each node replays its own trace, as alone: no byte passes between them. What the driver adds
// is the order, so that a debugger stopped anywhere sees a cluster state that could have
// happened. A node is held just before each of its ticks; the driver lets go the node whose
// next tick came first by its recorded wall clock, unless that tick reads bytes the other end
// of its connection (paired by addresses, as `reprise cluster` pairs them) has not written yet
// in this replay: then that node waits. A node's tick and the tasks it wakes run together.
#include "reprise/replay/internal/replayer.hpp"

#include "reprise/clock/internal/system_clock.hpp"
#include "reprise/record/chunk.hpp"
#include "reprise/runtime/main.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <unistd.h>

namespace reprise::detail {
namespace {

/// A connection as a trace opened it: its id in that node, its two ends, and when.
struct OpenedConn {
    std::uint64_t id = 0;
    Address local;
    Address peer;
    std::int64_t wall_ns = 0;
};

struct JointNode {
    std::string trace;
    std::vector<OpenedConn> opened;  ///< every connection the trace opens (the address scan)
    trace::Header header;
    std::string label;              ///< the node's name, with /K when it ran several times
    std::unique_ptr<Runtime> runtime;
    Replayer* replayer = nullptr;
    bool started = false;
    bool done = false;              ///< ended as recorded, or frozen at its trace's end
    std::uint64_t break_at = 0;
};

/// Where the bytes a connection reads were written: (node, connection), cached once found.
using ConnKey = std::pair<std::size_t, std::uint64_t>;

class JointDriver {
public:
    JointDriver(std::vector<JointNode>& nodes, const ProgramEntry& entry, std::string program)
        : nodes_(nodes), entry_(entry), program_(std::move(program)) {}

    int run() {
        const std::int64_t wall_start = read_monotonic_ns();
        for (;;) {
            JointNode* next = pick();
            if (next == nullptr)
                break;
            advance(*next);
            report_progress(false);
        }
        report_progress(true);
        return finish(read_monotonic_ns() - wall_start);
    }

private:
    // The node whose next tick comes first among those whose reads are all written; when every
    // node waits for another (traces that contradict each other), the first by wall clock.
    JointNode* pick() {
        JointNode* best = nullptr;
        JointNode* best_forced = nullptr;
        std::int64_t best_ns = 0, best_forced_ns = 0;
        for (std::size_t i = 0; i < nodes_.size(); ++i) {
            JointNode& n = nodes_[i];
            if (n.done)
                continue;
            if (!n.started) {
                // A run that has not started yet starts at its header's wall time.
                consider(n, n.header.start_wall_ns, true, best, best_ns, best_forced, best_forced_ns);
                continue;
            }
            const Replayer::TickPreview* p = n.replayer->preview_tick();
            if (p == nullptr)
                return &n;  // not before a tick (its end, or a divergence to report): step it now
            consider(n, p->wall_ns, reads_written(i, *p), best, best_ns, best_forced, best_forced_ns);
        }
        if (best == nullptr && best_forced != nullptr) {
            ++forced_;
            return best_forced;
        }
        return best;
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

    // Whether every byte node i's next tick reads was already written by the other end.
    bool reads_written(std::size_t i, const Replayer::TickPreview& p) {
        for (const auto& [conn, bytes] : p.reads) {
            auto writer = writer_of(i, conn);
            if (!writer)
                continue;  // the other end is not among the traces (or not known yet)
            const JointNode& w = nodes_[writer->first];
            if (w.done)
                continue;  // it wrote all it ever will: a cut writer's lost bytes are not waited for
            const auto& mine = nodes_[i].replayer->connections();
            const auto& theirs = w.replayer->connections();
            const auto m = mine.find(conn);
            const auto t = theirs.find(writer->second);
            const std::uint64_t read = m == mine.end() ? 0 : m->second.read;
            const std::uint64_t written = t == theirs.end() ? 0 : t->second.written;
            if (read + bytes > written)
                return false;
        }
        return true;
    }

    std::optional<ConnKey> writer_of(std::size_t i, std::uint64_t conn) {
        if (auto it = writers_.find({i, conn}); it != writers_.end())
            return it->second;
        return std::nullopt;
    }

public:
    // Pairs every connection with the other end's, from the address scan: the connection of
    // another node whose ends are this one's, swapped (nearest in time when a port was used
    // again). Pairs known before the replay starts hold back a read whose writer has not even
    // started yet.
    void pair_connections() {
        std::map<std::pair<std::string, std::string>, std::vector<std::pair<std::size_t, const OpenedConn*>>> by_ends;
        for (std::size_t j = 0; j < nodes_.size(); ++j)
            for (const OpenedConn& c : nodes_[j].opened)
                by_ends[{c.local.to_string(), c.peer.to_string()}].emplace_back(j, &c);
        for (std::size_t i = 0; i < nodes_.size(); ++i)
            for (const OpenedConn& c : nodes_[i].opened) {
                auto it = by_ends.find({c.peer.to_string(), c.local.to_string()});
                if (it == by_ends.end())
                    continue;
                const std::pair<std::size_t, const OpenedConn*>* best = nullptr;
                for (const auto& cand : it->second)
                    if (cand.first != i &&
                        (best == nullptr || std::llabs(cand.second->wall_ns - c.wall_ns) < std::llabs(best->second->wall_ns - c.wall_ns)))
                        best = &cand;
                if (best != nullptr)
                    writers_.emplace(ConnKey{i, c.id}, ConnKey{best->first, best->second->id});
            }
    }

private:
    // One step of the node: its next tick delivered and the tasks it woke run, then held
    // before the tick after.
    void advance(JointNode& n) {
        if (!n.started) {
            n.started = true;
            std::vector<std::string> args = n.runtime->recorded_argv();
            if (args.empty())
                args.push_back(program_);
            start_entry(*n.runtime, entry_, std::move(args));  // reads the run's first tick
            settle(n);
            return;
        }
        n.replayer->set_hold(false);
        if (n.runtime->step()) {
            ended(n);
            return;
        }
        settle(n);
    }

    // Runs the node's ready tasks up to its next tick, where it is held.
    void settle(JointNode& n) {
        n.replayer->set_hold(true);
        if (n.runtime->step())
            ended(n);
        else if (n.replayer->joint_end() != Replayer::JointEnd::running)
            n.done = true;
    }

    void ended(JointNode& n) {
        n.done = true;
        exit_codes_[&n - nodes_.data()] = n.runtime->result();
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
        fmt::print(stderr,
                   "reprise: joint replay done: {} nodes, {} events, wall time {:.3f} s, no divergence{}\n{}",
                   nodes_.size(), events, static_cast<double>(wall_ns) / 1e9,
                   forced_ == 0 ? std::string()
                                : fmt::format("; the traces contradict each other's order {} time(s) (a read before "
                                              "its write: taken by wall clock)",
                                              forced_),
                   lines);
        std::fflush(stdout);
        std::fflush(stderr);
        const int code = damaged ? replay_exit_damaged : 0;
        // A frozen node's tasks are parked for good: its runtime cannot be taken down.
        if (frozen)
            std::_Exit(code);
        return code;
    }

    std::vector<JointNode>& nodes_;
    const ProgramEntry& entry_;
    std::string program_;
    std::map<ConnKey, ConnKey> writers_;
    std::map<std::size_t, int> exit_codes_;
    std::uint64_t forced_ = 0;
    std::uint64_t steps_ = 0;
    std::int64_t last_progress_ns_ = 0;
    bool progress_ = ::isatty(STDERR_FILENO) != 0;
};

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
    std::vector<JointNode> nodes(traces.size());
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
        // The address scan: every connection the trace opens, to pair them before replaying.
        std::optional<trace::TraceKey> key;
        if (!base.trace_key_path.empty()) {
            auto loaded = trace::load_trace_key(base.trace_key_path, error);
            if (!loaded.ok()) {
                fmt::print(stderr, "{}: {}\n", program, error);
                return 2;
            }
            key = *loaded;
        }
        auto reader = trace::Reader::open(traces[i], &error, key ? &*key : nullptr);
        if (!reader.ok()) {
            fmt::print(stderr, "{}: {}\n", program, error);
            return 2;
        }
        std::int64_t wall_ns = header->start_wall_ns;
        trace::Record r;
        while (reader->next(r)) {
            if (const auto* t = std::get_if<trace::Tick>(&r))
                wall_ns = t->wall_ns;
            else if (const auto* a = std::get_if<trace::Accepted>(&r))
                nodes[i].opened.push_back({a->connection, a->local, a->peer, wall_ns});
            else if (const auto* c = std::get_if<trace::Connected>(&r); c && c->error == 0)
                nodes[i].opened.push_back({c->connection, c->local, c->peer, wall_ns});
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
    }
    fmt::print(stderr, "reprise: joint replay of {} nodes:", nodes.size());
    for (const JointNode& n : nodes)
        fmt::print(stderr, " {}", n.label);
    fmt::print(stderr, "\n");
    std::fflush(stderr);
    JointDriver driver(nodes, entry, program);
    driver.pair_connections();
    return driver.run();
}

} // namespace reprise::detail
