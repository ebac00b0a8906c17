// The live backend: libevent underneath. Harvests reads, accepts, connects, signals and
// offload completions as wake-ups, and flushes connection output.
#include "reprise/runtime/internal/core.hpp"

#include "reprise/clock/internal/system_clock.hpp"
#include "reprise/io/internal/offload_pool.hpp"

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

void free_events(SocketSlot& s) noexcept {
    if (s.read_event)
        event_free(s.read_event);
    if (s.write_event)
        event_free(s.write_event);
    s.read_event = s.write_event = nullptr;
    s.reading = s.writing = false;
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
    LiveBackend(std::size_t offload_threads, std::shared_ptr<LiveWorld> world)
        : pool_(offload_threads), world_(world ? std::move(world) : make_live_world()), base_(world_->base) {
        offload_event_ = event_new(base_, pool_.notify_fd(), EV_READ | EV_PERSIST, on_offload_done, this);
        REPRISE_ASSERT(offload_event_ != nullptr);
        scratch_.reset(new char[limits::read_chunk_bytes]);
    }

    ~LiveBackend() override {
        for (auto& z : zombies_)
            bury(*z);
        zombies_.clear();
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
        l.socket.fd = fd;
        l.socket.owner = this;
        l.socket.read_event = event_new(base_, fd, EV_READ | EV_PERSIST, on_acceptable, &l);
        REPRISE_ASSERT(l.socket.read_event != nullptr);
        set_accepting(l, true);
        return {};
    }

    void set_accepting(ListenerState& l, bool accepting) override { set_event(l.socket.read_event, l.socket.reading, accepting); }

    void close_listener(ListenerState& l) override {
        free_events(l.socket);
        if (l.socket.fd >= 0)
            ::close(l.socket.fd);
        l.socket.fd = -1;
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
        attach(c, fd);
        if (::connect(fd, address.sockaddr_ptr(), address.sockaddr_len()) == 0 || errno == EINPROGRESS) {
            // Completion (or refusal) shows as writability; it is reported as a
            // wake-up even when immediate, so the order of events is the loop's.
            set_event(c.socket.write_event, c.socket.writing, true);
            return {};
        }
        return error_from_errno(errno);
    }

    void set_reading(ConnState& c, bool reading) override { set_event(c.socket.read_event, c.socket.reading, reading); }

    void flush(ConnState& c) override {
        if (c.socket.fd < 0 || c.connecting)
            return;
        send_output(c);
    }

    void shutdown_write(ConnState& c) override {
        if (c.socket.fd < 0)
            return;
        if (c.output.empty())
            ::shutdown(c.socket.fd, SHUT_WR);
        else
            c.socket.shutdown_pending = true;
    }

    void close(ConnState& c) override {
        if (c.socket.fd < 0)
            return;
        free_events(c.socket);
        if (c.output.empty() || c.error) {
            ::close(c.socket.fd);
            c.socket.fd = -1;
            return;
        }
        // Unsent output outlives the connection: a zombie sends it on its own.
        auto z = std::make_unique<Zombie>();
        z->backend = this;
        z->fd = c.socket.fd;
        z->shutdown_after = c.socket.shutdown_pending;
        z->output = std::move(c.output);
        z->write_event = event_new(base_, z->fd, EV_WRITE | EV_PERSIST, on_zombie_writable, z.get());
        timeval linger = to_timeval(limits::close_linger_ns);
        event_add(z->write_event, &linger);
        c.socket.fd = -1;
        zombies_.push_back(std::move(z));
    }

    void watch_signal(int signo) override {
        if (signal_events_.count(signo))
            return;
        event* ev = evsignal_new(base_, signo, on_signal, this);
        REPRISE_ASSERT(ev != nullptr && evsignal_add(ev, nullptr) == 0);
        signal_events_.emplace(signo, ev);
    }

    void submit_offload(std::shared_ptr<OffloadState> request) override {
        if (offloads_in_flight_++ == 0)
            event_add(offload_event_, nullptr);
        pool_.submit(std::move(request));
    }

private:
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

    void attach(ConnState& c, int fd) {
        set_nodelay(fd);
        c.socket.fd = fd;
        c.socket.owner = this;
        c.socket.read_event = event_new(base_, fd, EV_READ | EV_PERSIST, on_readable, &c);
        c.socket.write_event = event_new(base_, fd, EV_WRITE | EV_PERSIST, on_writable, &c);
        REPRISE_ASSERT(c.socket.read_event && c.socket.write_event);
    }

    void push(Wakeup w) { batch_.items.push_back(w); }

    void push_error(ConnState& c, int e) {
        set_reading(c, false);
        set_event(c.socket.write_event, c.socket.writing, false);
        push(Wakeup{.kind = WakeKind::io_error, .handle = c.id, .value = e});
    }

    // Sends what the kernel takes; arms writability for the rest. A writer blocked
    // on the high-water mark is woken once output is back under the low-water mark.
    void send_output(ConnState& c) {
        std::size_t before = c.output.size();
        while (!c.output.empty()) {
            std::string_view out = c.output.view();
            ssize_t n = ::send(c.socket.fd, out.data(), out.size(), MSG_NOSIGNAL);
            if (n > 0) {
                c.output.consume(static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            push_error(c, n < 0 ? errno : EPIPE);
            return;
        }
        set_event(c.socket.write_event, c.socket.writing, !c.output.empty());
        if (c.output.empty() && c.socket.shutdown_pending) {
            c.socket.shutdown_pending = false;
            ::shutdown(c.socket.fd, SHUT_WR);
        }
        if (before > limits::output_low_water_bytes && c.output.size() <= limits::output_low_water_bytes &&
            !c.writers.empty())
            push(Wakeup{.kind = WakeKind::drained, .handle = c.id});
    }

    static void on_readable(evutil_socket_t fd, short, void* arg) {
        auto& c = *static_cast<ConnState*>(arg);
        auto& self = *static_cast<LiveBackend*>(c.socket.owner);
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
            self.set_reading(c, false);
            self.push(Wakeup{.kind = WakeKind::eof, .handle = c.id});
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            self.push_error(c, errno);
        }
    }

    static void on_writable(evutil_socket_t fd, short, void* arg) {
        auto& c = *static_cast<ConnState*>(arg);
        auto& self = *static_cast<LiveBackend*>(c.socket.owner);
        if (!c.connecting) {
            self.send_output(c);
            return;
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        self.set_event(c.socket.write_event, c.socket.writing, false);
        Wakeup w{.kind = WakeKind::connected, .handle = c.id, .value = err};
        if (err == 0) {
            w.local = local_address_of(static_cast<int>(fd));
            w.peer = c.peer;
            self.set_reading(c, true);
        }
        self.push(w);
    }

    static void on_acceptable(evutil_socket_t fd, short, void* arg) {
        auto& l = *static_cast<ListenerState*>(arg);
        auto& self = *static_cast<LiveBackend*>(l.socket.owner);
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
                auto& listener = *static_cast<ListenerState*>(arg);
                if (!listener.closed && !listener.paused)
                    static_cast<LiveBackend*>(listener.socket.owner)->set_accepting(listener, true);
            },
            &l, &tv);
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
    WakeBatch batch_;  ///< what arrived since the last poll handed it over
    event* offload_event_ = nullptr;
    std::size_t offloads_in_flight_ = 0;
    std::vector<std::uint64_t> completed_;
    std::map<int, event*> signal_events_;
    std::vector<std::unique_ptr<Zombie>> zombies_;
    std::unique_ptr<char[]> scratch_;
};

std::unique_ptr<Backend> make_live_backend(std::size_t offload_threads, std::shared_ptr<LiveWorld> world) {
    return std::make_unique<LiveBackend>(offload_threads, std::move(world));
}

} // namespace reprise::detail
