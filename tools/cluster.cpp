// `reprise cluster`: several nodes' traces read as one cluster.
//
// Pass 1 reads every trace once and keeps, per connection end, what it wrote (event, running
// length, digest, time) and what it read (event, running length, time) — not the bytes. The
// ends are then paired by their addresses (and open times, for reused ports), and each node's
// clock offset is estimated from the pairs' message delays. Pass 2 reads the traces again:
// `check` hashes each reader's stream cut at its writer's write lengths; `log` merges the
// traces in an order where every read comes after the write it reads; `timeline` writes the
// events and the messages between them for Perfetto or a browser.
#include "cluster.hpp"

#include "decoders.hpp"
#include "trace_files.hpp"

#include <reprise/record/json.hpp>
#include <reprise/record/trace.hpp>
#include <reprise/record/trace_state.hpp>

#include <fmt/compile.h>
#include <fmt/core.h>
#define XXH_INLINE_ALL  // xxhash.h is all it needs: no library to link
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

namespace reprise::tool {

const char* const cluster_help = R"(Usage: reprise cluster check|log|timeline TRACE...|DIR... [OPTIONS]

Reads the traces of several nodes as one cluster. A folder stands for every trace in it
(a segmented trace once); a node restarted has one trace per run, ordered by start time.
Connections are paired by their two ends' addresses (and open times, when a port was used
again); a connection whose other end was not recorded is listed as such.

  check      the bytes each side read are exactly the bytes the other side wrote, in order:
             the reader's stream is cut at the writer's recorded write lengths and each piece
             compared with the writer's XXH3 digest. Reports a mismatch or extra bytes (read,
             never written) with both nodes' event numbers, and bytes written but never read
             (a crash, a close or a partition leaves those: reported, not a failure). Bytes
             read past the end of a writer's cut-off trace (killed: its last records died
             with it) are reported and cannot be checked; they are not a failure either.
  log        every node's events in one order consistent with happens-before (each node in
             its own order; a read after the write it reads), times in cluster time: each
             node's wall clock corrected by an offset estimated from message delays. A line
             shows the node, its own event number (for --replay=TRACE --break-at=N) and the
             event; bytes read are decoded (RESP, reprise-raft's peer protocol).
  timeline   Chrome trace-event JSON for Perfetto (ui.perfetto.dev: Open trace file): a
             track per node, tick slices, annotations as instants, every message an arrow
             from the writer's event to the reader's. With --html, a self-contained page
             instead (no network): lanes, arrows, hover for the message, wheel to zoom.

Options:
  --map FROM=TO       an address one node saw as another (NAT, containers): HOST:PORT, or a
                      HOST alone for every port; may be repeated
  --connections       check: list every connection, not only the first 20 of each kind
  --json              log: one JSON object per line
  --ticks             log: tick records too (their time is every event's time column)
  --from S, --to S    log, timeline: only events in this window of cluster time (seconds)
  --nodes A,B         log, timeline: only these nodes (by the name in their traces), or runs
                      of a restarted node as log labels them (node-3/2); an unknown name is an error
  --output FILE       timeline: write FILE (default: standard output)
  --html              timeline: a self-contained HTML page instead of JSON
  --max-bytes N       timeline: refuse to write more than N bytes (default 512 MiB;
                      Perfetto's UI fails near 1 GB of JSON): narrow the window instead
  --record-key FILE   the key of sealed traces

Cluster time is seconds since the earliest first tick of any trace, on the corrected clocks.
A tick's slice in the timeline starts when the loop woke; the trace does not say how long it
ran, so the slice ends at the next tick or after 1 ms, whichever is first. Events within one
tick are spread 1 ns apart so that every slice has its own place.

Exit codes: 0 success (check: consistent); 1 check found an inconsistency; 2 a bad command
line or a trace that cannot be read; 3 check cannot tell (a trace is damaged, so only its
readable part was checked; one trace alone; or no connection joins the traces).
)";

namespace {

namespace trace = reprise::trace;

constexpr int exit_ok = 0;
constexpr int exit_inconsistent = 1;
constexpr int exit_usage = 2;
constexpr int exit_cannot_tell = 3;
constexpr std::size_t listed_max = 20;
constexpr std::int64_t tick_slice_ns_max = 1'000'000;

std::string seconds(std::int64_t ns) {
    const bool negative = ns < 0;
    const std::uint64_t m = negative ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
    return fmt::format("{}{}.{:09}", negative ? "-" : "", m / 1'000'000'000u, m % 1'000'000'000u);
}

std::string errno_name(std::int64_t e) {
    if (e > 0 && e < 4096)
        if (const char* n = strerrorname_np(static_cast<int>(e)))
            return n;
    return fmt::format("errno {}", e);
}

// The bytes a read delivered as the trace holds them: without the redaction trailer of a read
// that held a secret (its secret bytes are masked: docs/trace-format.md).
std::string_view read_bytes(const trace::Wake& w) {
    if (w.wake != WakeKind::bytes_read || w.value <= 0 || static_cast<std::uint64_t>(w.value) > w.data.size())
        return w.data;
    return w.data.substr(0, w.data.size() - static_cast<std::size_t>(w.value));
}

bool redacted(const trace::Wake& w) { return w.wake == WakeKind::bytes_read && w.value > 0; }

// --- what pass 1 keeps ---------------------------------------------------------------------

struct Write {
    std::uint64_t event;
    std::uint64_t end;     ///< bytes written on this connection up to and including this write
    std::uint64_t digest;
    std::int64_t wall_ns;
};

struct Read {
    std::uint64_t event;
    std::uint64_t end;     ///< bytes read up to and including this read
    std::int64_t wall_ns;
};

/// One end of a connection, as one trace saw it.
struct Side {
    std::size_t lane = 0;
    std::uint64_t handle = 0;
    bool inbound = false;           ///< accepted (else connected, or unknown)
    bool addressed = false;         ///< local and peer known (an accepted or connected record)
    std::string local, peer;        ///< after --map
    std::uint64_t open_event = 0;
    std::int64_t open_wall_ns = 0;
    std::uint64_t bytes_written = 0, bytes_read = 0;  ///< totals (the scan counts them for every side)
    std::uint64_t write_count = 0, read_count = 0;
    std::vector<Write> writes;                        ///< paired sides only (the data pass)
    std::vector<Read> reads;                          ///< paired sides only, for log and timeline
    std::optional<std::uint64_t> closed_event;  ///< eof or error seen
    std::string closed_how;
    std::optional<std::size_t> other;           ///< the paired side
    std::uint64_t flow_base = 0;                ///< timeline: ids of this side's writes' arrows

    std::uint64_t written() const noexcept { return bytes_written; }
    std::uint64_t read_total() const noexcept { return bytes_read; }
};

/// One trace: one run of one node.
struct Lane {
    std::string path;
    trace::Header header;
    std::string node;
    std::string label;              ///< node, or node/K for a node's K-th run when it has several
    std::uint64_t records = 0;
    std::optional<std::int64_t> first_wall_ns;
    std::int64_t last_wall_ns = 0;
    bool ended = false;             ///< an end record
    bool still_running = false;     ///< ... of a program the recording stopped under (replay stops before it)
    std::optional<std::string> damage;
    std::optional<std::size_t> previous;  ///< the same node's run before this one
    std::int64_t offset_ns = 0;     ///< added to this trace's wall clock to get cluster time
    std::string offset_basis;
    std::unordered_map<std::uint64_t, std::size_t> sides;  ///< handle -> index in Cluster::sides
};

/// `N events`, counted as the replay counts them: the end record of a program the recording
/// stopped under (a simulation's time was over) is not an event replay delivers.
std::string events_text(const Lane& l) {
    if (l.still_running && l.records > 0)
        return fmt::format("{} events; end record #{}: the recording stopped while it ran", l.records - 1, l.records - 1);
    return fmt::format("{} events", l.records);
}

struct Cluster {
    std::vector<Lane> lanes;
    std::vector<Side> sides;
    std::int64_t t0_ns = 0;         ///< cluster time zero (corrected wall clock)
    std::size_t label_width = 4;
};

// --- pass 1 -------------------------------------------------------------------------------------

std::string mapped(const std::string& address, const std::vector<std::pair<std::string, std::string>>& maps) {
    for (const auto& [from, to] : maps) {
        if (address == from)
            return to;
        // A host alone maps every port of it.
        if (from.find(':') == std::string::npos || (from.front() == '[' && from.back() == ']')) {
            const auto colon = address.rfind(':');
            if (colon != std::string::npos && address.compare(0, colon, from) == 0 && colon == from.size())
                return to + address.substr(colon);
        }
    }
    return address;
}

Side& side_of(Cluster& c, std::size_t lane, std::uint64_t handle, std::uint64_t event, std::int64_t wall_ns) {
    auto [it, added] = c.lanes[lane].sides.try_emplace(handle, c.sides.size());
    if (added) {
        Side s;
        s.lane = lane;
        s.handle = handle;
        s.open_event = event;
        s.open_wall_ns = wall_ns;
        c.sides.push_back(std::move(s));
    }
    return c.sides[it->second];
}

// Reading a trace in pass 1: `scan` learns the header, the connections' addresses and open
// times, what each side wrote and read in total, and how the trace ends; `data` (after the
// sides are paired) keeps the writes, and for log and timeline the reads, of paired sides
// only, in vectors sized by the scan: a client nobody recorded costs no memory per request.
enum class Pass { scan, data };

// Reads one trace; false (with `why`) when it cannot be opened at all.
bool read_lane(Cluster& c, std::size_t lane_index, const ClusterRequest& rq, Pass pass, bool keep_reads,
               std::string& why) {
    Lane& lane = c.lanes[lane_index];
    auto reader = trace::Reader::open(lane.path, &why, rq.key);
    if (!reader.ok())
        return false;
    const bool scan = pass == Pass::scan;
    if (scan) {
        lane.header = reader->header();
        lane.node = lane.header.node.empty() ? std::filesystem::path(lane.path).filename().string() : lane.header.node;
    }
    std::int64_t wall = lane.header.start_wall_ns;
    trace::Record r;
    std::uint64_t index = 0;
    // The data pass: the paired side of a handle, or nullptr (looked up once per record).
    auto paired = [&](std::uint64_t handle) -> Side* {
        auto it = lane.sides.find(handle);
        return it != lane.sides.end() && c.sides[it->second].other ? &c.sides[it->second] : nullptr;
    };
    for (; reader->next(r); ++index) {
        if (const auto* t = std::get_if<trace::Tick>(&r)) {
            wall = t->wall_ns;
            if (scan && !lane.first_wall_ns)
                lane.first_wall_ns = wall;
        } else if (const auto* w = std::get_if<trace::Wake>(&r)) {
            if (w->wake == WakeKind::bytes_read) {
                if (scan) {
                    Side& s = side_of(c, lane_index, w->handle, index, wall);
                    s.bytes_read += read_bytes(*w).size();
                    ++s.read_count;
                } else if (Side* s = paired(w->handle); s && keep_reads) {
                    if (s->reads.empty())
                        s->reads.reserve(s->read_count);
                    s->reads.push_back({index, (s->reads.empty() ? 0 : s->reads.back().end) + read_bytes(*w).size(), wall});
                }
            } else if (scan && (w->wake == WakeKind::eof || w->wake == WakeKind::io_error)) {
                Side& s = side_of(c, lane_index, w->handle, index, wall);
                if (!s.closed_event) {
                    s.closed_event = index;
                    s.closed_how = w->wake == WakeKind::eof ? std::string("end of stream")
                                                            : fmt::format("error {}", errno_name(w->value));
                }
            }
        } else if (const auto* o = std::get_if<trace::Output>(&r)) {
            if (o->output != OutputKind::conn_write)
                continue;
            if (scan) {
                Side& s = side_of(c, lane_index, o->handle, index, wall);
                s.bytes_written += o->length;
                ++s.write_count;
            } else if (Side* s = paired(o->handle)) {
                if (s->writes.empty())
                    s->writes.reserve(s->write_count);
                s->writes.push_back({index, (s->writes.empty() ? 0 : s->writes.back().end) + o->length, o->digest, wall});
            }
        } else if (!scan) {
            continue;
        } else if (const auto* a = std::get_if<trace::Accepted>(&r)) {
            Side& s = side_of(c, lane_index, a->connection, index, wall);
            s.inbound = s.addressed = true;
            s.local = mapped(a->local.to_string(), rq.maps);
            s.peer = mapped(a->peer.to_string(), rq.maps);
        } else if (const auto* k = std::get_if<trace::Connected>(&r)) {
            if (k->error == 0) {
                Side& s = side_of(c, lane_index, k->connection, index, wall);
                s.addressed = true;
                s.local = mapped(k->local.to_string(), rq.maps);
                s.peer = mapped(k->peer.to_string(), rq.maps);
            }
        } else if (const auto* e = std::get_if<trace::End>(&r)) {
            lane.ended = true;
            lane.still_running = e->exit_code == trace::exit_code_still_running;
        }
    }
    if (scan) {
        lane.records = index;
        lane.last_wall_ns = wall;
        if (reader->error())
            lane.damage = fmt::format("{} at byte offset {} of {}", reader->error()->message, reader->error()->offset,
                                      reader->error()->path);
    }
    return true;
}

// Pairs each end with the one whose addresses mirror it, the nearest in open time.
void pair_sides(Cluster& c) {
    std::unordered_map<std::string, std::vector<std::size_t>> by_ends;
    std::vector<std::size_t> order;
    for (std::size_t i = 0; i < c.sides.size(); ++i) {
        if (!c.sides[i].addressed)
            continue;
        by_ends[c.sides[i].local + "|" + c.sides[i].peer].push_back(i);
        order.push_back(i);
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return c.sides[a].open_wall_ns < c.sides[b].open_wall_ns; });
    for (std::size_t i : order) {
        Side& s = c.sides[i];
        if (s.other)
            continue;
        auto it = by_ends.find(s.peer + "|" + s.local);
        if (it == by_ends.end())
            continue;
        std::optional<std::size_t> best;
        std::int64_t best_gap = std::numeric_limits<std::int64_t>::max();
        for (std::size_t j : it->second) {
            const Side& o = c.sides[j];
            if (j == i || o.other || o.inbound == s.inbound)
                continue;
            const std::int64_t gap = o.open_wall_ns > s.open_wall_ns ? o.open_wall_ns - s.open_wall_ns
                                                                     : s.open_wall_ns - o.open_wall_ns;
            if (gap < best_gap) {
                best_gap = gap;
                best = j;
            }
        }
        if (best) {
            s.other = *best;
            c.sides[*best].other = i;
        }
    }
}

// The index of the first write whose bytes reach `end` (the write holding byte end - 1).
std::size_t write_holding(const std::vector<Write>& writes, std::uint64_t end) {
    return static_cast<std::size_t>(
        std::lower_bound(writes.begin(), writes.end(), end, [](const Write& w, std::uint64_t e) { return w.end < e; }) -
        writes.begin());
}

// Each trace's clock offset from message delays: with d(a->b) the smallest delay seen from a
// to b on b's clock minus a's, the offset of b's clock is (d(a->b) - d(b->a)) / 2 (as NTP
// does). Spread from the earliest trace through the pairs that have messages both ways.
void estimate_offsets(Cluster& c) {
    const std::size_t n = c.lanes.size();
    constexpr std::int64_t none = std::numeric_limits<std::int64_t>::max();
    std::vector<std::int64_t> min_delay(n * n, none);
    std::vector<std::uint64_t> samples(n * n, 0);
    for (const Side& reader : c.sides) {
        if (!reader.other)
            continue;
        const Side& writer = c.sides[*reader.other];
        if (writer.lane == reader.lane)
            continue;
        std::size_t w = 0;
        for (const Read& r : reader.reads) {
            while (w < writer.writes.size() && writer.writes[w].end < r.end)
                ++w;
            if (w == writer.writes.size())
                break;
            const std::int64_t d = r.wall_ns - writer.writes[w].wall_ns;
            auto& slot = min_delay[writer.lane * n + reader.lane];
            slot = std::min(slot, d);
            ++samples[writer.lane * n + reader.lane];
        }
    }
    std::size_t reference = 0;
    for (std::size_t i = 1; i < n; ++i)
        if (c.lanes[i].first_wall_ns.value_or(c.lanes[i].header.start_wall_ns) <
            c.lanes[reference].first_wall_ns.value_or(c.lanes[reference].header.start_wall_ns))
            reference = i;
    std::vector<bool> done(n, false);
    done[reference] = true;
    c.lanes[reference].offset_basis = "the reference clock";
    std::vector<std::size_t> queue{reference};
    for (std::size_t q = 0; q < queue.size(); ++q) {
        const std::size_t a = queue[q];
        for (std::size_t b = 0; b < n; ++b) {
            if (done[b] || min_delay[a * n + b] == none || min_delay[b * n + a] == none)
                continue;
            const std::int64_t theta = (min_delay[a * n + b] - min_delay[b * n + a]) / 2;  // b's clock - a's
            c.lanes[b].offset_ns = c.lanes[a].offset_ns - theta;
            c.lanes[b].offset_basis = fmt::format("from {} message(s) each way with {}", samples[a * n + b] + samples[b * n + a],
                                                  c.lanes[a].label);
            done[b] = true;
            queue.push_back(b);
        }
    }
    for (std::size_t i = 0; i < n; ++i)
        if (!done[i])
            c.lanes[i].offset_basis = "no messages both ways with the others: its clock is taken as it is";
    std::int64_t t0 = std::numeric_limits<std::int64_t>::max();
    for (const Lane& l : c.lanes)
        t0 = std::min(t0, l.first_wall_ns.value_or(l.header.start_wall_ns) + l.offset_ns);
    c.t0_ns = t0;
}

// Reads every input (pass 1), pairs the connections and estimates the clocks. nullopt and a
// message on stderr when an input cannot be read.
std::optional<Cluster> load(const ClusterRequest& rq) {
    std::vector<std::string> paths;
    for (const std::string& in : rq.inputs) {
        std::error_code ec;
        if (std::filesystem::is_directory(in, ec)) {
            std::string why;
            auto found = traces_in(in, why);
            if (!why.empty()) {
                fmt::print(stderr, "reprise cluster: {}\n", why);
                return std::nullopt;
            }
            if (found.empty())
                fmt::print(stderr, "reprise cluster: note: no trace in {}\n", in);
            paths.insert(paths.end(), found.begin(), found.end());
        } else {
            paths.push_back(in);
        }
    }
    if (paths.empty()) {
        fmt::print(stderr, "reprise cluster: no trace to read\n");
        return std::nullopt;
    }
    // A trace named twice (as a file and through its folder) is read once.
    std::set<std::string> seen;
    std::vector<std::string> unique;
    for (const std::string& p : paths) {
        std::error_code ec;
        const auto canonical = std::filesystem::weakly_canonical(p, ec);
        if (seen.insert(ec ? p : canonical.string()).second)
            unique.push_back(p);
    }
    paths = std::move(unique);
    Cluster c;
    for (const std::string& p : paths) {
        Lane lane;
        lane.path = p;
        c.lanes.push_back(std::move(lane));
        std::string why;
        if (!read_lane(c, c.lanes.size() - 1, rq, Pass::scan, false, why)) {
            fmt::print(stderr, "reprise cluster: {}\n", why);
            return std::nullopt;
        }
    }
    // A node's runs in start order: labels node/1, node/2 when it has several.
    std::map<std::string, std::vector<std::size_t>> runs;
    for (std::size_t i = 0; i < c.lanes.size(); ++i)
        runs[c.lanes[i].node].push_back(i);
    for (auto& [node, list] : runs) {
        std::stable_sort(list.begin(), list.end(), [&](std::size_t a, std::size_t b) {
            return c.lanes[a].header.start_wall_ns < c.lanes[b].header.start_wall_ns;
        });
        for (std::size_t k = 0; k < list.size(); ++k) {
            Lane& l = c.lanes[list[k]];
            l.label = list.size() == 1 ? node : fmt::format("{}/{}", node, k + 1);
            if (k > 0)
                l.previous = list[k - 1];
            c.label_width = std::max(c.label_width, l.label.size());
        }
    }
    pair_sides(c);
    const bool keep_reads = rq.action != "check";  // check needs the writers' writes alone
    for (std::size_t i = 0; i < c.lanes.size(); ++i) {
        std::string why;
        if (!read_lane(c, i, rq, Pass::data, keep_reads, why)) {
            fmt::print(stderr, "reprise cluster: {}\n", why);
            return std::nullopt;
        }
    }
    if (keep_reads)
        estimate_offsets(c);
    return c;
}

std::string side_name(const Cluster& c, const Side& s) {
    return fmt::format("{} c{}", c.lanes[s.lane].label, s.handle);
}

// Who is at the other end of `s`, for a line of output.
std::string other_end(const Cluster& c, const Side& s) {
    if (s.other)
        return side_name(c, c.sides[*s.other]);
    if (s.addressed)
        return fmt::format("{} (not recorded)", s.peer);
    return "(unknown peer)";
}

// --- check ------------------------------------------------------------------------------------

struct Finding {
    std::string text;
};

// The reader side's progress through its writer's writes during pass 2 of check.
struct Checker {
    XXH3_state_t* state = nullptr;
    std::uint64_t pos = 0;          ///< bytes of the stream consumed
    std::size_t write = 0;          ///< the writer's write being matched
    std::uint64_t piece_first_event = 0;
    bool piece_started = false;
    std::string piece_head;         ///< the piece's first bytes, for a report
    std::uint64_t mismatches = 0;
    std::uint64_t extra = 0;
    std::uint64_t extra_first_event = 0;
    std::uint64_t pieces_ok = 0;
    bool piece_redacted = false;    ///< the piece holds bytes of a read that held a secret (masked)
    std::uint64_t pieces_redacted = 0;
    std::uint64_t bytes_redacted = 0;

    Checker() : state(XXH3_createState()) { XXH3_64bits_reset(state); }
    ~Checker() { XXH3_freeState(state); }
    Checker(const Checker&) = delete;
    Checker& operator=(const Checker&) = delete;
};

constexpr std::size_t piece_head_bytes = 64;

int run_check(Cluster& c, const ClusterRequest& rq) {
    std::vector<std::unique_ptr<Checker>> checkers(c.sides.size());
    std::vector<std::string> mismatches;
    for (std::size_t li = 0; li < c.lanes.size(); ++li) {
        std::string why;
        auto reader = trace::Reader::open(c.lanes[li].path, &why, rq.key);
        if (!reader.ok()) {
            fmt::print(stderr, "reprise cluster: {}\n", why);
            return exit_usage;
        }
        trace::Record r;
        for (std::uint64_t index = 0; reader->next(r); ++index) {
            const auto* w = std::get_if<trace::Wake>(&r);
            if (w == nullptr || w->wake != WakeKind::bytes_read)
                continue;
            const std::size_t si = c.lanes[li].sides.at(w->handle);
            const Side& s = c.sides[si];
            if (!s.other)
                continue;
            const Side& writer = c.sides[*s.other];
            if (!checkers[si])
                checkers[si] = std::make_unique<Checker>();
            Checker& k = *checkers[si];
            std::string_view d = read_bytes(*w);
            const bool masked = redacted(*w);  // the pieces this read touches cannot match: the secret is masked
            while (!d.empty()) {
                if (k.write >= writer.writes.size()) {
                    if (k.extra == 0)
                        k.extra_first_event = index;
                    k.extra += d.size();
                    k.pos += d.size();
                    break;
                }
                const Write& wr = writer.writes[k.write];
                if (!k.piece_started) {
                    k.piece_started = true;
                    k.piece_first_event = index;
                    k.piece_head.clear();
                    k.piece_redacted = false;
                }
                k.piece_redacted = k.piece_redacted || masked;
                const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(d.size(), wr.end - k.pos));
                XXH3_64bits_update(k.state, d.data(), take);
                if (k.piece_head.size() < piece_head_bytes)
                    k.piece_head.append(d.substr(0, std::min(take, piece_head_bytes - k.piece_head.size())));
                k.pos += take;
                d.remove_prefix(take);
                if (k.pos == wr.end) {
                    const std::uint64_t got = XXH3_64bits_digest(k.state);
                    XXH3_64bits_reset(k.state);
                    k.piece_started = false;
                    if (k.piece_redacted) {
                        ++k.pieces_redacted;
                        k.bytes_redacted += wr.end - (k.write == 0 ? 0 : writer.writes[k.write - 1].end);
                    } else if (got != wr.digest) {
                        if (k.mismatches++ == 0) {
                            const std::uint64_t start = k.write == 0 ? 0 : writer.writes[k.write - 1].end;
                            mismatches.push_back(fmt::format(
                                "MISMATCH {} -> {}: bytes {}..{} of the stream, written at {} #{} ({} bytes), differ from "
                                "what {} read at #{}..#{}: {}",
                                side_name(c, writer), side_name(c, s), start, wr.end, c.lanes[writer.lane].label, wr.event,
                                wr.end - start, c.lanes[s.lane].label, k.piece_first_event, index,
                                shown_short(k.piece_head, piece_head_bytes)));
                        }
                    } else {
                        ++k.pieces_ok;
                    }
                    ++k.write;
                }
            }
        }
        if (reader->error() && !c.lanes[li].damage)
            c.lanes[li].damage = reader->error()->message;
    }

    // The report.
    std::size_t paired = 0, unrecorded = 0, unaddressed = 0;
    for (const Side& s : c.sides) {
        if (s.other)
            ++paired;
        else if (s.addressed)
            ++unrecorded;
        else
            ++unaddressed;
    }
    fmt::print("reprise cluster check: {} trace(s), {} connection(s) between them, {} with an unrecorded end\n",
               c.lanes.size(), paired / 2, unrecorded);
    for (const Lane& l : c.lanes)
        fmt::print("  {:<{}} {} ({}{})\n", l.label, c.label_width, l.path, events_text(l),
                   l.damage  ? fmt::format("; DAMAGED: {}", *l.damage)
                   : l.ended ? std::string()
                   : trace::being_written(l.path)
                       ? std::string("; still being written: a recording process holds its lock, so its end is not checked yet")
                       : std::string("; cut off"));

    std::vector<std::string> unread, extras, beyond, listing;
    std::uint64_t bytes_checked = 0, pieces_checked = 0, partial = 0, redacted_pieces = 0;
    for (std::size_t si = 0; si < c.sides.size(); ++si) {
        const Side& s = c.sides[si];
        if (!s.other)
            continue;
        const Side& writer = c.sides[*s.other];
        const Checker* k = checkers[si].get();
        const std::uint64_t pos = k ? k->pos - k->extra : 0;
        bytes_checked += pos - (k ? k->bytes_redacted : 0);
        pieces_checked += k ? k->pieces_ok + k->mismatches : 0;
        redacted_pieces += k ? k->pieces_redacted : 0;
        if (k && k->extra > 0) {
            const Lane& wl = c.lanes[writer.lane];
            if (wl.ended && !wl.damage)
                extras.push_back(fmt::format("EXTRA {} read {} byte(s) from #{} that {} never wrote (it wrote {})",
                                             side_name(c, s), k->extra, k->extra_first_event, side_name(c, writer),
                                             writer.written()));
            else  // the writer's last records died with it: a kill, a crash, a power cut
                beyond.push_back(fmt::format(
                    "beyond the writer's trace: {} read {} byte(s) from #{} that {}'s trace does not hold (it is {} after "
                    "{} written bytes: its last writes were not recorded before it stopped)",
                    side_name(c, s), k->extra, k->extra_first_event, side_name(c, writer),
                    wl.damage ? "damaged" : "cut off", writer.written()));
        }
        if (k && k->mismatches > 1)
            extras.push_back(fmt::format("  ({} -> {}: {} mismatched pieces in all)", side_name(c, writer), side_name(c, s),
                                         k->mismatches));
        if (k && k->piece_started)
            ++partial;
        if (pos < writer.written()) {
            const std::size_t first = k ? k->write : 0;
            const Lane& rl = c.lanes[s.lane];
            std::string reason = s.closed_event ? fmt::format("{} saw {} at #{}", rl.label, s.closed_how, *s.closed_event)
                                 : rl.damage ? fmt::format("{}'s trace is damaged", rl.label)
                                 : rl.ended  ? fmt::format("{} ended without reading them", rl.label)
                                             : fmt::format("{}'s trace is cut off at #{}", rl.label, rl.records);
            unread.push_back(fmt::format("unread: {} byte(s) {} wrote from #{} on were never read by {} ({})",
                                         writer.written() - pos, side_name(c, writer),
                                         first < writer.writes.size() ? writer.writes[first].event : 0, side_name(c, s),
                                         reason));
        }
        if (s.inbound)
            listing.push_back(fmt::format("  {} {} <- {} {}: {} bytes in, {} bytes out", side_name(c, s), s.local,
                                          side_name(c, writer), writer.local, s.read_total(), s.written()));
    }
    std::vector<std::string> outside;
    for (const Side& s : c.sides)
        if (!s.other && s.addressed)
            outside.push_back(fmt::format("  {} {} {} {} (not recorded): {} bytes in, {} bytes out", side_name(c, s),
                                          s.local, s.inbound ? "<-" : "->", s.peer, s.read_total(), s.written()));

    auto list = [&](const char* title, const std::vector<std::string>& lines) {
        if (lines.empty())
            return;
        fmt::print("{} ({}):\n", title, lines.size());
        const std::size_t shown_n = rq.connections ? lines.size() : std::min(lines.size(), listed_max);
        for (std::size_t i = 0; i < shown_n; ++i)
            fmt::print("{}\n", lines[i]);
        if (shown_n < lines.size())
            fmt::print("  ... {} more (--connections lists them all)\n", lines.size() - shown_n);
    };
    list("connections between the traces", listing);
    list("connections whose other end was not recorded", outside);
    for (const std::string& m : mismatches)
        fmt::print("{}\n", m);
    for (const std::string& e : extras)
        fmt::print("{}\n", e);
    for (const std::string& b : beyond)
        fmt::print("{}\n", b);
    for (const std::string& u : unread)
        fmt::print("{}\n", u);
    if (unaddressed > 0)
        fmt::print("note: {} handle(s) carry bytes but no accepted or connected record (cannot be paired)\n", unaddressed);
    if (partial > 0)
        fmt::print("note: {} connection(s) end inside a write: its last bytes read could not be checked\n", partial);
    if (redacted_pieces > 0)
        fmt::print("note: {} write(s) reached a read the recorder masked (a read holding a secret, or a byte "
                   "matching a secret's first one at a read's end: docs/trace-format.md): not compared\n",
                   redacted_pieces);

    bool damaged = false;
    for (const Lane& l : c.lanes)
        damaged = damaged || l.damage.has_value();
    const bool inconsistent = !mismatches.empty() || std::any_of(extras.begin(), extras.end(), [](const std::string& e) {
        return e.rfind("EXTRA", 0) == 0;
    });
    fmt::print("checked {} bytes in {} writes\n", bytes_checked, pieces_checked);
    if (inconsistent) {
        fmt::print("INCONSISTENT: what a node read is not what its peer wrote\n");
        return exit_inconsistent;
    }
    if (damaged) {
        fmt::print("CANNOT TELL: a trace is damaged; its readable part is consistent\n");
        return exit_cannot_tell;
    }
    if (c.lanes.size() == 1) {
        fmt::print("CANNOT TELL: one trace alone: give the traces of its peers too (or their folder)\n");
        return exit_cannot_tell;
    }
    if (paired == 0) {
        fmt::print("CANNOT TELL: no connection joins these traces (--map, for addresses seen through NAT?)\n");
        return exit_cannot_tell;
    }
    if (!beyond.empty()) {
        fmt::print("CONSISTENT as far as the traces go: every byte read that the writer's trace holds was written by "
                   "it, in order; {} connection(s) carried bytes past the end of a cut-off trace\n",
                   beyond.size());
        return exit_ok;
    }
    fmt::print("CONSISTENT: every byte read was written by the other end, in order\n");
    return exit_ok;
}

// --- pass 2 for log and timeline: events in a happens-before order ------------------------------

/// One trace being read in the merged order.
struct Head {
    std::optional<trace::Reader> reader;
    trace::Record record;
    std::uint64_t index = 0;        ///< of `record`
    std::uint64_t next_index = 0;
    std::int64_t wall_ns = 0;       ///< of the record's tick
    bool has = false;
    bool done = false;
    std::uint64_t emitted = 0;      ///< records of this trace already in the order
};

/// What a read event received: the write holding its last byte.
struct Source {
    std::size_t side = 0;           ///< the writer's side
    std::size_t write = 0;          ///< index into its writes
};

class Merger {
public:
    Merger(Cluster& c, const ClusterRequest& rq) : c_(c), rq_(rq), heads_(c.lanes.size()), reads_seen_(c.sides.size(), 0) {}

    bool open() {
        for (std::size_t i = 0; i < heads_.size(); ++i) {
            std::string why;
            auto r = trace::Reader::open(c_.lanes[i].path, &why, rq_.key);
            if (!r.ok()) {
                fmt::print(stderr, "reprise cluster: {}\n", why);
                return false;
            }
            heads_[i].reader.emplace(std::move(*r));
            heads_[i].wall_ns = c_.lanes[i].header.start_wall_ns;
            advance(i);
        }
        return true;
    }

    /// The next event in the order: its trace, or nullopt at the end. `forced` says when no
    /// trace could go on without breaking the order (the traces contradict each other).
    std::optional<std::size_t> next(bool& forced) {
        std::optional<std::size_t> best, any;
        for (std::size_t i = 0; i < heads_.size(); ++i) {
            if (!heads_[i].has)
                continue;
            const std::int64_t t = time_of(i);
            if (!any || t < time_of(*any))
                any = i;
            if (blocked(i))
                continue;
            if (!best || t < time_of(*best))
                best = i;
        }
        forced = !best && any;
        return best ? best : any;
    }

    /// Marks the current record of trace i as placed; returns the source of a read.
    std::optional<Source> source_of(std::size_t i) const {
        const Head& h = heads_[i];
        const auto* w = std::get_if<trace::Wake>(&h.record);
        if (w == nullptr || w->wake != WakeKind::bytes_read)
            return std::nullopt;
        const std::size_t si = c_.lanes[i].sides.at(w->handle);
        const Side& s = c_.sides[si];
        if (!s.other)
            return std::nullopt;
        const Side& writer = c_.sides[*s.other];
        const std::size_t k = reads_seen_[si];
        if (k >= s.reads.size())
            return std::nullopt;
        const std::size_t wi = write_holding(writer.writes, s.reads[k].end);
        if (wi >= writer.writes.size())
            return std::nullopt;
        return Source{*s.other, wi};
    }

    void placed(std::size_t i) {
        Head& h = heads_[i];
        if (const auto* w = std::get_if<trace::Wake>(&h.record); w && w->wake == WakeKind::bytes_read)
            ++reads_seen_[c_.lanes[i].sides.at(w->handle)];
        ++h.emitted;
        advance(i);
    }

    const Head& head(std::size_t i) const { return heads_[i]; }
    std::int64_t time_of(std::size_t i) const { return heads_[i].wall_ns + c_.lanes[i].offset_ns - c_.t0_ns; }

private:
    void advance(std::size_t i) {
        Head& h = heads_[i];
        h.has = h.reader->next(h.record);
        if (!h.has) {
            h.done = true;
            return;
        }
        h.index = h.next_index++;
        if (const auto* t = std::get_if<trace::Tick>(&h.record))
            h.wall_ns = t->wall_ns;
    }

    bool blocked(std::size_t i) const {
        if (const auto& prev = c_.lanes[i].previous; prev && !heads_[*prev].done)
            return true;  // a node's next run starts after its last one
        auto src = source_of(i);
        if (!src)
            return false;
        const Side& writer = c_.sides[src->side];
        const Head& wh = heads_[writer.lane];
        return !wh.done && wh.emitted <= writer.writes[src->write].event;
    }

    Cluster& c_;
    const ClusterRequest& rq_;
    std::vector<Head> heads_;
    std::vector<std::size_t> reads_seen_;
};

// --nodes names a node (every run of it) or one run (node-3/2, as log labels it).
bool node_selected(const ClusterRequest& rq, const Lane& l) {
    return rq.nodes.empty() || std::find(rq.nodes.begin(), rq.nodes.end(), l.node) != rq.nodes.end() ||
           std::find(rq.nodes.begin(), rq.nodes.end(), l.label) != rq.nodes.end();
}

// Every name --nodes gave matches a node or a run; a message naming the known ones otherwise.
std::optional<std::string> unknown_node(const Cluster& c, const ClusterRequest& rq) {
    for (const std::string& n : rq.nodes) {
        const bool known = std::any_of(c.lanes.begin(), c.lanes.end(),
                                       [&](const Lane& l) { return l.node == n || l.label == n; });
        if (known)
            continue;
        std::set<std::string> names;
        for (const Lane& l : c.lanes) {
            names.insert(l.node);
            names.insert(l.label);
        }
        std::string list;
        for (const std::string& k : names)
            list += fmt::format("{}{}", list.empty() ? "" : ", ", shown(k));
        return fmt::format("--nodes: no trace is of node {}; these traces are of: {}", shown(n), list);
    }
    return std::nullopt;
}

bool in_window(const ClusterRequest& rq, std::int64_t t) {
    return (!rq.from_ns || t >= *rq.from_ns) && (!rq.to_ns || t <= *rq.to_ns);
}

// Describes an event for log and timeline; decoders per side (stateful: fed in order). The
// log's hot path: descriptions are appended to a reused string with compiled formats.
class Describer {
public:
    explicit Describer(const Cluster& c) : c_(c), decoders_(c.sides.size()) {
        peers_.reserve(c.sides.size());
        for (const Side& s : c.sides)
            peers_.push_back(other_end(c, s));
    }

    /// Appends a one-line description to `out`, and puts the decoded messages it carries in `messages`.
    void describe(std::size_t lane, const trace::Record& r, const std::optional<Source>& src,
                  std::vector<std::string>& messages, std::string& out) {
        messages.clear();
        auto to = std::back_inserter(out);
        const Lane& l = c_.lanes[lane];
        if (const auto* w = std::get_if<trace::Wake>(&r)) {
            auto it = l.sides.find(w->handle);
            switch (w->wake) {
            case WakeKind::bytes_read: {
                decoder(it->second).feed(read_bytes(*w), messages);
                if (src)
                    fmt::format_to(to, FMT_COMPILE("read c{} <- {} #{} ({} B)"), w->handle,
                                   c_.lanes[c_.sides[src->side].lane].label, c_.sides[src->side].writes[src->write].event,
                                   read_bytes(*w).size());
                else
                    fmt::format_to(to, FMT_COMPILE("read c{} <- {} ({} B)"), w->handle, peers_[it->second],
                                   read_bytes(*w).size());
                return;
            }
            case WakeKind::eof: fmt::format_to(to, "eof c{} (the peer closed its side)", w->handle); return;
            case WakeKind::io_error: fmt::format_to(to, "error c{}: {}", w->handle, errno_name(w->value)); return;
            default: break;
            }
        } else if (const auto* o = std::get_if<trace::Output>(&r)) {
            if (o->output == OutputKind::conn_write) {
                auto it = l.sides.find(o->handle);
                if (!o->bytes.empty())
                    decoder(it->second).feed(o->bytes, messages);
                fmt::format_to(to, FMT_COMPILE("write c{} -> {} ({} B)"), o->handle, peers_[it->second], o->length);
                return;
            }
        } else if (const auto* a = std::get_if<trace::Accepted>(&r)) {
            fmt::format_to(to, "accepted c{} from {} on listener {}", a->connection, peers_[l.sides.at(a->connection)],
                           a->listener);
            return;
        } else if (const auto* k = std::get_if<trace::Connected>(&r)) {
            if (k->error != 0)
                fmt::format_to(to, "connect c{} failed: {}", k->connection, errno_name(k->error));
            else
                fmt::format_to(to, "connected c{} to {}", k->connection, peers_[l.sides.at(k->connection)]);
            return;
        } else if (const auto* n = std::get_if<trace::Annotation>(&r)) {
            fmt::format_to(to, "** {}", shown(n->name));
            for (std::size_t i = 0; i < n->count; ++i) {
                const auto& f = n->fields[i];
                if (f.is_text)
                    fmt::format_to(to, " {}={}", shown(f.key), shown(f.text));
                else
                    fmt::format_to(to, " {}={}", shown(f.key), f.number);
            }
            return;
        }
        out += trace::describe(r);
    }

    std::string describe(std::size_t lane, const trace::Record& r, const std::optional<Source>& src,
                         std::vector<std::string>& messages) {
        std::string out;
        describe(lane, r, src, messages, out);
        return out;
    }

private:
    // A side's decoder reads the stream its peer wrote; the other direction's decoder, when it
    // has started, may say what this stream is before its own first bytes can.
    StreamDecoder& decoder(std::size_t side) {
        if (!decoders_[side]) {
            if (const auto& other = c_.sides[side].other; other && decoders_[*other])
                decoders_[side] = answering_decoder(*decoders_[*other]);
            if (!decoders_[side])
                decoders_[side] = std::make_unique<SniffingDecoder>();
        }
        return *decoders_[side];
    }
    const Cluster& c_;
    std::vector<std::unique_ptr<StreamDecoder>> decoders_;
    std::vector<std::string> peers_;  ///< other_end() of each side
};

// Appends ns as seconds with nine decimals, right-aligned in `width` characters.
void append_seconds(std::string& out, std::int64_t ns, std::size_t width) {
    char buf[32];
    const bool negative = ns < 0;
    const std::uint64_t m = negative ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
    char* end = fmt::format_to(buf, FMT_COMPILE("{}{}.{:09}"), negative ? "-" : "", m / 1'000'000'000u,
                               m % 1'000'000'000u);
    const auto n = static_cast<std::size_t>(end - buf);
    if (n < width)
        out.append(width - n, ' ');
    out.append(buf, n);
}

void print_clocks(const Cluster& c, std::FILE* out) {
    for (const Lane& l : c.lanes)
        fmt::print(out, "# {:<{}} {} ({}): clock offset {} s ({})\n", l.label, c.label_width, l.path, events_text(l),
                   seconds(l.offset_ns), l.offset_basis);
}

int run_log(Cluster& c, const ClusterRequest& rq) {
    Merger m(c, rq);
    if (!m.open())
        return exit_usage;
    Describer describer(c);
    std::vector<std::string> messages;
    JsonWriter j;
    if (!rq.json) {
        fmt::print("# reprise cluster log: {} trace(s); time in seconds of cluster time; #N is the event's number in "
                   "its own trace (--replay=TRACE --break-at=N)\n",
                   c.lanes.size());
        print_clocks(c, stdout);
    }
    std::uint64_t forced_count = 0;
    bool forced = false;
    std::string line;
    std::vector<std::string> padded;  // each trace's label, padded to the widest
    for (const Lane& l : c.lanes)
        padded.push_back(l.label + std::string(c.label_width - l.label.size(), ' '));
    while (auto i = m.next(forced)) {
        const Head& h = m.head(*i);
        const Lane& l = c.lanes[*i];
        const std::int64_t t = m.time_of(*i);
        const bool tick = std::holds_alternative<trace::Tick>(h.record);
        auto src = m.source_of(*i);
        if (forced)
            ++forced_count;
        // Decoders must see every read of their stream, shown or not.
        const bool wanted = (!tick || rq.ticks) && node_selected(rq, l) && in_window(rq, t);
        const bool feeds = std::holds_alternative<trace::Wake>(h.record) || std::holds_alternative<trace::Output>(h.record);
        if (wanted || (feeds && !tick)) {
            line.clear();
            if (wanted && !rq.json) {
                append_seconds(line, t, 13);
                line += ' ';
                line += padded[*i];
                fmt::format_to(std::back_inserter(line), FMT_COMPILE(" #{:<7} "), h.index);
            }
            const std::size_t text_at = line.size();
            describer.describe(*i, h.record, src, messages, line);
            if (wanted) {
                if (rq.json) {
                    const std::string_view text = std::string_view(line).substr(text_at);
                    j.clear();
                    j.begin_object().member("t", seconds(t)).member("node", l.node).member("trace", l.path)
                        .member("event", h.index).member("kind", trace::record_kind_name(trace::kind_of(h.record)))
                        .member("text", text);
                    if (src) {
                        const Side& ws = c.sides[src->side];
                        j.key("from").begin_object().member("node", c.lanes[ws.lane].node)
                            .member("trace", c.lanes[ws.lane].path).member("event", ws.writes[src->write].event).end_object();
                    }
                    if (!messages.empty()) {
                        j.key("messages").begin_array();
                        for (const auto& msg : messages)
                            j.value(msg);
                        j.end_array();
                    }
                    if (forced)
                        j.member("order_forced", true);
                    j.end_object();
                    fmt::print("{}\n", j.str());
                } else {
                    if (messages.size() == 1)
                        line += fmt::format(": {}", messages[0]);
                    else if (messages.size() > 1) {
                        line += fmt::format(": {} messages: {}", messages.size(), messages[0]);
                        for (std::size_t k = 1; k < messages.size(); ++k)
                            line += fmt::format(" | {}", messages[k]);
                    }
                    if (forced)
                        line += "   [order forced: the traces contradict each other here]";
                    line += '\n';
                    std::fwrite(line.data(), 1, line.size(), stdout);
                }
            }
        }
        m.placed(*i);
    }
    std::fflush(stdout);
    for (const Lane& l : c.lanes)
        if (l.damage)
            fmt::print(stderr, "reprise cluster: note: {} is damaged ({}): the log holds its readable part\n", l.path,
                       *l.damage);
    if (forced_count > 0)
        fmt::print(stderr,
                   "reprise cluster: note: {} event(s) were placed before a write they read: the traces contradict "
                   "each other (run `reprise cluster check`)\n",
                   forced_count);
    return exit_ok;
}

// --- timeline ----------------------------------------------------------------------------------

// Writes a file, counting its bytes; past the cap it stops writing and says so once.
class Sink {
public:
    Sink(std::string path, std::uint64_t max) : path_(std::move(path)), max_(max) {}
    ~Sink() {
        if (file_ != nullptr && file_ != stdout)
            std::fclose(file_);
    }
    bool open() {
        if (path_ == "-") {
            file_ = stdout;
            return true;
        }
        file_ = std::fopen(path_.c_str(), "w");  // reprise-allow: io (a command line tool, not a program on the runtime)
        if (file_ == nullptr) {
            fmt::print(stderr, "reprise cluster: cannot write {}: {}\n", path_, std::strerror(errno));
            return false;
        }
        return true;
    }
    void put(std::string_view s) {
        if (over_)
            return;
        if (written_ + s.size() > max_) {
            over_ = true;
            return;
        }
        written_ += s.size();
        std::fwrite(s.data(), 1, s.size(), file_);
    }
    bool over() const noexcept { return over_; }
    std::uint64_t written() const noexcept { return written_; }
    /// Flushes and closes; false when writing failed (or the cap was hit: the file is removed).
    bool close() {
        bool ok = std::fflush(file_) == 0 && !std::ferror(file_);
        if (file_ != stdout) {
            ok = std::fclose(file_) == 0 && ok;
            file_ = nullptr;
            if (over_ || !ok)
                std::remove(path_.c_str());
        }
        return ok;
    }

private:
    std::string path_;
    std::uint64_t max_;
    std::FILE* file_ = nullptr;
    std::uint64_t written_ = 0;
    bool over_ = false;
};

// Microseconds with three decimals (Chrome's ts and dur), from nanoseconds.
std::string micros(std::int64_t ns) {
    const bool negative = ns < 0;
    const std::uint64_t m = negative ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
    return fmt::format("{}{}.{:03}", negative ? "-" : "", m / 1000u, m % 1000u);
}

constexpr const char* html_head = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>reprise cluster timeline</title>
<style>
body{font:13px system-ui,sans-serif;margin:0;color:#222}
header{padding:6px 10px;background:#f4f4f4;border-bottom:1px solid #ccc}
#view{width:100%;height:calc(100vh - 80px);display:block;cursor:grab}
.lane-line{stroke:#bbb} .lane-name{font-weight:600} .ev{fill:#557} .note{fill:#c40}
.msg{stroke:#38c;stroke-width:1.2;fill:none;marker-end:url(#arrow)} .msg:hover{stroke:#e33;stroke-width:2.5}
.axis{fill:#666;font-size:11px} #tip{position:fixed;pointer-events:none;background:#ffd;border:1px solid #aa8;padding:3px 6px;display:none;white-space:pre}
</style></head><body>
<header><b>reprise cluster timeline</b> <span id="summary"></span> &mdash; wheel: zoom, drag: move, hover an arrow or a mark for its message and event numbers</header>
<svg id="view" xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#38c"/></marker></defs><g id="plot"></g></svg>
<div id="tip"></div>
<script id="data" type="application/json">)HTML";

constexpr const char* html_tail = R"HTML(</script>
<script>
"use strict";
window.addEventListener("error", e => { document.body.dataset.errors = (document.body.dataset.errors || "") + e.message + ";"; });
const D = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const svg = document.getElementById("view"), plot = document.getElementById("plot"), tip = document.getElementById("tip");
const left = 150, laneGap = 70, top0 = 40;
let t0 = D.t_min, t1 = Math.max(D.t_max, D.t_min + 1);
function width() { return Math.max(svg.clientWidth || 1200, 400); }
function x(t) { return left + (t - t0) / (t1 - t0) * (width() - left - 20); }
function y(lane) { return top0 + lane * laneGap; }
function el(name, attrs, parent, text) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  parent.appendChild(e);
  return e;
}
function hover(e, text) {
  e.addEventListener("mousemove", ev => { tip.style.display = "block"; tip.style.left = (ev.clientX + 12) + "px"; tip.style.top = (ev.clientY + 12) + "px"; tip.textContent = text; });
  e.addEventListener("mouseleave", () => { tip.style.display = "none"; });
}
function secs(ns) { return (ns / 1e9).toFixed(6) + " s"; }
function draw() {
  while (plot.firstChild) plot.removeChild(plot.firstChild);
  svg.setAttribute("height", top0 + D.lanes.length * laneGap);
  for (let k = 0; k <= 5; k++) {
    const t = t0 + (t1 - t0) * k / 5;
    el("text", {x: x(t), y: 14, class: "axis", "text-anchor": "middle"}, plot, secs(t));
  }
  D.lanes.forEach((l, i) => {
    const g = el("g", {class: "lane", "data-node": l.name}, plot);
    el("line", {x1: left, x2: width() - 10, y1: y(i), y2: y(i), class: "lane-line"}, g);
    const name = el("text", {x: 8, y: y(i) + 4, class: "lane-name"}, g, l.name);
    hover(name, l.path);
  });
  let drawn = 0;
  for (const e of D.events) {
    if (e[1] < t0 || e[1] > t1 || drawn > 20000) continue;
    drawn++;
    const note = e[3] === "annotation";
    const m = el(note ? "rect" : "circle", note ? {x: x(e[1]) - 4, y: y(e[0]) - 14, width: 8, height: 8, class: "note"}
                                           : {cx: x(e[1]), cy: y(e[0]), r: 2.5, class: "ev"}, plot);
    hover(m, D.lanes[e[0]].name + " #" + e[2] + " at " + secs(e[1]) + "\n" + e[4]);
    if (note) el("text", {x: x(e[1]) + 6, y: y(e[0]) - 8, class: "axis"}, plot, e[4]);
  }
  for (const f of D.messages) {
    if ((f[2] < t0 && f[5] < t0) || (f[2] > t1 && f[5] > t1) || drawn > 40000) continue;
    drawn++;
    const line = el("line", {x1: x(f[2]), y1: y(f[0]), x2: x(f[5]), y2: y(f[3]), class: "msg"}, plot);
    hover(line, D.lanes[f[0]].name + " #" + f[1] + " -> " + D.lanes[f[3]].name + " #" + f[4] +
                " (" + secs(f[5] - f[2]) + " in flight)\n" + f[6]);
  }
}
svg.addEventListener("wheel", ev => {
  ev.preventDefault();
  const r = svg.getBoundingClientRect();
  const at = t0 + (ev.clientX - r.left - left) / (width() - left - 20) * (t1 - t0);
  const k = ev.deltaY > 0 ? 1.25 : 0.8;
  t0 = at - (at - t0) * k; t1 = at + (t1 - at) * k;
  draw();
}, {passive: false});
let dragging = null;
svg.addEventListener("mousedown", ev => { dragging = {x: ev.clientX, t0, t1}; });
window.addEventListener("mouseup", () => { dragging = null; });
window.addEventListener("mousemove", ev => {
  if (!dragging) return;
  const dt = (ev.clientX - dragging.x) / (width() - left - 20) * (dragging.t1 - dragging.t0);
  t0 = dragging.t0 - dt; t1 = dragging.t1 - dt; draw();
});
document.getElementById("summary").textContent =
  D.lanes.length + " traces, " + D.events.length + " events, " + D.messages.length + " messages" + (D.note ? " (" + D.note + ")" : "");
draw();
</script></body></html>
)HTML";

// JSON text safe inside a <script> element ("</" cannot end it).
std::string script_safe(std::string s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '<' && i + 1 < s.size() && s[i + 1] == '/')
            out += "<\\/";
        else
            out += s[i];
        if (s[i] == '<' && i + 1 < s.size() && s[i + 1] == '/')
            ++i;
    }
    return out;
}

int run_timeline(Cluster& c, const ClusterRequest& rq) {
    std::uint64_t next_flow = 1;
    for (Side& s : c.sides) {
        s.flow_base = next_flow;
        next_flow += s.writes.size();
    }
    auto time_of = [&](std::size_t lane, std::int64_t wall) { return wall + c.lanes[lane].offset_ns - c.t0_ns; };
    auto lane_shown = [&](std::size_t lane) { return node_selected(rq, c.lanes[lane]); };
    // A write's arrow is drawn when its reader read all of it and both ends are shown.
    auto write_arrow = [&](const Side& writer, std::size_t wi) -> bool {
        if (!writer.other)
            return false;
        const Side& reader = c.sides[*writer.other];
        const Write& w = writer.writes[wi];
        if (reader.read_total() < w.end || !lane_shown(reader.lane) || !lane_shown(writer.lane))
            return false;
        const auto ri = std::lower_bound(reader.reads.begin(), reader.reads.end(), w.end,
                                         [](const Read& r, std::uint64_t e) { return r.end < e; });
        return in_window(rq, time_of(writer.lane, w.wall_ns)) && in_window(rq, time_of(reader.lane, ri->wall_ns));
    };

    Sink out(rq.output, rq.max_bytes);
    if (!out.open())
        return exit_usage;
    JsonWriter j;
    std::string item;
    bool first_item = true;
    auto emit = [&](const std::string& json) {
        item.clear();
        if (!first_item)
            item += ",\n";
        first_item = false;
        item += json;
        out.put(rq.html ? script_safe(item) : item);
    };
    // HTML: {"lanes":[...],"events":[[lane,t,event,kind,text]...],"messages":[[lane,event,t,lane,event,t,text]...]}
    // Chrome: {"traceEvents":[...]}. Both stream: the events first, then (HTML) the messages.
    std::vector<std::string> html_messages;
    std::uint64_t html_message_bytes = 0;
    std::int64_t t_min = std::numeric_limits<std::int64_t>::max(), t_max = std::numeric_limits<std::int64_t>::min();
    if (rq.html) {
        out.put(html_head);
        j.clear();
        j.begin_object().key("lanes").begin_array();
        for (const Lane& l : c.lanes)
            j.begin_object().member("name", l.label).member("path", l.path).end_object();
        j.end_array();
        out.put(script_safe(j.str()));
        out.put(",\"events\":[\n");
    } else {
        out.put("{\"traceEvents\":[\n");
        for (std::size_t li = 0; li < c.lanes.size(); ++li) {
            if (!lane_shown(li))
                continue;
            const Lane& l = c.lanes[li];
            j.clear();
            j.begin_object().member("ph", "M").member("pid", li + 1).member("name", "process_name");
            j.key("args").begin_object().member("name", fmt::format("{} ({})", l.label, l.path)).end_object().end_object();
            emit(j.str());
            j.clear();
            j.begin_object().member("ph", "M").member("pid", li + 1).member("name", "process_sort_index");
            j.key("args").begin_object().member("sort_index", li).end_object().end_object();
            emit(j.str());
            for (int tid = 1; tid <= 2; ++tid) {
                j.clear();
                j.begin_object().member("ph", "M").member("pid", li + 1).member("tid", tid).member("name", "thread_name");
                j.key("args").begin_object().member("name", tid == 1 ? "loop ticks" : "connections and annotations")
                    .end_object().end_object();
                emit(j.str());
            }
        }
    }

    Describer describer(c);
    std::vector<std::string> messages;
    std::vector<std::size_t> reads_seen(c.sides.size(), 0);
    for (std::size_t li = 0; li < c.lanes.size() && !out.over(); ++li) {
        if (!lane_shown(li))
            continue;
        std::string why;
        auto reader = trace::Reader::open(c.lanes[li].path, &why, rq.key);
        if (!reader.ok()) {
            fmt::print(stderr, "reprise cluster: {}\n", why);
            out.close();
            return exit_usage;
        }
        const std::string pid = std::to_string(li + 1);
        std::int64_t wall = c.lanes[li].header.start_wall_ns;
        std::int64_t io_end_ns = std::numeric_limits<std::int64_t>::min();  // tid 2's last slice end
        std::optional<std::pair<std::int64_t, std::uint64_t>> open_tick;   // time and event of the last tick
        std::uint64_t tick_events = 0;
        auto close_tick = [&](std::int64_t next_tick_ns) {
            if (!open_tick || rq.html)
                return;
            const std::int64_t dur = std::max<std::int64_t>(1, std::min(next_tick_ns - open_tick->first, tick_slice_ns_max));
            if (in_window(rq, open_tick->first)) {
                emit(fmt::format("{{\"ph\":\"X\",\"pid\":{},\"tid\":1,\"name\":\"tick\",\"ts\":{},\"dur\":{},"
                                 "\"args\":{{\"event\":{},\"events\":{}}}}}",
                                 pid, micros(open_tick->first), micros(dur), open_tick->second, tick_events));
            }
            open_tick.reset();
        };
        trace::Record r;
        for (std::uint64_t index = 0; reader->next(r) && !out.over(); ++index) {
            if (const auto* t = std::get_if<trace::Tick>(&r)) {
                wall = t->wall_ns;
                close_tick(time_of(li, wall));
                open_tick = std::make_pair(time_of(li, wall), index);
                tick_events = 0;
                continue;
            }
            ++tick_events;
            const std::int64_t t = time_of(li, wall);
            // Which record is a slice or an instant, and its arrows.
            std::optional<Source> src;
            std::vector<std::uint64_t> flows_in;
            std::optional<std::uint64_t> flow_out;
            std::string text;
            const bool feeds = std::holds_alternative<trace::Wake>(r) || std::holds_alternative<trace::Output>(r);
            const bool marked = feeds || std::holds_alternative<trace::Accepted>(r) ||
                                std::holds_alternative<trace::Connected>(r) || std::holds_alternative<trace::Annotation>(r);
            if (!marked)
                continue;
            if (const auto* w = std::get_if<trace::Wake>(&r); w && w->wake == WakeKind::bytes_read) {
                const std::size_t si = c.lanes[li].sides.at(w->handle);
                const Side& s = c.sides[si];
                const std::size_t k = reads_seen[si]++;
                if (s.other) {
                    const Side& writer = c.sides[*s.other];
                    const std::uint64_t from = k == 0 ? 0 : s.reads[k - 1].end;
                    for (std::size_t wi = write_holding(writer.writes, from + 1);
                         wi < writer.writes.size() && writer.writes[wi].end <= s.reads[k].end; ++wi)
                        if (write_arrow(writer, wi))
                            flows_in.push_back(wi);
                    const std::size_t last = write_holding(writer.writes, s.reads[k].end);
                    if (last < writer.writes.size())
                        src = Source{*s.other, last};
                }
                text = describer.describe(li, r, src, messages);
                if (!flows_in.empty() && rq.html) {
                    const Side& writer = c.sides[*s.other];
                    for (std::size_t n = 0; n < flows_in.size(); ++n) {
                        const Write& wr = writer.writes[flows_in[n]];
                        j.clear();
                        j.begin_array().value(writer.lane).value(wr.event).value(time_of(writer.lane, wr.wall_ns))
                            .value(li).value(index).value(t)
                            .value(n < messages.size() ? messages[n] : fmt::format("{} bytes", wr.end - (flows_in[n] == 0 ? 0 : writer.writes[flows_in[n] - 1].end)))
                            .end_array();
                        html_message_bytes += j.str().size() + 2;
                        if (html_message_bytes + out.written() > rq.max_bytes)
                            break;
                        html_messages.push_back(j.str());
                    }
                }
                if (!rq.html)
                    for (auto& f : flows_in)
                        f += c.sides[*s.other].flow_base;
            } else {
                if (const auto* o = std::get_if<trace::Output>(&r); o && o->output == OutputKind::conn_write) {
                    const std::size_t si = c.lanes[li].sides.at(o->handle);
                    const Side& s = c.sides[si];
                    // The write's index among its side's writes (they are in event order).
                    const auto it = std::lower_bound(s.writes.begin(), s.writes.end(), index,
                                                     [](const Write& w, std::uint64_t e) { return w.event < e; });
                    const auto windex = static_cast<std::size_t>(it - s.writes.begin());
                    if (windex < s.writes.size() && write_arrow(s, windex))
                        flow_out = s.flow_base + windex;
                }
                text = describer.describe(li, r, std::nullopt, messages);
            }
            if (!in_window(rq, t))
                continue;
            t_min = std::min(t_min, t);
            t_max = std::max(t_max, t);
            const bool note = std::holds_alternative<trace::Annotation>(r);
            const std::string label = messages.empty() ? text : fmt::format("{}: {}", text, messages[0]);
            if (rq.html) {
                j.clear();
                j.begin_array().value(li).value(t).value(index).value(trace::record_kind_name(trace::kind_of(r)))
                    .value(note ? text.substr(3) : label).end_array();
                emit(j.str());
                continue;
            }
            if (note) {
                j.clear();
                j.begin_object().member("ph", "i").member("s", "p").member("pid", li + 1).member("tid", 2)
                    .member("name", text.substr(3));
                j.key("args").begin_object().member("event", index).end_object();
                j.end_object();
                std::string e = j.take();
                e.insert(e.size() - 1, fmt::format(",\"ts\":{}", micros(t)));
                emit(e);
                continue;
            }
            // Slices on tid 2 never overlap: events of one tick are spread 1 ns apart.
            std::vector<std::optional<std::uint64_t>> binds;
            if (flows_in.empty())
                binds.push_back(flow_out);
            else
                for (auto f : flows_in)
                    binds.emplace_back(f);
            for (std::size_t n = 0; n < binds.size(); ++n) {
                const std::int64_t ts = std::max(t, io_end_ns);
                io_end_ns = ts + 1;
                j.clear();
                j.begin_object().member("ph", "X").member("pid", li + 1).member("tid", 2)
                    .member("name", n < messages.size() ? messages[n] : text);
                j.key("args").begin_object().member("event", index).member("what", text);
                if (messages.size() > 1)
                    j.member("messages", messages.size());
                j.end_object();
                if (binds[n])
                    j.member("bind_id", *binds[n]).member(flows_in.empty() ? "flow_out" : "flow_in", true);
                j.end_object();
                std::string e = j.take();
                e.insert(e.size() - 1, fmt::format(",\"ts\":{},\"dur\":0.001", micros(ts)));
                emit(e);
            }
        }
        close_tick(open_tick ? open_tick->first + tick_slice_ns_max : 0);
    }
    if (rq.html) {
        out.put("],\"messages\":[\n");
        for (std::size_t n = 0; n < html_messages.size(); ++n)
            out.put(script_safe(fmt::format("{}{}", n == 0 ? "" : ",\n", html_messages[n])));
        if (t_min > t_max)
            t_min = t_max = 0;
        out.put(fmt::format("],\"t_min\":{},\"t_max\":{}}}\n", t_min, t_max));
        out.put(html_tail);
    } else {
        out.put("\n]}\n");
    }
    const bool over = out.over();
    const std::uint64_t written = out.written();
    if (!out.close()) {
        if (over) {
            fmt::print(stderr,
                       "reprise cluster: the timeline would be larger than --max-bytes {} (Perfetto's UI fails near 1 GB "
                       "of JSON); nothing was written: narrow it with --from/--to/--nodes, or raise --max-bytes\n",
                       rq.max_bytes);
            return exit_usage;
        }
        fmt::print(stderr, "reprise cluster: writing {} failed: {}\n", rq.output, std::strerror(errno));
        return exit_usage;
    }
    if (over) {
        if (rq.output != "-")
            fmt::print(stderr,
                       "reprise cluster: the timeline would be larger than --max-bytes {} (Perfetto's UI fails near 1 GB "
                       "of JSON); nothing was written: narrow it with --from/--to/--nodes, or raise --max-bytes\n",
                       rq.max_bytes);
        else
            fmt::print(stderr, "reprise cluster: the timeline stopped at --max-bytes {}: what was written is cut off\n",
                       rq.max_bytes);
        return exit_usage;
    }
    if (rq.output != "-")
        fmt::print(stderr, "reprise cluster: wrote {} ({} bytes, {} trace(s)){}\n", rq.output, written, c.lanes.size(),
                   rq.html ? ": open it in a browser" : ": open it at ui.perfetto.dev (Open trace file)");
    return exit_ok;
}

} // namespace

int cluster_main(const ClusterRequest& rq) {
    if (rq.action != "check" && rq.action != "log" && rq.action != "timeline") {
        fmt::print(stderr, "reprise cluster: unknown action {} (check, log or timeline)\nTry 'reprise cluster --help'.\n",
                   shown(rq.action));
        return exit_usage;
    }
    auto c = load(rq);
    if (!c)
        return exit_usage;
    if (auto why = unknown_node(*c, rq)) {
        fmt::print(stderr, "reprise cluster: {}\n", *why);
        return exit_usage;
    }
    if (rq.action == "timeline")
        return run_timeline(*c, rq);
    return rq.action == "check" ? run_check(*c, rq) : run_log(*c, rq);
}

} // namespace reprise::tool
