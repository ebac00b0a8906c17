// Writes small two-node traces for `reprise cluster` tests: each scenario is a folder holding
// a.trace and b.trace, built with the real writer's pieces (tests/support/trace_builder.hpp).
//
// Node a connects from 10.0.0.1:40000 to node b's 10.0.0.2:7000 and writes "hello" then
// "world!" (two writes); b reads them and answers "+OK\r\n", which a reads. b also serves a
// client that was not recorded (10.0.0.9:50000). Scenarios:
//   consistent  as above
//   mismatch    b reads "hellpworld!" (one byte differs in a's first write)
//   extra       b reads "hello" "world!" and then "??" that a never wrote
//   unread      b's trace ends after reading "hello" (its End record: a clean exit)
//   nat         a sees b as 192.168.0.2:7000 (pair with --map 192.168.0.2:7000=10.0.0.2:7000)
//   skew        b's wall clock is 5 s ahead of a's (message delays give its offset)
//   restart     b runs twice: its first run reads "hello", answers (a reads "+LATE") and is killed
//               before that write is recorded (no End record); its second run (a later trace of
//               the same node) accepts a's second connection
//   secret      a sends AUTH hunter2 then PING (RESP); b's trace holds the first read redacted
//               (the password masked, a 16-byte trailer: issue 16's format), the second as is
//   auth        an authenticated reprise-raft link: b (accepting) sends its challenge and proof,
//               a (connecting) its answer, then a RequestVote followed by its 32-byte tag
//
// Usage: make_cluster_traces DIR
#include "../support/trace_builder.hpp"

#include "message.hpp"  // examples/raft: real peer frames for the authenticated-link scenario

#include <reprise/io/address.hpp>

#include <filesystem>
#include <fstream>
#include <string>

using namespace reprise;
using reprise::test::TraceBuilder;

namespace {

constexpr std::int64_t second = 1'000'000'000;
constexpr std::int64_t ms = 1'000'000;
constexpr std::int64_t wall0 = 1'700'000'000 * second;

trace::Header header(const char* node, std::int64_t wall_start) {
    return trace::Header{.node = node,
                         .program = "cluster-scenario",
                         .argv = {"cluster-scenario"},
                         .executable = "/usr/bin/cluster-scenario",
                         .working_directory = "/tmp",
                         .seed = 1,
                         .start_mono_ns = 100 * second,
                         .start_wall_ns = wall_start,
                         .runtime_version = "test",
                         .build_id = ""};
}

Address addr(const char* text) { return *Address::parse(text); }

trace::Output write(std::uint64_t handle, std::string_view bytes) {
    return trace::Output{.output = OutputKind::conn_write, .handle = handle, .length = bytes.size(),
                         .digest = trace::digest64(bytes), .bytes = {}};
}

trace::Wake read(std::uint64_t handle, std::string_view bytes) {
    return trace::Wake{.wake = WakeKind::bytes_read, .handle = handle, .value = 0, .data = bytes};
}

// A tick at `at` ns after the trace's start (mono and wall move together, plus skew on the wall).
trace::Tick tick(const trace::Header& h, std::int64_t at) {
    return trace::Tick{.mono_ns = h.start_mono_ns + at, .wall_ns = h.start_wall_ns + at};
}

void save(TraceBuilder& b, const std::filesystem::path& path, bool end) {
    if (end)
        b.put(trace::End{.exit_code = 0});
    b.seal(false);
    std::ofstream(path, std::ios::binary) << b.file();
}

struct Scenario {
    std::string b_first = "hello";
    std::string b_second = "world!";
    std::string b_extra;
    bool b_stops_early = false;
    const char* a_sees_b = "10.0.0.2:7000";
    std::int64_t b_skew = 0;
};

void write_scenario(const std::filesystem::path& dir, const Scenario& s) {
    std::filesystem::create_directories(dir);
    TraceBuilder a(header("a", wall0), nullptr);
    const trace::Header& ha = a.header();
    a.put(tick(ha, 1 * ms));
    a.put(trace::Connected{.connection = 5, .error = 0, .peer = addr(s.a_sees_b), .local = addr("10.0.0.1:40000")});
    a.put(write(5, "hello"));
    a.put(tick(ha, 3 * ms));
    a.put(write(5, "world!"));
    a.put(tick(ha, 6 * ms));
    if (!s.b_stops_early)  // b answers only when it read everything
        a.put(read(5, "+OK\r\n"));
    a.put(trace::Annotation{.name = "got_reply", .count = 0});
    save(a, dir / "a.trace", true);

    TraceBuilder b(header("b", wall0 + s.b_skew), nullptr);
    const trace::Header& hb = b.header();
    b.put(tick(hb, 0));
    b.put(trace::Accepted{.listener = 1, .connection = 7, .peer = addr("10.0.0.9:50000"), .local = addr("10.0.0.2:7000")});
    b.put(read(7, "*1\r\n$4\r\nPING\r\n"));
    b.put(write(7, "+PONG\r\n"));
    b.put(tick(hb, 2 * ms));
    b.put(trace::Accepted{.listener = 1, .connection = 9, .peer = addr("10.0.0.1:40000"), .local = addr("10.0.0.2:7000")});
    b.put(read(9, s.b_first));
    if (s.b_stops_early) {
        save(b, dir / "b.trace", true);
        return;
    }
    b.put(tick(hb, 4 * ms));
    b.put(read(9, s.b_second));
    if (!s.b_extra.empty())
        b.put(read(9, s.b_extra));
    b.put(write(9, "+OK\r\n"));
    save(b, dir / "b.trace", true);
}

// b killed after "hello", then started again: a reconnects and sends "world!" to the new run.
void write_restart(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    TraceBuilder a(header("a", wall0), nullptr);
    const trace::Header& ha = a.header();
    a.put(tick(ha, 1 * ms));
    a.put(trace::Connected{.connection = 5, .error = 0, .peer = addr("10.0.0.2:7000"), .local = addr("10.0.0.1:40000")});
    a.put(write(5, "hello"));
    a.put(tick(ha, 30 * ms));
    a.put(read(5, "+LATE\r\n"));  // b's first run wrote it, but its trace lost that record to the kill
    a.put(tick(ha, 50 * ms));
    a.put(trace::Wake{.wake = WakeKind::eof, .handle = 5, .value = 0, .data = {}});
    a.put(trace::Connected{.connection = 6, .error = 0, .peer = addr("10.0.0.2:7000"), .local = addr("10.0.0.1:40002")});
    a.put(write(6, "world!"));
    a.put(tick(ha, 60 * ms));
    a.put(read(6, "+OK\r\n"));
    save(a, dir / "a.trace", true);

    TraceBuilder b1(header("b", wall0), nullptr);
    b1.put(tick(b1.header(), 2 * ms));
    b1.put(trace::Accepted{.listener = 1, .connection = 9, .peer = addr("10.0.0.1:40000"), .local = addr("10.0.0.2:7000")});
    b1.put(read(9, "hello"));
    save(b1, dir / "b.1.trace", false);  // killed: no End record

    TraceBuilder b2(header("b", wall0 + 40 * ms), nullptr);
    b2.put(tick(b2.header(), 11 * ms));
    b2.put(trace::Accepted{.listener = 1, .connection = 3, .peer = addr("10.0.0.1:40002"), .local = addr("10.0.0.2:7000")});
    b2.put(read(3, "world!"));
    b2.put(write(3, "+OK\r\n"));
    save(b2, dir / "b.2.trace", true);
}

// a connects to b's peer port; the handshake of an authenticated link, then one tagged frame.
void write_auth(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    std::string challenge = "RPRSAUTH";
    challenge.append(32, '\x5a');
    const std::string proof(32, '\x11');
    const std::string answer(64, '\x2a');
    const std::string frame = raft::encode_message(raft::RequestVote{.term = 7, .candidate = 1, .last_log_index = 3,
                                                                      .last_log_term = 2});
    const std::string tagged = frame + std::string(32, '\x77');
    TraceBuilder a(header("a", wall0), nullptr);
    const trace::Header& ha = a.header();
    a.put(tick(ha, 1 * ms));
    a.put(trace::Connected{.connection = 5, .error = 0, .peer = addr("10.0.0.2:7001"), .local = addr("10.0.0.1:40000")});
    a.put(tick(ha, 3 * ms));
    a.put(read(5, challenge));
    a.put(write(5, answer));
    a.put(tick(ha, 5 * ms));
    a.put(read(5, proof));
    a.put(write(5, tagged));
    save(a, dir / "a.trace", true);

    TraceBuilder b(header("b", wall0), nullptr);
    const trace::Header& hb = b.header();
    b.put(tick(hb, 2 * ms));
    b.put(trace::Accepted{.listener = 1, .connection = 9, .peer = addr("10.0.0.1:40000"), .local = addr("10.0.0.2:7001")});
    b.put(write(9, challenge));
    b.put(tick(hb, 4 * ms));
    b.put(read(9, answer));
    b.put(write(9, proof));
    b.put(tick(hb, 6 * ms));
    b.put(read(9, tagged));
    save(b, dir / "b.trace", true);
}

// a's AUTH carries a password that b's trace holds masked (a read with a redaction trailer).
void write_secret(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    TraceBuilder a(header("a", wall0), nullptr);
    const trace::Header& ha = a.header();
    a.put(tick(ha, 1 * ms));
    a.put(trace::Connected{.connection = 5, .error = 0, .peer = addr("10.0.0.2:7000"), .local = addr("10.0.0.1:40000")});
    a.put(write(5, "*2\r\n$4\r\nAUTH\r\n$7\r\nhunter2\r\n"));
    a.put(write(5, "*1\r\n$4\r\nPING\r\n"));
    save(a, dir / "a.trace", true);

    // The span: offset 18, length 7, secret 0, offset 0 in it (little-endian u32s).
    std::string redacted = "*2\r\n$4\r\nAUTH\r\n$7\r\n*******\r\n";
    for (std::uint32_t v : {18u, 7u, 0u, 0u})
        for (int i = 0; i < 4; ++i)
            redacted.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    TraceBuilder b(header("b", wall0), nullptr);
    const trace::Header& hb = b.header();
    b.put(tick(hb, 2 * ms));
    b.put(trace::Accepted{.listener = 1, .connection = 9, .peer = addr("10.0.0.1:40000"), .local = addr("10.0.0.2:7000")});
    b.put(trace::Wake{.wake = WakeKind::bytes_read, .handle = 9, .value = static_cast<std::int64_t>(trace::redaction_bytes),
                      .data = redacted});
    b.put(read(9, "*1\r\n$4\r\nPING\r\n"));
    save(b, dir / "b.trace", true);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: make_cluster_traces DIR\n");
        return 2;
    }
    const std::filesystem::path dir = argv[1];
    Scenario s;
    write_scenario(dir / "consistent", s);
    s = {};
    s.b_first = "hellp";
    write_scenario(dir / "mismatch", s);
    s = {};
    s.b_extra = "??";
    write_scenario(dir / "extra", s);
    s = {};
    s.b_stops_early = true;
    write_scenario(dir / "unread", s);
    s = {};
    s.a_sees_b = "192.168.0.2:7000";
    write_scenario(dir / "nat", s);
    s = {};
    s.b_skew = 5 * second;
    write_scenario(dir / "skew", s);
    write_restart(dir / "restart");
    write_auth(dir / "auth");
    write_secret(dir / "secret");
    return 0;
}
