// A program outside the tree, built against an installed reprise (tests/install/install_test.py):
// run_main, a sleep, an input, and a TCP round trip on loopback, so its trace has content.
#include <reprise/runtime/reprise.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;
using namespace reprise;

namespace {

int run(MainContext&) {
    // An app-defined input: recorded live, fed back from the trace on replay.
    auto greeting = input<std::string>("greeting", [] { return std::string("hello from the consumer"); });

    auto listener = listen(Address::loopback(0));
    if (!listener.ok()) {
        std::fprintf(stderr, "consumer: listen failed: %s\n", listener.error().message().c_str());
        return 1;
    }
    std::uint16_t port = listener->port();

    auto server = spawn("server", [&]() -> int {
        auto conn = listener->accept(5s);
        if (!conn.ok())
            return 1;
        auto line = conn->read_until("\n", 1024, 5s);
        if (!line.ok())
            return 1;
        if (!sleep_for(20ms).ok())  // a timer: replay warps through it
            return 1;
        return conn->write("echo: " + *line).ok() ? 0 : 1;
    });

    auto conn = connect(Address::loopback(port), 5s);
    if (!conn.ok()) {
        std::fprintf(stderr, "consumer: connect failed: %s\n", conn.error().message().c_str());
        return 1;
    }
    if (!conn->write(greeting + "\n").ok())
        return 1;
    auto reply = conn->read_until("\n", 1024, 5s);
    if (!reply.ok()) {
        std::fprintf(stderr, "consumer: no reply: %s\n", reply.error().message().c_str());
        return 1;
    }
    int server_status = server.join().value();
    std::printf("consumer: got %s", reply->c_str());
    std::fflush(stdout);
    return server_status == 0 && *reply == "echo: " + greeting + "\n" ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    return run_main(argc, argv, run);
}
