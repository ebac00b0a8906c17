// Stress tests of TCP on 127.0.0.1: many connections, backpressure, peer resets, timeouts racing data.
//
// Every scenario runs through run_main_task: live, then recorded, replayed in a child
// and compared. The peers of the reset and broken-pipe tests are raw sockets on plain
// threads (the world): the runtime sees their bytes only through its gate, so they
// replay; in the replay the peer does not run (start_world_peer), its bytes come from the trace.
// None runs live only: the one that diverged (a second write past the high-water mark)
// replays since a write blocks on output_pending, which changes only at recorded points.
#include "../support/reprise_test.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <thread>
#include <utility>
#include <vector>

using namespace reprise;
using namespace reprise::test;


namespace {

/// Makes room for `fds` descriptors (raising the soft limit up to the hard one).
bool ensure_descriptors(rlim_t fds) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return false;
    if (lim.rlim_cur >= fds)
        return true;
    if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < fds)
        return false;
    lim.rlim_cur = fds;
    return ::setrlimit(RLIMIT_NOFILE, &lim) == 0;
}

/// A blocking socket connected to 127.0.0.1:port, for a peer on a plain thread;
/// its receive timeout keeps a broken test from hanging. -1 on failure.
int raw_connect(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    timeval tv{30, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// Closes `fd` with SO_LINGER 0: the kernel sends RST instead of FIN.
void reset_close(int fd) {
    linger l{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}

/// Runs `peer` on a plain thread: a party outside the runtime (the world), whose bytes
/// reach the program only through the runtime's gate. A replay reads those bytes from
/// the trace and opens no socket, so there the peer does not run: nothing would listen
/// for it. The thread is not joinable then.
template <class F>
std::jthread start_world_peer(F&& peer) {
    if (Runtime::current()->replaying())
        return {};
    return std::jthread(std::forward<F>(peer));
}

void join_world_peer(std::jthread& peer) {
    if (peer.joinable())
        peer.join();
}

/// SIGPIPE's default action (it kills the process) while it lives; the old one after.
class DefaultSigpipe {
public:
    DefaultSigpipe() {
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        REQUIRE(::sigaction(SIGPIPE, &dfl, &old_) == 0);
    }
    ~DefaultSigpipe() { ::sigaction(SIGPIPE, &old_, nullptr); }
    DefaultSigpipe(const DefaultSigpipe&) = delete;
    DefaultSigpipe& operator=(const DefaultSigpipe&) = delete;

private:
    struct sigaction old_ {};
};

/// Receives until `n` bytes came, eof, an error or the receive timeout.
std::size_t raw_recv_at_least(int fd, std::size_t n) {
    std::vector<char> buf(64 * KiB);
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += static_cast<std::size_t>(r);
    }
    return got;
}

} // namespace

TEST_CASE("1,000 concurrent loopback connections each served by one task all echo correctly") {
    constexpr int connections = 1000;
    REQUIRE(ensure_descriptors(2 * connections + 256));
    const std::uint64_t seed = test_seed("1,000 connections");
    run_main_task([&] {
        int echoed_ok = 0;
        int served = 0;
        std::vector<std::string> failures;
        Listener l = must(listen(Address::loopback(0)), "listen");
        const Address at = l.local_address();

        auto server = spawn("acceptor", [&] {
            std::vector<Task<void>> handlers;
            for (int i = 0; i < connections; ++i) {
                Result<Connection> c = l.accept(generous);
                if (!c.ok()) {
                    failures.push_back("accept: " + c.error().message());
                    break;
                }
                handlers.push_back(spawn("echo", [&, conn = std::move(*c)]() mutable {
                    // Echo until the client's eof; every client sends less than 1 MiB.
                    for (int n = 0; n < 100'000; ++n) {
                        Result<std::string> in = conn.read_some(16 * KiB, generous);
                        if (!in.ok()) {
                            if (in.code() != Errc::eof)
                                failures.push_back("echo read: " + in.error().message());
                            break;
                        }
                        if (Result<void> w = conn.write(*in, generous); !w.ok()) {
                            failures.push_back("echo write: " + w.error().message());
                            break;
                        }
                    }
                    ++served;
                }));
            }
            for (Task<void>& h : handlers)
                h.join().value();
        });

        std::vector<Task<bool>> clients;
        for (int i = 0; i < connections; ++i) {
            // Each client sends its own number and a payload of its own length.
            const std::size_t bytes = 1 + random_below(8 * KiB);
            const std::uint64_t offset = random_below(1'000'000);
            clients.push_back(spawn("client", [&, i, bytes, offset]() -> bool {
                Result<Connection> c = connect(at, generous);
                if (!c.ok()) {
                    failures.push_back("connect: " + c.error().message());
                    return false;
                }
                const std::string message = std::to_string(i) + ":" + pattern(offset, bytes);
                if (!c->write(message, generous).ok())
                    return false;
                c->shutdown();
                std::string back;
                for (int n = 0; n < 100'000 && back.size() <= message.size(); ++n) {
                    Result<std::string> in = c->read_some(16 * KiB, generous);
                    if (!in.ok()) {
                        if (in.code() != Errc::eof)
                            failures.push_back("client read: " + in.error().message());
                        break;
                    }
                    back += *in;
                }
                return back == message;
            }));
        }
        for (Task<bool>& c : clients)
            echoed_ok += c.join().value() ? 1 : 0;
        server.join().value();
        INFO("seed " << seed << "; first failure: " << (failures.empty() ? std::string("none") : failures.front()));
        CHECK(failures.empty());
        CHECK(served == connections);
        CHECK(echoed_ok == connections);
    }, seeded(seed));
}

TEST_CASE("a write up to the high-water mark returns without blocking; one byte more blocks") {
    run_main_task([&] {
        std::size_t received = 0;
        LoopbackPair p = connect_pair();
        const std::size_t n = limits::output_high_water_bytes;
        bool other_ran = false;
        auto reader = spawn("reader", [&] {
            other_ran = true;
            std::string got = must(p.client.read_exact(n + 1, generous), "read");
            received = got.size();
        });
        must(p.server.write(std::string(n, 'x'), generous), "write up to the mark");
        CHECK_FALSE(other_ran);
        must(p.server.write("y", generous), "write past the mark");
        CHECK(other_ran);
        reader.join().value();
        CHECK(received == limits::output_high_water_bytes + 1);
    });
}

TEST_CASE("an 8 MiB write to a slow reader blocks past the high-water mark and arrives intact") {
    constexpr std::size_t total = 8 * MiB;
    run_main_task([&] {
        std::size_t received = 0;
        std::size_t mismatch_at = std::string_view::npos;
        Errc end{};
        LoopbackPair p = connect_pair();
        auto reader = spawn("slow reader", [&] {
            for (int i = 0; i < 1'000'000 && received <= total; ++i) {
                Result<std::string> in = p.client.read_some(16 * KiB, generous);
                if (!in.ok()) {
                    end = in.code();
                    return;
                }
                if (std::size_t bad = pattern_mismatch(*in, received);
                    bad != std::string_view::npos && mismatch_at == std::string_view::npos)
                    mismatch_at = received + bad;
                received += in->size();
                if (i % 16 == 0)
                    must(sleep_for(1ms), "sleep");
            }
        });
        CHECK(outcome(p.server.write(pattern(0, total), generous)) == Errc{});
        // The reader runs only while the writer is blocked: if write() had
        // returned at once, the reader would not have read a byte yet.
        CHECK(received > 0);
        p.server.close();
        reader.join().value();
        CHECK(received == total);
        CHECK(mismatch_at == std::string_view::npos);
        CHECK(end == Errc::eof);
    });
}

TEST_CASE("a peer that resets mid-write gives the writer reset or broken_pipe, never SIGPIPE") {
    // SIGPIPE's default action kills the process: a single one fails this test.
    DefaultSigpipe sigpipe;
    run_main_task([&] {
        Errc write_error{};
        std::size_t written = 0;
        std::atomic<std::size_t> peer_received{0};
        Listener l = must(listen(Address::loopback(0)), "listen");
        const std::uint16_t port = l.port();
        // The peer reads a little, then closes with SO_LINGER 0: the kernel sends RST.
        std::jthread peer = start_world_peer([port, &peer_received] {
            int fd = raw_connect(port);
            if (fd < 0)
                return;
            peer_received = raw_recv_at_least(fd, 256 * KiB);
            reset_close(fd);
        });
        Connection c = must(l.accept(generous), "accept");
        const std::string chunk = pattern(0, 256 * KiB);
        for (int i = 0; i < 4096; ++i) {  // at most 1 GiB
            Result<void> w = c.write(chunk, generous);
            if (!w.ok()) {
                write_error = w.code();
                break;
            }
            written += chunk.size();
        }
        const Errc later_write = outcome(c.write("more", generous));
        const Errc later_read = outcome(c.read_some(16, generous));
        const bool peer_ran = peer.joinable();
        join_world_peer(peer);
        INFO("written before the error: " << written << " bytes; the peer read " << peer_received.load());
        if (peer_ran)  // live and recording; a replay has no peer
            CHECK(peer_received.load() >= 256 * KiB);
        CHECK((write_error == Errc::reset || write_error == Errc::broken_pipe));
        // The error is sticky and ends both directions.
        CHECK(later_write == write_error);
        CHECK((later_read == Errc::reset || later_read == Errc::broken_pipe));
    });
}

TEST_CASE("writing on after the peer closed gives broken_pipe or reset, never SIGPIPE") {
    // Once the peer's FIN came, its RST (for bytes it will never read) makes the
    // kernel answer the next send with EPIPE, which raises SIGPIPE unless the
    // send says MSG_NOSIGNAL. SIGPIPE's default action kills the process.
    DefaultSigpipe sigpipe;
    run_main_task([&] {
        Errc write_error{};
        Listener l = must(listen(Address::loopback(0)), "listen");
        const std::uint16_t port = l.port();
        std::jthread peer = start_world_peer([port] {
            int fd = raw_connect(port);
            if (fd >= 0)
                ::close(fd);  // an ordinary close: FIN, nothing unread yet
        });
        Connection c = must(l.accept(generous), "accept");
        CHECK(outcome(c.read_some(16, generous)) == Errc::eof);
        join_world_peer(peer);
        const std::string chunk = pattern(0, 64 * KiB);
        for (int i = 0; i < 4096; ++i) {  // the first chunk draws the RST; a later send sees EPIPE
            Result<void> w = c.write(chunk, generous);
            if (!w.ok()) {
                write_error = w.code();
                break;
            }
            if (i % 4 == 3)
                must(sleep_for(1ms), "sleep");
        }
        CHECK((write_error == Errc::broken_pipe || write_error == Errc::reset));
    });
}

TEST_CASE("a peer that resets while a task reads gives the reader Errc::reset") {
    run_main_task([&] {
        Listener l = must(listen(Address::loopback(0)), "listen");
        const std::uint16_t port = l.port();
        std::jthread peer = start_world_peer([port] {
            int fd = raw_connect(port);
            if (fd < 0)
                return;
            raw_recv_at_least(fd, 2);  // "go": the server is about to read
            reset_close(fd);
        });
        Connection c = must(l.accept(generous), "accept");
        must(c.write("go"), "write");
        CHECK(outcome(c.read_some(16, generous)) == Errc::reset);
        join_world_peer(peer);
    });
}

TEST_CASE("reads with random deadlines racing a paced writer lose and reorder no bytes") {
    const std::uint64_t seed = test_seed("reads racing deadlines");
    run_main_task([&] {
        std::size_t sent = 0;
        std::size_t received = 0;
        std::size_t mismatch_at = std::string_view::npos;
        int timeouts = 0;
        Errc end{};
        LoopbackPair p = connect_pair();
        auto writer = spawn("writer", [&] {
            for (int i = 0; i < 300; ++i) {
                const std::size_t n = 1 + random_below(3000);
                must(p.client.write(pattern(sent, n), generous), "write");
                sent += n;
                switch (random_below(3)) {
                case 0: must(sleep_for(Duration(random_below(2'000'000))), "sleep"); break;
                case 1: yield(); break;
                default: break;
                }
            }
            p.client.shutdown();
        });
        for (int i = 0; i < 1'000'000; ++i) {
            // 0 ns: a deadline that has already passed when the read starts.
            const Deadline d = Duration(random_below(3) == 0 ? 0 : random_below(1'500'000));
            Result<std::string> in = random_below(2) == 0 ? p.server.read_some(1 + random_below(4096), d)
                                                          : p.server.read_exact(1 + random_below(64), d);
            if (!in.ok()) {
                if (in.code() == Errc::timed_out) {
                    ++timeouts;
                    continue;
                }
                if (in.code() == Errc::eof && p.server.buffered() > 0)
                    continue;  // a read_exact longer than the tail: read the tail with read_some
                end = in.code();
                break;
            }
            if (std::size_t bad = pattern_mismatch(*in, received);
                bad != std::string_view::npos && mismatch_at == std::string_view::npos)
                mismatch_at = received + bad;
            received += in->size();
        }
        writer.join().value();
        INFO("seed " << seed << ", " << timeouts << " reads timed out");
        CHECK(end == Errc::eof);
        CHECK(received == sent);
        CHECK(mismatch_at == std::string_view::npos);
    }, seeded(seed));
}

TEST_CASE("read_until finds every line whatever the chunking and pacing of the writer") {
    const std::uint64_t seed = test_seed("read_until chunking");
    run_main_task([&] {
        std::vector<std::string> sent_lines;
        std::vector<std::string> got_lines;
        Errc end{};
        LoopbackPair p = connect_pair();
        std::string stream;
        for (int i = 0; i < 400; ++i) {
            std::string line = pattern(random_below(1'000'000), random_below(200));
            // The pattern may hold the delimiter's bytes: replace them.
            for (char& ch : line)
                if (ch == '\r' || ch == '\n')
                    ch = '.';
            line += "\r\n";
            sent_lines.push_back(line);
            stream += line;
        }
        auto writer = spawn("writer", [&] {
            std::size_t at = 0;
            for (int i = 0; i < 100'000 && at < stream.size(); ++i) {
                const std::size_t n = std::min<std::size_t>(stream.size() - at, 1 + random_below(300));
                must(p.client.write(std::string_view(stream).substr(at, n), generous), "write");
                at += n;
                if (random_below(4) == 0)
                    must(sleep_for(Duration(random_below(500'000))), "sleep");
            }
            p.client.shutdown();
        });
        for (int i = 0; i < 1000; ++i) {
            Result<std::string> line = p.server.read_until("\r\n", 256, generous);
            if (!line.ok()) {
                end = line.code();
                break;
            }
            got_lines.push_back(std::move(*line));
        }
        writer.join().value();
        INFO("seed " << seed);
        CHECK(end == Errc::eof);
        CHECK(got_lines.size() == sent_lines.size());
        CHECK(got_lines == sent_lines);
    }, seeded(seed));
}
