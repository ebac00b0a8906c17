// Helpers of the kv tests: a server on an in-process runtime and a RESP client that reads whole replies.
#pragma once

#include "../support/reprise_test.hpp"

#include "kv_server.hpp"
#include "resp.hpp"
#include <reprise/runtime/reprise.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace reprise::test {

/// The end of the first complete RESP2 reply in `b` starting at `at`, or 0 when it is not all there.
inline std::size_t reply_end(std::string_view b, std::size_t at = 0) {
    if (at >= b.size())
        return 0;
    const std::size_t crlf = b.find("\r\n", at);
    if (crlf == std::string_view::npos)
        return 0;
    const std::size_t next = crlf + 2;
    const char type = b[at];
    if (type == '+' || type == '-' || type == ':')
        return next;
    long long n = 0;
    if (!resp::parse_integer(b.substr(at + 1, crlf - at - 1), n))
        return next;  // not RESP: hand the line back as it is
    if (n < 0)
        return next;
    if (type == '$')
        return b.size() >= next + static_cast<std::size_t>(n) + 2 ? next + static_cast<std::size_t>(n) + 2 : 0;
    std::size_t pos = next;
    for (long long i = 0; i < n; ++i) {
        pos = reply_end(b, pos);
        if (pos == 0)
            return 0;
    }
    return pos;
}

/// A client connection to the server under test, from a task of the same runtime.
class KvClient {
public:
    explicit KvClient(std::uint16_t port) : conn_(must(connect(Address::loopback(port), generous), "connect to kv")) {}

    /// Sends raw bytes.
    void send(std::string_view bytes) { must(conn_.write(bytes), "write to kv"); }
    /// The next whole reply as raw RESP text, or "<errc>" when the connection ends first.
    std::string reply() {
        for (;;) {
            if (std::size_t end = reply_end(buffer_); end != 0) {
                std::string r = buffer_.substr(0, end);
                buffer_.erase(0, end);
                return r;
            }
            auto more = conn_.read_some(64 * 1024, generous);
            if (!more.ok()) {
                // Appended, not "<" + std::string(...): g++ 12 at -O3 warns -Wrestrict on that (bug 105651).
                std::string r = "<";
                r += errc_name(more.code());
                r += '>';
                return r;
            }
            buffer_ += *more;
        }
    }
    /// Sends one command (as a RESP array) and returns its reply.
    std::string call(std::vector<std::string_view> args) {
        send(resp::encode_command(args));
        return reply();
    }
    Connection& connection() { return conn_; }

private:
    Connection conn_;
    std::string buffer_;
};

inline kv::Config test_config() {
    kv::Config config;
    config.port = 0;
    return config;
}

/// Runs a kv server on a fresh runtime, calls `body(server)` from the main task, then
/// stops the server gracefully and checks it ended with status 0.
template <class Body>
void with_kv_server(Body&& body, kv::Config config = test_config(), Options options = {}) {
    Runtime rt(std::move(options));
    int status = -1;
    const int rc = rt.run([&] {
        kv::Server server(config);
        must(server.listen(), "kv listen");
        auto serving = spawn("kv-server", [&] { return server.serve(); });
        body(server);
        serving.cancel();
        status = serving.join().value();
        return 0;
    });
    REQUIRE(rc == 0);
    CHECK(status == 0);
}

} // namespace reprise::test
