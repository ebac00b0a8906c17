// `reprise load`: replays a trace's recorded inbound traffic against a live server and compares its
// answers with the recorded ones.
//
// The trace is read once into per-connection scripts: the chunks each client sent (as the recorded
// server read them), the writes the server made, and the turns between them. A turn is a run of
// writes with no client bytes between them; it answers the requests the client had completed and
// no earlier turn answered. Turns drive both the pacing (a chunk that followed a turn in the
// recording waits for the target's answer to it) and the latency figures, and, for RESP traces
// recorded without full bytes, say which replies each recorded write holds.
//
// The tool is not a program on the reprise runtime: it uses plain non-blocking sockets and one
// poll() loop, every wait bounded by the request's timeout.
#include "load.hpp"

#include "decoders.hpp"

#include <reprise/record/json.hpp>
#include <reprise/record/trace.hpp>
#include <reprise/record/trace_state.hpp>

#include <fmt/core.h>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <set>

namespace reprise::tool {

const char* const load_help = R"(Usage: reprise load TRACE --to HOST:PORT [--speed=1|N|max] [--ignore CMD[,CMD...]] [--json]
                    [--timeout SECONDS] [--record-key FILE]

Drives a live server with the inbound traffic a trace recorded and compares what it answers
with what the recorded server answered: a new version tested against recorded production traffic.

Every connection the recorded server accepted is opened to HOST:PORT, in recorded order,
overlapping as recorded (a connection opens once the connections that had ended before it
started in the recording have ended here too), and sent the bytes its client sent, in the
chunks the recorded server read them in. The recorded server's own outbound connections
(to other nodes, to backends) are not replayed: the target makes its own.

  --speed=1      the recorded pace (default): each chunk no earlier than its recorded time after
                 the first connection's (the idle time before it is skipped)
  --speed=N      N times faster (N > 0, a decimal)
  --speed=max    as fast as the target answers

Turn-taking: where the recording shows the server answered before its client sent more, the
next chunk waits for the target's answer: as many RESP replies as requests sent so far when the
client spoke RESP, else as many bytes as the recorded server had written, at most --timeout
seconds (default 10). A RESP target that does not answer in time fails that connection; a byte
stream goes on after the timeout.

Comparison, per connection:
  RESP, trace with full bytes (--record-full): reply by reply, byte for byte.
  RESP, digests only: a recorded write holds the replies to the requests its client had
    completed before it and no earlier write answered; consecutive writes with no client bytes
    between them share those replies (a turn). The target's replies of a turn are cut at the
    turn's write lengths and compared with the recorded XXH3-64 digests.
  other protocols: the target's stream is cut at the recorded write lengths, digests compared
    (bytes when the trace has them).
  --ignore CMD   replies to CMD (a command name, any case; repeat or separate by commas) are not
                 compared: skipped one by one where replies can be told apart (full bytes, or a
                 turn of one write per reply); with digests only, a turn whose writes hold an
                 ignored reply together with others is skipped whole (counted as ignored).
The first difference of each connection is printed with the requests and replies around it,
decoded, recorded and target side by side; then connections identical / differing / failed.

Latency, per turn: from the last request byte sent to the target's complete answer, p50, p99,
p99.9 and max, beside the recorded server's at tick granularity (the loop time of the tick
that read the request to that of the tick that wrote the answer: often 0). Throughput in
requests (RESP) or chunks per second. A progress line goes to stderr every 2 s of a long run.

  --json         the summary as one JSON object on stdout (differences included)
  --timeout S    longest wait for a connect or an answer, in seconds (default 10)

Exit code: 0 every connection answered as recorded; 1 some answers differ; 2 a bad command line
or a trace that cannot be read; 3 the target failed (unreachable, reset, no answer in time).
)";

namespace {

namespace trace = reprise::trace;

constexpr int exit_ok = 0;
constexpr int exit_differ = 1;
constexpr int exit_usage = 2;
constexpr int exit_target_failed = 3;

/// Bounds of what the tool holds and opens.
constexpr std::size_t connections_max = 1'000'000;
constexpr std::size_t open_connections_max = 1000;
constexpr std::uint64_t trace_bytes_held_max = 4ull * 1024 * 1024 * 1024;
/// Bytes of a target's answer kept beyond what the recorded server wrote (then it is extra).
constexpr std::size_t extra_bytes_kept_max = 1024 * 1024;
constexpr std::size_t read_bytes_per_call = 64 * 1024;
constexpr int poll_slice_ms = 10;
constexpr std::int64_t progress_every_ns = 2'000'000'000;

// --- the recorded script ---------------------------------------------------------------------

struct Chunk {
    std::string bytes;
    std::int64_t t_ns = 0;              ///< recorded time, from the trace's start
    bool waits = false;                 ///< a turn came between this chunk and the one before
    std::uint64_t wait_replies = 0;     ///< RESP: replies the target must have sent first
    std::uint64_t wait_bytes = 0;       ///< else: bytes
};

struct Write {
    std::uint64_t length = 0;
    std::uint64_t digest = 0;
    std::string bytes;                  ///< when recorded in full
    bool full = false;
    std::int64_t t_ns = 0;
};

struct Turn {
    std::size_t first_write = 0, end_write = 0;
    std::uint64_t first_command = 0, end_command = 0;  ///< the requests it answers
    std::int64_t asked_ns = 0, answered_ns = 0;        ///< recorded: last chunk before it, its last write
};

struct Script {
    std::uint64_t id = 0;
    std::string peer, local;
    std::int64_t start_ns = 0, end_ns = 0;
    std::vector<Chunk> chunks;
    std::vector<Write> writes;
    std::vector<Turn> turns;
    std::vector<std::string> commands;  ///< RESP: each request, decoded
    bool resp = false;
    bool resp_broken = false;           ///< the client's stream stopped being RESP
    bool all_full = true;               ///< every write recorded in full
    std::uint64_t final_replies = 0, final_bytes = 0;
    std::uint64_t output_bytes = 0;
};

std::string command_name(std::string_view description) {
    std::string name(description.substr(0, description.find(' ')));
    for (char& c : name)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return name;
}

struct Loaded {
    std::vector<Script> scripts;
    std::uint64_t outbound_connections = 0;
    std::uint64_t outbound_writes = 0;
    std::int64_t duration_ns = 0;
    std::string damage;  ///< the reader's message when the trace is damaged or cut off
};

// Splits a client's stream into requests (RESP) and computes the turns and waits.
void plan(Script& s, const std::vector<std::pair<bool, std::size_t>>& events) {
    std::string stream;
    std::size_t framed = 0;
    std::uint64_t commands_sent = 0, answered = 0, out_bytes = 0;
    bool turn_open = false, turn_since_chunk = false;
    std::int64_t last_chunk_ns = s.start_ns;
    if (!s.chunks.empty())
        s.resp = looks_like_resp_stream(s.chunks[0].bytes);
    for (const auto& [is_chunk, i] : events) {
        if (is_chunk) {
            Chunk& c = s.chunks[i];
            turn_open = false;
            c.waits = turn_since_chunk;
            turn_since_chunk = false;
            c.wait_replies = answered;
            c.wait_bytes = out_bytes;
            last_chunk_ns = c.t_ns;
            if (s.resp && !s.resp_broken) {
                stream.append(c.bytes);
                for (;;) {
                    std::size_t n = 0;
                    std::string text;
                    const RespFrame f = resp_frame(std::string_view(stream).substr(framed), n, text);
                    if (f == RespFrame::incomplete)
                        break;
                    if (f == RespFrame::invalid) {
                        s.resp_broken = true;
                        break;
                    }
                    framed += n;
                    s.commands.push_back(std::move(text));
                    ++commands_sent;
                }
                if (framed > 0 && framed == stream.size()) {
                    stream.clear();
                    framed = 0;
                }
            }
        } else {
            const Write& w = s.writes[i];
            if (!turn_open) {
                turn_open = true;
                turn_since_chunk = true;
                s.turns.push_back(Turn{i, i + 1, answered, commands_sent, last_chunk_ns, w.t_ns});
                answered = commands_sent;
            }
            s.turns.back().end_write = i + 1;
            s.turns.back().answered_ns = w.t_ns;
            out_bytes += w.length;
        }
    }
    if (s.resp_broken) {
        s.resp = false;
        s.commands.clear();
    }
    s.final_replies = answered;
    s.final_bytes = out_bytes;
    s.output_bytes = out_bytes;
}

std::optional<Loaded> load_trace(const LoadRequest& rq, std::string& why) {
    auto reader = trace::Reader::open(rq.trace, &why, rq.key);
    if (!reader.ok())
        return std::nullopt;
    Loaded out;
    std::map<std::uint64_t, std::size_t> index;  // connection id -> script
    std::vector<std::vector<std::pair<bool, std::size_t>>> events;
    std::int64_t t0 = reader->header().start_mono_ns, now_ns = t0;
    bool first_tick = true;
    std::uint64_t held = 0;
    trace::Record r;
    while (reader->next(r)) {
        if (const auto* t = std::get_if<trace::Tick>(&r)) {
            if (first_tick)
                t0 = t->mono_ns;
            first_tick = false;
            now_ns = t->mono_ns;
            out.duration_ns = std::max<std::int64_t>(out.duration_ns, now_ns - t0);
        } else if (const auto* a = std::get_if<trace::Accepted>(&r)) {
            if (out.scripts.size() >= connections_max) {
                why = fmt::format("more than {} inbound connections: not loaded", connections_max);
                return std::nullopt;
            }
            if (index.count(a->connection) != 0)
                continue;  // damage: an id accepted twice keeps its first connection
            index[a->connection] = out.scripts.size();
            Script s;
            s.id = a->connection;
            s.peer = a->peer.to_string();
            s.local = a->local.to_string();
            s.start_ns = s.end_ns = now_ns - t0;
            out.scripts.push_back(std::move(s));
            events.emplace_back();
        } else if (const auto* c = std::get_if<trace::Connected>(&r)) {
            ++out.outbound_connections;
            (void)c;
        } else if (const auto* w = std::get_if<trace::Wake>(&r)) {
            auto it = index.find(w->handle);
            if (it == index.end())
                continue;
            Script& s = out.scripts[it->second];
            s.end_ns = now_ns - t0;
            if (w->wake == WakeKind::bytes_read && !w->data.empty()) {
                held += w->data.size();
                s.chunks.push_back(Chunk{std::string(w->data), now_ns - t0, false, 0, 0});
                events[it->second].emplace_back(true, s.chunks.size() - 1);
            }
        } else if (const auto* o = std::get_if<trace::Output>(&r)) {
            if (o->output != OutputKind::conn_write)
                continue;
            auto it = index.find(o->handle);
            if (it == index.end()) {
                ++out.outbound_writes;
                continue;
            }
            Script& s = out.scripts[it->second];
            s.end_ns = now_ns - t0;
            const bool full = o->bytes.size() == o->length && (o->length > 0 || o->digest == trace::digest64({}));
            held += o->bytes.size();
            s.all_full = s.all_full && full && !o->bytes.empty();
            s.writes.push_back(Write{o->length, o->digest, std::string(o->bytes), full && !o->bytes.empty(), now_ns - t0});
            events[it->second].emplace_back(false, s.writes.size() - 1);
        }
        if (held > trace_bytes_held_max) {
            why = fmt::format("the trace's inbound traffic is over {} bytes: not loaded", trace_bytes_held_max);
            return std::nullopt;
        }
    }
    if (reader->error())
        out.damage = fmt::format("{} at byte {} (after {} good records): replaying what comes before it",
                                 reader->error()->message, reader->error()->offset, reader->error()->records_good);
    else if (!reader->saw_end())
        out.damage = "the trace has no end record (cut off, or still being written): replaying what it holds";
    for (std::size_t i = 0; i < out.scripts.size(); ++i)
        plan(out.scripts[i], events[i]);
    return out;
}

// --- the live side ----------------------------------------------------------------------------

std::int64_t mono_ns() {
    // reprise-allow: clock because the tool paces a live target, outside any runtime
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

enum class State { waiting, connecting, running, finishing, done };

struct Live {
    State state = State::waiting;
    int fd = -1;
    std::size_t next_chunk = 0;
    std::string_view out;                ///< what is left of the chunk being sent
    std::string in;                      ///< every byte the target sent (up to a bound)
    std::uint64_t in_total = 0;          ///< bytes received, kept or not
    std::size_t framed = 0;              ///< RESP: bytes of `in` split into replies
    std::vector<std::size_t> reply_ends; ///< RESP: where each reply ends in `in`
    bool resp_broken = false;
    bool peer_closed = false;
    std::int64_t sent_ns = 0;            ///< when the last chunk was fully sent
    std::int64_t wait_from_ns = 0;       ///< when the current wait began
    bool latency_taken = true;
    std::string failure;
    std::string note;
    std::int64_t deadline_ns = 0;        ///< of a connect
};

struct Runner {
    const LoadRequest& rq;
    std::vector<Script>& scripts;
    std::vector<Live> live;
    std::vector<std::int64_t> latencies_ns;
    std::vector<std::size_t> by_end;     ///< scripts ordered by recorded end
    std::vector<std::size_t> ended_before;  ///< per script: how many ended before it started
    std::size_t ends_done = 0;           ///< prefix of by_end whose connections are done here
    std::size_t next_open = 0;
    std::size_t open_count = 0;
    std::int64_t start_ns = 0;
    std::int64_t first_start_ns = 0;     ///< recorded start of the first connection
    std::uint64_t chunks_sent = 0, bytes_sent = 0;
    addrinfo* target = nullptr;

    Runner(const LoadRequest& r, std::vector<Script>& s) : rq(r), scripts(s), live(s.size()) {
        by_end.resize(s.size());
        for (std::size_t i = 0; i < s.size(); ++i)
            by_end[i] = i;
        std::stable_sort(by_end.begin(), by_end.end(), [&](std::size_t a, std::size_t b) { return s[a].end_ns < s[b].end_ns; });
        std::vector<std::int64_t> ends;
        for (std::size_t i : by_end)
            ends.push_back(s[i].end_ns);
        if (!s.empty())
            first_start_ns = s.front().start_ns;  // scripts are in accept order, times never decrease
        for (const Script& x : s)
            ended_before.push_back(static_cast<std::size_t>(std::lower_bound(ends.begin(), ends.end(), x.start_ns) - ends.begin()));
    }

    /// When something recorded at `recorded_ns` is due: the pacing starts at the first connection, not
    /// at the trace's start (a server idle before its first client is not waited for).
    std::int64_t due(std::int64_t recorded_ns) const {
        if (rq.speed <= 0)
            return start_ns;
        return start_ns + static_cast<std::int64_t>(static_cast<double>(recorded_ns - first_start_ns) / rq.speed);
    }

    void fail(std::size_t i, std::string why) {
        Live& l = live[i];
        if (l.failure.empty())
            l.failure = std::move(why);
        finish(i);
    }

    void finish(std::size_t i) {
        Live& l = live[i];
        if (l.fd >= 0) {
            ::close(l.fd);
            l.fd = -1;
            --open_count;
        }
        l.state = State::done;
        while (ends_done < by_end.size() && live[by_end[ends_done]].state == State::done)
            ++ends_done;
    }

    void open_connection(std::size_t i, std::int64_t now) {
        Live& l = live[i];
        l.fd = ::socket(target->ai_family, target->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, target->ai_protocol);  // reprise-allow: io because the tool drives a live target
        ++open_count;
        if (l.fd < 0) {
            --open_count;
            l.state = State::done;
            l.failure = fmt::format("socket: {}", std::strerror(errno));
            finish(i);
            return;
        }
        int one = 1;
        (void)::setsockopt(l.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        l.state = State::connecting;
        l.deadline_ns = now + rq.timeout_ns;
        if (::connect(l.fd, target->ai_addr, target->ai_addrlen) != 0 && errno != EINPROGRESS)  // reprise-allow: io because the tool drives a live target
            fail(i, fmt::format("connect: {}", std::strerror(errno)));
    }

    std::uint64_t replies(const Live& l) const { return l.reply_ends.size(); }

    // Whether the target has answered what chunk `c` (or the end, c == chunks.size()) waits for.
    bool answered(std::size_t i, std::size_t c) const {
        const Script& s = scripts[i];
        const Live& l = live[i];
        const bool at_end = c == s.chunks.size();
        if (!at_end && !s.chunks[c].waits)
            return true;
        if (s.resp && !l.resp_broken)
            return replies(l) >= (at_end ? s.final_replies : s.chunks[c].wait_replies);
        return l.in_total >= (at_end ? s.final_bytes : s.chunks[c].wait_bytes);
    }

    void received(std::size_t i, std::string_view bytes) {
        const Script& s = scripts[i];
        Live& l = live[i];
        l.in_total += bytes.size();
        const std::size_t keep = static_cast<std::size_t>(s.output_bytes) + extra_bytes_kept_max;
        if (l.in.size() < keep)
            l.in.append(bytes.substr(0, keep - l.in.size()));
        if (!s.resp || l.resp_broken)
            return;
        for (;;) {
            std::size_t n = 0;
            std::string text;
            const RespFrame f = resp_frame(std::string_view(l.in).substr(l.framed), n, text);
            if (f == RespFrame::incomplete)
                break;
            if (f == RespFrame::invalid) {
                l.resp_broken = true;
                l.note = fmt::format("the target's answer is not RESP from byte {} on", l.framed);
                break;
            }
            l.framed += n;
            l.reply_ends.push_back(l.framed);
        }
    }

    // One connection's step: sends what is due, takes latencies, notices the end.
    void step(std::size_t i, std::int64_t now) {
        const Script& s = scripts[i];
        Live& l = live[i];
        if (l.state != State::running)
            return;
        for (;;) {
            if (!l.out.empty()) {
                const ssize_t n = ::send(l.fd, l.out.data(), l.out.size(), MSG_NOSIGNAL);  // reprise-allow: io because the tool drives a live target
                if (n < 0) {
                    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                        return;
                    fail(i, fmt::format("send: {}", std::strerror(errno)));
                    return;
                }
                l.out.remove_prefix(static_cast<std::size_t>(n));
                bytes_sent += static_cast<std::uint64_t>(n);
                if (!l.out.empty())
                    return;
                l.sent_ns = now;
                l.latency_taken = false;
                l.wait_from_ns = now;
                continue;
            }
            const std::size_t c = l.next_chunk;
            if (!answered(i, c)) {
                if (l.peer_closed) {
                    fail(i, fmt::format("the target closed the connection after {} of {} replies expected",
                                        s.resp && !l.resp_broken ? replies(l) : l.in_total,
                                        c == s.chunks.size() ? s.final_replies : s.chunks[c].wait_replies));
                    return;
                }
                if (now - l.wait_from_ns > rq.timeout_ns) {
                    if (s.resp && !l.resp_broken) {
                        fail(i, fmt::format("no answer within {} s: {} replies of {} expected", rq.timeout_ns / 1'000'000'000,
                                            replies(l), c == s.chunks.size() ? s.final_replies : s.chunks[c].wait_replies));
                        return;
                    }
                    if (l.note.empty())
                        l.note = fmt::format("waited {} s for {} bytes, had {}: went on", rq.timeout_ns / 1'000'000'000,
                                             c == s.chunks.size() ? s.final_bytes : s.chunks[c].wait_bytes, l.in_total);
                    l.wait_from_ns = now;
                    l.latency_taken = true;
                } else {
                    return;
                }
            } else if (!l.latency_taken && (c == s.chunks.size() || s.chunks[c].waits)) {
                latencies_ns.push_back(now - l.sent_ns);
                l.latency_taken = true;
            }
            if (c == s.chunks.size()) {
                finish(i);
                return;
            }
            if (now < due(s.chunks[c].t_ns))
                return;
            l.out = s.chunks[c].bytes;
            ++l.next_chunk;
            ++chunks_sent;
        }
    }

    // Reads what the target sent; returns false when the connection ended.
    void readable(std::size_t i) {
        Live& l = live[i];
        char buf[read_bytes_per_call];
        for (int rounds = 0; rounds < 16 && l.fd >= 0; ++rounds) {
            const ssize_t n = ::recv(l.fd, buf, sizeof buf, 0);  // reprise-allow: io because the tool drives a live target
            if (n > 0) {
                received(i, std::string_view(buf, static_cast<std::size_t>(n)));
                continue;
            }
            if (n == 0) {
                l.peer_closed = true;
                return;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            fail(i, fmt::format("recv: {}", std::strerror(errno)));
            return;
        }
    }

    void progress(std::int64_t now, std::int64_t& last) {
        if (now - start_ns < progress_every_ns || now - last < progress_every_ns)
            return;
        last = now;
        std::size_t done = 0;
        for (const Live& l : live)
            done += l.state == State::done;
        fmt::print(stderr, "reprise load: {:.1f} s: {}/{} connections done, {} open, {} chunks sent ({} bytes)\n",
                   static_cast<double>(now - start_ns) / 1e9, done, live.size(), open_count, chunks_sent, bytes_sent);
    }

    void run() {
        start_ns = mono_ns();
        std::int64_t last_progress = start_ns;
        std::vector<pollfd> fds;
        std::vector<std::size_t> owners;
        std::size_t done_count = 0;
        while (done_count < live.size()) {
            std::int64_t now = mono_ns();
            while (next_open < scripts.size() && open_count < open_connections_max &&
                   ends_done >= ended_before[next_open] && now >= due(scripts[next_open].start_ns)) {
                open_connection(next_open, now);
                ++next_open;
            }
            fds.clear();
            owners.clear();
            for (std::size_t i = 0; i < live.size(); ++i) {
                Live& l = live[i];
                if (l.state == State::connecting && now > l.deadline_ns)
                    fail(i, fmt::format("connect: no answer within {} s", rq.timeout_ns / 1'000'000'000));
                step(i, now);
                if (l.fd < 0 || l.state == State::done)
                    continue;
                short ev = l.peer_closed ? 0 : POLLIN;
                if (l.state == State::connecting || !l.out.empty())
                    ev |= POLLOUT;
                fds.push_back(pollfd{l.fd, ev, 0});
                owners.push_back(i);
            }
            const int n = ::poll(fds.data(), fds.size(), poll_slice_ms);
            if (n < 0 && errno != EINTR)
                break;
            now = mono_ns();
            for (std::size_t k = 0; n > 0 && k < fds.size(); ++k) {
                const std::size_t i = owners[k];
                Live& l = live[i];
                if (fds[k].revents == 0 || l.state == State::done)
                    continue;
                if (l.state == State::connecting) {
                    int err = 0;
                    socklen_t len = sizeof err;
                    (void)::getsockopt(l.fd, SOL_SOCKET, SO_ERROR, &err, &len);
                    if (err != 0 || (fds[k].revents & (POLLERR | POLLHUP)) != 0) {
                        fail(i, fmt::format("connect: {}", std::strerror(err != 0 ? err : ECONNREFUSED)));
                        continue;
                    }
                    l.state = State::running;
                    l.wait_from_ns = now;
                    continue;
                }
                if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) != 0)
                    readable(i);
                if (l.state != State::done)
                    step(i, now);
            }
            done_count = 0;
            for (const Live& l : live)
                done_count += l.state == State::done;
            progress(now, last_progress);
        }
        // Whatever arrived after a connection's last answer stays unread: it was closed.
    }
};

// --- comparison -------------------------------------------------------------------------------

struct Difference {
    std::string where;                    ///< one line: the request or write at which it differs
    std::vector<std::string> context;     ///< lines around it, recorded and target side by side
};

struct Outcome {
    enum Kind { identical, differing, failed } kind = identical;
    std::optional<Difference> difference;
    std::uint64_t compared = 0, ignored = 0, skipped = 0;
};

std::string describe_reply(std::string_view bytes) {
    std::size_t n = 0;
    std::string text;
    if (resp_frame(bytes, n, text) == RespFrame::complete && n == bytes.size())
        return text;
    return shown_short(bytes);
}

class Comparer {
public:
    Comparer(const LoadRequest& rq, const Script& s, const Live& l) : rq_(rq), s_(s), l_(l) {}

    Outcome run() {
        if (s_.resp && !l_.resp_broken)
            resp();
        else
            stream();
        if (out_.difference)
            out_.kind = Outcome::differing;
        if (!l_.failure.empty())
            out_.kind = Outcome::failed;
        return out_;
    }

private:
    bool ignored(std::uint64_t command) const {
        if (command >= s_.commands.size())
            return false;
        const std::string name = command_name(s_.commands[command]);
        return std::find(rq_.ignore.begin(), rq_.ignore.end(), name) != rq_.ignore.end();
    }
    std::string_view target_reply(std::uint64_t k) const {
        if (k >= l_.reply_ends.size())
            return {};
        const std::size_t from = k == 0 ? 0 : l_.reply_ends[k - 1];
        return std::string_view(l_.in).substr(from, l_.reply_ends[k] - from);
    }
    std::string target_shown(std::uint64_t k) const {
        return k < l_.reply_ends.size() ? describe_reply(target_reply(k)) : std::string("(no reply)");
    }
    std::string command_shown(std::uint64_t k) const {
        return k < s_.commands.size() ? s_.commands[k] : std::string("(no request)");
    }

    // Requests around `k` with both sides' replies (`recorded` gives the recorded one, when known).
    template <class Recorded>
    void context(std::uint64_t k, Recorded recorded) {
        Difference& d = *out_.difference;
        const std::uint64_t from = k >= 2 ? k - 2 : 0;
        for (std::uint64_t j = from; j <= k + 1 && j < std::max<std::uint64_t>(s_.commands.size(), l_.reply_ends.size()); ++j)
            d.context.push_back(fmt::format("{} #{} {}\n      recorded: {}\n      target:   {}{}", j == k ? ">" : " ", j,
                                            command_shown(j), recorded(j), target_shown(j),
                                            ignored(j) ? "  (ignored)" : ""));
    }

    void resp() {
        std::vector<std::string_view> rec;  // recorded replies, when every write is in full
        if (s_.all_full) {
            std::string stream;
            for (const Write& w : s_.writes)
                stream += w.bytes;
            recorded_stream_ = std::move(stream);
            std::size_t pos = 0;
            while (pos < recorded_stream_.size()) {
                std::size_t n = 0;
                std::string text;
                if (resp_frame(std::string_view(recorded_stream_).substr(pos), n, text) != RespFrame::complete)
                    break;
                rec.emplace_back(std::string_view(recorded_stream_).substr(pos, n));
                pos += n;
            }
            if (pos == recorded_stream_.size()) {
                resp_full(rec);
                return;
            }
        }
        resp_digests();
    }

    void resp_full(const std::vector<std::string_view>& rec) {
        auto recorded = [&](std::uint64_t j) { return j < rec.size() ? describe_reply(rec[j]) : std::string("(no reply)"); };
        const std::uint64_t n = std::max<std::uint64_t>(rec.size(), l_.reply_ends.size());
        for (std::uint64_t k = 0; k < n; ++k) {
            if (ignored(k)) {
                ++out_.ignored;
                continue;
            }
            ++out_.compared;
            const bool have_rec = k < rec.size(), have_target = k < l_.reply_ends.size();
            if (have_rec && have_target && rec[k] == target_reply(k))
                continue;
            out_.difference = Difference{fmt::format("reply #{} to {}: recorded {}, target {}", k, command_shown(k),
                                                     recorded(k), target_shown(k)), {}};
            context(k, recorded);
            return;
        }
    }

    void resp_digests() {
        auto recorded_of = [&](std::uint64_t j) -> std::string {
            for (const Turn& t : s_.turns) {
                if (j < t.first_command || j >= t.end_command)
                    continue;
                if (t.end_write - t.first_write == t.end_command - t.first_command) {
                    const Write& w = s_.writes[t.first_write + (j - t.first_command)];
                    return w.full ? describe_reply(w.bytes) : fmt::format("{} bytes, xxh3 {:016x}", w.length, w.digest);
                }
                std::uint64_t len = 0;
                for (std::size_t w = t.first_write; w < t.end_write; ++w)
                    len += s_.writes[w].length;
                return fmt::format("(one of the replies to #{}..#{}: {} bytes in {} write(s))", t.first_command,
                                   t.end_command - 1, len, t.end_write - t.first_write);
            }
            return "(no reply)";
        };
        for (const Turn& t : s_.turns) {
            const std::uint64_t p = t.end_command - t.first_command;
            const std::size_t nw = t.end_write - t.first_write;
            if (p == 0) {
                ++out_.skipped;  // writes with no request pending: nothing of the target's to pair them with
                continue;
            }
            bool any_ignored = false;
            for (std::uint64_t k = t.first_command; k < t.end_command; ++k)
                any_ignored = any_ignored || ignored(k);
            if (nw == p) {
                for (std::uint64_t k = t.first_command; k < t.end_command; ++k) {
                    if (ignored(k)) {
                        ++out_.ignored;
                        continue;
                    }
                    ++out_.compared;
                    const Write& w = s_.writes[t.first_write + (k - t.first_command)];
                    const std::string_view got = target_reply(k);
                    if (k < l_.reply_ends.size() && got.size() == w.length && trace::digest64(got) == w.digest)
                        continue;
                    out_.difference = Difference{fmt::format("reply #{} to {}: recorded {}, target {}", k, command_shown(k),
                                                             recorded_of(k), target_shown(k)), {}};
                    context(k, recorded_of);
                    return;
                }
                continue;
            }
            if (any_ignored) {
                out_.ignored += p;
                continue;
            }
            // Several replies in a turn of another number of writes: cut the target's replies at the write lengths.
            out_.compared += p;
            const std::size_t from = t.first_command == 0 ? 0 : t.first_command - 1 < l_.reply_ends.size() ? l_.reply_ends[t.first_command - 1] : l_.in.size();
            const std::size_t to = t.end_command - 1 < l_.reply_ends.size() ? l_.reply_ends[t.end_command - 1] : l_.in.size();
            std::string_view got = std::string_view(l_.in).substr(std::min(from, l_.in.size()), to > from ? to - from : 0);
            const bool all_there = t.end_command <= l_.reply_ends.size();
            for (std::size_t w = t.first_write; w < t.end_write; ++w) {
                const Write& rw = s_.writes[w];
                const std::string_view piece = got.substr(0, std::min<std::size_t>(got.size(), rw.length));
                got.remove_prefix(piece.size());
                if (all_there && piece.size() == rw.length && trace::digest64(piece) == rw.digest &&
                    (w + 1 < t.end_write || got.empty()))
                    continue;
                // The first reply of the turn the cut reaches at this write's start.
                out_.difference = Difference{fmt::format("the replies to #{}..#{} ({} ...): recorded {} bytes in {} writes, "
                                                         "the target's differ from byte {} of them (write {} of the turn)",
                                                         t.first_command, t.end_command - 1, command_shown(t.first_command),
                                                         [&] { std::uint64_t n = 0; for (std::size_t x = t.first_write; x < t.end_write; ++x) n += s_.writes[x].length; return n; }(),
                                                         nw, (to - from) - got.size() - piece.size(), w - t.first_write), {}};
                context(t.first_command, recorded_of);
                return;
            }
        }
        if (l_.reply_ends.size() > s_.final_replies) {
            const std::uint64_t k = s_.final_replies;
            out_.difference = Difference{fmt::format("extra reply #{} from the target: {}", k, target_shown(k)), {}};
            context(k, recorded_of);
        }
    }

    void stream() {
        std::uint64_t pos = 0;
        const std::string_view in = l_.in;
        for (std::size_t w = 0; w < s_.writes.size(); ++w) {
            const Write& rw = s_.writes[w];
            ++out_.compared;
            const std::string_view piece = pos < in.size() ? in.substr(static_cast<std::size_t>(pos), rw.length) : std::string_view();
            const bool same = piece.size() == rw.length &&
                              (rw.full ? piece == std::string_view(rw.bytes) : trace::digest64(piece) == rw.digest);
            if (!same) {
                Difference d;
                std::string answer;  // a RESP client's requests this write answers (the target's answer was not RESP)
                for (const Turn& t : s_.turns)
                    if (w >= t.first_write && w < t.end_write && t.end_command > t.first_command)
                        answer = fmt::format(", the answer to #{} {}{}", t.first_command, command_shown(t.first_command),
                                             t.end_command - t.first_command > 1 ? " ..." : "");
                d.where = fmt::format("write #{} of the recorded server{} (bytes {}..{} of its answer): recorded {}, target {}", w, answer,
                                      pos, pos + rw.length,
                                      rw.full ? shown_short(rw.bytes) : fmt::format("{} bytes, xxh3 {:016x}", rw.length, rw.digest),
                                      piece.empty() ? std::string("(nothing)") : shown_short(piece));
                if (w > 0)
                    d.context.push_back(fmt::format("  before: recorded write #{} of {} bytes matched", w - 1, s_.writes[w - 1].length));
                if (pos + rw.length < in.size())
                    d.context.push_back(fmt::format("  after:  the target's next bytes: {}", shown_short(in.substr(static_cast<std::size_t>(pos + rw.length)))));
                out_.difference = std::move(d);
                return;
            }
            pos += rw.length;
        }
        if (l_.in_total > pos)
            out_.difference = Difference{fmt::format("{} bytes from the target past the {} the recorded server wrote: {}",
                                                     l_.in_total - pos, pos, shown_short(in.substr(std::min<std::size_t>(pos, in.size())))), {}};
    }

    const LoadRequest& rq_;
    const Script& s_;
    const Live& l_;
    Outcome out_;
    std::string recorded_stream_;
};

std::string duration(std::int64_t ns) {
    if (ns < 1'000)
        return fmt::format("{} ns", ns);
    if (ns < 1'000'000)
        return fmt::format("{:.1f} us", static_cast<double>(ns) / 1e3);
    if (ns < 1'000'000'000)
        return fmt::format("{:.2f} ms", static_cast<double>(ns) / 1e6);
    return fmt::format("{:.3f} s", static_cast<double>(ns) / 1e9);
}

struct Percentiles {
    std::size_t n = 0;
    std::int64_t p50 = 0, p99 = 0, p999 = 0, max = 0;
};

Percentiles percentiles(std::vector<std::int64_t> v) {
    Percentiles p;
    p.n = v.size();
    if (v.empty())
        return p;
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)]; };
    p.p50 = at(0.5);
    p.p99 = at(0.99);
    p.p999 = at(0.999);
    p.max = v.back();
    return p;
}

void percentiles_json(JsonWriter& j, std::string_view key, const Percentiles& p) {
    j.key(key).begin_object().member("count", static_cast<std::uint64_t>(p.n)).member("p50_ns", p.p50)
        .member("p99_ns", p.p99).member("p999_ns", p.p999).member("max_ns", p.max).end_object();
}

bool resolve(const LoadRequest& rq, addrinfo*& out, std::string& why) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    const int rc = ::getaddrinfo(rq.host.c_str(), rq.port.c_str(), &hints, &out);
    if (rc != 0) {
        why = fmt::format("cannot resolve {}:{}: {}", rq.host, rq.port, ::gai_strerror(rc));
        return false;
    }
    return true;
}

} // namespace

// One connection to the target before anything is sent, bounded by --timeout: a target that is
// not there is one line and exit 3, not a failure per recorded connection.
bool probe_target(const addrinfo* target, std::int64_t timeout_ns, std::string& why) {
    const int fd = ::socket(target->ai_family, target->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, target->ai_protocol);  // reprise-allow: io because the tool drives a live target
    if (fd < 0) {
        why = fmt::format("socket: {}", std::strerror(errno));
        return false;
    }
    int err = 0;
    if (::connect(fd, target->ai_addr, target->ai_addrlen) != 0) {  // reprise-allow: io because the tool drives a live target
        err = errno;
        if (err == EINPROGRESS) {
            pollfd p{fd, POLLOUT, 0};
            const int ready = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(1, timeout_ns / 1'000'000)));  // reprise-allow: io because the tool drives a live target
            socklen_t len = sizeof err;
            err = ready == 0 ? ETIMEDOUT : ready < 0 ? errno : 0;
            if (ready > 0 && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
        }
    }
    ::close(fd);  // reprise-allow: io because the tool drives a live target
    if (err != 0)
        why = std::strerror(err);
    return err == 0;
}

int load_main(const LoadRequest& rq) {
    std::string why;
    auto loaded = load_trace(rq, why);
    if (!loaded) {
        fmt::print(stderr, "reprise load: {}\n", why);
        return exit_usage;
    }
    if (!loaded->damage.empty())
        fmt::print(stderr, "reprise load: note: {}\n", loaded->damage);
    auto& scripts = loaded->scripts;
    std::uint64_t requests = 0, chunks = 0;
    std::size_t resp_count = 0;
    for (const Script& s : scripts) {
        requests += s.commands.size();
        chunks += s.chunks.size();
        resp_count += s.resp;
    }
    addrinfo* target = nullptr;
    if (!resolve(rq, target, why)) {
        fmt::print(stderr, "reprise load: {}\n", why);
        return exit_target_failed;
    }
    if (!probe_target(target, rq.timeout_ns, why)) {
        fmt::print(stderr, "reprise load: cannot connect to the target {}:{}: {} (nothing was sent)\n", rq.host, rq.port,
                   why);
        ::freeaddrinfo(target);
        return exit_target_failed;
    }
    const std::string speed = rq.speed <= 0 ? std::string("max") : fmt::format("{}", rq.speed);
    if (!rq.json)
        fmt::print("reprise load: {} inbound connection(s) ({} RESP), {} requests in {} chunks, recorded over {}; "
                   "target {}:{}, speed {}\n"
                   "  the recorded server's own outbound connections are not replayed ({} connect(s), {} write(s) on them)\n",
                   scripts.size(), resp_count, requests, chunks, duration(loaded->duration_ns), rq.host, rq.port, speed,
                   loaded->outbound_connections, loaded->outbound_writes);
    Runner runner(rq, scripts);
    runner.target = target;
    runner.run();
    const std::int64_t elapsed_ns = std::max<std::int64_t>(1, mono_ns() - runner.start_ns);
    ::freeaddrinfo(target);

    std::size_t identical = 0, differing = 0, failed = 0;
    std::uint64_t compared = 0, ignored = 0, skipped = 0;
    std::vector<std::int64_t> recorded_latencies;
    JsonWriter j;
    j.begin_object().member("trace", std::string_view(rq.trace)).member("target", fmt::format("{}:{}", rq.host, rq.port))
        .member("speed", std::string_view(speed));
    j.key("connections_detail").begin_array();
    for (std::size_t i = 0; i < scripts.size(); ++i) {
        const Script& s = scripts[i];
        const Live& l = runner.live[i];
        for (const Turn& t : s.turns)
            if (t.end_command > t.first_command || !s.resp)
                recorded_latencies.push_back(t.answered_ns - t.asked_ns);
        Comparer cmp(rq, s, l);
        const Outcome o = cmp.run();
        compared += o.compared;
        ignored += o.ignored;
        skipped += o.skipped;
        identical += o.kind == Outcome::identical;
        differing += o.kind == Outcome::differing;
        failed += o.kind == Outcome::failed;
        const char* kind = o.kind == Outcome::identical ? "identical" : o.kind == Outcome::differing ? "differs" : "failed";
        if (o.kind != Outcome::identical || !l.note.empty()) {
            j.begin_object().member("connection", s.id).member("peer", std::string_view(s.peer)).member("result", kind);
            if (!l.failure.empty())
                j.member("failure", std::string_view(l.failure));
            if (!l.note.empty())
                j.member("note", std::string_view(l.note));
            if (o.difference) {
                j.member("difference", std::string_view(o.difference->where));
                j.key("context").begin_array();
                for (const std::string& c : o.difference->context)
                    j.value(c);
                j.end_array();
            }
            j.end_object();
        }
        if (rq.json || (o.kind == Outcome::identical && l.note.empty()))
            continue;
        fmt::print("connection c{} from {} ({} requests, {} chunks): {}\n", s.id, s.peer, s.commands.size(), s.chunks.size(), kind);
        if (!l.failure.empty())
            fmt::print("  the target failed: {}\n", l.failure);
        if (!l.note.empty())
            fmt::print("  note: {}\n", l.note);
        if (o.difference) {
            fmt::print("  first difference: {}\n", o.difference->where);
            for (const std::string& c : o.difference->context)
                fmt::print("    {}\n", c);
        }
    }
    j.end_array();
    std::int64_t first_ns = -1, last_chunk_ns = 0;  // the recorded span the pacing replays
    for (const Script& s : scripts) {
        if (first_ns < 0 || s.start_ns < first_ns)
            first_ns = s.start_ns;
        if (!s.chunks.empty())
            last_chunk_ns = std::max(last_chunk_ns, s.chunks.back().t_ns);
    }
    const Percentiles target_p = percentiles(runner.latencies_ns);
    const Percentiles recorded_p = percentiles(recorded_latencies);
    const double seconds = static_cast<double>(elapsed_ns) / 1e9;
    const std::uint64_t units = requests > 0 ? requests : runner.chunks_sent;
    const char* unit = requests > 0 ? "requests" : "chunks";
    if (rq.json) {
        j.member("connections", static_cast<std::uint64_t>(scripts.size()))
            .member("identical", static_cast<std::uint64_t>(identical))
            .member("differing", static_cast<std::uint64_t>(differing))
            .member("failed", static_cast<std::uint64_t>(failed))
            .member("replies_compared", compared).member("replies_ignored", ignored).member("replies_skipped", skipped)
            .member("requests", requests).member("chunks_sent", runner.chunks_sent).member("bytes_sent", runner.bytes_sent)
            .member("elapsed_ns", elapsed_ns).member("recorded_ns", loaded->duration_ns)
            .member("recorded_traffic_ns", std::max<std::int64_t>(0, last_chunk_ns - std::max<std::int64_t>(first_ns, 0)))
            .member("throughput_per_s", static_cast<double>(units) / seconds).member("throughput_unit", unit)
            .member("outbound_connections_not_replayed", loaded->outbound_connections);
        percentiles_json(j, "latency_target", target_p);
        percentiles_json(j, "latency_recorded_tick_granularity", recorded_p);
        j.end_object();
        fmt::print("{}\n", j.str());
    } else {
        fmt::print("connections: {} identical, {} differing, {} failed (of {}); replies compared {}, ignored {}, "
                   "not comparable {}\n",
                   identical, differing, failed, scripts.size(), compared, ignored, skipped);
        fmt::print("latency per turn (last request byte sent -> complete answer):\n"
                   "  {:<9} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
                   "", "p50", "p99", "p99.9", "max", "turns");
        for (const auto& [name, p] : {std::pair{"target", target_p}, std::pair{"recorded", recorded_p}})
            fmt::print("  {:<9} {:>10} {:>10} {:>10} {:>10} {:>8}\n", name, duration(p.p50), duration(p.p99),
                       duration(p.p999), duration(p.max), p.n);
        fmt::print("  (recorded: at tick granularity, the loop time of the tick that read a request to that of the "
                   "tick that wrote its answer)\n");
        fmt::print("throughput: target {} {} in {} = {:.0f} {}/s, {} bytes sent; recorded over {}\n", units, unit,
                   duration(elapsed_ns), static_cast<double>(units) / seconds, unit, runner.bytes_sent,
                   duration(loaded->duration_ns));
    }
    if (failed > 0)
        return exit_target_failed;
    return differing > 0 ? exit_differ : exit_ok;
}

} // namespace reprise::tool
