// Trace format 3: one type per record round-trips, accepted names its connection, annotations, program identity, digests.
#include "../support/reprise_test.hpp"

#include <reprise/record/annotate.hpp>
#include <reprise/record/chunk.hpp>
#include <reprise/record/json.hpp>

#include <unistd.h>

#include <climits>
#include <csignal>
#include <string>
#include <vector>

using namespace reprise;
using namespace reprise::test;
using namespace std::chrono_literals;

namespace {

/// One record of every kind (and both shapes of those that have two).
std::vector<trace::Record> one_of_each(const std::string& bytes) {
    trace::Annotation a;
    a.name = "became_leader";
    a.count = 2;
    a.fields[0] = {.key = "term", .is_text = false, .number = -3, .text = {}};
    a.fields[1] = {.key = "node", .is_text = true, .number = 0, .text = "n1"};
    return {
        trace::Tick{.mono_ns = 2000, .wall_ns = 1'700'000'000'000'000'000},
        trace::Wake{.wake = WakeKind::bytes_read, .handle = 7, .value = 0, .data = bytes},
        trace::Wake{.wake = WakeKind::signal, .handle = 0, .value = 15, .data = {}},
        trace::Tick{.mono_ns = 1500, .wall_ns = 1'700'000'000'000'000'001},  // time may go back in a delta
        trace::Accepted{.listener = 3, .connection = 9, .peer = Address::loopback(40000), .local = Address::loopback(80)},
        trace::Connected{.connection = 11, .error = 0, .peer = Address::loopback(6379), .local = Address::loopback(5555)},
        trace::Connected{.connection = 12, .error = 111, .peer = {}, .local = {}},
        trace::Input{.input = InputKind::env, .name = "HOME", .value = bytes},
        trace::Output{.output = OutputKind::conn_write, .handle = 7, .length = bytes.size(),
                      .digest = trace::digest64(bytes), .bytes = {}},
        trace::Output{.output = OutputKind::conn_write, .handle = 7, .length = bytes.size(),
                      .digest = trace::digest64(bytes), .bytes = bytes},
        trace::Spawn{.task = 5, .name = "worker"},
        a,
        trace::End{.exit_code = -1},
    };
}

std::string raw(std::initializer_list<unsigned> bytes) {
    std::string s;
    for (unsigned b : bytes)
        s += static_cast<char>(b);
    return s;
}

/// Decodes one record from `bytes`; the message when it is refused.
std::optional<std::string> decode_one(const std::string& bytes) {
    std::string_view in = bytes;
    std::int64_t mono = 0, wall = 0;
    trace::Record r;
    return trace::decode_record(in, mono, wall, r);
}

} // namespace

TEST_CASE("every record kind is decoded in place to the record that was encoded") {
    const std::string bytes = "hello, \x01\xff world";
    const auto records = one_of_each(bytes);
    trace::Encoder e;
    e.set_base(1000, 1'700'000'000'000'000'000 - 5);
    for (const trace::Record& r : records)
        e.put(r);
    std::string_view in = e.payload();
    std::int64_t mono = 1000, wall = 1'700'000'000'000'000'000 - 5;
    for (const trace::Record& want : records) {
        trace::Record got;
        auto why = trace::decode_record(in, mono, wall, got);
        INFO(trace::describe(want) << (why ? " -> " + *why : std::string()));
        REQUIRE_FALSE(why.has_value());
        REQUIRE(got == want);
        // The bytes point into the payload: nothing was copied.
        if (const auto* w = std::get_if<trace::Wake>(&got); w && !w->data.empty())
            REQUIRE((w->data.data() >= e.payload().data() && w->data.data() < e.payload().data() + e.payload().size()));
    }
    REQUIRE(in.empty());
}

TEST_CASE("a record that breaks its kind's rules is refused after decoding, and asserted before encoding") {
    CHECK_THAT(*decode_one(raw({0x94, 0x02, 0x05, 0x01, 0x00})), Catch::Contains("accepted has a record of its own"));
    CHECK_THAT(*decode_one(raw({0x94, 0x02, 0x08, 0x01, 0x0f})), Catch::Contains("signal has handle 0"));
    CHECK_THAT(*decode_one(raw({0x95, 0x02, 0x01, 0x01, 0x00, 0xc4, 0x01, 'x'})), Catch::Contains("carries no data"));
    CHECK_THAT(*decode_one(raw({0x95, 0x07, 0x01, 0x01, 0xc4, 0x00, 0xc4, 0x00})), Catch::Contains("distinct"));
    CHECK_THAT(*decode_one(raw({0x93, 0x08, 0x01, 0x00})), Catch::Contains("has its addresses"));
    CHECK_THAT(*decode_one(raw({0x93, 0x05, 0x00, 0xa1, 'x'})), Catch::Contains("task id 0"));
    CHECK_THAT(*decode_one(raw({0x93, 0x09, 0xa1, 'n', 0xa1, 'k'})), Catch::Contains("wrong number of fields"));
    CHECK_THAT(*decode_one(raw({0x92, 0x09, 0xa0})), Catch::Contains("a name of 0 bytes"));
    CHECK_THAT(*decode_one(raw({0x96, 0x04, 0x01, 0x01, 0x05, 0x00, 0xc4, 0x01, 'x'})), Catch::Contains("in full for a length of 5"));
    CHECK_THAT(*decode_one(raw({0x92, 0x06, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
               Catch::Contains("signed 64-bit"));
    // Every kind with one field too many or too few.
    for (unsigned kind = 1; kind <= trace::record_kind_last; ++kind) {
        CAPTURE(kind);
        REQUIRE(decode_one(raw({0x91, kind})).has_value());
        REQUIRE(decode_one(raw({0x9f, kind, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})).has_value());
    }
}

TEST_CASE("a copied record keeps its bytes after the reader has moved on, and reuses its memory") {
    TempDir dir;
    const std::string path = dir / "copy.trace";
    trace::Header h;
    h.node = "copy";
    std::string file = trace::encode_header(h);
    trace::ChunkSealer sealer(trace::encode_header_body(h), nullptr);
    // Three chunks: the copy of a record of the first outlives both later ones.
    const std::string first(300, 'a');
    for (int c = 0; c < 3; ++c) {
        trace::Encoder e;
        e.put(trace::Tick{.mono_ns = c, .wall_ns = c});
        const std::string compressible(300, 'b');
        e.put(trace::Wake{.wake = WakeKind::bytes_read, .handle = 1, .value = 0,
                          .data = c == 0 ? std::string_view(first) : std::string_view(compressible)});
        if (c == 2)
            e.put(trace::End{.exit_code = 0});
        sealer.seal(e.payload(), static_cast<std::uint64_t>(c), c == 1, file);
    }
    REQUIRE(spit(path, file));
    std::string why;
    auto reader = trace::Reader::open(path, &why);
    INFO(why);
    REQUIRE(reader.ok());
    trace::Record r;
    trace::RecordCopy kept;
    std::uint64_t n = 0;
    while (reader->next(r)) {
        if (n++ == 1)
            kept.assign(r);
    }
    REQUIRE_FALSE(reader->error().has_value());
    REQUIRE(reader->saw_end());
    REQUIRE(reader->chunks_read() == 3);
    REQUIRE(reader->chunks_compressed() == 1);
    REQUIRE(std::get<trace::Wake>(kept.get()).data == first);
    // Assigning a smaller record reuses the storage the larger one left.
    const char* storage = std::get<trace::Wake>(kept.get()).data.data();
    kept.assign(trace::Wake{.wake = WakeKind::bytes_read, .handle = 1, .value = 0, .data = "xy"});
    REQUIRE(std::get<trace::Wake>(kept.get()).data.data() == storage);
}

TEST_CASE("output digests are XXH3-64, so any xxhash implementation can check a trace") {
    // The published XXH3-64 (seed 0) of the empty input.
    REQUIRE(trace::digest64("") == 0x2D06800538D394C2ULL);
    REQUIRE(trace::digest64("a") != trace::digest64("b"));
}

TEST_CASE("the JSON writer escapes any bytes and places every comma") {
    JsonWriter j;
    j.begin_object().member("a", std::uint64_t{1}).key("list").begin_array().value("x\"y").value(std::int64_t{-2});
    j.begin_object().end_object().end_array().member("bytes", std::string_view("\x01\xff\\", 3)).key("hex").hex("\x0f");
    j.end_object();
    REQUIRE(j.str() == R"({"a":1,"list":["x\"y",-2,{}],"bytes":"\u0001\u00ff\\","hex":"0f"})");
}

TEST_CASE("the accepted record names the id the connection got, and replay checks it") {
    const Scenario serve = [](std::string& log) {
        Listener l = must(listen(Address::loopback(0)), "listen");
        Connection client = must(connect(Address::loopback(l.port()), generous), "connect");
        Connection server = must(l.accept(generous), "accept");
        must(client.write("ping"), "write");
        log += must(server.read_some(4, generous), "read");
        return 0;
    };
    TempDir dir;
    const std::string path = dir / "accepted.trace";
    record_and_replay(path, serve);
    TraceFacts facts = read_trace(path, true);
    std::uint64_t connection = 0;
    for (const auto& r : facts.all)
        if (const auto* a = std::get_if<trace::Accepted>(&r.get()))
            connection = a->connection;
    REQUIRE(connection != 0);
    // The bytes later read arrive on the connection the accepted record named.
    bool read_on_it = false;
    for (const auto& r : facts.all)
        if (const auto* w = std::get_if<trace::Wake>(&r.get()); w && w->wake == WakeKind::bytes_read)
            read_on_it = read_on_it || (w->handle == connection && w->data == "ping");
    REQUIRE(read_on_it);

    // The same trace with the accepted record naming another id: the unchanged program
    // names its connection as recorded, so the replay stops right there.
    std::string why;
    auto reader = trace::Reader::open(path, &why);
    REQUIRE(reader.ok());
    trace::Encoder e;
    e.set_base(reader->header().start_mono_ns, reader->header().start_wall_ns);
    trace::Record r;
    std::uint64_t at = 0, n = 0;
    while (reader->next(r)) {
        if (auto* a = std::get_if<trace::Accepted>(&r)) {
            a->connection += 100;
            at = n;
        }
        e.put(r);
        ++n;
    }
    std::string file = trace::encode_header(reader->header());
    trace::ChunkSealer(trace::encode_header_body(reader->header()), nullptr).seal(e.payload(), 0, true, file);
    const std::string renamed = dir / "renamed.trace";
    REQUIRE(spit(renamed, file));
    Replay changed = replay(renamed, serve);
    INFO(changed.child.describe());
    REQUIRE(changed.child.exited_with(3));
    const DivergenceReport report = parse_divergence(changed.child.err);
    REQUIRE(report.event == at);
    REQUIRE_THAT(report.trace_says, Catch::StartsWith("accepted listener=") &&
                                        Catch::Contains(fmt::format("connection={}", connection + 100)));
    REQUIRE(report.program_did == fmt::format("accepted a connection it named {}", connection));
}

TEST_CASE("annotations are recorded where they happen, and replay neither checks nor needs them") {
    auto leader = [](int extra) -> Scenario {
        return [extra](std::string& log) {
            annotate("started");
            must(sleep_for(1ms), "sleep");
            annotate("became_leader", {{"term", 3}, {"node", "n1"}, {"ready", true}});
            for (int i = 0; i < extra; ++i)
                annotate("one_more", {{"i", i}});
            log += "led\n";
            return 0;
        };
    };
    TempDir dir;
    const std::string path = dir / "annotated.trace";
    RoundTrip rt = record_and_replay(path, leader(0));
    TraceFacts facts = read_trace(path, true);
    std::vector<std::string> seen;
    for (const auto& r : facts.all)
        if (const auto* a = std::get_if<trace::Annotation>(&r.get()))
            seen.push_back(trace::describe(*a));
    REQUIRE(seen == std::vector<std::string>{R"(annotation "started")",
                                             R"(annotation "became_leader" term=3 node="n1" ready=1)"});
    // --break-at may name a milestone: the replay stops there, before it is skipped.
    std::uint64_t milestone = 0;
    for (std::uint64_t i = 0; i < facts.all.size(); ++i)
        if (trace::is<trace::Annotation>(facts.all[i].get()))
            milestone = i;
    Options stop_there;
    stop_there.break_at = milestone;
    Replay stopped = replay(path, leader(0), stop_there);
    INFO(stopped.child.describe());
    REQUIRE(stopped.child.died_by(SIGTRAP));
    REQUIRE_THAT(stopped.child.err, Catch::Contains(fmt::format("break at event {} (annotation \"became_leader\"", milestone)));
    // A build that writes more annotations, or fewer, replays the same trace.
    for (int extra : {2}) {
        Replay more = replay(path, leader(extra));
        INFO(more.child.describe());
        REQUIRE(more.child.exited_with(0));
        REQUIRE(more.log == "led\n");
    }
    Replay fewer = replay(path, [](std::string& log) {
        must(sleep_for(1ms), "sleep");
        log += "led\n";
        return 0;
    });
    INFO(fewer.child.describe());
    REQUIRE(fewer.child.exited_with(0));
}

TEST_CASE("the header names the program, its executable and working directory; replay refuses another program") {
    TempDir dir;
    const std::string path = dir / "identity.trace";
    Options options;
    options.program_name = "identity-test";
    options.argv = {"./relative/name", "--flag"};
    Recording rec = record(path, [](std::string&) { return 0; }, options);
    std::string why;
    auto reader = trace::Reader::open(path, &why);
    REQUIRE(reader.ok());
    const trace::Header& h = reader->header();
    CHECK(h.program == "identity-test");
    CHECK(h.argv == options.argv);
    char cwd[PATH_MAX];
    REQUIRE(::getcwd(cwd, sizeof cwd) != nullptr);
    CHECK(h.working_directory == cwd);
    char exe[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
    REQUIRE(n > 0);
    CHECK(h.executable == std::string(exe, static_cast<std::size_t>(n)));
    CHECK_FALSE(h.build_id.empty());

    Options other;
    other.replay_path = path;
    other.program_name = "another-program";
    REQUIRE_THROWS_WITH(Runtime(other), Catch::Contains("was recorded by program 'identity-test', not 'another-program'") &&
                                            Catch::Contains("--replay-any-program"));
    // Forced, another program's trace is opened (a notice says so; a divergence may follow).
    other.replay_any_program = true;
    REQUIRE_NOTHROW(Runtime(other));
}

TEST_CASE("a sealed trace replays with its key and is refused without it or with another") {
    TempDir dir;
    const std::string key = dir / "trace.key";
    const std::string other_key = dir / "other.key";
    std::string why;
    REQUIRE(trace::write_new_trace_key(key, why).ok());
    REQUIRE(trace::write_new_trace_key(other_key, why).ok());
    const std::string path = dir / "sealed.trace";
    auto scenario = [](std::string& log) {
        for (int i = 0; i < 3; ++i) {
            log += input<std::string>("secret", [i] { return "SECRET-VALUE-" + std::to_string(i); });
            must(sleep_for(1ms), "sleep");
        }
        return 0;
    };
    // In the clear, the recorded input is in the file for anyone to read...
    Options clear;
    clear.record_compress = false;
    record(dir / "clear.trace", scenario, clear);
    REQUIRE(slurp(dir / "clear.trace").find("SECRET-VALUE-1") != std::string::npos);
    Options options;
    options.trace_key_path = key;
    options.record_compress = false;  // the search below is for plain text, compressed or not
    Recording rec = record(path, scenario, options);
    REQUIRE_FALSE(rec.trace.opened);  // the harness reads without a key
    REQUIRE_THAT(rec.trace.open_error, Catch::Contains("encrypted"));
    auto loaded = trace::load_trace_key(key, why);
    REQUIRE(loaded.ok());
    auto reader = trace::Reader::open(path, &why, &*loaded);
    INFO(why);
    REQUIRE(reader.ok());
    trace::Record r;
    while (reader->next(r)) {
    }
    REQUIRE(reader->saw_end());
    REQUIRE(reader->chunks_encrypted() == reader->chunks_read());
    // ... sealed, it is not.
    REQUIRE(slurp(path).find("SECRET-VALUE") == std::string::npos);

    Options replay_options;
    replay_options.trace_key_path = key;
    Replay with_key = replay(path, scenario, replay_options);
    INFO(with_key.child.describe());
    REQUIRE(with_key.child.exited_with(0));
    REQUIRE(with_key.log == rec.log);

    Options wrong;
    wrong.replay_path = path;
    wrong.trace_key_path = other_key;
    REQUIRE_THROWS_WITH(Runtime(wrong), Catch::Contains("does not open with this key"));
    Options none;
    none.replay_path = path;
    REQUIRE_THROWS_WITH(Runtime(none), Catch::Contains("give its key"));
}
