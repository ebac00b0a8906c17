// Hand-rolled libevent echo server (plain events, recv/send, no bufferevent): the strictest echo anchor.
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

// Crashes with a message when an invariant is broken, in every build.
#define ECHO_ASSERT(cond)                                                                     \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                     \
        }                                                                                     \
    } while (0)

namespace {

constexpr int listen_backlog = 1024;
/// Bytes read per readiness event, as the runtime's loop reads (limits::read_chunk_bytes).
constexpr size_t read_chunk_bytes = 64 * 1024;

[[noreturn]] void usage_exit() {
    std::fprintf(stderr, "usage: libevent_raw_echo --port P   (P = 0 picks a free port)\n");
    std::exit(2);
}

// One connection: echoes what it reads at once; what the kernel does not take waits in
// `pending`, and reading stops until it is sent, so a slow reader bounds the memory.
struct connection {
    int fd = -1;
    event* read_event = nullptr;
    event* write_event = nullptr;
    std::vector<char> pending;
    size_t pending_sent = 0;
};

char scratch[read_chunk_bytes];

void close_connection(connection* c) {
    event_free(c->read_event);
    event_free(c->write_event);
    close(c->fd);
    delete c;
}

// Sends from `data`; returns false when the connection failed and was closed.
bool send_all(connection* c, const char* data, size_t size, size_t& sent) {
    while (sent < size) {
        const ssize_t n = send(c->fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        } else {
            close_connection(c);
            return false;
        }
    }
    return true;
}

void on_writable(evutil_socket_t, short, void* arg) {
    auto* c = static_cast<connection*>(arg);
    if (!send_all(c, c->pending.data(), c->pending.size(), c->pending_sent))
        return;
    if (c->pending_sent == c->pending.size()) {
        c->pending.clear();
        c->pending_sent = 0;
        ECHO_ASSERT(event_del(c->write_event) == 0 && event_add(c->read_event, nullptr) == 0);
    }
}

void on_readable(evutil_socket_t fd, short, void* arg) {
    auto* c = static_cast<connection*>(arg);
    ssize_t n;
    do {
        n = recv(fd, scratch, sizeof scratch, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {  // a peer going away is normal, not a bug
        close_connection(c);
        return;
    }
    size_t sent = 0;
    if (!send_all(c, scratch, static_cast<size_t>(n), sent))
        return;
    if (sent < static_cast<size_t>(n)) {
        c->pending.assign(scratch + sent, scratch + n);
        c->pending_sent = 0;
        ECHO_ASSERT(event_del(c->read_event) == 0 && event_add(c->write_event, nullptr) == 0);
    }
}

void on_accept(evconnlistener* listener, evutil_socket_t fd, sockaddr*, int, void*) {
    event_base* base = evconnlistener_get_base(listener);
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto* c = new connection;
    c->fd = fd;
    c->read_event = event_new(base, fd, EV_READ | EV_PERSIST, on_readable, c);
    c->write_event = event_new(base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
    ECHO_ASSERT(c->read_event != nullptr && c->write_event != nullptr);
    ECHO_ASSERT(event_add(c->read_event, nullptr) == 0);
}

// Accept errors (EMFILE, for one) are operating errors: report and keep serving.
void on_accept_error(evconnlistener*, void*) {
    const int err = EVUTIL_SOCKET_ERROR();
    std::fprintf(stderr, "libevent_raw_echo: accept: %s\n", evutil_socket_error_to_string(err));
}

void on_signal(evutil_socket_t, short, void* arg) {
    event_base_loopbreak(static_cast<event_base*>(arg));
}

// Lets the server hold as many connections as the hard descriptor limit allows.
void raise_fd_limit() {
    rlimit limit{};
    ECHO_ASSERT(getrlimit(RLIMIT_NOFILE, &limit) == 0);
    limit.rlim_cur = limit.rlim_max;
    ECHO_ASSERT(setrlimit(RLIMIT_NOFILE, &limit) == 0);
}

int parse_port(int argc, char** argv) {
    if (argc != 3 || std::string_view(argv[1]) != "--port") {
        usage_exit();
    }
    char* end = nullptr;
    const long port = std::strtol(argv[2], &end, 10);
    if (*argv[2] == '\0' || *end != '\0' || port < 0 || port > 65535) {
        usage_exit();
    }
    return static_cast<int>(port);
}

}  // namespace

int main(int argc, char** argv) {
    const int port = parse_port(argc, argv);
    std::signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();

    event_base* base = event_base_new();
    ECHO_ASSERT(base != nullptr);

    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    evconnlistener* listener =
        evconnlistener_new_bind(base, on_accept, nullptr, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE,
                                listen_backlog, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (listener == nullptr) {
        std::fprintf(stderr, "libevent_raw_echo: cannot listen on 127.0.0.1:%d: %s\n", port,
                     std::strerror(errno));
        return 1;
    }
    evconnlistener_set_error_cb(listener, on_accept_error);

    sockaddr_in bound{};
    socklen_t bound_len = sizeof bound;
    const int rc = getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&bound),
                               &bound_len);
    ECHO_ASSERT(rc == 0);
    event* sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    event* sigint = evsignal_new(base, SIGINT, on_signal, base);
    ECHO_ASSERT(sigterm != nullptr && sigint != nullptr);
    ECHO_ASSERT(event_add(sigterm, nullptr) == 0 && event_add(sigint, nullptr) == 0);

    std::printf("listening %d\n", ntohs(bound.sin_port));
    std::fflush(stdout);

    const int loop_rc = event_base_dispatch(base);
    ECHO_ASSERT(loop_rc != -1);

    // Connections still open are closed by the process exit; the loop's own objects are freed.
    event_free(sigint);
    event_free(sigterm);
    evconnlistener_free(listener);
    event_base_free(base);
    return 0;
}
