// Tests of TCP on 127.0.0.1: listen, connect, the read and write calls, eof, errors, cancellation, addresses.
//
// Every scenario that runs a runtime runs through run_main_task: live, then recorded,
// replayed in a child and compared. The two connect tests against FullBacklogListener
// talk to a raw socket opened outside the runtime; the runtime sees it only through its
// gate (the connect's outcome), so they replay too.
// None runs live only: the one that diverged (a second write past the high-water mark)
// replays since a write blocks on output_pending, which changes only at recorded points.
#include "../support/reprise_test.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>

using namespace reprise;
using namespace reprise::test;


namespace {

/// A raw listening socket on 127.0.0.1 with a backlog of 0, outside any runtime:
/// once one connection waits in its accept queue, Linux drops further SYNs, so a
/// connect to it stays in progress until its deadline.
class FullBacklogListener {
public:
    FullBacklogListener() {
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(listen_fd_ >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(listen_fd_, 0) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port_ = ntohs(a.sin_port);
        // Fill the accept queue with one finished handshake, then make sure the
        // kernel counts it before anyone relies on the queue being full.
        filler_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(filler_fd_ >= 0);
        REQUIRE(::connect(filler_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        bool full = false;
        for (int i = 0; i < 2000 && !full; ++i) {
            tcp_info info{};
            socklen_t info_len = sizeof info;
            REQUIRE(::getsockopt(listen_fd_, IPPROTO_TCP, TCP_INFO, &info, &info_len) == 0);
            full = info.tcpi_unacked > info.tcpi_sacked;  // queue length > backlog
            if (!full)
                ::usleep(1000);  // waiting for the kernel's bookkeeping, outside the runtime
        }
        REQUIRE(full);
    }
    ~FullBacklogListener() {
        ::close(filler_fd_);
        ::close(listen_fd_);
    }
    std::uint16_t port() const noexcept { return port_; }

private:
    int listen_fd_ = -1;
    int filler_fd_ = -1;
    std::uint16_t port_ = 0;
};

} // namespace

// --- addresses ------------------------------------------------------------------

TEST_CASE("Address::parse accepts numeric hosts with ports and prints them back") {
    struct Case {
        const char* text;
        const char* printed;
        std::uint16_t port;
    };
    const std::array<Case, 9> cases{{
        {"127.0.0.1:80", "127.0.0.1:80", 80},
        {"127.0.0.1:0", "127.0.0.1:0", 0},
        {"127.0.0.1:65535", "127.0.0.1:65535", 65535},
        {"10.1.2.3:8080", "10.1.2.3:8080", 8080},
        {"localhost:6379", "127.0.0.1:6379", 6379},
        {":80", "0.0.0.0:80", 80},
        {"[::1]:80", "[::1]:80", 80},
        {"[::]:443", "[::]:443", 443},
        {"[::ffff:127.0.0.1]:9", "[::ffff:127.0.0.1]:9", 9},
    }};
    for (const Case& c : cases) {
        INFO("parsing " << c.text);
        Result<Address> a = Address::parse(c.text);
        REQUIRE(a.ok());
        CHECK(a->to_string() == c.printed);
        CHECK(a->port() == c.port);
        CHECK_FALSE(a->empty());
    }
    CHECK(Address::parse("127.0.0.1:80")->family() == AF_INET);
    CHECK(Address::parse("[::1]:80")->family() == AF_INET6);
    CHECK(*Address::parse("localhost:80") == Address::loopback(80));
    CHECK(*Address::parse("127.0.0.1:80") == Address::loopback(80));
    CHECK_FALSE(*Address::parse("127.0.0.1:81") == Address::loopback(80));
}

TEST_CASE("Address::parse rejects strings that are not a numeric host and port") {
    const std::array<const char*, 20> bad{
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "127.0.0.1:99999999999",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:80x",
        "127.0.0.1: 80",
        " 127.0.0.1:80",
        "127.0.0.256:80",
        "1.2.3:80",
        "example.com:80",
        "::1:80",
        "[::1]",
        "[::1:80",
        "[]:80",
        "[127.0.0.1]:80",
        "[::1]x:80",
        ":",
    };
    for (const char* text : bad) {
        INFO("parsing '" << text << "'");
        Result<Address> a = Address::parse(text);
        REQUIRE_FALSE(a.ok());
        CHECK(a.code() == Errc::invalid_argument);
    }
}

TEST_CASE("an empty Address says so") {
    Address a;
    CHECK(a.empty());
    CHECK(a.port() == 0);
    CHECK(a.to_string() == "(none)");
    CHECK_FALSE(Address::loopback(1).empty());
}

// --- listen and connect ----------------------------------------------------------

TEST_CASE("listening on port 0 reports the port the system bound") {
    run_main_task([&] {
        Listener l = must(listen(Address::loopback(0)), "listen");
        REQUIRE(l.port() != 0);
        CHECK(l.local_address() == Address::loopback(l.port()));
        CHECK(l.id() != 0);
        // The reported port is the one that accepts connections.
        Connection c = must(connect(Address::loopback(l.port()), generous), "connect");
        Connection s = must(l.accept(generous), "accept");
        CHECK(s.is_open());
    });
}

TEST_CASE("a port can be listened on again right after its listener and connections closed") {
    run_main_task([&] {
        std::uint16_t port = 0;
        {
            LoopbackPair p = connect_pair();
            port = p.listener.port();
            // The server closes first, so its side of the connection lingers in
            // TIME_WAIT on the port: without SO_REUSEADDR the next bind would fail.
            must(p.server.write("bye"), "write");
            p.server.close();
            CHECK(must(p.client.read_exact(3, generous), "read") == "bye");
            CHECK(outcome(p.client.read_some(16, generous)) == Errc::eof);
            p.client.close();
            p.listener.close();
        }
        Listener again = must(listen(Address::loopback(port)), "listen again on the same port");
        CHECK(again.port() == port);
        Connection c = must(connect(Address::loopback(port), generous), "connect again");
        Connection s = must(again.accept(generous), "accept again");
        must(c.write("hi"), "write");
        CHECK(must(s.read_exact(2, generous), "read") == "hi");
    });
}

TEST_CASE("listening on a port another listener holds fails with address_in_use") {
    run_main_task([&] {
        Listener first = must(listen(Address::loopback(0)), "listen");
        Result<Listener> second = listen(Address::loopback(first.port()));
        REQUIRE(outcome(second) == Errc::address_in_use);
        CHECK(second.error().sys_errno == EADDRINUSE);
        // The first listener is unharmed.
        Connection c = must(connect(Address::loopback(first.port()), generous), "connect");
        CHECK(first.accept(generous).ok());
    });
}

TEST_CASE("connecting to a port nobody listens on fails with refused") {
    run_main_task([&] {
        std::uint16_t port = 0;
        {
            Listener l = must(listen(Address::loopback(0)), "listen");
            port = l.port();
        }
        Result<Connection> c = connect(Address::loopback(port), generous);
        REQUIRE(outcome(c) == Errc::refused);
        CHECK(c.error().sys_errno == ECONNREFUSED);
    });
}

TEST_CASE("connect with a deadline already passed fails with timed_out") {
    run_main_task([&] {
        Listener l = must(listen(Address::loopback(0)), "listen");
        Result<Connection> c = connect(Address::loopback(l.port()), Deadline(now()));
        CHECK(outcome(c) == Errc::timed_out);
    });
}

TEST_CASE("connect to a listener whose backlog is full gives up at its deadline") {
    FullBacklogListener full;
    run_main_task([&] {
        const Instant start = now();
        Result<Connection> c = connect(Address::loopback(full.port()), 100ms);
        CHECK(outcome(c) == Errc::timed_out);
        CHECK(now() - start >= 100ms);
    });
}

// --- reads ----------------------------------------------------------------------

TEST_CASE("read_some returns at most the bytes asked for and leaves the rest buffered") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        must(p.client.write("hello world"), "write");
        REQUIRE(eventually([&] { return p.server.buffered() == 11; }));
        std::array<char, 4> buf{};
        CHECK(must(p.server.read_some(std::span<char>(buf), generous), "read") == 4);
        CHECK(std::string_view(buf.data(), 4) == "hell");
        CHECK(p.server.buffered() == 7);
        CHECK(must(p.server.read_some(5, generous), "read") == "o wor");
        CHECK(must(p.server.read_some(100, generous), "read") == "ld");
        CHECK(p.server.buffered() == 0);
        // An empty buffer asks for nothing and gets nothing, without waiting.
        CHECK(must(p.server.read_some(std::span<char>(), Deadline(now())), "empty read") == 0);
    });
}

TEST_CASE("read_exact waits for bytes a peer writes in pieces with pauses between") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        std::size_t consumed = 0;      // bytes the reader took out of the server's buffer
        std::size_t seen_partial = 0;  // pieces the server held before it had them all
        auto writer = spawn("writer", [&] {
            const std::array<std::string_view, 4> pieces{"he", "llo ", "wor", "ld"};
            std::size_t sent = 0;
            for (std::string_view piece : pieces) {
                CHECK(p.client.write(piece).ok());
                sent += piece.size();
                // The next piece goes only once this one reached the server.
                if (!eventually([&] { return consumed + p.server.buffered() >= sent; })) {
                    FAIL_CHECK("piece ending at byte " << sent << " never reached the server");
                    return;
                }
                if (consumed == 0 && sent < 11)
                    ++seen_partial;
            }
        });
        std::string got = must(p.server.read_exact(11, generous), "read_exact");
        consumed += got.size();
        CHECK(got == "hello world");
        writer.join().value();
        CHECK(seen_partial == 3);
    });
}

TEST_CASE("read_until finds a delimiter split across chunks") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        std::size_t consumed = 0;
        auto writer = spawn("writer", [&] {
            const std::array<std::string_view, 5> pieces{"GET / HTTP/1.1\r", "\nHost: x\r\n\r", "\n", "xaba", "bab"};
            std::size_t sent = 0;
            for (std::string_view piece : pieces) {
                CHECK(p.client.write(piece).ok());
                sent += piece.size();
                if (!eventually([&] { return consumed + p.server.buffered() >= sent; })) {
                    FAIL_CHECK("piece ending at byte " << sent << " never reached the server");
                    return;
                }
            }
        });
        auto line = [&](std::string_view delimiter) {
            std::string s = must(p.server.read_until(delimiter, 100, generous), "read_until");
            consumed += s.size();
            return s;
        };
        CHECK(line("\r\n") == "GET / HTTP/1.1\r\n");
        CHECK(line("\r\n\r\n") == "Host: x\r\n\r\n");
        CHECK(line("abab") == "xabab");
        writer.join().value();
        CHECK(must(p.server.read_some(100, generous), "rest") == "ab");
    });
}

TEST_CASE("read_until fails with limit when max_bytes come without the delimiter, and they stay buffered") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        // Fewer than max_bytes without a delimiter: read_until keeps waiting.
        must(p.client.write("01234"), "write");
        REQUIRE(eventually([&] { return p.server.buffered() == 5; }));
        CHECK(outcome(p.server.read_until("\n", 8, Deadline(now()))) == Errc::timed_out);
        CHECK(p.server.buffered() == 5);
        // The rest comes while it waits: max_bytes are there and no delimiter.
        auto writer = spawn("writer", [&] { must(p.client.write("56789"), "write"); });
        CHECK(outcome(p.server.read_until("\n", 8, generous)) == Errc::limit);
        writer.join().value();
        REQUIRE(eventually([&] { return p.server.buffered() == 10; }));
        CHECK(p.server.buffered() == 10);
        // A delimiter beyond max_bytes is still over the limit.
        must(p.client.write("\n"), "write");
        REQUIRE(eventually([&] { return p.server.buffered() == 11; }));
        CHECK(outcome(p.server.read_until("\n", 8, generous)) == Errc::limit);
        // With room for it, the same bytes are one line.
        CHECK(must(p.server.read_until("\n", 11, generous), "line") == "0123456789\n");
    });
}

TEST_CASE("read_until returns a line of exactly max_bytes and fails one byte short of it") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        must(p.client.write("abcdefg\nrest"), "write");
        REQUIRE(eventually([&] { return p.server.buffered() == 12; }));
        CHECK(outcome(p.server.read_until("\n", 7, generous)) == Errc::limit);
        CHECK(must(p.server.read_until("\n", 8, generous), "line") == "abcdefg\n");
        CHECK(p.server.buffered() == 4);
    });
}

TEST_CASE("the peer's shutdown gives eof after its bytes, and the other direction still works") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        must(p.client.write("ping"), "write");
        p.client.shutdown();
        CHECK(p.client.is_open());
        CHECK(must(p.server.read_exact(4, generous), "read") == "ping");
        CHECK(outcome(p.server.read_some(16, generous)) == Errc::eof);
        // Half-closed: the server still talks to the client.
        must(p.server.write("pong"), "write back");
        p.server.close();
        CHECK(must(p.client.read_exact(4, generous), "read back") == "pong");
        CHECK(outcome(p.client.read_some(16, generous)) == Errc::eof);
    });
}

TEST_CASE("bytes buffered before eof are read before eof is reported") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        must(p.client.write("abc"), "write");
        p.client.shutdown();
        // read_exact asks for more than will ever come: eof, and the 3 bytes stay.
        CHECK(outcome(p.server.read_exact(4, generous)) == Errc::eof);
        CHECK(p.server.buffered() == 3);
        CHECK(outcome(p.server.read_until("\n", 100, generous)) == Errc::eof);
        CHECK(p.server.buffered() == 3);
        CHECK(must(p.server.read_some(2, generous), "read") == "ab");
        CHECK(must(p.server.read_some(100, generous), "read") == "c");
        // eof is sticky.
        CHECK(outcome(p.server.read_some(100, generous)) == Errc::eof);
        CHECK(outcome(p.server.read_exact(1, generous)) == Errc::eof);
    });
}

TEST_CASE("a read times out when nothing comes, and bytes that come later go to the next read") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        CHECK(outcome(p.server.read_some(16, 20ms)) == Errc::timed_out);
        CHECK(outcome(p.server.read_some(16, Deadline(now()))) == Errc::timed_out);
        must(p.client.write("late"), "write");
        CHECK(must(p.server.read_some(16, generous), "read after a timeout") == "late");

        // A read_exact that times out half-way keeps the half it had.
        must(p.client.write("ab"), "write");
        REQUIRE(eventually([&] { return p.server.buffered() == 2; }));
        CHECK(outcome(p.server.read_exact(4, 20ms)) == Errc::timed_out);
        CHECK(p.server.buffered() == 2);
        must(p.client.write("cd"), "write");
        CHECK(must(p.server.read_exact(4, generous), "read_exact after a timeout") == "abcd");

        // So does a read_until.
        must(p.client.write("no newline yet"), "write");
        REQUIRE(eventually([&] { return p.server.buffered() == 14; }));
        CHECK(outcome(p.server.read_until("\n", 100, 20ms)) == Errc::timed_out);
        must(p.client.write("\n"), "write");
        CHECK(must(p.server.read_until("\n", 100, generous), "read_until after a timeout") == "no newline yet\n");
    });
}

TEST_CASE("a read with buffered bytes returns them even when its deadline has passed") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        must(p.client.write("ready"), "write");
        REQUIRE(eventually([&] { return p.server.buffered() == 5; }));
        CHECK(must(p.server.read_exact(5, Deadline(now())), "read") == "ready");
    });
}

TEST_CASE("read_exact larger than the input buffer limit gets all its bytes") {
    // The loop stops harvesting a connection at limits::input_buffer_bytes_max;
    // a read that needs more than that must still complete.
    const std::size_t n = limits::input_buffer_bytes_max + limits::input_buffer_bytes_max / 2;
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        auto writer = spawn("writer", [&] { return p.client.write(pattern(0, n), generous); });
        Result<std::string> got = p.server.read_exact(n, 10s);
        const Errc result = outcome(got);
        const std::size_t mismatch = got.ok() ? pattern_mismatch(*got, 0) : 0;
        p.server.close();
        (void)writer.join();
        CHECK(result == Errc{});
        CHECK(mismatch == std::string_view::npos);
    });
}

TEST_CASE("read_until with max_bytes above the input buffer limit finds a late delimiter") {
    const std::size_t n = limits::input_buffer_bytes_max + limits::input_buffer_bytes_max / 2;
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        auto writer = spawn("writer", [&] { return p.client.write(std::string(n, 'x') + "\n", generous); });
        Result<std::string> got = p.server.read_until("\n", 2 * n, 10s);
        const Errc result = outcome(got);
        const std::size_t length = got.ok() ? got->size() : 0;
        p.server.close();
        (void)writer.join();
        CHECK(result == Errc{});
        CHECK(length == n + 1);
    });
}

// --- cancellation and close --------------------------------------------------------

TEST_CASE("a task blocked in a read is cancelled with Errc::cancelled, and the connection still works") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        bool blocked = false;
        auto reader = spawn("reader", [&] {
            blocked = true;
            return task_outcome(p.server.read_some(16, generous));
        });
        auto exact_reader = spawn("exact reader", [&] { return task_outcome(p.server.read_exact(16, generous)); });
        auto line_reader = spawn("line reader", [&] { return task_outcome(p.server.read_until("\n", 16, generous)); });
        yield();
        REQUIRE(blocked);
        REQUIRE_FALSE(reader.done());
        reader.cancel();
        exact_reader.cancel();
        line_reader.cancel();
        CHECK(reader.join().value().code == Errc::cancelled);
        CHECK(exact_reader.join().value().code == Errc::cancelled);
        CHECK(line_reader.join().value().code == Errc::cancelled);
        must(p.client.write("still here"), "write");
        CHECK(must(p.server.read_exact(10, generous), "read") == "still here");
    });
}

TEST_CASE("a task cancelled before it reads gets Errc::cancelled without blocking") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        auto reader = spawn("reader", [&] { return task_outcome(p.server.read_some(16)); });
        reader.cancel();
        CHECK(reader.join().value().code == Errc::cancelled);
    });
}

TEST_CASE("a task blocked in accept is cancelled with Errc::cancelled") {
    run_main_task([&] {
        Listener l = must(listen(Address::loopback(0)), "listen");
        auto acceptor = spawn("acceptor", [&] { return task_outcome(l.accept(generous)); });
        yield();
        REQUIRE_FALSE(acceptor.done());
        acceptor.cancel();
        CHECK(acceptor.join().value().code == Errc::cancelled);
        // The listener still accepts.
        Connection c = must(connect(Address::loopback(l.port()), generous), "connect");
        CHECK(l.accept(generous).ok());
    });
}

TEST_CASE("a task blocked in connect is cancelled with Errc::cancelled") {
    run_main_task([&] {
        Listener l = must(listen(Address::loopback(0)), "listen");
        bool started = false;
        // A connect always waits for the loop to report it, so right after the
        // yield the connector is parked in connect().
        auto connector = spawn("connector", [&] {
            started = true;
            return task_outcome(connect(Address::loopback(l.port()), generous));
        });
        yield();
        REQUIRE(started);
        REQUIRE_FALSE(connector.done());
        connector.cancel();
        CHECK(connector.join().value().code == Errc::cancelled);
    });
}

TEST_CASE("a task blocked in connect to a full backlog is cancelled with Errc::cancelled") {
    FullBacklogListener full;
    run_main_task([&] {
        auto connector = spawn("connector", [&] { return task_outcome(connect(Address::loopback(full.port()), generous)); });
        // Let the loop poll a few times: the connect stays in progress.
        must(sleep_for(20ms), "sleep");
        REQUIRE_FALSE(connector.done());
        connector.cancel();
        CHECK(connector.join().value().code == Errc::cancelled);
    });
}

TEST_CASE("closing a connection wakes its blocked reader with Errc::closed") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        auto reader = spawn("reader", [&] { return task_outcome(p.server.read_some(16, generous)); });
        yield();
        REQUIRE_FALSE(reader.done());
        p.server.close();
        CHECK(reader.join().value().code == Errc::closed);
        CHECK_FALSE(p.server.is_open());
        CHECK(outcome(p.server.read_some(16, generous)) == Errc::closed);
        CHECK(outcome(p.server.write("x")) == Errc::closed);
        // The peer sees the close as eof.
        CHECK(outcome(p.client.read_some(16, generous)) == Errc::eof);
    });
}

TEST_CASE("Listener::close wakes a blocked accept with Errc::closed") {
    run_main_task([&] {
        Listener l = must(listen(Address::loopback(0)), "listen");
        const std::uint16_t port = l.port();
        auto acceptor = spawn("acceptor", [&] { return task_outcome(l.accept(generous)); });
        yield();
        REQUIRE_FALSE(acceptor.done());
        l.close();
        CHECK(acceptor.join().value().code == Errc::closed);
        CHECK(outcome(l.accept(generous)) == Errc::closed);
        // The port is free again.
        CHECK(outcome(connect(Address::loopback(port), generous)) == Errc::refused);
    });
}

TEST_CASE("accept with a deadline times out when nobody connects") {
    run_main_task([&] {
        Listener l = must(listen(Address::loopback(0)), "listen");
        CHECK(outcome(l.accept(10ms)) == Errc::timed_out);
        CHECK(outcome(l.accept(Deadline(now()))) == Errc::timed_out);
    });
}

// --- writes ---------------------------------------------------------------------

TEST_CASE("a write after shutdown fails with broken_pipe") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        p.client.shutdown();
        CHECK(outcome(p.client.write("x")) == Errc::broken_pipe);
        CHECK(outcome(p.server.read_some(16, generous)) == Errc::eof);
    });
}

TEST_CASE("closing a connection with pending output still delivers all of it before eof") {
    run_main_task([&] {
        Errc end{};
        LoopbackPair p = connect_pair();
        // Below the high-water mark the write only buffers: nothing was sent when
        // close() runs, so all of it is pending.
        const std::size_t n = limits::output_high_water_bytes;
        must(p.server.write(pattern(0, n)), "write");
        p.server.close();
        std::string got;
        for (int i = 0; i < 100'000 && got.size() <= n; ++i) {
            Result<std::string> r = p.client.read_some(64 * KiB, generous);
            if (!r.ok()) {
                end = r.code();
                break;
            }
            got += *r;
        }
        CHECK(got.size() == limits::output_high_water_bytes);
        CHECK(pattern_mismatch(got, 0) == std::string_view::npos);
        CHECK(end == Errc::eof);
    });
}

TEST_CASE("dropping a connection after a large write to a slow reader still delivers everything") {
    const std::size_t n = 6 * MiB;
    run_main_task([&] {
        std::size_t received = 0;
        std::size_t mismatch = 0;
        Errc end{};
        LoopbackPair p = connect_pair();
        auto reader = spawn("slow reader", [&] {
            std::string got;
            for (int i = 0; i < 100'000 && got.size() <= n; ++i) {
                Result<std::string> r = p.client.read_some(64 * KiB, generous);
                if (!r.ok()) {
                    end = r.code();
                    break;
                }
                got += *r;
                if (i % 4 == 0)
                    must(sleep_for(1ms), "sleep");
            }
            received = got.size();
            mismatch = pattern_mismatch(got, 0);
        });
        {
            Connection server = std::move(p.server);
            must(server.write(pattern(0, 5 * MiB), generous), "write 5 MiB");
            must(server.write(pattern(5 * MiB, 1 * MiB), generous), "write 1 MiB");
            server.shutdown();
        }  // dropped with output still pending
        reader.join().value();
        CHECK(received == n);
        CHECK(mismatch == std::string_view::npos);
        CHECK(end == Errc::eof);
    });
}

TEST_CASE("closing a connection wakes a writer blocked past the high-water mark with Errc::closed") {
    run_main_task([&] {
        Errc write_end{};
        std::size_t written = 0;
        LoopbackPair p = connect_pair();  // the client never reads
        auto writer = spawn("writer", [&] {
            const std::string chunk(1 * MiB, 'w');
            for (int i = 0; i < 256; ++i) {  // far more than the kernel holds for a peer that does not read
                Result<void> w = p.server.write(chunk, generous);
                if (!w.ok()) {
                    write_end = w.code();
                    return;
                }
                written += chunk.size();
            }
        });
        // The writer gives up control only inside a blocked write.
        must(sleep_for(10ms), "sleep");
        REQUIRE_FALSE(writer.done());
        p.server.close();
        writer.join().value();
        INFO("written before close: " << written);
        CHECK(write_end == Errc::closed);
        CHECK(written < 256 * MiB);
    });
}

TEST_CASE("closing a listener ends the connections it accepted that nobody took") {
    run_main_task([&] {
        Listener l = must(listen(Address::loopback(0)), "listen");
        Connection c = must(connect(Address::loopback(l.port()), generous), "connect");
        must(sleep_for(10ms), "sleep");  // most likely the loop accepted it meanwhile; either way works
        l.close();
        const Errc client_end = outcome(c.read_some(16, generous));
        CHECK((client_end == Errc::eof || client_end == Errc::reset));
    });
}

TEST_CASE("moving a connection onto another closes the one it replaces") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        LoopbackPair q = connect_pair();
        const std::uint64_t moved_id = q.server.id();
        p.server = std::move(q.server);
        CHECK_FALSE(q.server);
        CHECK(p.server.id() == moved_id);
        CHECK(outcome(p.client.read_some(16, generous)) == Errc::eof);
        must(q.client.write("x"), "write");
        CHECK(must(p.server.read_exact(1, generous), "read") == "x");
        // A moved-from listener is empty; moving one onto another closes the old one.
        const std::uint16_t old_port = p.listener.port();
        p.listener = std::move(q.listener);
        CHECK_FALSE(q.listener);
        CHECK(outcome(connect(Address::loopback(old_port), generous)) == Errc::refused);
    });
}

// --- addresses of connections ----------------------------------------------------------

TEST_CASE("both ends of a connection agree on their local and peer addresses") {
    run_main_task([&] {
        LoopbackPair p = connect_pair();
        const Address listen_at = p.listener.local_address();
        CHECK(p.client.peer_address() == listen_at);
        CHECK(p.server.local_address() == listen_at);
        CHECK(p.client.local_address() == p.server.peer_address());
        CHECK(p.client.local_address().port() != 0);
        CHECK(p.client.local_address().port() != listen_at.port());
        CHECK(p.client.local_address().to_string().rfind("127.0.0.1:", 0) == 0);
        CHECK(p.server.peer_address().family() == AF_INET);
        CHECK(p.client.id() != p.server.id());
        CHECK(p.client.id() != 0);
        CHECK(p.server.id() != 0);
    });
}

TEST_CASE("an empty Connection is not open and has no addresses") {
    Connection c;
    CHECK_FALSE(c);
    CHECK_FALSE(c.is_open());
    CHECK(c.local_address().empty());
    CHECK(c.peer_address().empty());
    CHECK(c.buffered() == 0);
    CHECK(c.id() == 0);
}
