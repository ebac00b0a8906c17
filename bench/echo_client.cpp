// Echo-server load generator: measures ping-pong round trips or holds idle connections open.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr size_t conns_max = 100000;
constexpr size_t message_bytes_max = size_t{1} << 20;
constexpr size_t hold_message_bytes = 16;
constexpr double seconds_max = 3600;
constexpr size_t connects_in_flight_max = 500;
constexpr int epoll_events_max = 1024;
constexpr milliseconds poll_interval{100};
constexpr milliseconds stall_limit{5000};
constexpr milliseconds connect_timeout{10000};
constexpr std::chrono::seconds hard_cap_margin{10};
static_assert(connects_in_flight_max <= 1024, "connects in flight must fit the server's backlog");
static_assert(stall_limit > poll_interval && connect_timeout >= stall_limit);

// Reports an operating error (bad usage, server misbehaving) and exits non-zero.
[[noreturn]] __attribute__((format(printf, 1, 2))) void fail(const char* format, ...) {
    std::va_list args;
    va_start(args, format);
    std::fputs("echo_client: ", stderr);
    std::vfprintf(stderr, format, args);
    std::fputc('\n', stderr);
    va_end(args);
    std::exit(1);
}

struct options {
    int port = 0;
    size_t conns = 50;
    size_t message_bytes = 64;
    steady::duration duration = std::chrono::seconds(2);
    steady::duration warmup = milliseconds(300);
    bool hold = false;
};

// Parses a decimal argument in [min, max]; whole asks for an integer.
double parse_number(const char* name, const char* text, double min, double max, bool whole) {
    char* end = nullptr;
    errno = 0;
    const double value = std::strtod(text, &end);
    if (*text == '\0' || *end != '\0' || errno != 0 || !(value >= min && value <= max) ||
        (whole && value != std::floor(value))) {
        fail("%s wants a %s in [%g, %g], got '%s'", name, whole ? "whole number" : "number", min,
             max, text);
    }
    return value;
}

steady::duration parse_seconds(const char* name, const char* text, double min) {
    const std::chrono::duration<double> seconds{parse_number(name, text, min, seconds_max, false)};
    return std::chrono::duration_cast<steady::duration>(seconds);
}

options parse_options(int argc, char** argv) {
    options opts;
    for (int i = 1; i < argc; i += 2) {
        const std::string_view name = argv[i];
        const char* value = i + 1 < argc ? argv[i + 1] : "";
        if (name == "--port") {
            opts.port = static_cast<int>(parse_number(argv[i], value, 1, 65535, true));
        } else if (name == "--conns" || name == "--hold") {
            opts.conns = static_cast<size_t>(parse_number(argv[i], value, 1, conns_max, true));
            opts.hold = opts.hold || name == "--hold";
        } else if (name == "--size") {
            opts.message_bytes =
                static_cast<size_t>(parse_number(argv[i], value, 1, message_bytes_max, true));
        } else if (name == "--seconds") {
            opts.duration = parse_seconds(argv[i], value, 0.001);
        } else if (name == "--warmup") {
            opts.warmup = parse_seconds(argv[i], value, 0);
        } else {
            fail(
                "usage: echo_client --port P [--conns N] [--size B] [--seconds S] [--warmup W]\n"
                "       echo_client --port P --hold N [--seconds S]");
        }
    }
    if (opts.port == 0) {
        fail("--port is required");
    }
    if (opts.hold) {
        opts.message_bytes = hold_message_bytes;
        opts.warmup = steady::duration::zero();
    }
    return opts;
}

// One client connection doing ping-pong: send a whole message, then wait for its whole echo.
struct connection {
    int fd = -1;
    uint32_t id = 0;
    uint64_t round = 0;
    size_t sent = 0;
    size_t received = 0;
    bool connecting = true;
    std::vector<unsigned char> tx;
    std::vector<unsigned char> rx;
};

// Each round carries different bytes, so a stale, lost or crossed echo cannot pass for a good one.
void start_round(connection& c) {
    c.round++;
    c.sent = 0;
    c.received = 0;
    for (size_t i = 0; i < c.tx.size(); i++) {
        c.tx[i] = static_cast<unsigned char>(c.id * 131 + c.round * 7 + i);
    }
}

void pump_write(connection& c) {
    while (c.sent < c.tx.size()) {
        const ssize_t n = send(c.fd, c.tx.data() + c.sent, c.tx.size() - c.sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (n < 0) {
            fail("connection %u: send: %s", c.id, std::strerror(errno));
        }
        c.sent += static_cast<size_t>(n);
    }
}

// Reads what the server echoed so far; returns true once the whole message is back and verified.
bool pump_read(connection& c) {
    while (true) {
        const size_t outstanding = c.sent - c.received;
        unsigned char stray = 0;
        unsigned char* into = outstanding > 0 ? c.rx.data() + c.received : &stray;
        const ssize_t n = recv(c.fd, into, std::max<size_t>(outstanding, 1), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return false;
        }
        if (n < 0) {
            fail("connection %u: recv: %s", c.id, std::strerror(errno));
        }
        if (n == 0) {
            fail("connection %u: server closed the connection", c.id);
        }
        if (outstanding == 0) {
            fail("connection %u: server sent bytes that were never sent to it", c.id);
        }
        c.received += static_cast<size_t>(n);
        if (c.received == c.tx.size()) {
            const auto diff = std::mismatch(c.tx.begin(), c.tx.end(), c.rx.begin());
            if (diff.first != c.tx.end()) {
                fail("connection %u round %llu: echo differs at byte %zu (sent 0x%02x, got 0x%02x)",
                     c.id, static_cast<unsigned long long>(c.round),
                     static_cast<size_t>(diff.first - c.tx.begin()), *diff.first, *diff.second);
            }
            return true;
        }
    }
}

// Advances a connection on readiness; returns true when a round trip completed. Readiness is
// edge-triggered, so both directions are pumped until they would block or the round is done.
bool on_ready(connection& c, uint32_t events) {
    if (c.connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
            fail("connection %u: connect: %s", c.id, std::strerror(err != 0 ? err : errno));
        }
        if ((events & EPOLLOUT) == 0) {
            return false;
        }
        c.connecting = false;
    }
    pump_write(c);
    return (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0 && pump_read(c);
}

// Runs ping-pong until stop_at or until no connection is active; another_round(c, now) says
// whether a connection that just completed a round starts the next one.
template <typename F>
size_t drive(int epfd, std::vector<connection>& conns, size_t active, steady::time_point stop_at,
             F another_round) {
    epoll_event events[epoll_events_max];
    auto last_progress = steady::now();
    while (active > 0) {
        const int n =
            epoll_wait(epfd, events, epoll_events_max, static_cast<int>(poll_interval.count()));
        if (n < 0 && errno != EINTR) {
            fail("epoll_wait: %s", std::strerror(errno));
        }
        const auto now = steady::now();
        if (now >= stop_at) {
            return active;
        }
        for (int i = 0; i < n; i++) {
            connection& c = conns[events[i].data.u32];
            if (on_ready(c, events[i].events)) {
                last_progress = now;
                if (another_round(c, now)) {
                    start_round(c);
                    pump_write(c);
                } else {
                    active--;
                }
            }
        }
        if (now - last_progress > stall_limit) {
            fail("server stopped answering for %lld ms",
                 static_cast<long long>(stall_limit.count()));
        }
    }
    return active;
}

// Opens the connections, connects_in_flight_max at a time, each proven served by one echo.
std::vector<connection> open_connections(int epfd, const options& opts) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(opts.port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::vector<connection> conns(opts.conns);
    const auto deadline = steady::now() + connect_timeout;
    for (size_t first = 0; first < conns.size(); first += connects_in_flight_max) {
        const size_t last = std::min(conns.size(), first + connects_in_flight_max);
        for (size_t i = first; i < last; i++) {
            connection& c = conns[i];
            c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (c.fd < 0) {
                fail("socket for connection %zu: %s", i, std::strerror(errno));
            }
            const int one = 1;
            setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            c.id = static_cast<uint32_t>(i);
            c.tx.resize(opts.message_bytes);
            c.rx.resize(opts.message_bytes);
            start_round(c);
            if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 &&
                errno != EINPROGRESS) {
                fail("connect to 127.0.0.1:%d: %s", opts.port, std::strerror(errno));
            }
            epoll_event ev{};
            ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
            ev.data.u32 = static_cast<uint32_t>(i);
            if (epoll_ctl(epfd, EPOLL_CTL_ADD, c.fd, &ev) != 0) {
                fail("epoll_ctl: %s", std::strerror(errno));
            }
        }
        const size_t left = drive(epfd, conns, last - first, deadline,
                                  [](connection&, steady::time_point) { return false; });
        if (left > 0) {
            fail("%zu of %zu connections were not served within %lld ms",
                 left + (conns.size() - last), conns.size(),
                 static_cast<long long>(connect_timeout.count()));
        }
    }
    return conns;
}

// Lets the process use as many descriptors as the hard limit allows.
void raise_fd_limit() {
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        fail("getrlimit: %s", std::strerror(errno));
    }
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
        fail("setrlimit: %s", std::strerror(errno));
    }
}

// Kills a run that overstays its hard cap, whatever state its loops are in.
void on_alarm(int) {
    const char message[] = "echo_client: hard time cap reached\n";
    [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, message, sizeof message - 1);
    _exit(1);
}

// Waits until the hold time is over, SIGTERM or SIGINT arrives, or a piped stdin is closed.
// A stdin that is a file or /dev/null is not watched, so a runner need not keep a pipe open.
void wait_while_holding(steady::time_point until) {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
    const int sigfd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
    if (sigfd < 0) {
        fail("signalfd: %s", std::strerror(errno));
    }
    struct stat st {};
    const bool watch_stdin =
        fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
    pollfd fds[2] = {{sigfd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
    for (auto now = steady::now(); now < until; now = steady::now()) {
        const auto left = std::chrono::ceil<milliseconds>(until - now);
        const int n =
            poll(fds, watch_stdin ? 2 : 1, static_cast<int>(std::min(left, poll_interval).count()));
        if (n < 0 && errno != EINTR) {
            fail("poll: %s", std::strerror(errno));
        }
        if (n > 0 && fds[0].revents != 0) {
            return;
        }
        if (n > 0 && watch_stdin && fds[1].revents != 0) {
            char discard[256];
            if (read(STDIN_FILENO, discard, sizeof discard) <= 0) {
                return;
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    const options opts = parse_options(argc, argv);
    raise_fd_limit();
    std::signal(SIGALRM, on_alarm);
    const auto hard_cap =
        std::chrono::ceil<std::chrono::seconds>(opts.warmup + opts.duration) + hard_cap_margin;
    alarm(static_cast<unsigned>(hard_cap.count()));

    const int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        fail("epoll_create1: %s", std::strerror(errno));
    }
    std::vector<connection> conns = open_connections(epfd, opts);
    const auto warmup_end = steady::now() + opts.warmup;
    if (opts.hold) {
        std::printf("held %zu\n", conns.size());
        std::fflush(stdout);
        wait_while_holding(warmup_end + opts.duration);
    } else {
        uint64_t requests = 0;
        for (connection& c : conns) {
            start_round(c);
            pump_write(c);
        }
        drive(epfd, conns, conns.size(), warmup_end + opts.duration,
              [&](connection&, steady::time_point now) {
                  requests += now >= warmup_end ? 1 : 0;
                  return true;
              });
        const double seconds = std::chrono::duration<double>(opts.duration).count();
        std::printf("requests=%llu seconds=%.3f req_per_s=%.0f\n",
                    static_cast<unsigned long long>(requests), seconds,
                    static_cast<double>(requests) / seconds);
    }
    for (connection& c : conns) {
        close(c.fd);
    }
    close(epfd);
    return 0;
}
