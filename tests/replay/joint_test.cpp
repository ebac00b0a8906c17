// Joint replay: several nodes' traces replayed in one process, in happens-before order even when their clocks disagree.
#include "../support/reprise_test.hpp"
#include "../support/trace_builder.hpp"

#include <reprise/runtime/main.hpp>

#include <fmt/core.h>

#include <string>
#include <vector>

using namespace reprise;
using namespace reprise::test;
using namespace std::chrono_literals;

namespace {

constexpr int messages = 4;

// What the two nodes did, in the order the process saw it (record and replay alike).
std::vector<std::string> order;
std::uint16_t server_port = 0;

int server_main() {
    Listener listener = listen(Address::loopback(0)).value();
    server_port = listener.port();
    Connection conn = listener.accept(10s).value();
    for (int i = 0; i < messages; ++i) {
        sleep_for(30ms).value();
        order.push_back(fmt::format("server wrote {}", i));
        conn.write(fmt::format("m{}\n", i)).value();
    }
    return 0;
}

int client_main() {
    Connection conn = connect(Address::loopback(server_port), 10s).value();
    for (int i = 0; i < messages; ++i) {
        const std::string line = conn.read_until("\n", 100, 10s).value();
        order.push_back(fmt::format("client read {}", line.substr(1, line.size() - 2)));
    }
    return 0;
}

const ProgramEntry both{
    .name = "joint-test",
    .main = [](MainContext& c) { return c.runtime.node_name() == "server" ? server_main() : client_main(); },
};

// Records the two nodes talking, live, into DIR/server.trace and DIR/client.trace.
void record_pair(const TempDir& dir) {
    auto world = make_live_world();
    Options a_options, b_options;
    a_options.node_name = "server";
    b_options.node_name = "client";
    a_options.program_name = b_options.program_name = both.name;
    a_options.live_world = b_options.live_world = world;
    a_options.record_path = dir / "server.trace";
    b_options.record_path = dir / "client.trace";
    Runtime a(a_options);
    Runtime b(b_options);
    start_entry(a, both, {"joint-test"});
    a.step(0);  // main runs up to accept: the port is known
    REQUIRE(server_port != 0);
    start_entry(b, both, {"joint-test"});
    bool a_done = false, b_done = false;
    for (int i = 0; i < 100'000 && !(a_done && b_done); ++i) {
        std::int64_t next = -1;
        for (Runtime* r : {&a, &b})
            if (!r->finished() && r->next_event_ns() >= 0 && (next < 0 || r->next_event_ns() < next))
                next = r->next_event_ns();
        if (!a_done)
            a_done = a.step(next);
        if (!b_done)
            b_done = b.step(next);
    }
    REQUIRE(a_done);
    REQUIRE(b_done);
    REQUIRE(a.result() == 0);
    REQUIRE(b.result() == 0);
}

// The trace at `from` again at `to`, its wall clock moved by `shift_ns` (a node whose clock
// was that far off).
void shift_wall_clock(const std::string& from, const std::string& to, std::int64_t shift_ns) {
    std::string error;
    auto reader = trace::Reader::open(from, &error);
    REQUIRE(reader.ok());
    trace::Header h = reader->header();
    h.start_wall_ns += shift_ns;
    TraceBuilder out(h, nullptr);
    trace::Record r;
    while (reader->next(r)) {
        if (auto* t = std::get_if<trace::Tick>(&r))
            t->wall_ns += shift_ns;
        out.put(r);
    }
    REQUIRE_FALSE(reader->error().has_value());
    out.seal(false);
    REQUIRE(spit(to, out.file()));
}

// Replays the traces jointly in a child; its order of events, one per line, then its stderr.
ChildResult joint_replay(const std::vector<std::string>& traces, std::vector<std::string> extra = {}) {
    return run_in_child([&] {
        std::vector<std::string> args{"joint-test"};
        for (const std::string& t : traces)
            args.push_back("--replay=" + t);
        for (std::string& e : extra)
            args.push_back(std::move(e));
        std::vector<char*> argv;
        for (std::string& a : args)
            argv.push_back(a.data());
        order.clear();
        const int code = run_main(static_cast<int>(argv.size()), argv.data(), both);
        for (const std::string& line : order)
            std::printf("%s\n", line.c_str());
        std::fflush(stdout);
        return code;
    });
}

// Every "client read i" comes after "server wrote i".
bool reads_after_writes(const std::string& out) {
    for (int i = 0; i < messages; ++i) {
        const auto w = out.find(fmt::format("server wrote {}\n", i));
        const auto r = out.find(fmt::format("client read {}\n", i));
        if (w == std::string::npos || r == std::string::npos || r < w)
            return false;
    }
    return true;
}

} // namespace

TEST_CASE("a joint replay replays every node as recorded, in one process, reads after their writes") {
    TempDir dir;
    record_pair(dir);
    ChildResult c = joint_replay({dir / "server.trace", dir / "client.trace"});
    INFO(c.describe());
    REQUIRE(c.exited_with(0));
    REQUIRE_THAT(c.err, Catch::Contains("joint replay of 2 nodes: server client"));
    REQUIRE_THAT(c.err, Catch::Contains("joint replay done: 2 nodes"));
    REQUIRE_THAT(c.err, !Catch::Contains("contradict"));
    REQUIRE_THAT(c.err, !Catch::Contains("none of these traces"));  // both ends are here
    REQUIRE(reads_after_writes(c.out));
}

TEST_CASE("a joint replay orders a read after its write when the reader's clock ran 10 s behind") {
    TempDir dir;
    record_pair(dir);
    // By wall clock alone, every tick of the client would now come before the server's.
    shift_wall_clock(dir / "client.trace", dir / "client-behind.trace", -10'000'000'000);
    ChildResult c = joint_replay({dir / "server.trace", dir / "client-behind.trace"});
    INFO(c.describe());
    REQUIRE(c.exited_with(0));
    REQUIRE_THAT(c.err, !Catch::Contains("contradict"));
    REQUIRE(reads_after_writes(c.out));
}

TEST_CASE("a joint replay replays a cut trace to its cut and says so") {
    TempDir dir;
    record_pair(dir);
    // The server's trace without its last records, as kill -9 leaves one: no end record.
    std::string error;
    auto reader = trace::Reader::open(dir / "server.trace", &error);
    REQUIRE(reader.ok());
    TraceBuilder cut(reader->header(), nullptr);
    std::vector<trace::RecordCopy> records;
    trace::Record r;
    while (reader->next(r))
        records.emplace_back(r);
    REQUIRE(records.size() > 10);
    for (std::size_t i = 0; i + 6 < records.size(); ++i)
        cut.put(records[i].get());
    cut.seal(false);
    REQUIRE(spit(dir / "server-cut.trace", cut.file()));
    ChildResult c = joint_replay({dir / "server-cut.trace", dir / "client.trace"});
    INFO(c.describe());
    REQUIRE(c.exited_with(0));
    REQUIRE_THAT(c.err, Catch::Contains("server (" + std::string(dir / "server-cut.trace") + "): "));
    REQUIRE_THAT(c.err, Catch::Contains("replayed to its cut (the trace has no end record)"));
    REQUIRE_THAT(c.err, Catch::Contains("client (" + std::string(dir / "client.trace") + "): "));
}

TEST_CASE("a joint replay goes on past a node whose trace holds no event at all (killed before its first chunk)") {
    TempDir dir;
    record_pair(dir);
    std::string error;
    auto header = trace::Reader::read_header(dir / "server.trace", &error);
    REQUIRE(header.ok());
    TraceBuilder empty(*header, nullptr);  // the header alone: no chunk was sealed
    REQUIRE(spit(dir / "server-empty.trace", empty.file()));
    ChildResult c = joint_replay({dir / "server-empty.trace", dir / "client.trace"});
    INFO(c.describe());
    REQUIRE(c.exited_with(0));
    REQUIRE_THAT(c.err, Catch::Contains("joint replay done: 2 nodes"));
    REQUIRE_THAT(c.err, Catch::Contains("server (" + std::string(dir / "server-empty.trace") + "): 0 events, replayed to its cut"));
    REQUIRE_THAT(c.err, Catch::Contains("client (" + std::string(dir / "client.trace") + "): "));
    // The server's connection is missing from its trace: the report lists the client's end as unpaired.
    REQUIRE_THAT(c.err, Catch::Contains("connections whose other end is in none of these traces (1;"));
    REQUIRE_THAT(c.err, Catch::Matches("(.|\\n)*\\n  client connection #[0-9]+ 127\\.0\\.0\\.1:[0-9]+ -> 127\\.0\\.0\\.1:[0-9]+\\n(.|\\n)*"));
}

TEST_CASE("--break-at=NODE:N stops the joint replay in that node; a node it does not know is refused") {
    TempDir dir;
    record_pair(dir);
    ChildResult c = joint_replay({dir / "server.trace", dir / "client.trace"}, {"--break-at=client:5"});
    INFO(c.describe());
    REQUIRE(c.died_by(SIGTRAP));
    REQUIRE_THAT(c.err, Catch::Contains("break at event 5"));
    ChildResult bad = joint_replay({dir / "server.trace", dir / "client.trace"}, {"--break-at=nobody:5"});
    INFO(bad.describe());
    REQUIRE(bad.exited_with(2));
    REQUIRE_THAT(bad.err, Catch::Contains("no node 'nobody' among server (0), client (1)"));
    ChildResult bare = joint_replay({dir / "server.trace", dir / "client.trace"}, {"--break-at=5"});
    REQUIRE(bare.exited_with(2));
    REQUIRE_THAT(bare.err, Catch::Contains("a joint replay takes --break-at=NODE:N"));
    ChildResult past = joint_replay({dir / "server.trace", dir / "client.trace"}, {"--break-at=client:999999"});
    INFO(past.describe());
    REQUIRE(past.exited_with(2));
    REQUIRE_THAT(past.err, Catch::Contains("joint replay done: 2 nodes"));
    REQUIRE_THAT(past.err, Catch::Contains("error: --break-at client:999999 is past that node's end"));
}
