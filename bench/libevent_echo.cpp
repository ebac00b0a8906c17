// Plain-libevent echo server: the anchor that the runtime's echo benchmark is measured against.
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

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

[[noreturn]] void usage_exit() {
    std::fprintf(stderr, "usage: libevent_echo --port P   (P = 0 picks a free port)\n");
    std::exit(2);
}

// Copies everything a connection sent back to its output buffer.
void on_read(bufferevent* bev, void*) {
    const int rc = evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
    ECHO_ASSERT(rc == 0);
}

// Frees the connection on EOF or error; a peer going away is normal, not a bug.
void on_event(bufferevent* bev, short what, void*) {
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        bufferevent_free(bev);
    }
}

void on_accept(evconnlistener* listener, evutil_socket_t fd, sockaddr*, int, void*) {
    event_base* base = evconnlistener_get_base(listener);
    // An echo can leave in several writes; Nagle would hold the later ones until the client ACKs.
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent* bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == nullptr) {
        evutil_closesocket(fd);
        return;
    }
    bufferevent_setcb(bev, on_read, nullptr, on_event, nullptr);
    const int rc = bufferevent_enable(bev, EV_READ | EV_WRITE);
    ECHO_ASSERT(rc == 0);
}

// Accept errors (EMFILE, for one) are operating errors: report and keep serving.
void on_accept_error(evconnlistener*, void*) {
    const int err = EVUTIL_SOCKET_ERROR();
    std::fprintf(stderr, "libevent_echo: accept: %s\n", evutil_socket_error_to_string(err));
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
    // A client that resets mid-write must not kill the server.
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
        std::fprintf(stderr, "libevent_echo: cannot listen on 127.0.0.1:%d: %s\n", port,
                     std::strerror(errno));
        return 1;
    }
    evconnlistener_set_error_cb(listener, on_accept_error);

    sockaddr_in bound{};
    socklen_t bound_len = sizeof bound;
    const int rc = getsockname(evconnlistener_get_fd(listener), reinterpret_cast<sockaddr*>(&bound),
                               &bound_len);
    ECHO_ASSERT(rc == 0);
    // Signals are caught before the port is announced, so a runner may stop the server at once.
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
