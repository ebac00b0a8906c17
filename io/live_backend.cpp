// The live backend: libevent underneath. Harvests reads, accepts, connects, signals and
// offload completions as wake-ups, and flushes connection output.
#include "reprise/runtime/internal/core.hpp"

#include "reprise/clock/internal/system_clock.hpp"
#include "reprise/io/internal/offload_pool.hpp"
#include "reprise/io/internal/tcp_state.hpp"

#include <event2/event.h>
#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace reprise::detail {

namespace {

timeval to_timeval(std::int64_t ns) {
    // Round up: waking a little late is harmless, waking early spins the loop.
    std::int64_t us = (ns + 999) / 1000;
    return timeval{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
}

void set_nodelay(int fd) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

Address local_address_of(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        return {};
    return Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

} // namespace

} // namespace reprise::detail

namespace reprise {

/// One libevent loop that the live backends of several runtimes of one thread share,
/// so that a driver stepping them blocks once for all of them.
class LiveWorld {
public:
    LiveWorld() {
        event_config* cfg = event_config_new();
        REPRISE_ASSERT(cfg != nullptr);
        // Precise timers: libevent's default coarse clock would wake timers up to
        // a few milliseconds off.
        event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
        base = event_base_new_with_config(cfg);
        event_config_free(cfg);
        REPRISE_ASSERT_MSG(base != nullptr, "event_base_new");
        wake_timer = evtimer_new(base, [](evutil_socket_t, short, void*) {}, nullptr);
        REPRISE_ASSERT(wake_timer != nullptr);
    }
    ~LiveWorld() {
        event_free(wake_timer);
        event_base_free(base);
    }
    LiveWorld(const LiveWorld&) = delete;
    LiveWorld& operator=(const LiveWorld&) = delete;

    event_base* base = nullptr;
    event* wake_timer = nullptr;  ///< bounds one wait of the loop
};

std::shared_ptr<LiveWorld> make_live_world() { return std::make_shared<LiveWorld>(); }

} // namespace reprise

namespace reprise::detail {

class LiveBackend final : public Backend {
public:
    LiveBackend(std::size_t offload_threads, std::shared_ptr<LiveWorld> world, std::shared_ptr<FileWorld> files)
        : pool_(offload_threads), world_(world ? std::move(world) : make_live_world()), base_(world_->base),
          files_(std::move(files)) {
        REPRISE_ASSERT(files_ != nullptr);
        offload_event_ = event_new(base_, pool_.notify_fd(), EV_READ | EV_PERSIST, on_offload_done, this);
        REPRISE_ASSERT(offload_event_ != nullptr);
        scratch_.reset(new char[limits::read_chunk_bytes]);
    }

    ~LiveBackend() override {
        // Output of connections closed at the end of the run (a last reply written
        // just before the program stopped) is still sent: each closed connection
        // sends what it can until its linger (limits::close_linger_ns) ends.
        while (!zombies_.empty())
            if (event_base_loop(base_, EVLOOP_ONCE) != 0)
                break;
        for (auto& z : zombies_)
            bury(*z);
        zombies_.clear();
        for (std::uint32_t token = 1; token <= sockets_.size(); ++token)
            if (Socket* s = socket_of(token)) {
                ::close(s->fd);
                std::uint32_t t = token;
                release_socket(t);
            }
        for (auto& [signo, ev] : signal_events_)
            event_free(ev);
        event_free(offload_event_);
    }

    PollResult poll(std::int64_t deadline_ns, WakeBatch& out) override {
        REPRISE_ASSERT(out.items.empty());
        PollResult result;
        int flags = EVLOOP_ONCE;
        if (!batch_.items.empty()) {
            flags |= EVLOOP_NONBLOCK;
        } else if (deadline_ns >= 0) {
            std::int64_t wait_ns = deadline_ns - read_monotonic_ns();
            if (wait_ns <= 0) {
                flags |= EVLOOP_NONBLOCK;
            } else {
                timeval tv = to_timeval(wait_ns);
                evtimer_add(world_->wake_timer, &tv);
            }
        }
        result.waited_on_clock = !(flags & EVLOOP_NONBLOCK);
        int r = event_base_loop(base_, flags);
        REPRISE_ASSERT_MSG(r >= 0, "event_base_loop failed");
        evtimer_del(world_->wake_timer);
        // On a shared loop, nothing registered may be another runtime's; this one
        // can still be woken as long as it has an event of its own.
        result.could_wake = r == 0;
        std::swap(out, batch_);  // the batch's storage goes back and forth, never reallocated
        return result;
    }

    void read_clock(std::int64_t& mono_ns, std::int64_t& wall_ns) override {
        mono_ns = read_monotonic_ns();
        wall_ns = read_realtime_ns();
    }

    std::int64_t precise_clock_ns() override { return read_monotonic_ns(); }

    std::int64_t next_known_event_ns() const noexcept override { return batch_.items.empty() ? -1 : 0; }

    void collect_due_timers(TimerHeap& timers, std::int64_t now_ns, WakeBatch& out) override {
        while (TimerState* t = timers.top()) {
            if (t->deadline_ns > now_ns)
                break;
            timers.pop();
            out.items.push_back(Wakeup{.kind = WakeKind::timer_fired, .handle = t->id});
        }
    }

    // --- listeners -------------------------------------------------------------

    Result<void> listen(ListenerState& l, const Address& address) override {
        int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return error_from_errno(errno);
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd, address.sockaddr_ptr(), address.sockaddr_len()) != 0 ||
            ::listen(fd, limits::listen_backlog) != 0) {
            int e = errno;
            ::close(fd);
            return error_from_errno(e);
        }
        l.local = local_address_of(fd);
        Socket& s = new_socket(l.backend_token);
        s.fd = fd;
        s.listener = &l;
        s.read_event = event_new(base_, fd, EV_READ | EV_PERSIST, on_acceptable, &s);
        REPRISE_ASSERT(s.read_event != nullptr);
        set_accepting(l, true);
        return {};
    }

    void set_accepting(ListenerState& l, bool accepting) override {
        if (Socket* s = socket_of(l.backend_token))
            set_event(s->read_event, s->reading, accepting);
    }

    void close_listener(ListenerState& l) override {
        if (Socket* s = socket_of(l.backend_token)) {
            if (s->fd >= 0)
                ::close(s->fd);
            release_socket(l.backend_token);
        }
    }

    // --- connections -----------------------------------------------------------

    void adopt(ConnState& c, std::int32_t fd) override {
        attach(c, fd);
        set_reading(c, true);
    }

    void drop_accepted(std::int32_t fd) override { ::close(fd); }

    Result<void> connect(ConnState& c, const Address& address) override {
        int fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return error_from_errno(errno);
        Socket& s = attach(c, fd);
        if (::connect(fd, address.sockaddr_ptr(), address.sockaddr_len()) == 0 || errno == EINPROGRESS) {
            // Completion (or refusal) shows as writability; it is reported as a
            // wake-up even when immediate, so the order of events is the loop's.
            set_event(s.write_event, s.writing, true);
            return {};
        }
        return error_from_errno(errno);
    }

    void set_reading(ConnState& c, bool reading) override {
        if (Socket* s = socket_of(c.backend_token))
            set_event(s->read_event, s->reading, reading);
    }

    void flush(ConnState& c) override {
        Socket* s = socket_of(c.backend_token);
        if (s == nullptr || c.connecting)
            return;
        send_output(*s, c);
    }

    void shutdown_write(ConnState& c) override {
        Socket* s = socket_of(c.backend_token);
        if (s == nullptr)
            return;
        if (c.output.empty())
            ::shutdown(s->fd, SHUT_WR);
        else
            s->shutdown_pending = true;
    }

    void close(ConnState& c) override {
        Socket* s = socket_of(c.backend_token);
        if (s == nullptr)
            return;
        const int fd = s->fd;
        const bool shutdown_after = s->shutdown_pending;
        release_socket(c.backend_token);
        if (c.output.empty() || c.error) {
            ::close(fd);
            return;
        }
        // Unsent output outlives the connection: a zombie sends it on its own.
        auto z = std::make_unique<Zombie>();
        z->backend = this;
        z->fd = fd;
        z->shutdown_after = shutdown_after;
        z->output = std::move(c.output);
        z->write_event = event_new(base_, z->fd, EV_WRITE | EV_PERSIST, on_zombie_writable, z.get());
        timeval linger = to_timeval(limits::close_linger_ns);
        event_add(z->write_event, &linger);
        zombies_.push_back(std::move(z));
    }

    void watch_signal(int signo) override {
        if (signal_events_.count(signo))
            return;
        event* ev = evsignal_new(base_, signo, on_signal, this);
        REPRISE_ASSERT(ev != nullptr && evsignal_add(ev, nullptr) == 0);
        signal_events_.emplace(signo, ev);
    }

    std::shared_ptr<FileWorld> file_world() override { return files_; }

    void submit_offload(std::shared_ptr<OffloadState> request) override {
        if (offloads_in_flight_++ == 0)
            event_add(offload_event_, nullptr);
        pool_.submit(std::move(request));
    }

private:
    /// What the backend keeps per socket; the runtime's state names it by a token.
    struct Socket {
        LiveBackend* backend = nullptr;   ///< for libevent callbacks
        ConnState* conn = nullptr;        ///< the connection it belongs to, or
        ListenerState* listener = nullptr;  ///< the listener
        int fd = -1;
        ::event* read_event = nullptr;
        ::event* write_event = nullptr;
        bool reading = false;             ///< read_event is added
        bool writing = false;             ///< write_event is added
        bool shutdown_pending = false;    ///< shut the write side once output is sent
    };

    /// A free slot of the socket table, named by `token` (its index + 1).
    Socket& new_socket(std::uint32_t& token) {
        REPRISE_ASSERT_MSG(token == 0, "a handle gets one socket");
        if (free_tokens_.empty()) {
            REPRISE_ASSERT_MSG(sockets_.size() < UINT32_MAX, "socket table full");
            sockets_.push_back(std::make_unique<Socket>());
            token = static_cast<std::uint32_t>(sockets_.size());
        } else {
            token = free_tokens_.back();
            free_tokens_.pop_back();
        }
        Socket& s = *sockets_[token - 1];
        s = Socket{};
        s.backend = this;
        return s;
    }

    Socket* socket_of(std::uint32_t token) noexcept {
        if (token == 0)
            return nullptr;
        REPRISE_ASSERT(token <= sockets_.size());
        Socket* s = sockets_[token - 1].get();
        return s->fd >= 0 ? s : nullptr;
    }

    /// Frees the socket's events and its slot (not the fd); the handle forgets its token.
    void release_socket(std::uint32_t& token) noexcept {
        Socket& s = *sockets_[token - 1];
        if (s.read_event)
            event_free(s.read_event);
        if (s.write_event)
            event_free(s.write_event);
        s = Socket{};
        free_tokens_.push_back(token);
        token = 0;
    }

    struct Zombie {
        LiveBackend* backend = nullptr;
        int fd = -1;
        bool shutdown_after = false;
        ByteBuffer output;
        event* write_event = nullptr;
    };

    static void set_event(event* ev, bool& added, bool want) {
        if (want == added || ev == nullptr)
            return;
        if (want)
            event_add(ev, nullptr);
        else
            event_del(ev);
        added = want;
    }

    Socket& attach(ConnState& c, int fd) {
        set_nodelay(fd);
        Socket& s = new_socket(c.backend_token);
        s.fd = fd;
        s.conn = &c;
        s.read_event = event_new(base_, fd, EV_READ | EV_PERSIST, on_readable, &s);
        s.write_event = event_new(base_, fd, EV_WRITE | EV_PERSIST, on_writable, &s);
        REPRISE_ASSERT(s.read_event && s.write_event);
        return s;
    }

    void push(Wakeup w) { batch_.items.push_back(w); }

    void push_error(Socket& s, ConnState& c, int e) {
        set_event(s.read_event, s.reading, false);
        set_event(s.write_event, s.writing, false);
        push(Wakeup{.kind = WakeKind::io_error, .handle = c.id, .value = e});
    }

    // Sends what the kernel takes; arms writability for the rest. A writer blocked
    // on the high-water mark is woken once output is back under the low-water mark.
    void send_output(Socket& s, ConnState& c) {
        std::size_t before = c.output.size();
        while (!c.output.empty()) {
            std::string_view out = c.output.view();
            ssize_t n = ::send(s.fd, out.data(), out.size(), MSG_NOSIGNAL);
            if (n > 0) {
                c.output.consume(static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            push_error(s, c, n < 0 ? errno : EPIPE);
            return;
        }
        set_event(s.write_event, s.writing, !c.output.empty());
        if (c.output.empty() && s.shutdown_pending) {
            s.shutdown_pending = false;
            ::shutdown(s.fd, SHUT_WR);
        }
        if (before > limits::output_low_water_bytes && c.output.size() <= limits::output_low_water_bytes &&
            !c.writers.empty())
            push(Wakeup{.kind = WakeKind::drained, .handle = c.id});
    }

    static void on_readable(evutil_socket_t fd, short, void* arg) {
        auto& s = *static_cast<Socket*>(arg);
        auto& c = *s.conn;
        auto& self = *s.backend;
        ssize_t n;
        do {
            n = ::recv(fd, self.scratch_.get(), limits::read_chunk_bytes, 0);
        } while (n < 0 && errno == EINTR);
        if (n > 0) {
            WakeBatch& batch = self.batch_;
            Wakeup w{.kind = WakeKind::bytes_read, .handle = c.id};
            w.data_offset = static_cast<std::uint32_t>(batch.bytes.size());
            w.data_bytes = static_cast<std::uint32_t>(n);
            batch.bytes.append(self.scratch_.get(), static_cast<std::size_t>(n));
            self.push(w);
        } else if (n == 0) {
            set_event(s.read_event, s.reading, false);
            self.push(Wakeup{.kind = WakeKind::eof, .handle = c.id});
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            self.push_error(s, c, errno);
        }
    }

    static void on_writable(evutil_socket_t fd, short, void* arg) {
        auto& s = *static_cast<Socket*>(arg);
        auto& c = *s.conn;
        auto& self = *s.backend;
        if (!c.connecting) {
            self.send_output(s, c);
            return;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        set_event(s.write_event, s.writing, false);
        Wakeup w{.kind = WakeKind::connected, .handle = c.id, .value = err};
        if (err == 0) {
            w.local = local_address_of(static_cast<int>(fd));
            w.peer = c.peer;
            set_event(s.read_event, s.reading, true);
        }
        self.push(w);
    }

    static void on_acceptable(evutil_socket_t fd, short, void* arg) {
        auto& s = *static_cast<Socket*>(arg);
        auto& l = *s.listener;
        auto& self = *s.backend;
        for (std::size_t i = 0; i < limits::accepts_per_event_max; ++i) {
            sockaddr_storage ss{};
            socklen_t len = sizeof ss;
            int conn = ::accept4(fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (conn < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
                    self.report_accept_exhaustion(l, errno);
                if (errno == EINTR || errno == ECONNABORTED)
                    continue;
                return;
            }
            Wakeup w{.kind = WakeKind::accepted, .handle = l.id, .value = conn};
            w.peer = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
            w.local = local_address_of(conn);
            self.push(w);
        }
    }

    // Out of descriptors or memory: the pending connection stays in the kernel's
    // backlog; stop polling the listener for a moment instead of spinning on it.
    void report_accept_exhaustion(ListenerState& l, int e) {
        fmt::print(stderr, "reprise: accept on {} failed: {}; pausing accepts for 100 ms\n", l.local.to_string(),
                   std::strerror(e));
        set_accepting(l, false);
        timeval tv{0, 100'000};
        event_base_once(
            base_, -1, EV_TIMEOUT,
            [](evutil_socket_t, short, void* arg) {
                // The listener may be gone by now: its slot then names no listener.
                auto& s = *static_cast<Socket*>(arg);
                if (s.listener != nullptr && !s.listener->closed && !s.listener->paused)
                    s.backend->set_accepting(*s.listener, true);
            },
            socket_of(l.backend_token), &tv);
    }

    static void on_signal(evutil_socket_t signo, short, void* arg) {
        static_cast<LiveBackend*>(arg)->push(Wakeup{.kind = WakeKind::signal, .value = static_cast<std::int32_t>(signo)});
    }

    static void on_offload_done(evutil_socket_t, short, void* arg) {
        auto& self = *static_cast<LiveBackend*>(arg);
        self.completed_.clear();
        self.pool_.take_completions(self.completed_);
        for (std::uint64_t id : self.completed_)
            self.push(Wakeup{.kind = WakeKind::offload_done, .handle = id});
        REPRISE_ASSERT(self.completed_.size() <= self.offloads_in_flight_);
        self.offloads_in_flight_ -= self.completed_.size();
        if (self.offloads_in_flight_ == 0)
            event_del(self.offload_event_);
    }

    static void on_zombie_writable(evutil_socket_t, short what, void* arg) {
        auto* z = static_cast<Zombie*>(arg);
        bool done = (what & EV_TIMEOUT) != 0;  // linger expired: drop the rest
        while (!done && !z->output.empty()) {
            std::string_view out = z->output.view();
            ssize_t n = ::send(z->fd, out.data(), out.size(), MSG_NOSIGNAL);
            if (n > 0)
                z->output.consume(static_cast<std::size_t>(n));
            else if (n < 0 && errno == EINTR)
                continue;
            else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            else
                done = true;
        }
        if (z->output.empty() && z->shutdown_after)
            ::shutdown(z->fd, SHUT_WR);
        z->backend->bury(*z);
        std::erase_if(z->backend->zombies_, [z](const std::unique_ptr<Zombie>& p) { return p.get() == z; });
    }

    void bury(Zombie& z) noexcept {
        if (z.write_event)
            event_free(z.write_event);
        z.write_event = nullptr;
        if (z.fd >= 0)
            ::close(z.fd);
        z.fd = -1;
    }

    OffloadPool pool_;
    std::shared_ptr<LiveWorld> world_;
    event_base* base_ = nullptr;
    std::shared_ptr<FileWorld> files_;
    WakeBatch batch_;  ///< what arrived since the last poll handed it over
    event* offload_event_ = nullptr;
    std::size_t offloads_in_flight_ = 0;
    std::vector<std::uint64_t> completed_;
    std::map<int, event*> signal_events_;
    std::vector<std::unique_ptr<Zombie>> zombies_;
    std::unique_ptr<char[]> scratch_;
    std::vector<std::unique_ptr<Socket>> sockets_;  ///< by token - 1; slots are reused
    std::vector<std::uint32_t> free_tokens_;
};

std::unique_ptr<Backend> make_live_backend(std::size_t offload_threads, std::shared_ptr<LiveWorld> world,
                                           std::shared_ptr<FileWorld> files) {
    return std::make_unique<LiveBackend>(offload_threads, std::move(world), std::move(files));
}

} // namespace reprise::detail
