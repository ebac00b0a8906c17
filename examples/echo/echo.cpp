// reprise-echo: an echo server on the runtime, and a demo that runs it with clients in one process.
#include <reprise/runtime/reprise.hpp>

#include <fmt/core.h>

#include <cstdio>
#include <string>

using namespace std::chrono_literals;
using namespace reprise;

namespace {

constexpr const char* usage = R"(Program usage:
  reprise-echo serve [--port=P]   serve on 127.0.0.1:P (0: any free port; prints "listening P")
  reprise-echo demo               start a server and three clients in this process and narrate)";

// Serves one connection: echoes what it reads until the peer closes or goes idle.
void serve_connection(Connection conn, bool narrate) {
    std::string peer = conn.peer_address().to_string();
    char buffer[16 * 1024];
    std::size_t echoed = 0;
    for (;;) {
        auto n = conn.read_some(std::span<char>(buffer, sizeof buffer), 30s);
        if (!n.ok()) {
            if (narrate)
                fmt::print("  server: {} finished ({}), {} bytes echoed\n", peer, n.error().message(), echoed);
            return;
        }
        if (auto w = conn.write(std::string_view(buffer, *n)); !w.ok())
            return;
        echoed += *n;
    }
}

// Accepts until cancelled, one task per connection.
int serve(Listener& listener, bool narrate) {
    for (;;) {
        auto conn = listener.accept();
        if (!conn.ok())
            return conn.code() == Errc::cancelled ? 0 : 1;
        if (narrate)
            fmt::print("  server: accepted {} as connection #{}\n", conn->peer_address().to_string(), conn->id());
        spawn("conn", [c = std::move(*conn), narrate]() mutable { serve_connection(std::move(c), narrate); });
    }
}

// A client: sends a few lines, checks each echo, and reports the round-trip times.
int client(int number, std::uint16_t port) {
    auto conn = connect(Address::loopback(port), 5s);
    if (!conn.ok()) {
        fmt::print("  client {}: connect failed: {}\n", number, conn.error().message());
        return 1;
    }
    for (int i = 0; i < 3; ++i) {
        std::string line = fmt::format("hello {} from client {}\n", i, number);
        Instant start = precise_now();
        if (auto w = conn->write(line); !w.ok())
            return 1;
        auto echo = conn->read_until("\n", 1024, 5s);
        if (!echo.ok() || *echo != line) {
            fmt::print("  client {}: bad echo: {}\n", number, echo.ok() ? *echo : echo.error().message());
            return 1;
        }
        auto us = std::chrono::duration_cast<std::chrono::microseconds>(precise_now() - start).count();
        fmt::print("  client {}: sent and got back {:?} in {} us\n", number, line.substr(0, line.size() - 1), us);
        if (auto s = sleep_for(std::chrono::milliseconds(10 * (number + 1))); !s.ok())
            return 1;
    }
    return 0;
}

int demo() {
    auto listener = listen(Address::loopback(0));
    if (!listener.ok()) {
        fmt::print(stderr, "listen failed: {}\n", listener.error().message());
        return 1;
    }
    std::uint16_t port = listener->port();
    fmt::print("reprise echo demo: server listening on 127.0.0.1:{}\n", port);
    auto server = spawn("server", [&] { return serve(*listener, true); });
    int failures = 0;
    {
        std::vector<Task<int>> clients;
        for (int i = 0; i < 3; ++i)
            clients.push_back(spawn(fmt::format("client-{}", i), [i, port] { return client(i, port); }));
        for (auto& c : clients)
            failures += c.join().value();
    }
    sleep_for(5ms).ok();  // let the server log the clients' goodbyes
    server.cancel();
    server.join().value();
    auto stats = Runtime::current()->stats();
    fmt::print("done: {} client(s) failed; the loop ran {} ticks, delivered {} wake-ups, {} fiber switches\n",
               failures, stats.ticks, stats.wakeups, stats.switches);
    std::fflush(stdout);  // before the runtime's own summary on stderr
    return failures == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    return run_main(
        argc, argv,
        [](MainContext& ctx) -> int {
            const auto& args = ctx.args;
            if (args.size() >= 2 && args[1] == "demo")
                return demo();
            if (args.size() >= 2 && args[1] == "serve") {
                std::uint16_t port = 0;
                for (std::size_t i = 2; i < args.size(); ++i) {
                    if (args[i].rfind("--port=", 0) == 0)
                        port = static_cast<std::uint16_t>(std::stoul(args[i].substr(7)));
                }
                auto listener = listen(Address::loopback(port));
                if (!listener.ok()) {
                    fmt::print(stderr, "listen failed: {}\n", listener.error().message());
                    return 1;
                }
                fmt::print("listening {}\n", listener->port());
                std::fflush(stdout);
                return serve(*listener, false);
            }
            fmt::print(stderr, "{}\n", usage);
            return 2;
        },
        ProgramInfo{"reprise-echo", usage});
}
