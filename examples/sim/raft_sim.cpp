// reprise-raft-sim: a reprise-raft cluster, unmodified, under the deterministic simulator: a nemesis drawn
// from the seed, clients whose histories are checked for linearizability, and RAFT's safety and liveness
// checked from every node's state. A failing seed saves every node's trace and the history, and prints
// the line that reproduces it.
#include "node.hpp"
#include "probe.hpp"
#include "resp_client.hpp"

#include <reprise/runtime/reprise.hpp>
#include <reprise/sim/linearizability.hpp>
#include <reprise/sim/runner.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <set>

using namespace reprise;
using namespace std::chrono_literals;

namespace {

constexpr std::uint16_t raft_port = 7001;
constexpr std::uint16_t client_port = 7101;
/// reprise-raft's default election timeout's upper bound: a node that heard nothing for this
/// long may start an election, so a fault's effects last this long after it healed.
constexpr Duration election_max = 800ms;
/// The liveness promise: after the last fault healed, a write commits within this long.
constexpr Duration liveness_bound = 10s;

std::int64_t ns(Duration d) { return d.count(); }
std::string ms_text(std::int64_t nanos) { return fmt::format("{:.3f}s", static_cast<double>(nanos) / 1e9); }

/// The nemesis's own random numbers (splitmix64 of the seed): drawn in the runner, outside every
/// node, so that a node's own draws do not shift when the nemesis changes, and the other way.
struct Draw {
    std::uint64_t state;
    std::uint64_t next() {
        std::uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }
    std::int64_t between(std::int64_t lo, std::int64_t hi) {
        return lo + static_cast<std::int64_t>(below(static_cast<std::uint64_t>(hi - lo) + 1));
    }
};

const std::vector<std::string> all_fault_kinds = {"partition", "one-way", "crash", "pause", "skew", "disk", "delay"};

/// Every knob of a run, from the flags; printed once, and in a failure's findings.
struct Knobs {
    int nodes = 3;
    int clients = 5;
    int keys = 4;
    Duration op_interval = 100ms;
    Duration request_timeout = 2s;
    bool nemesis = true;
    Duration nemesis_interval = 2s;
    Duration nemesis_duration = 3s;
    Duration settle = 12s;  ///< the end of the run without faults, for the liveness check
    std::vector<std::string> kinds = all_fault_kinds;
    std::int64_t max_needless_elections = 0;
    std::uint64_t checker_steps = 20'000'000;
    /// The runner's knobs of the world (--time, --latency, --faults, disks), from its options.
    std::string world;

    /// The world's knobs as the runner's flags name them.
    static std::string world_text(const sim::WorldOptions& o, Duration time) {
        auto us = [](Duration d) { return fmt::format("{}us", ns(d) / 1000); };
        auto ms = [](Duration d) { return fmt::format("{}ms", ns(d) / 1'000'000); };
        const bool faults = o.faults.mean_interval.count() > 0;
        const sim::DiskFaults disk = o.disk_faults.value_or(sim::DiskFaults{});
        return fmt::format("time={} latency={}..{} faults={}{} fsync-failure-rate={} disk-capacity={}", ms(time),
                           us(o.latency.min), us(o.latency.max), faults ? "on" : "off",
                           faults ? fmt::format(" fault-interval={} fault-duration={} no-crash={}", ms(o.faults.mean_interval),
                                                ms(o.faults.mean_duration), o.faults.crash_restart == 0 ? "yes" : "no")
                                  : std::string(),
                           disk.sync_failure_rate, disk.capacity_bytes);
    }

    std::string text() const {
        std::string k;
        for (auto& kind : kinds)
            k += (k.empty() ? "" : ",") + kind;
        return fmt::format(
            "nodes={} clients={} keys={} op-interval={}ms request-timeout={}ms nemesis={} nemesis-kinds={} "
            "nemesis-interval={}ms nemesis-duration={}ms settle={}ms liveness-bound={}s{} max-needless-elections={} "
            "checker-steps={} {}",
            nodes, clients, keys, ns(op_interval) / 1'000'000, ns(request_timeout) / 1'000'000, nemesis ? "on" : "off",
            k.empty() ? "none" : k, ns(nemesis_interval) / 1'000'000, ns(nemesis_duration) / 1'000'000,
            ns(settle) / 1'000'000, ns(liveness_bound) / 1'000'000'000,
            settle >= liveness_bound ? "" : " (liveness not checked: --settle is under the bound)", max_needless_elections,
            checker_steps, world);
    }
};

/// RAFT's safety properties (§5.2, §5.3, §5.4), checked as the nodes report through raft::Observer.
class SafetyChecker final : public raft::Observer {
public:
    explicit SafetyChecker(sim::World& world) : world_(world) {}

    void started(const raft::Node& node) override { live_.insert(&node); }
    void stopped(const raft::Node& node) override { live_.erase(&node); }

    void became_leader(const raft::Node& node) override {
        const std::int64_t at = ns(world_.now());
        leaders_.push_back({at, node.id(), node.term()});
        // Election safety: at most one leader per term.
        if (auto [it, fresh] = leader_of_term_.try_emplace(node.term(), node.id()); !fresh && it->second != node.id())
            violate(fmt::format("election safety: n{} and n{} both became leader of term {}", it->second, node.id(),
                                node.term()));
        // Leader completeness: the new leader holds every entry committed in an earlier term (a
        // leader of an old term, elected late, need not hold what later terms committed).
        const raft::Storage& log = node.storage();
        for (auto& [index, entry] : committed_) {
            if (entry.commit_term >= node.term())
                continue;
            if (index > log.last_index() || log.term_at(index) != entry.term) {
                violate(fmt::format("leader completeness: n{} became leader of term {} without committed entry {} "
                                    "(term {}): its log has {}",
                                    node.id(), node.term(), index, entry.term,
                                    index > log.last_index() ? fmt::format("{} entries", log.last_index())
                                                             : fmt::format("term {} there", log.term_at(index))));
                break;
            }
        }
        check_log_matching(node);
    }

    void applied(const raft::Node& node, std::uint64_t index, const raft::Entry& entry) override {
        // State machine safety: no two nodes apply different entries at one index.
        auto [it, fresh] = committed_.try_emplace(index, Applied{entry.term, entry.command, node.id(), node.term()});
        // The term it was committed in: the lowest term of a node applying it (the leader that
        // committed it applies it in its term; anyone else learns of it in that term or later).
        it->second.commit_term = std::min(it->second.commit_term, node.term());
        if (!fresh && (it->second.term != entry.term || it->second.command != entry.command))
            violate(fmt::format("state machine safety: n{} applied entry {} of term {}, n{} applied one of term {}{}",
                                node.id(), index, entry.term, it->second.node, it->second.term,
                                it->second.term == entry.term ? " with other bytes" : ""));
    }

    /// Log matching between every two live nodes (§5.3): where two logs hold an entry of the
    /// same index and term, they are identical up to it.
    void check_log_matching(const raft::Node& node) {
        for (const raft::Node* other : live_)
            if (other != &node)
                check_pair(node, *other);
    }
    void check_all_pairs() {
        for (const raft::Node* a : live_)
            for (const raft::Node* b : live_)
                if (a->id() < b->id())
                    check_pair(*a, *b);
    }

    const std::vector<std::string>& violations() const { return violations_; }
    struct Leadership {
        std::int64_t at_ns;
        std::uint32_t node;
        std::uint64_t term;
    };
    const std::vector<Leadership>& leaders() const { return leaders_; }

private:
    struct Applied {
        std::uint64_t term;
        std::string command;
        std::uint32_t node;
        std::uint64_t commit_term;
    };

    void check_pair(const raft::Node& a, const raft::Node& b) {
        const raft::Storage& la = a.storage();
        const raft::Storage& lb = b.storage();
        std::uint64_t last_same = 0;
        for (std::uint64_t i = std::min(la.last_index(), lb.last_index()); i >= 1; --i)
            if (la.term_at(i) == lb.term_at(i)) {
                last_same = i;
                break;
            }
        for (std::uint64_t i = 1; i <= last_same; ++i)
            if (la.term_at(i) != lb.term_at(i) || la.entry(i).command != lb.entry(i).command) {
                violate(fmt::format("log matching: n{} and n{} agree on entry {} (term {}) but differ at entry {} "
                                    "(terms {} and {})",
                                    a.id(), b.id(), last_same, la.term_at(last_same), i, la.term_at(i), lb.term_at(i)));
                return;
            }
    }

    void violate(std::string what) {
        if (violations_.size() < 10)
            violations_.push_back(fmt::format("at {}: {}", ms_text(ns(world_.now())), std::move(what)));
    }

    sim::World& world_;
    std::set<const raft::Node*> live_;
    std::map<std::uint64_t, std::uint32_t> leader_of_term_;
    std::map<std::uint64_t, Applied> committed_;
    std::vector<Leadership> leaders_;
    std::vector<std::string> violations_;
};

/// Everything one run collects: the clients' history and counts, the nemesis's record.
struct Run {
    Knobs knobs;
    std::vector<sim::Operation> history;
    std::map<std::uint64_t, sim::Operation> pending;  ///< each client's request without a reply yet
    std::uint64_t refused = 0;        ///< requests that failed for sure (redirects, no leader, refused)
    std::uint64_t dropped_reads = 0;  ///< reads without an answer (they constrain nothing)
    std::unique_ptr<SafetyChecker> safety;
    std::int64_t heal_ns = 0;  ///< when the nemesis stopped and everything healed
    /// Per raft node (index 0 = n1): since when it is untroubled (INT64_MAX: a fault holds it now).
    std::vector<std::int64_t> untroubled_since;
    std::uint64_t faults = 0;
    sim::CheckResult linearizability;
    bool checked = false;

    std::uint64_t unknown() const {
        return static_cast<std::uint64_t>(std::count_if(history.begin(), history.end(), [](const sim::Operation& o) {
            return o.outcome == sim::Operation::Outcome::unknown;
        }));
    }
    /// Elections that deposed a healthy leader: the leader before, and a majority of the nodes with
    /// it, were running and untouched by any fault for two election timeouts before the new leader
    /// took office (a leader that lost its majority rightly steps down: check-quorum).
    std::vector<std::string> needless_elections() const {
        std::vector<std::string> out;
        const auto& leaders = safety->leaders();
        for (std::size_t i = 1; i < leaders.size(); ++i) {
            const auto& before = leaders[i - 1];
            const auto& after = leaders[i];
            if (after.node == before.node && after.term == before.term)
                continue;
            const std::int64_t window_start = after.at_ns - 2 * ns(election_max);
            const std::int64_t since = untroubled_since_at(before.node, after.at_ns);
            int healthy = 0;
            for (int n = 1; n <= knobs.nodes; ++n)
                healthy += untroubled_since_at(static_cast<std::uint32_t>(n), after.at_ns) <= window_start ? 1 : 0;
            if (since <= window_start && 2 * healthy > knobs.nodes)
                out.push_back(after.node == before.node
                                  ? fmt::format("at {}: n{} became leader again, of term {}: its own leadership of term {} "
                                                "was cut short though it was untroubled since {}",
                                                ms_text(after.at_ns), after.node, after.term, before.term, ms_text(since))
                                  : fmt::format("at {}: n{} became leader of term {}, deposing n{} (term {}), untroubled since {}",
                                                ms_text(after.at_ns), after.node, after.term, before.node, before.term,
                                                ms_text(since)));
        }
        return out;
    }
    /// When raft node `id` last came out of a fault, as of time `at` (INT64_MAX: in one then).
    std::int64_t untroubled_since_at(std::uint32_t id, std::int64_t at) const {
        std::int64_t since = 0;
        for (auto& [node, from, to] : troubles)
            if (node == id && from <= at)
                since = to > at ? std::numeric_limits<std::int64_t>::max() : std::max(since, to);
        return since;
    }
    /// Faults by raft node: (node id, from, to); to is INT64_MAX until healed.
    std::vector<std::tuple<std::uint32_t, std::int64_t, std::int64_t>> troubles;
};

// --- clients ------------------------------------------------------------------------------------

/// A client node: one request at a time to a node of the cluster, following MOVED redirects,
/// on a small set of keys. Each request is an operation of the history, stamped with the
/// world's virtual time (not the client's clock, which may be skewed). A request that got no
/// answer, or an answer that says its outcome is unknown, has an unknown outcome; a retry is
/// a new operation.
ProgramEntry client_program(std::shared_ptr<Run> run, sim::World& world, std::uint64_t client_index) {
    return ProgramEntry{.name = "raft-client", .main = [run, &world, client_index](MainContext&) {
        const Knobs& k = run->knobs;
        examples::RespClient c;
        int target = static_cast<int>(random_below(static_cast<std::uint64_t>(k.nodes)));
        auto address_of = [](int node) { return *Address::parse(fmt::format("10.0.0.{}:{}", node + 1, client_port)); };
        auto switch_node = [&](int to) {
            c.close();
            target = to >= 0 ? to : static_cast<int>(random_below(static_cast<std::uint64_t>(k.nodes)));
        };
        for (std::uint64_t i = 0;; ++i) {
            if (!sleep_for(Duration(static_cast<std::int64_t>(random_below(2 * static_cast<std::uint64_t>(ns(k.op_interval)))))).ok())
                return 0;
            if (!c.is_open() && !c.open(address_of(target), 1s).ok()) {
                ++run->refused;
                switch_node(-1);
                continue;
            }
            sim::Operation op;
            op.client = client_index;
            op.key = fmt::format("k{}", random_below(static_cast<std::uint64_t>(k.keys)));
            std::vector<std::string> args;
            const auto pick = random_below(100);
            if (pick < 40) {
                op.kind = sim::Operation::Kind::get;
                args = {"GET", op.key};
            } else if (pick < 65) {
                op.kind = sim::Operation::Kind::set;
                // Far apart (x1000): an INCR's result is never another SET's value, so a read names
                // the one write it saw and a violation's witness stays small.
                op.value = fmt::format("{}", (client_index * 1'000'000 + i) * 1000);
                args = {"SET", op.key, op.value};
            } else if (pick < 90) {
                op.kind = sim::Operation::Kind::incr;
                args = {"INCR", op.key};
            } else {
                op.kind = sim::Operation::Kind::del;
                args = {"DEL", op.key};
            }
            std::vector<std::string_view> views(args.begin(), args.end());
            // The world's clock, read from inside the client's fiber, is not an input of the client:
            // it only stamps the history, which lives outside every node, and nothing the client
            // does depends on it (so a client's trace replays; the journal never sees this read).
            op.invoke_ns = ns(world.now());
            // In flight until it returns: a write still waiting when the run ends has an unknown
            // outcome (it may have taken effect, and another client may have read it).
            run->pending[client_index] = op;
            auto reply = c.call(views, k.request_timeout);
            run->pending.erase(client_index);
            op.complete_ns = ns(world.now());
            const bool read = op.kind == sim::Operation::Kind::get;
            if (!reply.ok()) {
                // No answer: a write may or may not have happened (and may still happen); a read
                // without an answer constrains nothing.
                if (read)
                    ++run->dropped_reads;
                else {
                    op.outcome = sim::Operation::Outcome::unknown;
                    run->history.push_back(op);
                }
                switch_node(-1);
                continue;
            }
            const std::string& r = *reply;
            if (r.starts_with("-MOVED ")) {
                ++run->refused;  // a redirect is a definite "not done here"
                const auto space = r.rfind(' ');
                auto to = Address::parse(r.substr(space + 1));
                int next = -1;
                for (int n = 0; to.ok() && n < k.nodes; ++n)
                    if (address_of(n) == *to)
                        next = n;
                switch_node(next);
                continue;
            }
            if (r.starts_with("-TRYAGAIN") || r.starts_with("-ERR max number of clients")) {
                // Refused before anything was appended, unless the server says the outcome is unknown
                // (reprise-raft's words for a write that was appended and may still commit).
                const bool in_doubt = !read && (r.find("outcome unknown") != std::string::npos ||
                                                r.find("before the write committed") != std::string::npos ||
                                                r.find("did not commit in time") != std::string::npos);
                if (in_doubt) {
                    op.outcome = sim::Operation::Outcome::unknown;
                    run->history.push_back(op);
                } else {
                    ++run->refused;
                }
                if (r.find("no leader") != std::string::npos)
                    switch_node(-1);
                continue;
            }
            switch (op.kind) {
            case sim::Operation::Kind::get:
                if (r == "$nil")
                    op.result = std::nullopt;
                else if (r.starts_with("$"))
                    op.result = r.substr(1);
                else {
                    ++run->refused;
                    continue;
                }
                break;
            case sim::Operation::Kind::set:
                if (r != "+OK") {
                    ++run->refused;
                    continue;
                }
                break;
            case sim::Operation::Kind::incr:
                if (r.starts_with(":"))
                    op.result = r.substr(1);
                else if (r.starts_with("-ERR value is not an integer"))
                    op.result = "error";
                else {
                    ++run->refused;  // e.g. a server without INCR
                    continue;
                }
                break;
            case sim::Operation::Kind::del:
                if (r == ":0" || r == ":1")
                    op.result = r.substr(1);
                else {
                    ++run->refused;
                    continue;
                }
                break;
            }
            run->history.push_back(op);
        }
    }};
}

// --- the nemesis --------------------------------------------------------------------------------

/// Draws faults on the raft nodes (never the clients) from the seed: partitions (a node cut off,
/// or two nodes from each other), one-way partitions, crashes with restarts, pauses, monotonic
/// clock rate skew, disk faults (a crash between two disk steps, or failing fsyncs) and slow or
/// held links. At most a minority is down at once, the world's random faults (--faults on) included:
/// they ask the nemesis first. At --settle before the end, everything heals, and they stop.
class Nemesis {
public:
    Nemesis(sim::World& world, std::shared_ptr<Run> run, std::uint64_t seed, Duration end)
        : world_(world), run_(std::move(run)), draw_{seed ^ 0x6E656D657369735FULL}, end_(end) {
        run_->untroubled_since.assign(static_cast<std::size_t>(run_->knobs.nodes), 0);
    }

    void start() {
        run_->heal_ns = ns(end_ - run_->knobs.settle);
        if (run_->heal_ns < 0)
            run_->heal_ns = 0;
        if (run_->knobs.nemesis && !run_->knobs.kinds.empty())
            schedule_next(ns(2s));
        auto self = this;
        world_.at(Duration(run_->heal_ns), [self] { self->heal_all(); });
        // The world's own random faults (the runner's --faults) are faults of this run too: they
        // trouble the raft nodes they touch (the needless-election checker sees them), count in
        // faults=, keep a majority up together with the nemesis's, and end at --settle.
        world_.set_random_fault_guard([self](sim::NodeId id) {
            return static_cast<int>(id) >= self->nodes() || (self->may_take_down() && !self->down(static_cast<int>(id)));
        });
        world_.on_random_fault([self](const sim::RandomFault& f) { self->random_fault(f); });
    }

private:
    sim::NodeId node(int i) const { return static_cast<sim::NodeId>(i); }
    int nodes() const { return run_->knobs.nodes; }

    void schedule_next(std::int64_t after_ns) {
        const std::int64_t interval = ns(run_->knobs.nemesis_interval);
        const std::int64_t at = ns(world_.now()) + after_ns + draw_.between(interval / 2, interval * 3 / 2);
        if (at >= run_->heal_ns)
            return;
        world_.at(Duration(at), [this] {
            strike();
            schedule_next(0);
        });
    }

    std::int64_t lasts() {
        const std::int64_t d = ns(run_->knobs.nemesis_duration);
        return draw_.between(d / 5, 2 * d);
    }

    /// A fault the world drew on its own: the raft nodes it touches are troubled while it holds.
    void random_fault(const sim::RandomFault& f) {
        if (!f.ends) {
            std::vector<int> touched;
            for (sim::NodeId id : {f.a, f.b})
                if (static_cast<int>(id) < nodes() && std::find(touched.begin(), touched.end(), static_cast<int>(id)) == touched.end())
                    touched.push_back(static_cast<int>(id));
            if (touched.empty()) {
                ++run_->faults;  // a fault between clients: counted, troubles no raft node
                random_troubles_[f.id] = {};
            } else {
                random_troubles_[f.id] = trouble(touched);
            }
        }
        if (f.ends) {
            if (auto it = random_troubles_.find(f.id); it != random_troubles_.end()) {
                clear(it->second);
                random_troubles_.erase(it);
            }
        }
    }

    /// Marks raft nodes troubled now; returns the trouble's index for clear().
    std::vector<std::size_t> trouble(const std::vector<int>& which) {
        std::vector<std::size_t> ids;
        for (int i : which) {
            ids.push_back(run_->troubles.size());
            run_->troubles.emplace_back(static_cast<std::uint32_t>(i + 1), ns(world_.now()), std::numeric_limits<std::int64_t>::max());
        }
        ++run_->faults;
        return ids;
    }
    void clear(const std::vector<std::size_t>& ids) {
        for (auto id : ids)
            if (std::get<2>(run_->troubles[id]) == std::numeric_limits<std::int64_t>::max())
                std::get<2>(run_->troubles[id]) = ns(world_.now());
    }

    bool down(int i) const {
        auto s = world_.state(node(i));
        return s != sim::NodeState::running || crash_planned_.count(i) > 0;
    }
    int down_count() const {
        int n = 0;
        for (int i = 0; i < nodes(); ++i)
            n += down(i) ? 1 : 0;
        return n;
    }
    /// Whether one more node may go down: a majority stays up.
    bool may_take_down() const { return down_count() + 1 <= (nodes() - 1) / 2; }

    /// Restarts a node whose program ended on its own (a failed fsync stops reprise-raft).
    void restart_exited() {
        for (int i = 0; i < nodes(); ++i)
            if (world_.state(node(i)) == sim::NodeState::exited && !crash_planned_.count(i))
                world_.restart(node(i));
    }

    void later(std::int64_t after, std::function<void()> fn) {
        const std::int64_t at = std::min(ns(world_.now()) + after, run_->heal_ns);
        world_.at(Duration(at), std::move(fn));
    }

    void strike() {
        restart_exited();
        const auto& kinds = run_->knobs.kinds;
        const std::string kind = kinds[draw_.below(kinds.size())];
        // Half the faults strike the leader (the node whose faults matter most), when there is one.
        int a = static_cast<int>(draw_.below(static_cast<std::uint64_t>(nodes())));
        if (const auto& leaders = run_->safety->leaders(); !leaders.empty() && draw_.below(2) == 0)
            a = static_cast<int>(leaders.back().node) - 1;
        int b = static_cast<int>(draw_.below(static_cast<std::uint64_t>(nodes() - 1)));
        if (b >= a)
            ++b;
        const std::int64_t d = lasts();
        if (kind == "partition" || kind == "one-way") {
            if (network_fault_)
                return;  // heal() ends every partition at once: one network fault at a time
            network_fault_ = true;
            std::vector<std::size_t> t;
            const auto shape = draw_.below(4);
            if (kind == "one-way") {
                world_.partition_one_way(node(a), node(b));
                t = trouble({a, b});
            } else if (shape == 0) {
                // One node cut off from every other node, clients included.
                world_.isolate({node(a)});
                t = trouble({a});
            } else if (shape == 1) {
                world_.partition(node(a), node(b));
                t = trouble({a, b});
            } else {
                // The raft nodes split into a minority holding `a` and a majority; every client
                // still reaches every node (a deposed leader may go on answering its clients).
                std::vector<int> minority{a};
                const int size = (nodes() - 1) / 2;
                for (int i = 0; static_cast<int>(minority.size()) < size && i < nodes(); ++i) {
                    const int c = static_cast<int>(draw_.below(static_cast<std::uint64_t>(nodes())));
                    if (std::find(minority.begin(), minority.end(), c) == minority.end())
                        minority.push_back(c);
                }
                for (int x : minority)
                    for (int y = 0; y < nodes(); ++y)
                        if (std::find(minority.begin(), minority.end(), y) == minority.end())
                            world_.partition(node(x), node(y));
                std::vector<int> everyone(static_cast<std::size_t>(nodes()));
                std::iota(everyone.begin(), everyone.end(), 0);
                t = trouble(everyone);
            }
            later(d, [this, t] {
                world_.heal();
                network_fault_ = false;
                clear(t);
            });
        } else if (kind == "crash") {
            if (!may_take_down() || down(a))
                return;
            world_.crash(node(a));
            auto t = trouble({a});
            later(d, [this, a, t] {
                if (world_.state(node(a)) == sim::NodeState::crashed)
                    world_.restart(node(a));
                clear(t);
            });
        } else if (kind == "pause") {
            if (!may_take_down() || down(a))
                return;
            world_.pause(node(a));
            auto t = trouble({a});
            later(d, [this, a, t] {
                world_.resume(node(a));
                clear(t);
            });
        } else if (kind == "skew") {
            // The node's monotonic clock runs up to 5% fast or slow.
            std::int64_t ppm = draw_.between(2'000, 50'000);
            if (draw_.below(2) == 0)
                ppm = -ppm;
            world_.set_clock_drift(node(a), ppm);
            auto t = trouble({a});
            later(d, [this, a, t] {
                world_.set_clock_drift(node(a), 0);
                clear(t);
            });
        } else if (kind == "disk") {
            if (!may_take_down() || down(a))
                return;
            auto t = trouble({a});
            if (draw_.below(2) == 0) {
                // Power loss between two disk steps (a torn write, a rename half done).
                crash_planned_.insert(a);
                world_.crash_after_disk_steps(node(a), draw_.below(12));
                later(d, [this, a, t] {
                    world_.cancel_disk_crash(node(a));
                    crash_planned_.erase(a);
                    if (world_.state(node(a)) == sim::NodeState::crashed)
                        world_.restart(node(a));
                    clear(t);
                });
            } else {
                // fsyncs fail for a while: reprise-raft stops on a failed fsync; it is restarted.
                sim::DiskFaults f = world_.disk(node(a)).faults();
                const sim::DiskFaults before = f;
                f.sync_failure_rate = 0.5;
                world_.disk(node(a)).set_faults(f);
                world_.log_line(fmt::format("fsyncs of {} fail half the time", world_.node_name(node(a))));
                crash_planned_.insert(a);
                later(d, [this, a, t, before] {
                    world_.disk(node(a)).set_faults(before);
                    world_.log_line(fmt::format("fsyncs of {} work again", world_.node_name(node(a))));
                    crash_planned_.erase(a);
                    restart_exited();
                    clear(t);
                });
            }
        } else if (kind == "delay") {
            // A slow link both ways (10-300 ms), or one that holds everything for a while.
            auto t = trouble({a, b});
            if (draw_.below(2) == 0) {
                const sim::Latency slow{Duration(draw_.between(ns(10ms), ns(100ms))), Duration(draw_.between(ns(100ms), ns(300ms)))};
                world_.set_latency(node(a), node(b), slow);
                world_.set_latency(node(b), node(a), slow);
                later(d, [this, a, b, t] {
                    world_.set_latency(node(a), node(b), world_.options().latency);
                    world_.set_latency(node(b), node(a), world_.options().latency);
                    clear(t);
                });
            } else {
                if (network_fault_)
                    return;
                network_fault_ = true;
                world_.clog(node(a), node(b));
                later(d, [this, t] {
                    world_.heal();
                    network_fault_ = false;
                    clear(t);
                });
            }
        }
    }

    /// The end of the faults: every link heals, every node runs, clocks keep time.
    void heal_all() {
        world_.stop_random_faults();
        world_.heal();
        network_fault_ = false;
        for (int i = 0; i < nodes(); ++i) {
            world_.cancel_disk_crash(node(i));
            world_.set_clock_drift(node(i), 0);
            for (int j = 0; j < nodes(); ++j)
                if (i != j)
                    world_.set_latency(node(i), node(j), world_.options().latency);
            if (world_.state(node(i)) == sim::NodeState::paused)
                world_.resume(node(i));
            if (world_.state(node(i)) == sim::NodeState::crashed || world_.state(node(i)) == sim::NodeState::exited)
                world_.restart(node(i));
            sim::DiskFaults f = world_.disk(node(i)).faults();
            f.sync_failure_rate = world_.options().disk_faults ? world_.options().disk_faults->sync_failure_rate : 0.0;
            world_.disk(node(i)).set_faults(f);
        }
        crash_planned_.clear();
        const std::int64_t t = ns(world_.now());
        for (auto& [id, from, to] : run_->troubles)
            if (to > t)
                to = t;
    }

    sim::World& world_;
    std::shared_ptr<Run> run_;
    Draw draw_;
    Duration end_;
    bool network_fault_ = false;
    std::set<int> crash_planned_;  ///< nodes whose disk may crash them (counted as down)
    /// The world's random faults still holding: their troubles, by the fault's id.
    std::map<std::uint64_t, std::vector<std::size_t>> random_troubles_;
};

// --- checking -------------------------------------------------------------------------------------

std::string check_run(sim::World& world, Run& run) {
    for (auto& [client, op] : run.pending)
        if (op.kind != sim::Operation::Kind::get) {
            op.outcome = sim::Operation::Outcome::unknown;
            run.history.push_back(op);
        }
    run.pending.clear();
    run.safety->check_all_pairs();
    if (!run.safety->violations().empty()) {
        std::string all;
        for (auto& v : run.safety->violations())
            all += "\n    " + v;
        return fmt::format("raft safety: {} {}:{}", run.safety->violations().size(),
                           run.safety->violations().size() == 1 ? "violation" : "violations", all);
    }
    sim::CheckBudget budget;
    budget.max_steps = run.knobs.checker_steps;
    run.linearizability = sim::check_linearizable(run.history, budget);
    run.checked = true;
    if (run.linearizability.verdict == sim::CheckResult::Verdict::violation)
        return fmt::format("linearizability: key {} is not linearizable; the smallest part of its history that shows "
                           "it:\n{}",
                           run.linearizability.key, run.linearizability.explanation);
    // Liveness: after the heal, with every node up and connected, a write commits within the bound.
    const std::int64_t heal = run.heal_ns;
    std::int64_t first_write = -1;
    for (auto& op : run.history)
        if (op.kind != sim::Operation::Kind::get && op.outcome == sim::Operation::Outcome::ok && op.invoke_ns >= heal &&
            (first_write < 0 || op.complete_ns < first_write))
            first_write = op.complete_ns;
    if (ns(world.now()) >= heal + ns(liveness_bound) && (first_write < 0 || first_write > heal + ns(liveness_bound))) {
        std::string leaders;
        for (auto& l : run.safety->leaders())
            if (l.at_ns >= heal - ns(liveness_bound))
                leaders += fmt::format(" n{}@{}(term {})", l.node, ms_text(l.at_ns), l.term);
        return fmt::format("liveness: no write committed within {}s after every fault healed at {} ({}; leaders "
                           "since shortly before:{})",
                           ns(liveness_bound) / 1'000'000'000, ms_text(heal),
                           first_write < 0 ? std::string("none committed at all")
                                           : fmt::format("the first at {}", ms_text(first_write)),
                           leaders.empty() ? " none" : leaders);
    }
    if (auto needless = run.needless_elections();
        static_cast<std::int64_t>(needless.size()) > run.knobs.max_needless_elections) {
        std::string all;
        for (auto& n : needless)
            all += "\n    " + n;
        return fmt::format("needless elections: {} {} deposed a healthy leader (allowed: {}):{}", needless.size(),
                           needless.size() == 1 ? "election" : "elections", run.knobs.max_needless_elections, all);
    }
    for (int i = 0; i < run.knobs.nodes; ++i)
        if (auto code = world.exit_code(static_cast<sim::NodeId>(i)); code && *code != 0)
            return fmt::format("node: n{} ended with exit code {} after every fault healed", i + 1, *code);
    if (run.history.empty())
        return "no operations: no client request got an answer";
    return "";
}

std::vector<std::string> split_kinds(const std::string& text) {
    std::vector<std::string> out;
    if (text == "none")
        return out;
    if (text == "all" || text.empty())
        return all_fault_kinds;
    std::size_t from = 0;
    while (from <= text.size()) {
        const auto comma = text.find(',', from);
        std::string kind = text.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
        if (std::find(all_fault_kinds.begin(), all_fault_kinds.end(), kind) == all_fault_kinds.end())
            throw std::invalid_argument(fmt::format(
                "--nemesis '{}': unknown fault kind '{}' (kinds: partition, one-way, crash, pause, skew, disk, delay; "
                "or all, none)",
                text, kind));
        out.push_back(kind);
        if (comma == std::string::npos)
            break;
        from = comma + 1;
    }
    return out;
}

Duration duration_flag(const sim::RunContext& ctx, const std::string& name, Duration fallback) {
    const std::string text = ctx.flag(name);
    if (text.empty())
        return fallback;
    auto d = sim::parse_duration(text);
    if (!d.ok())
        throw std::invalid_argument(fmt::format("{}: '{}' is not a duration (100ms, 2s)", name, text));
    return *d;
}

} // namespace

int main(int argc, char** argv) {
    auto run = std::make_shared<Run>();
    std::unique_ptr<Nemesis> nemesis;
    bool knobs_printed = false;
    sim::Simulation simulation;
    simulation.name = "reprise-raft-sim";
    simulation.description =
        "reprise-raft-sim: a reprise-raft cluster (nodes n1.. at 10.0.0.N, raft port 7001, client port 7101) under the\n"
        "deterministic simulator. Client nodes issue GET/SET/INCR/DEL on a few keys; a nemesis drawn from the seed\n"
        "partitions, crashes, pauses, skews clocks, fails disks and slows links, and heals everything --settle before\n"
        "the end (the world's own random faults of --faults on stop there too). Checked: linearizability of every key's history, RAFT's safety (one leader per term, log matching,\n"
        "leader completeness, state machine safety) from every node's state, liveness (a write commits within 10 s\n"
        "of the heal) and needless elections (a healthy leader deposed). A failed seed saves every node's trace\n"
        "and the history under --failure-dir and prints the line that reproduces it.";
    simulation.flags = {
        {"--nodes", "raft nodes (3 or 5; default 3)"},
        {"--clients", "client nodes (default 5)"},
        {"--keys", "keys the clients use (default 4)"},
        {"--op-interval", "mean time between a client's requests (default 100ms)"},
        {"--request-timeout", "a client's wait for a reply before the outcome is unknown (default 2s)"},
        {"--nemesis", "fault kinds, comma-separated: partition,one-way,crash,pause,skew,disk,delay; all (default) or none"},
        {"--nemesis-interval", "mean virtual time between two faults (default 2s)"},
        {"--nemesis-duration", "mean time a fault lasts (default 3s)"},
        {"--settle", "the end of the run without faults, for the liveness check (default 12s, or half of a shorter --time)"},
        {"--max-needless-elections", "elections deposing a healthy leader a run may have (default 0)"},
        {"--checker-steps", "the linearizability checker's budget in search steps (default 20000000)"},
    };
    simulation.default_time = 40s;
    simulation.setup = [run, &nemesis, &knobs_printed](sim::World& world, const sim::RunContext& ctx) {
        Knobs k;
        k.nodes = static_cast<int>(ctx.flag_int("--nodes", 3));
        k.clients = static_cast<int>(ctx.flag_int("--clients", 5));
        k.keys = static_cast<int>(ctx.flag_int("--keys", 4));
        k.op_interval = duration_flag(ctx, "--op-interval", k.op_interval);
        k.request_timeout = duration_flag(ctx, "--request-timeout", k.request_timeout);
        k.kinds = split_kinds(ctx.flag("--nemesis"));
        k.nemesis = !k.kinds.empty();
        k.nemesis_interval = duration_flag(ctx, "--nemesis-interval", k.nemesis_interval);
        k.nemesis_duration = duration_flag(ctx, "--nemesis-duration", k.nemesis_duration);
        // Unless given, the calm end is 12 s, or half of a shorter run (so that faults still strike).
        k.settle = duration_flag(ctx, "--settle", std::min<Duration>(k.settle, ctx.time / 2));
        k.max_needless_elections = ctx.flag_int("--max-needless-elections", 0);
        k.checker_steps = static_cast<std::uint64_t>(ctx.flag_int("--checker-steps", 20'000'000));
        k.world = Knobs::world_text(world.options(), ctx.time);
        if (k.nodes != 3 && k.nodes != 5)
            throw std::invalid_argument("--nodes takes 3 or 5");
        if (k.clients < 1 || k.clients > 100)
            throw std::invalid_argument("--clients takes 1..100");
        if (k.keys < 1 || k.keys > 1000)
            throw std::invalid_argument("--keys takes 1..1000");
        if (k.op_interval.count() <= 0 || k.request_timeout.count() <= 0 || k.nemesis_interval.count() <= 0)
            throw std::invalid_argument("--op-interval, --request-timeout and --nemesis-interval must be more than 0");
        if (k.max_needless_elections < 0)
            throw std::invalid_argument("--max-needless-elections takes a count (0 or more)");
        if (k.checker_steps == 0)
            throw std::invalid_argument("--checker-steps must be more than 0");
        if (k.settle >= ctx.time)
            throw std::invalid_argument(fmt::format(
                "--settle {}ms leaves no time for faults in a run of {}ms: give a shorter --settle or a longer --time",
                ns(k.settle) / 1'000'000, ns(ctx.time) / 1'000'000));
        if (!knobs_printed) {
            fmt::print("knobs: {}\n", k.text());
            knobs_printed = true;
        }
        *run = Run{};
        run->knobs = k;
        run->safety = std::make_unique<SafetyChecker>(world);
        raft::set_observer(run->safety.get());

        std::string peers;
        for (int i = 1; i <= k.nodes; ++i)
            peers += fmt::format("{}{}=10.0.0.{}:{}:{}", i == 1 ? "" : ",", i, i, raft_port, client_port);
        for (int i = 1; i <= k.nodes; ++i)
            world.add_node({.name = fmt::format("n{}", i),
                            .program = raft::program(),
                            .args = {"reprise-raft", "--id", std::to_string(i), "--peers", peers, "--data", "/raft", "--quiet", "--protected-mode", "no"}});
        for (int c = 1; c <= k.clients; ++c)
            world.add_node({.name = fmt::format("client{}", c),
                            .program = client_program(run, world, static_cast<std::uint64_t>(c))});
        nemesis = std::make_unique<Nemesis>(world, run, ctx.seed, ctx.time);
        nemesis->start();
    };
    simulation.check = [run](sim::World& world, const sim::RunContext&) -> std::string {
        std::string failure = check_run(world, *run);
        raft::set_observer(nullptr);  // the nodes go with the world
        return failure;
    };
    simulation.describe = [run](sim::World&, const sim::RunContext&) {
        const char* lin = run->checked ? sim::verdict_name(run->linearizability.verdict) : "not checked";
        return fmt::format("ops={} unknown={} refused={} faults={} leaders={} needless-elections={} linearizable={} "
                           "checker_s={:.3f}",
                           run->history.size(), run->unknown(), run->refused, run->faults, run->safety->leaders().size(),
                           run->needless_elections().size(), lin,
                           static_cast<double>(run->linearizability.wall_ns) / 1e9);
    };
    simulation.inconclusive = [run](sim::World&, const sim::RunContext&) -> std::string {
        return run->checked && run->linearizability.verdict == sim::CheckResult::Verdict::unknown
                   ? "linearizability unknown"
                   : "";
    };
    simulation.save = [run](sim::World& world, const sim::RunContext& ctx, const std::string& folder) {
        std::ofstream history(folder + "/history.txt");  // reprise-allow: io (the runner's own files, outside every node)
        auto ops = run->history;
        std::stable_sort(ops.begin(), ops.end(), [](auto& a, auto& b) { return a.invoke_ns < b.invoke_ns; });
        history << sim::format_history(ops);
        std::ofstream findings(folder + "/findings.txt");  // reprise-allow: io (the runner's own files, outside every node)
        findings << "seed " << ctx.seed << "\nknobs: " << run->knobs.text() << "\n";
        findings << "reproduce: " << ctx.reproduce << "\nrun: " << world.repro_line() << "\n";
        for (auto& v : run->safety->violations())
            findings << v << "\n";
        if (run->checked)
            findings << "linearizability: " << sim::verdict_name(run->linearizability.verdict) << "\n"
                     << run->linearizability.explanation << "\n";
        for (auto& n : run->needless_elections())
            findings << "needless election " << n << "\n";
        findings << "leaders:\n";
        for (auto& l : run->safety->leaders())
            findings << "  " << ms_text(l.at_ns) << " n" << l.node << " term " << l.term << "\n";
        findings << "world log:\n";
        for (auto& line : world.log())
            findings << "  " << line << "\n";
        std::error_code ec;  // the history holds every value the clients wrote: the owner's alone
        for (const char* name : {"/history.txt", "/findings.txt"})
            std::filesystem::permissions(folder + name, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,  // reprise-allow: io (the runner's own files, outside every node)
                                         ec);
    };
    return sim::run_simulation(argc, argv, simulation);
}
