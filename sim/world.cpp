// The simulated world: nodes' runtimes stepped on one virtual clock, a simulated TCP network
// between them, a disk per node, clocks per node and faults, every draw from one seed.
#include "reprise/sim/world.hpp"

#include "reprise/io/internal/offload_state.hpp"
#include "reprise/io/internal/tcp_state.hpp"
#include "reprise/record/internal/run_order.hpp"
#include "reprise/runtime/internal/core.hpp"
#include "reprise/runtime/internal/prng.hpp"

#include <fmt/core.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <deque>
#include <filesystem>
#include <map>
#include <queue>
#include <stdexcept>

extern "C" const char* const reprise_build_commit;

namespace reprise::sim {

using detail::ConnState;
using detail::ListenerState;
using detail::OffloadState;
using detail::ByteBuffer;
using detail::WakeBatch;
using detail::Wakeup;

namespace {

constexpr std::int64_t never = INT64_MAX;
__extension__ using i128 = __int128;

std::uint64_t mix(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

std::uint32_t ipv4_of(const Address& a) {
    if (a.family() != AF_INET)
        return 0;
    return ntohl(reinterpret_cast<const sockaddr_in*>(a.sockaddr_ptr())->sin_addr.s_addr);
}

Address make_address(std::uint32_t ip, std::uint16_t port) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(ip);
    return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
}

constexpr std::uint32_t loopback_ip = 0x7F000001;
constexpr std::uint32_t any_ip = 0;

std::string seconds(std::int64_t ns) { return fmt::format("{}.{:06}s", ns / 1'000'000'000, (ns / 1000) % 1'000'000); }

} // namespace

const char* node_state_name(NodeState s) noexcept {
    switch (s) {
    case NodeState::running: return "running";
    case NodeState::paused: return "paused";
    case NodeState::crashed: return "crashed";
    case NodeState::exited: return "exited";
    case NodeState::killed: return "killed";
    }
    return "unknown";
}

std::string build_description() {
#ifdef REPRISE_BUILD_TYPE
    const char* type = REPRISE_BUILD_TYPE;
#else
    const char* type = "unknown";
#endif
#if defined(__clang__)
    std::string compiler = fmt::format("clang++ {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
    std::string compiler = fmt::format("g++ {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
    std::string compiler = "unknown-compiler";
#endif
    return fmt::format("commit={} build={} compiler='{}'", reprise_build_commit, type, compiler);
}

// --- the pieces of the world ----------------------------------------------------------

class SimBackend;

/// What travels on one direction of a connection.
struct Segment {
    enum Kind : std::uint8_t { syn, synack, data, fin, rst, ack } kind;
    std::int64_t arrive_ns = -1;   ///< -1: held (the link is clogged or partitioned)
    std::string bytes;             ///< data
    std::uint64_t acked = 0;       ///< ack: bytes the reader's runtime took
};

Segment control(Segment::Kind kind, std::uint64_t acked = 0) {
    Segment s{.kind = kind, .arrive_ns = -1, .bytes = {}, .acked = acked};
    return s;
}

/// One end of a simulated TCP connection: what a node's kernel keeps for a socket.
struct Endpoint {
    std::uint32_t id = 0;
    NodeId node = 0;
    std::uint32_t incarnation = 0;
    NodeId dest = 0;               ///< the node at the other end
    std::uint32_t peer = 0;        ///< the other end's endpoint (0: not yet: a connect in flight)
    ConnState* conn = nullptr;     ///< the runtime's connection (null: not adopted, or closed)
    Address local, remote;
    // receiving
    bool reading = true;
    std::string held;              ///< arrived while the runtime does not read
    bool fin_after_held = false;
    // sending
    std::deque<Segment> out;       ///< toward dest, in order
    std::int64_t last_arrival = 0;
    std::size_t unacked = 0;       ///< sent bytes the peer's runtime has not taken
    ByteBuffer orphan_output;      ///< output of a closed connection, still sent
    bool connecting = false;
    bool shutdown_pending = false;
    bool fin_sent = false;
    bool app_closed = false;
    bool dead = false;             ///< reset, timed out or its node crashed
    std::uint64_t timeout_generation = 0;
    bool timeout_armed = false;
    Address connect_to;
};

struct ListenEntry {
    NodeId node = 0;
    std::uint32_t incarnation = 0;
    ListenerState* listener = nullptr;
    std::uint32_t ip = 0;
    std::uint16_t port = 0;
    bool accepting = true;
    bool open = true;
    std::deque<std::uint32_t> backlog;  ///< server endpoints not yet handed to the runtime
};

struct Link {
    bool partitioned = false;
    bool clogged = false;
    Latency latency{};
    bool blocked() const noexcept { return partitioned || clogged; }
};

struct Node {
    NodeId id = 0;
    NodeSpec spec;
    std::uint32_t ip = 0;
    NodeState state = NodeState::running;
    std::uint32_t incarnation = 0;
    std::unique_ptr<Runtime> rt;
    SimBackend* backend = nullptr;
    std::shared_ptr<SimDisk> disk;
    // clock: mono(t) = m0 + (t - t0) * (1 + ppm / 1e6); wall(t) = start_wall + t + wall_offset
    std::int64_t t0 = 0;
    std::int64_t m0 = 0;
    std::int64_t ppm = 0;
    std::int64_t wall_offset = 0;
    std::optional<int> exit_code;
    std::vector<std::string> traces;
    /// The running incarnation's trace in the world's run order (UINT32_MAX: not recorded).
    std::uint32_t order_index = UINT32_MAX;
    bool crash_pending = false;
    std::uint16_t next_port = 40000;
    std::uint64_t wakeups_before = 0;  ///< wake-ups of earlier incarnations
    /// The runtime's next_event_ns() as last asked, while `next_known`: it changes only when the
    /// runtime steps (or starts, or is unwound) and when its backend's pending wake-ups change,
    /// and each of those forgets it (forget_next()). A runtime handed out by World::runtime()
    /// may be changed from outside: that node is asked every time (`next_uncached`).
    std::int64_t next_m = -1;
    bool next_known = false;
    bool next_uncached = false;
    void forget_next() noexcept { next_known = false; }

    std::int64_t mono(std::int64_t t) const noexcept {
        // No drift (the usual case): the same value without 128-bit arithmetic (a __divti3 call).
        return ppm == 0 ? m0 + (t - t0) : drifted_mono(t);
    }
    /// The earliest world time at which mono() reaches `m`.
    std::int64_t true_time(std::int64_t m, std::int64_t now) const noexcept {
        if (ppm != 0)
            return drifted_true_time(m, now);
        // m <= mono(now): now; else the t with mono(t) == m.
        return std::max(t0 + (m - m0), now);
    }
    // The drifting clock's arithmetic, kept out of line: the scheduler asks true_time() of
    // every node for every event.
    [[gnu::noinline]] std::int64_t drifted_mono(std::int64_t t) const noexcept {
        const i128 d = t - t0;
        return m0 + static_cast<std::int64_t>(d + d * ppm / 1'000'000);
    }
    [[gnu::noinline]] std::int64_t drifted_true_time(std::int64_t m, std::int64_t now) const noexcept {
        if (m <= mono(now))
            return now;
        const i128 d = m - m0;
        std::int64_t t = t0 + static_cast<std::int64_t>((d * 1'000'000 + (1'000'000 + ppm) - 1) / (1'000'000 + ppm));
        while (mono(t) < m)
            ++t;
        while (t > now && mono(t - 1) >= m)
            --t;
        return std::max(t, now);
    }
};

struct Event {
    enum Kind : std::uint8_t { arrive, connect_timeout, refused, link_timeout, offload, action } kind;
    std::int64_t at = 0;
    std::uint64_t key = 0;
    std::uint64_t seq = 0;
    std::uint32_t a = 0;          ///< endpoint or node
    std::uint64_t b = 0;          ///< generation, incarnation or action index
    std::uint64_t c = 0;          ///< offload request id
    bool operator>(const Event& o) const noexcept { return at != o.at ? at > o.at : key > o.key; }
};

struct World::Impl {
    explicit Impl(WorldOptions o);

    WorldOptions options;
    detail::Prng prng;
    std::int64_t now = 0;
    std::uint64_t seq = 0;
    std::uint64_t events = 0;
    std::uint64_t hash = 0;
    std::vector<std::string> log;
    std::vector<std::unique_ptr<Node>> nodes;
    std::vector<Link> links;  ///< nodes x nodes, from * count + to
    std::priority_queue<Event, std::vector<Event>, std::greater<>> queue;
    std::vector<std::unique_ptr<Endpoint>> endpoints;  ///< by id - 1
    std::vector<std::unique_ptr<ListenEntry>> listeners;  ///< by token - 1
    std::map<std::uint64_t, std::function<void()>> actions;
    bool in_node_step = false;
    std::size_t nodes_down = 0;
    /// Which recorded node took each tick, in order (trace_folder/sim.order, for joint replay).
    trace::RunOrderLog run_order;
    // Random faults: who hears of them, who may veto taking a node down, whether they stopped,
    // and the action indexes of those still holding (their ends, run early by stop_random_faults).
    std::function<void(const RandomFault&)> fault_observer;
    std::function<bool(NodeId)> fault_guard;
    bool random_faults_stopped = false;
    std::uint64_t random_fault_ids = 0;
    std::vector<std::uint64_t> random_fault_ends;

    // --- time, draws, hashing ---
    void schedule(Event e) {
        e.seq = ++seq;
        e.key = mix(options.seed ^ (e.seq * 0xD6E8FEB86659FD93ULL));
        queue.push(e);
    }
    std::int64_t draw(Latency l) {
        const std::int64_t lo = l.min.count(), hi = std::max(l.max.count(), lo);
        return lo + static_cast<std::int64_t>(prng.below(static_cast<std::uint64_t>(hi - lo) + 1));
    }
    void note(std::uint64_t a, std::uint64_t b = 0, std::uint64_t c = 0) noexcept {
        if (options.hash_events)
            hash = mix(hash ^ mix(a ^ mix(b ^ mix(c ^ static_cast<std::uint64_t>(now)))));
    }
    void note_bytes(std::string_view bytes) noexcept {
        if (options.hash_events)
            hash = XXH3_64bits_withSeed(bytes.data(), bytes.size(), hash);
    }
    void say(std::string line) { log.push_back(seconds(now) + " " + std::move(line)); }

    Link& link(NodeId from, NodeId to) { return links[from * nodes.size() + to]; }
    Node& node(NodeId id) {
        if (id >= nodes.size())
            throw std::out_of_range(fmt::format("no node {} (the world has {})", id, nodes.size()));
        return *nodes[id];
    }

    // --- what runs next ---
    /// The next event: a node's step or the queue's top, whichever is earlier (ties broken by
    /// their keys). Nothing changes between peek() and run(), so a caller that peeks to
    /// compare the time with a bound runs the very event it looked at.
    struct Next {
        Node* node = nullptr;     ///< the node whose step comes next (when !queued)
        std::int64_t at = never;  ///< when it happens (never: nothing is left)
        bool queued = false;      ///< the queue's top comes next
    };
    Next peek();
    /// Runs what peek() returned; false when that was nothing.
    bool run(const Next& next);
    void run_queued();

    // --- nodes ---
    void start_node(Node& n);
    void step_node(Node& n);
    void finish_node(Node& n);
    void crash(Node& n, NodeState to);
    std::int64_t next_node_time(Node& n);

    // --- network ---
    Endpoint& new_endpoint(Node& n);
    Endpoint* endpoint(std::uint32_t id) noexcept {
        return id == 0 || id > endpoints.size() ? nullptr : endpoints[id - 1].get();
    }
    void send(Endpoint& ep, Segment s);
    void try_send(Endpoint& ep);
    void arrive(Endpoint& from);
    void release_held(NodeId from, NodeId to);
    void reset(Endpoint& ep, int err, bool tell_peer);
    void push(Endpoint& ep, Wakeup w, std::string_view data = {});
    void deliver_bytes(Endpoint& ep, std::string_view bytes);
    ListenEntry* find_listener(NodeId caller, const Address& to, NodeId* owner);
    void offer_backlog(ListenEntry& l);

    // --- faults ---
    void schedule_random_fault();
    void random_fault();
};

/// A node's backend: its runtime's view of the simulated world.
class SimBackend final : public detail::Backend {
public:
    SimBackend(World::Impl& w, Node& n) : w_(w), n_(n) { n_.backend = this; }
    ~SimBackend() override {
        if (n_.backend == this)
            n_.backend = nullptr;
    }

    WakeBatch pending;
    bool dead = false;
    std::map<std::uint64_t, std::shared_ptr<OffloadState>> offloads;
    std::map<int, bool> watched;
    std::uint64_t delivered = 0;

    detail::PollResult poll(std::int64_t, WakeBatch& out) override {
        std::swap(out, pending);
        n_.forget_next();
        for (const Wakeup& wk : out.items) {
            ++delivered;
            w_.note(0x10 + static_cast<std::uint64_t>(wk.kind), n_.id, wk.handle ^ (static_cast<std::uint64_t>(wk.value) << 32));
            if (wk.kind == WakeKind::bytes_read) {
                w_.note_bytes(out.data(wk));
                // The runtime took these bytes from the kernel: the window reopens.
                if (Endpoint* ep = owner_of(wk.handle); ep && !ep->dead)
                    w_.send(*ep, control(Segment::ack, wk.data_bytes));
            }
        }
        return detail::PollResult{.could_wake = true, .waited_on_clock = false};
    }
    void read_clock(std::int64_t& mono_ns, std::int64_t& wall_ns) override {
        mono_ns = n_.mono(w_.now);
        wall_ns = w_.options.start_wall_ns + w_.now + n_.wall_offset;
    }
    std::int64_t precise_clock_ns() override { return n_.mono(w_.now); }
    void collect_due_timers(detail::TimerHeap& timers, std::int64_t now_ns, WakeBatch& out) override {
        while (detail::TimerState* t = timers.top()) {
            if (t->deadline_ns > now_ns)
                break;
            timers.pop();
            w_.note(0x20, n_.id, t->id);
            ++delivered;
            out.items.push_back(Wakeup{.kind = WakeKind::timer_fired, .handle = t->id});
        }
    }
    std::int64_t next_known_event_ns() const noexcept override { return pending.items.empty() ? -1 : n_.mono(w_.now); }

    Result<void> listen(ListenerState& l, const Address& address) override {
        if (dead)
            return error_from_errno(ENETDOWN);  // the node is going down: no new socket
        const std::uint32_t ip = ipv4_of(address);
        if (address.family() != AF_INET)
            return Error{Errc::invalid_argument, EAFNOSUPPORT};
        if (ip != any_ip && ip != loopback_ip && ip != n_.ip)
            return Error{Errc::io, EADDRNOTAVAIL};
        std::uint16_t port = address.port();
        auto taken = [&](std::uint16_t p) {
            for (auto& e : w_.listeners)
                if (e && e->open && e->node == n_.id && e->port == p && (e->ip == ip || e->ip == any_ip || ip == any_ip))
                    return true;
            return false;
        };
        if (port == 0) {
            do
                port = n_.next_port++;
            while (taken(port));
        } else if (taken(port)) {
            return Error{Errc::address_in_use, EADDRINUSE};
        }
        auto entry = std::make_unique<ListenEntry>();
        entry->node = n_.id;
        entry->incarnation = n_.incarnation;
        entry->listener = &l;
        entry->ip = ip;
        entry->port = port;
        w_.listeners.push_back(std::move(entry));
        l.backend_token = static_cast<std::uint32_t>(w_.listeners.size());
        l.local = make_address(ip, port);
        w_.note(0x30, n_.id, port);
        return {};
    }
    void set_accepting(ListenerState& l, bool accepting) override {
        if (ListenEntry* e = entry(l)) {
            e->accepting = accepting;
            if (accepting)
                w_.offer_backlog(*e);
        }
    }
    void close_listener(ListenerState& l) override {
        if (ListenEntry* e = entry(l)) {
            e->open = false;
            e->listener = nullptr;
            for (std::uint32_t id : e->backlog)
                if (Endpoint* ep = w_.endpoint(id))
                    w_.reset(*ep, ECONNRESET, true);
            e->backlog.clear();
        }
        l.backend_token = 0;
    }
    void adopt(ConnState& c, std::int32_t value) override {
        Endpoint* ep = w_.endpoint(static_cast<std::uint32_t>(value));
        REPRISE_ASSERT(ep != nullptr && ep->node == n_.id);
        ep->conn = &c;
        c.backend_token = ep->id;
        set_reading(c, true);
    }
    void drop_accepted(std::int32_t value) override {
        if (Endpoint* ep = w_.endpoint(static_cast<std::uint32_t>(value)))
            w_.reset(*ep, ECONNRESET, true);
    }
    Result<void> connect(ConnState& c, const Address& address) override {
        if (dead)
            return error_from_errno(ENETDOWN);  // the node is going down: no new socket
        if (address.family() != AF_INET)
            return Error{Errc::invalid_argument, EAFNOSUPPORT};
        Endpoint& ep = w_.new_endpoint(n_);
        ep.conn = &c;
        c.backend_token = ep.id;
        ep.connecting = true;
        ep.connect_to = address;
        const std::uint32_t to_ip = ipv4_of(address);
        ep.local = make_address(to_ip == loopback_ip ? loopback_ip : n_.ip, n_.next_port++);
        ep.remote = address;
        c.peer = address;
        // The SYN goes to the node owning the address; an address no node owns never answers.
        NodeId owner = 0;
        ListenEntry* l = w_.find_listener(n_.id, address, &owner);
        bool known_host = l != nullptr || to_ip == loopback_ip;
        if (!known_host)
            for (auto& other : w_.nodes)
                if (other->ip == to_ip) {
                    known_host = true;
                    owner = other->id;
                }
        w_.schedule(Event{.kind = Event::connect_timeout,
                          .at = w_.now + w_.options.connect_timeout.count(),
                          .a = ep.id});
        if (!known_host)
            return {};
        if (l == nullptr && to_ip == loopback_ip)
            owner = n_.id;
        ep.dest = owner;
        w_.send(ep, control(Segment::syn));
        return {};
    }
    void set_reading(ConnState& c, bool reading) override {
        Endpoint* ep = w_.endpoint(c.backend_token);
        if (ep == nullptr)
            return;
        ep->reading = reading;
        if (reading && (!ep->held.empty() || ep->fin_after_held)) {
            std::string held = std::move(ep->held);
            ep->held.clear();
            if (!held.empty())
                w_.deliver_bytes(*ep, held);
            if (ep->fin_after_held) {
                ep->fin_after_held = false;
                w_.push(*ep, Wakeup{.kind = WakeKind::eof, .handle = c.id});
            }
        }
    }
    void flush(ConnState& c) override {
        if (Endpoint* ep = w_.endpoint(c.backend_token); ep && !ep->connecting)
            w_.try_send(*ep);
    }
    void shutdown_write(ConnState& c) override {
        if (Endpoint* ep = w_.endpoint(c.backend_token)) {
            ep->shutdown_pending = true;
            if (!ep->connecting)
                w_.try_send(*ep);
        }
    }
    void close(ConnState& c) override {
        Endpoint* ep = w_.endpoint(c.backend_token);
        c.backend_token = 0;
        if (ep == nullptr)
            return;
        ep->conn = nullptr;
        ep->app_closed = true;
        if (ep->dead)
            return;
        if (ep->connecting) {
            w_.reset(*ep, ECONNRESET, true);
            return;
        }
        if (!c.error && !c.output.empty())
            ep->orphan_output.append(c.output.view());
        ep->shutdown_pending = true;
        w_.try_send(*ep);
    }
    void watch_signal(int signo) override { watched[signo] = true; }
    void submit_offload(std::shared_ptr<OffloadState> request) override {
        const std::uint64_t id = request->id;
        offloads.emplace(id, std::move(request));
        w_.schedule(Event{.kind = Event::offload,
                          .at = w_.now + w_.draw(w_.options.offload_latency),
                          .a = n_.id,
                          .b = n_.incarnation,
                          .c = id});
    }
    std::shared_ptr<FileWorld> file_world() override { return n_.disk; }
    std::string secure_random_bytes(std::size_t n) override {
        std::string out(n, '\0');
        for (std::size_t i = 0; i < n; ++i)
            out[i] = static_cast<char>(w_.prng.next() >> 56);
        return out;
    }
    std::optional<std::string> environment(const std::string&) override { return std::nullopt; }

private:
    ListenEntry* entry(ListenerState& l) {
        if (l.backend_token == 0 || l.backend_token > w_.listeners.size())
            return nullptr;
        ListenEntry* e = w_.listeners[l.backend_token - 1].get();
        return e && e->open ? e : nullptr;
    }
    Endpoint* owner_of(std::uint64_t handle) {
        Runtime::Impl& rt = n_.rt->impl();
        detail::Handle* h = rt.find_handle(handle);
        if (h == nullptr || h->kind != detail::HandleKind::connection)
            return nullptr;
        return w_.endpoint(static_cast<ConnState*>(h)->backend_token);
    }

    World::Impl& w_;
    Node& n_;
};

/// The world as a BackendSource: each node's runtime asks it for its backend.
class NodeBackendSource final : public BackendSource {
public:
    NodeBackendSource(World::Impl& w, Node& n) : w_(w), n_(n) {}
    std::unique_ptr<detail::Backend> make_backend(Runtime::Impl&) override { return std::make_unique<SimBackend>(w_, n_); }

private:
    World::Impl& w_;
    Node& n_;
};

// --- World::Impl --------------------------------------------------------------------------

World::Impl::Impl(WorldOptions o) : options(std::move(o)), prng(mix(options.seed)) {
    hash = mix(options.seed);
    if (options.faults.mean_interval.count() > 0)
        schedule_random_fault();
}

void World::Impl::start_node(Node& n) {
    ++n.incarnation;
    n.state = NodeState::running;
    n.exit_code.reset();
    n.crash_pending = false;
    Options o;
    o.node_name = n.spec.name;
    o.seed = prng.next();
    o.argv = n.spec.args;
    o.program_name = n.spec.program.name;
    o.offload_threads = 1;
    o.backend_source = std::make_shared<NodeBackendSource>(*this, n);
    if (!options.trace_folder.empty()) {
        std::filesystem::create_directories(options.trace_folder);
        if (run_order.empty()) {
            // An earlier run's order must not stand beside this run's traces (if this run does
            // not end normally, no order is better than a wrong one).
            std::error_code ec;
            std::filesystem::remove(std::filesystem::path(options.trace_folder) / trace::run_order_file_name, ec);
        }
        o.record_path = fmt::format("{}/{}.{}.trace", options.trace_folder, n.spec.name, n.incarnation);
        n.traces.push_back(o.record_path);
    }
    const std::uint64_t seed = *o.seed;
    n.rt = std::make_unique<Runtime>(std::move(o));
    start_entry(*n.rt, n.spec.program, n.spec.args);  // the run's first tick
    if (!options.trace_folder.empty()) {
        n.order_index = run_order.add_trace(std::filesystem::path(n.traces.back()).filename().string(), n.spec.name, seed);
        run_order.ticks(n.order_index, 1);
    }
    n.forget_next();
    note(0x40, n.id, n.incarnation);
    say(fmt::format("start {} (incarnation {})", n.spec.name, n.incarnation));
}

std::int64_t World::Impl::next_node_time(Node& n) {
    if (n.state != NodeState::running || !n.rt)
        return -1;
    if (!n.next_known || n.next_uncached) {
        n.next_m = n.rt->next_event_ns();
        n.next_known = true;
    }
    const std::int64_t m = n.next_m;
    return m < 0 ? -1 : n.true_time(m, now);
}

void World::Impl::step_node(Node& n) {
    in_node_step = true;
    bool done = false;
    const RuntimeStats before = n.rt->stats();
    const bool ordered = n.order_index != UINT32_MAX && n.rt->impl().journal != nullptr;
    try {
        done = n.rt->step(n.mono(now));
    } catch (...) {
        in_node_step = false;
        n.forget_next();
        if (ordered && n.rt)
            run_order.ticks(n.order_index, n.rt->stats().ticks - before.ticks);
        throw;
    }
    in_node_step = false;
    n.forget_next();
    if (ordered)
        run_order.ticks(n.order_index, n.rt->stats().ticks - before.ticks);
    // A step that delivered nothing and ran nothing (a recording's seal deadline) is no event.
    if (done || n.rt->stats().ticks != before.ticks || n.rt->stats().switches != before.switches)
        ++events;
    if (done)
        finish_node(n);
}

void World::Impl::finish_node(Node& n) {
    int code = 1;
    try {
        code = n.rt->result();
    } catch (const std::exception& e) {
        say(fmt::format("{}: main threw: {}", n.spec.name, e.what()));
    } catch (...) {
        say(fmt::format("{}: main threw", n.spec.name));
    }
    n.wakeups_before += n.backend ? n.backend->delivered : 0;
    n.order_index = UINT32_MAX;
    n.rt.reset();
    n.forget_next();
    n.exit_code = code;
    n.state = NodeState::exited;
    // The process is gone: its sockets are closed by the kernel.
    for (auto& ep : endpoints)
        if (ep && ep->node == n.id && !ep->dead && ep->conn != nullptr)
            reset(*ep, ECONNRESET, true);
    for (auto& l : listeners)
        if (l && l->node == n.id)
            l->open = false;
    note(0x41, n.id, static_cast<std::uint64_t>(code));
    say(fmt::format("{} exited with {}", n.spec.name, code));
}

void World::Impl::crash(Node& n, NodeState to) {
    REPRISE_ASSERT_MSG(!in_node_step, "a node crashes between events, not from inside a node's step");
    if (n.state == NodeState::crashed || n.state == NodeState::killed || n.state == NodeState::exited) {
        n.state = n.state == NodeState::exited ? n.state : to;
        return;
    }
    note(0x42, n.id, static_cast<std::uint64_t>(to));
    say(fmt::format("{} {}", to == NodeState::killed ? "kill" : "crash", n.spec.name));
    // The kernel is gone: peers get resets (where the network carries them), listeners close.
    for (auto& ep : endpoints)
        if (ep && ep->node == n.id && !ep->dead) {
            ep->conn = nullptr;
            reset(*ep, ECONNRESET, true);
        }
    for (auto& l : listeners)
        if (l && l->node == n.id) {
            l->open = false;
            l->listener = nullptr;
        }
    n.disk->crash();
    n.state = to;
    n.order_index = UINT32_MAX;
    n.forget_next();
    if (n.rt) {
        // Memory is gone. The runtime's tasks are unwound (cancelled) against a dead
        // world so that nothing leaks: nothing they do reaches the network or the disk,
        // and the recording stops here, as a killed process's would.
        Runtime::Impl& impl = n.rt->impl();
        if (impl.recorder && to == NodeState::crashed)
            impl.recorder->cut_off();
        impl.recorder.reset();  // killed at the world's end: an end record saying it still ran
        impl.journal = nullptr;
        if (n.backend) {
            n.backend->dead = true;
            n.backend->pending.clear();
            n.wakeups_before += n.backend->delivered;
        }
        impl.unwinding = true;
        n.rt->request_stop();
        in_node_step = true;
        std::size_t steps = 0;
        while (!n.rt->finished()) {
            if (++steps > limits::sim_unwind_steps_max) {
                // A task that does not return when its blocking calls say Errc::cancelled (a
                // loop that retries on any error) never ends. A runtime cannot be destroyed
                // with live tasks: it is left behind (its memory leaks) and the node is down.
                std::string names;
                for (const TaskInfo& t : n.rt->tasks())
                    names += fmt::format(" '{}'", t.name);
                in_node_step = false;
                if (n.backend)
                    n.backend->dead = true;
                n.backend = nullptr;
                (void)n.rt.release();
                throw std::runtime_error(fmt::format(
                    "node {}: its tasks did not end within {} loop steps after it {} (still running:{}): a task "
                    "must return when a blocking call returns Errc::cancelled (docs/simulation.md, \"Nodes\")",
                    n.spec.name, limits::sim_unwind_steps_max, to == NodeState::killed ? "was stopped" : "crashed",
                    names));
            }
            n.rt->step(n.mono(now));
        }
        in_node_step = false;
        try {
            (void)n.rt->result();
        } catch (...) {
        }
        n.rt.reset();
        n.forget_next();
    }
}

Endpoint& World::Impl::new_endpoint(Node& n) {
    auto ep = std::make_unique<Endpoint>();
    ep->id = static_cast<std::uint32_t>(endpoints.size() + 1);
    ep->node = n.id;
    ep->incarnation = n.incarnation;
    endpoints.push_back(std::move(ep));
    return *endpoints.back();
}

void World::Impl::send(Endpoint& ep, Segment s) {
    Link& l = link(ep.node, ep.dest);
    const bool behind_held = !ep.out.empty() && ep.out.back().arrive_ns < 0;
    if (l.partitioned && s.kind == Segment::syn)
        return;  // lost; the connect times out
    if (l.blocked() || behind_held) {
        s.arrive_ns = -1;
        ep.out.push_back(std::move(s));
        if (l.partitioned && !ep.timeout_armed) {
            ep.timeout_armed = true;
            schedule(Event{.kind = Event::link_timeout,
                           .at = now + options.partition_timeout.count(),
                           .a = ep.id,
                           .b = ep.timeout_generation});
        }
        return;
    }
    s.arrive_ns = std::max(now + draw(l.latency), ep.last_arrival);
    ep.last_arrival = s.arrive_ns;
    const std::int64_t at = s.arrive_ns;
    ep.out.push_back(std::move(s));
    schedule(Event{.kind = Event::arrive, .at = at, .a = ep.id});
}

void World::Impl::try_send(Endpoint& ep) {
    if (ep.dead || ep.connecting)
        return;
    ByteBuffer& source = ep.conn ? ep.conn->output : ep.orphan_output;
    const std::size_t before = source.size();
    while (!source.empty() && ep.unacked < options.socket_buffer_bytes) {
        std::size_t n = std::min(source.size(), options.socket_buffer_bytes - ep.unacked);
        std::string_view bytes = source.view().substr(0, n);
        // Cut into segments at random boundaries: the reader sees them as separate reads.
        std::size_t pieces = 1 + (options.max_segments_per_flush > 1 && n > 1
                                      ? prng.below(std::min<std::size_t>(options.max_segments_per_flush, n))
                                      : 0);
        std::size_t at = 0;
        for (std::size_t i = 0; i < pieces; ++i) {
            std::size_t left = n - at;
            std::size_t len = i + 1 == pieces ? left : 1 + prng.below(left - (pieces - i - 1));
            Segment seg = control(Segment::data);
            seg.bytes.assign(bytes.substr(at, len));
            send(ep, std::move(seg));
            at += len;
        }
        ep.unacked += n;
        source.consume(n);
    }
    if (source.empty() && ep.shutdown_pending && !ep.fin_sent) {
        ep.fin_sent = true;
        send(ep, control(Segment::fin));
    }
    if (ep.conn && before > limits::output_low_water_bytes && source.size() <= limits::output_low_water_bytes &&
        !ep.conn->writers.empty())
        push(ep, Wakeup{.kind = WakeKind::drained, .handle = ep.conn->id});
}

void World::Impl::push(Endpoint& ep, Wakeup w, std::string_view data) {
    Node& n = *nodes[ep.node];
    if (!n.backend || n.backend->dead || ep.incarnation != n.incarnation)
        return;
    WakeBatch& b = n.backend->pending;
    n.forget_next();
    if (!data.empty()) {
        w.data_offset = static_cast<std::uint32_t>(b.bytes.size());
        w.data_bytes = static_cast<std::uint32_t>(data.size());
        b.bytes.append(data);
    }
    b.items.push_back(w);
}

void World::Impl::deliver_bytes(Endpoint& ep, std::string_view bytes) {
    // A read takes at most limits::read_chunk_bytes, as the live backend's does.
    for (std::size_t at = 0; at < bytes.size(); at += limits::read_chunk_bytes)
        push(ep, Wakeup{.kind = WakeKind::bytes_read, .handle = ep.conn->id}, bytes.substr(at, limits::read_chunk_bytes));
}

void World::Impl::reset(Endpoint& ep, int err, bool tell_peer) {
    if (ep.dead)
        return;
    if (tell_peer && ep.peer != 0)
        if (Endpoint* p = endpoint(ep.peer); p && !p->dead) {
            // The RST is the last thing on this direction: what is queued before it still arrives.
            send(ep, control(Segment::rst));
        }
    if (ep.conn) {
        if (ep.connecting)
            push(ep, Wakeup{.kind = WakeKind::connected, .handle = ep.conn->id, .value = err});
        else
            push(ep, Wakeup{.kind = WakeKind::io_error, .handle = ep.conn->id, .value = err});
    }
    ep.connecting = false;
    ep.dead = true;
    ep.held.clear();
    ep.orphan_output.consume(ep.orphan_output.size());
}

ListenEntry* World::Impl::find_listener(NodeId caller, const Address& to, NodeId* owner) {
    const std::uint32_t ip = ipv4_of(to);
    const std::uint16_t port = to.port();
    auto match = [&](const ListenEntry& l, NodeId on) {
        return l.open && l.node == on && l.port == port &&
               (l.ip == any_ip || l.ip == ip || (ip == loopback_ip && l.ip == loopback_ip));
    };
    if (ip == loopback_ip) {
        // Its own first (a real loopback), else another node's (a cluster run on one host).
        for (auto& l : listeners)
            if (l && match(*l, caller) && (l->ip == loopback_ip || l->ip == any_ip)) {
                *owner = caller;
                return l.get();
            }
        for (auto& l : listeners)
            if (l && l->open && l->port == port && (l->ip == loopback_ip || l->ip == any_ip)) {
                *owner = l->node;
                return l.get();
            }
        return nullptr;
    }
    for (auto& n : nodes)
        if (n->ip == ip)
            for (auto& l : listeners)
                if (l && match(*l, n->id) && l->ip != loopback_ip) {
                    *owner = n->id;
                    return l.get();
                }
    return nullptr;
}

void World::Impl::offer_backlog(ListenEntry& l) {
    Node& n = *nodes[l.node];
    while (l.accepting && l.open && !l.backlog.empty() && n.backend && l.listener) {
        Endpoint* ep = endpoint(l.backlog.front());
        l.backlog.pop_front();
        if (ep == nullptr || ep->dead)
            continue;
        Wakeup w{.kind = WakeKind::accepted, .handle = l.listener->id, .value = static_cast<std::int32_t>(ep->id)};
        w.peer = ep->remote;
        w.local = ep->local;
        n.backend->pending.items.push_back(w);
        n.forget_next();
    }
}

void World::Impl::arrive(Endpoint& from) {
    REPRISE_ASSERT(!from.out.empty() && from.out.front().arrive_ns == now);
    Segment s = std::move(from.out.front());
    from.out.pop_front();
    note(0x50 + s.kind, from.id, s.bytes.size() + s.acked);
    Node& dest = *nodes[from.dest];
    // The host's kernel answers while the machine is up, its program running or not.
    const bool host_up = dest.state != NodeState::crashed && dest.state != NodeState::killed;
    if (s.kind == Segment::syn) {
        NodeId owner = 0;
        ListenEntry* l = host_up ? find_listener(from.node, from.connect_to, &owner) : nullptr;
        if (l == nullptr || owner != from.dest || l->backlog.size() >= limits::listen_backlog) {
            // Nobody listens: the host answers with a reset (a host that is down does not answer).
            if (host_up && !link(from.dest, from.node).partitioned)
                schedule(Event{.kind = Event::refused,
                               .at = now + draw(link(from.dest, from.node).latency),
                               .a = from.id});
            return;
        }
        Endpoint& server = new_endpoint(dest);
        server.dest = from.node;
        server.peer = from.id;
        server.local = make_address(l->ip == any_ip ? ipv4_of(from.connect_to) : l->ip, l->port);
        server.remote = from.local;
        from.peer = server.id;
        l->backlog.push_back(server.id);
        offer_backlog(*l);
        send(server, control(Segment::synack));
        return;
    }
    Endpoint* to = endpoint(from.peer);
    if (to == nullptr)
        return;
    if (to->dead || to->incarnation != nodes[to->node]->incarnation || !host_up) {
        if (s.kind == Segment::data || s.kind == Segment::fin)
            if (!from.dead && host_up)
                send(*to, control(Segment::rst));  // a reset from the other host
        return;
    }
    switch (s.kind) {
    case Segment::synack:
        if (!to->connecting)
            return;
        to->connecting = false;
        if (to->conn) {
            Wakeup w{.kind = WakeKind::connected, .handle = to->conn->id, .value = 0};
            w.local = to->local;
            w.peer = to->remote;
            push(*to, w);
        }
        try_send(*to);
        return;
    case Segment::data:
        if (to->app_closed) {
            // Bytes for a socket the program closed: the kernel answers with a reset.
            send(*to, control(Segment::rst));
            to->dead = true;
            return;
        }
        if (!to->conn || !to->reading || !to->held.empty()) {
            to->held += s.bytes;
            return;
        }
        deliver_bytes(*to, s.bytes);
        return;
    case Segment::fin:
        if (to->conn && to->reading && to->held.empty())
            push(*to, Wakeup{.kind = WakeKind::eof, .handle = to->conn->id});
        else
            to->fin_after_held = true;
        return;
    case Segment::rst:
        to->out.clear();
        reset(*to, ECONNRESET, false);
        return;
    case Segment::ack:
        to->unacked -= std::min<std::size_t>(to->unacked, s.acked);
        try_send(*to);
        return;
    case Segment::syn:
        break;
    }
}

void World::Impl::release_held(NodeId from, NodeId to) {
    Link& l = link(from, to);
    if (l.blocked())
        return;
    for (auto& ep : endpoints) {
        if (!ep || ep->node != from || ep->dest != to)
            continue;
        ep->timeout_armed = false;
        ++ep->timeout_generation;
        for (Segment& s : ep->out)
            if (s.arrive_ns < 0) {
                s.arrive_ns = std::max(now + draw(l.latency), ep->last_arrival);
                ep->last_arrival = s.arrive_ns;
                schedule(Event{.kind = Event::arrive, .at = s.arrive_ns, .a = ep->id});
            }
    }
}

// --- random faults ---------------------------------------------------------------------------

void World::Impl::schedule_random_fault() {
    const double mean = static_cast<double>(options.faults.mean_interval.count());
    // Exponential inter-arrival: -ln(U) * mean, U in (0, 1].
    const double u = (static_cast<double>(prng.next() >> 11) + 1.0) / 9007199254740993.0;
    const auto gap = static_cast<std::int64_t>(-std::log(u) * mean);
    schedule(Event{.kind = Event::action, .at = now + std::max<std::int64_t>(gap, 1), .b = 0});
}

void World::Impl::random_fault() {
    const FaultPlan& f = options.faults;
    if (random_faults_stopped)
        return;
    schedule_random_fault();
    if (nodes.size() < 2)
        return;
    const unsigned total = f.crash_restart + f.partition + f.one_way + f.clog + f.pause + f.clock_jump;
    if (total == 0)
        return;
    unsigned pick = static_cast<unsigned>(prng.below(total));
    const NodeId a = static_cast<NodeId>(prng.below(nodes.size()));
    NodeId b = static_cast<NodeId>(prng.below(nodes.size() - 1));
    if (b >= a)
        ++b;
    const std::int64_t lasts = static_cast<std::int64_t>(prng.below(2 * static_cast<std::uint64_t>(f.mean_duration.count()) + 1));
    Node& na = *nodes[a];
    // Tells the observer the fault begins; `later` runs its end, and tells that too.
    RandomFault told{.id = ++random_fault_ids, .a = a, .b = b};
    auto begins = [&](RandomFault::Kind kind, bool one_node) {
        told.kind = kind;
        if (one_node)
            told.b = a;
        if (fault_observer)
            fault_observer(told);
    };
    auto later = [&](std::function<void()> fn) {
        const std::uint64_t index = seq + 1;
        actions.emplace(index, [this, fn = std::move(fn), ended = RandomFault{told.kind, told.id, told.a, told.b, true}] {
            fn();
            if (fault_observer)
                fault_observer(ended);
        });
        std::erase_if(random_fault_ends, [this](std::uint64_t i) { return !actions.contains(i); });  // ended ones
        random_fault_ends.push_back(index);
        schedule(Event{.kind = Event::action, .at = now + lasts, .b = index});
    };
    auto may_take_down = [&] {
        return na.state == NodeState::running && nodes_down < f.max_nodes_down && (!fault_guard || fault_guard(a));
    };
    auto bump = [&](unsigned weight) {
        if (pick < weight)
            return true;
        pick -= weight;
        return false;
    };
    if (bump(f.crash_restart)) {
        if (!may_take_down())
            return;
        ++nodes_down;
        begins(RandomFault::Kind::crash_restart, true);
        crash(na, NodeState::crashed);
        later([this, a] {
            --nodes_down;
            if (nodes[a]->state == NodeState::crashed) {
                nodes[a]->disk->restart();  // the machine comes back, with what its disk kept
                start_node(*nodes[a]);
            }
        });
    } else if (bump(f.partition)) {
        Link& ab = link(a, b);
        Link& ba = link(b, a);
        if (ab.partitioned || ba.partitioned)
            return;
        ab.partitioned = ba.partitioned = true;
        begins(RandomFault::Kind::partition, false);
        say(fmt::format("partition {} <-> {}", na.spec.name, nodes[b]->spec.name));
        later([this, a, b] {
            link(a, b).partitioned = link(b, a).partitioned = false;
            say(fmt::format("heal {} <-> {}", nodes[a]->spec.name, nodes[b]->spec.name));
            release_held(a, b);
            release_held(b, a);
        });
    } else if (const bool one_way = bump(f.one_way); one_way || bump(f.clog)) {
        // A one-way partition loses what it holds after partition_timeout; a clog only delays it.
        bool Link::*flag = one_way ? &Link::partitioned : &Link::clogged;
        if (link(a, b).*flag)
            return;
        link(a, b).*flag = true;
        begins(one_way ? RandomFault::Kind::one_way : RandomFault::Kind::clog, false);
        say(fmt::format("{} {} -> {}", one_way ? "partition" : "clog", na.spec.name, nodes[b]->spec.name));
        later([this, a, b, flag, one_way] {
            link(a, b).*flag = false;
            say(fmt::format("{} {} -> {}", one_way ? "heal" : "unclog", nodes[a]->spec.name, nodes[b]->spec.name));
            release_held(a, b);
        });
    } else if (bump(f.pause)) {
        if (!may_take_down())
            return;
        ++nodes_down;
        begins(RandomFault::Kind::pause, true);
        na.state = NodeState::paused;
        say(fmt::format("pause {}", na.spec.name));
        later([this, a] {
            --nodes_down;
            if (nodes[a]->state == NodeState::paused) {
                nodes[a]->state = NodeState::running;
                say(fmt::format("resume {}", nodes[a]->spec.name));
            }
        });
    } else {
        const std::int64_t delta = static_cast<std::int64_t>(prng.below(20'000'000'001ULL)) - 10'000'000'000LL;
        na.wall_offset += delta;
        say(fmt::format("wall clock of {} jumps {:+}ms", na.spec.name, delta / 1'000'000));
        begins(RandomFault::Kind::clock_jump, true);
        told.ends = true;
        if (fault_observer)
            fault_observer(told);
    }
}

// --- World ---------------------------------------------------------------------------------

World::World(WorldOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

World::~World() {
    // Every node's tasks are unwound before the world they live in goes away.
    for (auto& n : impl_->nodes)
        if (n->rt) {
            impl_->in_node_step = false;
            try {
                impl_->crash(*n, NodeState::killed);
            } catch (const std::exception& e) {
                fmt::print(stderr, "reprise: {}\n", e.what());
            }
        }
    // Every recording is closed: the order their ticks ran in goes beside them.
    std::string error;
    if (!impl_->run_order.empty() && !impl_->run_order.write(impl_->options.trace_folder, error)) {
        fmt::print(stderr, "reprise: {} (a joint replay of these traces scans them for an order instead)\n", error);
        std::error_code ec;
        std::filesystem::remove(std::filesystem::path(impl_->options.trace_folder) / trace::run_order_file_name, ec);
    }
}

NodeId World::add_node(NodeSpec spec) {
    Impl& w = *impl_;
    REPRISE_ASSERT_MSG(!w.in_node_step, "add_node() from inside a node's step");
    if (spec.name.empty())
        spec.name = fmt::format("n{}", w.nodes.size() + 1);
    if (spec.program.main == nullptr)
        throw std::invalid_argument(fmt::format("node {}: its ProgramEntry has no main", spec.name));
    for (auto& n : w.nodes)
        if (n->spec.name == spec.name)
            throw std::invalid_argument(fmt::format("two nodes named '{}'", spec.name));
    if (spec.args.empty())
        spec.args.push_back(spec.program.name.empty() ? spec.name : spec.program.name);
    auto n = std::make_unique<Node>();
    n->id = static_cast<NodeId>(w.nodes.size());
    if (spec.ip.empty()) {
        n->ip = 0x0A000001 + n->id;
    } else {
        auto a = Address::parse(spec.ip + ":0");
        if (!a.ok() || ipv4_of(*a) == 0 || ipv4_of(*a) == loopback_ip)
            throw std::invalid_argument(fmt::format("node {}: '{}' is not an IPv4 address a node can have", spec.name, spec.ip));
        n->ip = ipv4_of(*a);
    }
    for (auto& other : w.nodes)
        if (other->ip == n->ip)
            throw std::invalid_argument(fmt::format("nodes {} and {} have the same address", other->spec.name, spec.name));
    n->disk = std::make_shared<SimDisk>(w.prng.next(), w.options.disk_faults ? *w.options.disk_faults : spec.disk);
    n->t0 = w.now;
    // Each node's monotonic clock starts somewhere of its own (as machines booted at different times).
    n->m0 = 1'000'000'000'000LL + static_cast<std::int64_t>(w.prng.below(1'000'000'000'000ULL));
    n->ppm = spec.clock_drift_ppm;
    n->spec = std::move(spec);
    // Links grow to the new size (rows keep their from/to meaning).
    const std::size_t old = w.nodes.size(), size = old + 1;
    std::vector<Link> links(size * size, Link{.latency = w.options.latency});
    for (std::size_t f = 0; f < old; ++f)
        for (std::size_t t = 0; t < old; ++t)
            links[f * size + t] = w.links[f * old + t];
    w.links = std::move(links);
    w.nodes.push_back(std::move(n));
    w.start_node(*w.nodes.back());
    return w.nodes.back()->id;
}

World::Impl::Next World::Impl::peek() {
    Node* best = nullptr;
    std::int64_t best_at = never;
    // A node's key is drawn only when it ties with another event: the same order, fewer draws.
    std::uint64_t best_key = 0;
    bool best_key_known = false;
    auto key_of = [this](const Node& n, std::int64_t t) {
        return mix(options.seed ^ mix(static_cast<std::uint64_t>(t) ^ (std::uint64_t{n.id} << 48)));
    };
    for (auto& n : nodes) {
        const std::int64_t t = next_node_time(*n);
        if (t < 0)
            continue;
        if (t < best_at) {
            best = n.get();
            best_at = t;
            best_key_known = false;
        } else if (t == best_at) {
            if (!best_key_known) {
                best_key = key_of(*best, best_at);
                best_key_known = true;
            }
            if (const std::uint64_t key = key_of(*n, t); key < best_key) {
                best = n.get();
                best_key = key;
            }
        }
    }
    if (!queue.empty()) {
        const Event& e = queue.top();
        if (e.at == best_at && best != nullptr && !best_key_known)
            best_key = key_of(*best, best_at);
        if (e.at < best_at || (e.at == best_at && e.key < best_key))
            return Next{.node = nullptr, .at = e.at, .queued = true};
    }
    return Next{.node = best, .at = best_at, .queued = false};
}

bool World::Impl::run(const Next& next) {
    REPRISE_ASSERT_MSG(!in_node_step, "World::step() from inside a node's step");
    if (next.queued) {
        run_queued();
        return true;
    }
    if (next.node == nullptr)
        return false;
    now = std::max(now, next.at);
    step_node(*next.node);
    return true;
}

void World::Impl::run_queued() {
    Event ev = queue.top();
    queue.pop();
    now = std::max(now, ev.at);
    ++events;
    switch (ev.kind) {
    case Event::arrive:
        if (Endpoint* ep = endpoint(ev.a); ep && !ep->out.empty() && ep->out.front().arrive_ns == now)
            arrive(*ep);
        break;
    case Event::connect_timeout:
        if (Endpoint* ep = endpoint(ev.a); ep && ep->connecting && !ep->dead) {
            note(0x60, ep->id);
            reset(*ep, ETIMEDOUT, false);
        }
        break;
    case Event::refused:
        if (Endpoint* ep = endpoint(ev.a); ep && ep->connecting && !ep->dead) {
            note(0x61, ep->id);
            reset(*ep, ECONNREFUSED, false);
        }
        break;
    case Event::link_timeout:
        if (Endpoint* ep = endpoint(ev.a);
            ep && !ep->dead && ep->timeout_armed && ep->timeout_generation == ev.b) {
            note(0x62, ep->id);
            ep->out.clear();
            reset(*ep, ETIMEDOUT, false);
        }
        break;
    case Event::offload: {
        Node& n = *nodes[ev.a];
        if (n.incarnation != ev.b || !n.backend || n.backend->dead)
            break;
        auto it = n.backend->offloads.find(ev.c);
        if (it == n.backend->offloads.end())
            break;
        std::shared_ptr<OffloadState> request = std::move(it->second);
        n.backend->offloads.erase(it);
        try {
            request->job();
        } catch (...) {
            request->exception = std::current_exception();
        }
        if (n.crash_pending) {
            // The disk crashed between two of the job's steps: the machine is down.
            n.crash_pending = false;
            request.reset();
            crash(n, NodeState::crashed);
            break;
        }
        note(0x70, n.id, ev.c);
        n.backend->pending.items.push_back(Wakeup{.kind = WakeKind::offload_done, .handle = ev.c});
        n.forget_next();
        break;
    }
    case Event::action:
        if (ev.b == 0) {
            random_fault();
        } else if (auto it = actions.find(ev.b); it != actions.end()) {
            std::function<void()> fn = std::move(it->second);
            actions.erase(it);
            note(0x80, ev.b);
            fn();
        }
        break;
    }
}

bool World::step() {
    Impl& w = *impl_;
    return w.run(w.peek());
}

void World::run_until(Duration until) {
    Impl& w = *impl_;
    const std::int64_t end = until.count();
    for (;;) {
        // Peek: the next event's time; run it (the same one) when it is not past the end.
        const Impl::Next next = w.peek();
        if (next.at > end)
            break;
        w.run(next);
    }
    w.now = std::max(w.now, end);
}

void World::run_for(Duration d) { run_until(now() + d); }

bool World::run_until(const std::function<bool()>& done, Duration limit) {
    Impl& w = *impl_;
    const std::int64_t end = w.now + limit.count();
    while (!done()) {
        const Impl::Next next = w.peek();
        if (next.at > end) {
            // Nothing more happens before the limit: the time passes.
            w.now = std::max(w.now, end);
            return done();
        }
        w.run(next);
    }
    return true;
}

bool World::run_to_completion(Duration limit) {
    return run_until(
        [this] {
            for (auto& n : impl_->nodes)
                if (n->state == NodeState::running || n->state == NodeState::paused)
                    return false;
            return true;
        },
        limit);
}

Duration World::now() const noexcept { return Duration(impl_->now); }

void World::at(Duration when, std::function<void()> action) {
    Impl& w = *impl_;
    const std::uint64_t index = w.seq + 1;
    w.actions.emplace(index, std::move(action));
    w.schedule(Event{.kind = Event::action, .at = std::max(when.count(), w.now), .b = index});
}

void World::partition(NodeId a, NodeId b) {
    impl_->node(a), impl_->node(b);
    impl_->link(a, b).partitioned = impl_->link(b, a).partitioned = true;
    impl_->note(0x90, a, b);
    impl_->say(fmt::format("partition {} <-> {}", node_name(a), node_name(b)));
}

void World::partition_one_way(NodeId from, NodeId to) {
    impl_->node(from), impl_->node(to);
    impl_->link(from, to).partitioned = true;
    impl_->note(0x91, from, to);
    impl_->say(fmt::format("partition {} -> {}", node_name(from), node_name(to)));
}

void World::isolate(const std::vector<NodeId>& group) {
    for (NodeId in : group)
        for (NodeId out = 0; out < node_count(); ++out)
            if (std::find(group.begin(), group.end(), out) == group.end())
                partition(in, out);
}

void World::clog(NodeId from, NodeId to) {
    impl_->node(from), impl_->node(to);
    impl_->link(from, to).clogged = true;
    impl_->note(0x92, from, to);
    impl_->say(fmt::format("clog {} -> {}", node_name(from), node_name(to)));
}

void World::unclog(NodeId from, NodeId to) {
    impl_->link(from, to).clogged = false;
    impl_->note(0x93, from, to);
    impl_->say(fmt::format("unclog {} -> {}", node_name(from), node_name(to)));
    impl_->release_held(from, to);
}

void World::heal() {
    Impl& w = *impl_;
    w.note(0x94);
    w.say("heal");
    for (Link& l : w.links)
        l.partitioned = l.clogged = false;
    for (NodeId f = 0; f < node_count(); ++f)
        for (NodeId t = 0; t < node_count(); ++t)
            w.release_held(f, t);
}

void World::reset_connections(NodeId a, NodeId b) {
    Impl& w = *impl_;
    w.note(0x95, a, b);
    w.say(fmt::format("reset connections {} <-> {}", node_name(a), node_name(b)));
    for (auto& ep : w.endpoints)
        if (ep && !ep->dead && ((ep->node == a && ep->dest == b) || (ep->node == b && ep->dest == a)))
            w.reset(*ep, ECONNRESET, false);
}

void World::set_latency(NodeId from, NodeId to, Latency latency) {
    impl_->node(from), impl_->node(to);
    impl_->link(from, to).latency = latency;
    impl_->note(0x9D, from, to);
    impl_->note(static_cast<std::uint64_t>(latency.min.count()), static_cast<std::uint64_t>(latency.max.count()));
    impl_->say(fmt::format("latency {} -> {}: {}..{}us", node_name(from), node_name(to), latency.min.count() / 1000,
                           latency.max.count() / 1000));
}

void World::crash(NodeId node) { impl_->crash(impl_->node(node), NodeState::crashed); }

void World::crash_after_disk_steps(NodeId node, std::uint64_t steps) {
    Node& n = impl_->node(node);
    impl_->note(0x9B, node, steps);
    impl_->say(fmt::format("{} crashes after {} more disk steps", n.spec.name, steps));
    n.disk->crash_after_steps(steps, [&n] { n.crash_pending = true; });
}

void World::cancel_disk_crash(NodeId node) {
    Node& n = impl_->node(node);
    impl_->note(0x9C, node);
    n.disk->cancel_crash();
}

void World::restart(NodeId node) {
    Node& n = impl_->node(node);
    if (n.state == NodeState::running || n.state == NodeState::paused)
        throw std::logic_error(fmt::format("restart({}): the node is {}", n.spec.name, node_state_name(n.state)));
    if (n.state == NodeState::killed)
        throw std::logic_error(fmt::format("restart({}): the node was killed for good", n.spec.name));
    n.disk->restart();
    impl_->start_node(n);
}

void World::kill(NodeId node) { impl_->crash(impl_->node(node), NodeState::killed); }

void World::pause(NodeId node) {
    Node& n = impl_->node(node);
    if (n.state == NodeState::running) {
        n.state = NodeState::paused;
        impl_->note(0x96, node);
        impl_->say(fmt::format("pause {}", n.spec.name));
    }
}

void World::resume(NodeId node) {
    Node& n = impl_->node(node);
    if (n.state == NodeState::paused) {
        n.state = NodeState::running;
        impl_->note(0x97, node);
        impl_->say(fmt::format("resume {}", n.spec.name));
    }
}

void World::signal(NodeId node, int signo) {
    Node& n = impl_->node(node);
    impl_->note(0x98, node, static_cast<std::uint64_t>(signo));
    impl_->say(fmt::format("signal {} to {}", signo, n.spec.name));
    if (n.backend && !n.backend->dead && n.backend->watched.count(signo)) {
        n.backend->pending.items.push_back(Wakeup{.kind = WakeKind::signal, .value = signo});
        n.forget_next();
    }
}

void World::set_clock_drift(NodeId node, std::int64_t ppm) {
    Node& n = impl_->node(node);
    if (ppm <= -1'000'000)
        throw std::invalid_argument("a clock drift of -1,000,000 ppm or less stops or reverses time");
    // Rebase at now: the clock goes on from where it is, at the new rate.
    n.m0 = n.mono(impl_->now);
    n.t0 = impl_->now;
    n.ppm = ppm;
    impl_->note(0x99, node, static_cast<std::uint64_t>(ppm));
    impl_->say(fmt::format("clock of {} runs {:+} ppm", n.spec.name, ppm));
}

void World::jump_wall_clock(NodeId node, Duration delta) {
    Node& n = impl_->node(node);
    n.wall_offset += delta.count();
    impl_->note(0x9A, node, static_cast<std::uint64_t>(delta.count()));
    impl_->say(fmt::format("wall clock of {} jumps {:+}ms", n.spec.name, delta.count() / 1'000'000));
}

std::size_t World::node_count() const noexcept { return impl_->nodes.size(); }

void World::on_random_fault(std::function<void(const RandomFault&)> observer) {
    impl_->fault_observer = std::move(observer);
}

void World::set_random_fault_guard(std::function<bool(NodeId)> may_take_down) {
    impl_->fault_guard = std::move(may_take_down);
}

void World::stop_random_faults() {
    Impl& w = *impl_;
    if (!w.random_faults_stopped && w.options.faults.mean_interval.count() > 0)
        w.say("random faults stop");
    w.random_faults_stopped = true;
    // Each end still pending runs now, in the order the faults began; its scheduled event finds
    // nothing left to run.
    std::vector<std::uint64_t> ends;
    ends.swap(w.random_fault_ends);
    for (std::uint64_t index : ends)
        if (auto it = w.actions.find(index); it != w.actions.end()) {
            std::function<void()> fn = std::move(it->second);
            w.actions.erase(it);
            w.note(0x80, index);
            fn();
        }
}

void World::log_line(std::string line) { impl_->say(std::move(line)); }

NodeId World::node_id(const std::string& name) const {
    for (auto& n : impl_->nodes)
        if (n->spec.name == name)
            return n->id;
    throw std::out_of_range(fmt::format("no node named '{}'", name));
}

const std::string& World::node_name(NodeId node) const { return impl_->node(node).spec.name; }
NodeState World::state(NodeId node) const { return impl_->node(node).state; }
std::optional<int> World::exit_code(NodeId node) const { return impl_->node(node).exit_code; }
Runtime* World::runtime(NodeId node) {
    Node& n = impl_->node(node);
    // The caller may change the runtime between two events: its next event is asked each time.
    n.next_uncached = true;
    return n.rt.get();
}
SimDisk& World::disk(NodeId node) { return *impl_->node(node).disk; }
std::uint32_t World::incarnation(NodeId node) const { return impl_->node(node).incarnation; }
std::vector<std::string> World::traces(NodeId node) const { return impl_->node(node).traces; }
std::uint64_t World::hash() const noexcept { return impl_->hash; }
std::uint64_t World::events() const noexcept { return impl_->events; }
const std::vector<std::string>& World::log() const noexcept { return impl_->log; }
const WorldOptions& World::options() const noexcept { return impl_->options; }

std::uint64_t World::wakeups() const noexcept {
    std::uint64_t total = 0;
    for (auto& n : impl_->nodes)
        total += n->wakeups_before + (n->backend ? n->backend->delivered : 0);
    return total;
}

std::string World::repro_line() const {
    const WorldOptions& o = impl_->options;
    const FaultPlan& f = o.faults;
    return fmt::format(
        "seed={} latency={}..{}ns segments={} socket_buffer={} connect_timeout={}ns partition_timeout={}ns "
        "offload={}..{}ns start_wall={} faults={}ns/{}ns/{}:{}:{}:{}:{}:{}/max_down={} disks={} nodes={} {}",
        o.seed, o.latency.min.count(), o.latency.max.count(), o.max_segments_per_flush, o.socket_buffer_bytes,
        o.connect_timeout.count(), o.partition_timeout.count(), o.offload_latency.min.count(),
        o.offload_latency.max.count(), o.start_wall_ns, f.mean_interval.count(), f.mean_duration.count(),
        f.crash_restart, f.partition, f.one_way, f.clog, f.pause, f.clock_jump, f.max_nodes_down,
        o.disk_faults ? fmt::format("capacity:{}/fsync_fail:{}/torn:{}", o.disk_faults->capacity_bytes,
                                    o.disk_faults->sync_failure_rate, o.disk_faults->torn_writes ? 1 : 0)
                      : std::string("per-node"),
        node_count(), build_description());
}

} // namespace reprise::sim
