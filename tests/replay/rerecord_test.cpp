// Determinism self-test: a recording replayed while recording again (--replay=A --record=B) gives B == A, record for record.
#include "../support/reprise_test.hpp"

#include <reprise/record/chunk.hpp>

#include <filesystem>
#include <string>
#include <vector>

using namespace reprise;
using namespace reprise::test;
using namespace std::chrono_literals;

namespace {

Options seeded_node(std::uint64_t seed) {
    Options o;
    o.seed = seed;
    o.node_name = "rerecord-test";
    o.argv = {"rerecord_test", "--scenario", "mixed"};
    return o;
}

/// Timers (one-shot, periodic, a stalled loop that makes one fall behind), an echo
/// server with clients writing in random pieces, offloaded jobs and a file read,
/// the PRNG, secure_random, precise_now, env and app inputs.
Scenario mixed(const std::string& dir) {
    return [dir](std::string& log) {
        const Instant t0 = now();
        log += fmt::format("seed={} random={} secure={}\n", Runtime::current()->seed(), random_u64(),
                           must(secure_random(8), "secure_random").size());
        log += fmt::format("app={} env={}\n", input<std::string>("who", [] { return fmt::format("pid-{}", ::getpid()); }),
                           env("REPRISE_RERECORD_TEST_UNSET").value_or("(unset)"));

        // Timers: a periodic heartbeat, sleepers, a stall that makes the heartbeat fall behind.
        Timer heartbeat;
        heartbeat.start(3ms, 3ms);
        auto beats = spawn("heartbeat", [&] {
            std::uint64_t n = 0;
            while (auto fires = heartbeat.wait())
                n += *fires;
            return n;
        });

        // Sockets: an echo server and clients that write in random pieces.
        Listener listener = must(listen(Address::loopback(0)), "listen");
        auto server = spawn("server", [&] {
            std::vector<Task<void>> handlers;
            for (int i = 0; i < 3; ++i) {
                Connection c = must(listener.accept(generous), "accept");
                handlers.push_back(spawn(fmt::format("handler-{}", i), [conn = std::move(c)]() mutable {
                    for (;;) {
                        auto got = conn.read_some(1 + random_below(64), generous);
                        if (!got.ok())
                            return;
                        if (!conn.write(*got).ok())
                            return;
                    }
                }));
            }
            for (auto& h : handlers)
                must(h.join(generous), "join handler");
        });
        std::vector<Task<std::string>> clients;
        for (int i = 0; i < 3; ++i)
            clients.push_back(spawn(fmt::format("client-{}", i), [&, i] {
                Connection conn = must(connect(Address::loopback(listener.port()), generous), "connect");
                std::string sent;
                for (int round = 0; round < 5; ++round) {
                    std::string piece(1 + random_below(200), static_cast<char>('a' + i));
                    must(conn.write(piece), "write");
                    sent += piece;
                    if (random_below(2) == 0)
                        must(sleep_for(Duration(static_cast<std::int64_t>(random_below(2'000'000)))), "sleep");
                }
                std::string back = must(conn.read_exact(sent.size(), generous), "read_exact");
                conn.shutdown();
                return fmt::format("client {}: {} bytes echoed {}, precise_now ordered {}", i, sent.size(),
                                   back == sent ? "intact" : "CHANGED", precise_now() >= t0);
            }));

        // Offload: jobs whose results differ in every process, and a file that is
        // gone by the time replay runs.
        auto worker = spawn("offloader", [&] {
            std::string out;
            out += fmt::format("offload int {}\n", must(offload([] { return static_cast<int>(::getpid()); }), "offload"));
            out += fmt::format("file {}\n", outcome_name(read_file(dir + "/data.txt")));
            out += fmt::format("missing {}\n", outcome_name(read_file(dir + "/missing.txt")));
            return out;
        });

        for (auto& c : clients)
            log += must(c.join(generous), "join client") + "\n";
        must(server.join(generous), "join server");
        log += must(worker.join(generous), "join offloader");
        if (!Runtime::current()->replaying())
            ::usleep(12'000);  // the loop stalls while recording: the heartbeat falls behind
        must(sleep_for(4ms), "sleep");
        heartbeat.cancel();
        log += fmt::format("beats={} elapsed={}\n", must(beats.join(generous), "join heartbeat"), (now() - t0).count());
        return 0;
    };
}

struct Trace {
    trace::Header header;
    std::vector<trace::RecordCopy> records;
    bool complete = false;
};

Trace load(const std::string& path) {
    Trace t;
    std::string why;
    auto reader = trace::Reader::open(path, &why);
    INFO(why);
    REQUIRE(reader.ok());
    t.header = reader->header();
    trace::Record r;
    while (reader->next(r))
        t.records.emplace_back(r);
    REQUIRE_FALSE(reader->error().has_value());
    t.complete = reader->saw_end();
    return t;
}

bool same_record(const trace::RecordCopy& a, const trace::RecordCopy& b) { return a.get() == b.get(); }

/// A trace file holding `records` under `header`, written by the real encoder and the
/// recorder's own framing (one plain chunk).
std::string encode_trace(const trace::Header& header, const std::vector<trace::RecordCopy>& records) {
    trace::Encoder e;
    e.set_base(header.start_mono_ns, header.start_wall_ns);
    for (const trace::RecordCopy& r : records)
        e.put(r.get());
    std::string out = trace::encode_header(header);
    trace::ChunkSealer(trace::encode_header_body(header), nullptr).seal(e.payload(), 0, false, out);
    return out;
}

/// A program of the build, or a failure that says to build it.
std::string built(const std::string& relative) {
    const char* root = std::getenv("REPRISE_TEST_BUILD_ROOT");  // reprise-allow: env (test set-up, not a runtime input)
    const std::string path = std::string(root ? root : ".") + "/" + relative;
    INFO("REPRISE_TEST_BUILD_ROOT=" << (root ? root : "(unset)") << ": build " << relative << " first");
    REQUIRE(::access(path.c_str(), X_OK) == 0);
    return path;
}

/// Runs a program of the build in a child; its exit code and output.
ChildResult run_program(const std::vector<std::string>& argv, const std::string& cwd = ".") {
    return run_in_child(
        [&] {
            std::vector<char*> args;
            for (const std::string& a : argv)
                args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            if (::chdir(cwd.c_str()) != 0)
                return 126;
            ::execv(args[0], args.data());
            return 127;
        },
        std::chrono::seconds(60));
}

/// Records `scenario` into A, replays A in a child that records B, and checks B.
struct Rerecorded {
    Recording a;
    Replay replay;
    Trace ta, tb;
};

Rerecorded record_replay_rerecord(const TempDir& dir, const Scenario& scenario, Options options,
                                  bool rerecord_full = false) {
    Rerecorded out;
    const std::string a = dir / "A.trace";
    const std::string b = dir / "B.trace";
    out.a = record(a, scenario, options);
    REQUIRE(out.a.exit_code == 0);
    Options replay_options;
    replay_options.record_path = b;
    replay_options.record_full_outputs = rerecord_full;
    out.replay = replay(a, scenario, replay_options);
    INFO(out.replay.child.describe());
    REQUIRE(out.replay.child.exited_with(0));
    REQUIRE(out.replay.finished);
    INFO(first_difference(out.a.log, out.replay.log));
    REQUIRE(out.replay.log == out.a.log);
    out.ta = load(a);
    out.tb = load(b);
    return out;
}

} // namespace

TEST_CASE("a replay recorded again holds the same records as the recording it replays") {
    const std::uint64_t seed = test_seed("rerecord");
    TempDir dir;
    REQUIRE(spit(dir / "data.txt", "recorded file contents"));
    Rerecorded r = record_replay_rerecord(dir, mixed(dir.path()), seeded_node(seed));
    const Trace& a = r.ta;
    const Trace& b = r.tb;

    // The scenario touched every kind of input it is meant to cover.
    auto has = [&](auto pred) {
        for (const auto& rec : a.records)
            if (pred(rec.get()))
                return true;
        return false;
    };
    auto wake = [](trace::WakeKind k) {
        return [k](const trace::Record& r) { return trace::is<trace::Wake>(r) && std::get<trace::Wake>(r).wake == k; };
    };
    auto input = [](trace::InputKind k) {
        return [k](const trace::Record& r) { return trace::is<trace::Input>(r) && std::get<trace::Input>(r).input == k; };
    };
    CHECK(has(wake(trace::WakeKind::timer_fired)));
    CHECK(has(wake(trace::WakeKind::bytes_read)));
    CHECK(has(wake(trace::WakeKind::offload_done)));
    CHECK(has([](const trace::Record& r) { return trace::is<trace::Accepted>(r); }));
    CHECK(has(input(trace::InputKind::secure_random)));
    CHECK(has(input(trace::InputKind::app)));
    CHECK(has(input(trace::InputKind::precise_clock)));
    CHECK(has([](const trace::Record& r) { return trace::is<trace::Output>(r); }));

    // B's header is A's: same node, arguments, seed and start times.
    CHECK(b.header.node == a.header.node);
    CHECK(b.header.argv == a.header.argv);
    CHECK(b.header.argv == std::vector<std::string>{"rerecord_test", "--scenario", "mixed"});
    CHECK(b.header.seed == a.header.seed);
    CHECK(b.header.start_mono_ns == a.header.start_mono_ns);
    CHECK(b.header.start_wall_ns == a.header.start_wall_ns);
    CHECK(b.header.build_id == a.header.build_id);

    // Record for record: kinds, times, handles, payloads, addresses.
    REQUIRE(a.complete);
    REQUIRE(b.complete);
    REQUIRE(b.records.size() == a.records.size());
    for (std::size_t i = 0; i < a.records.size(); ++i) {
        INFO("event #" << i << ": A " << trace::describe(a.records[i].get()) << "\n  B " << trace::describe(b.records[i].get()));
        REQUIRE(same_record(a.records[i], b.records[i]));
    }
    // And the re-recording replays like the recording.
    Replay again = replay(dir / "B.trace", mixed(dir.path()));
    INFO(again.child.describe());
    REQUIRE(again.child.exited_with(0));
    REQUIRE(again.log == r.a.log);
}

TEST_CASE("a re-recording of a --record-full trace keeps the written bytes in full") {
    const std::uint64_t seed = test_seed("rerecord-full");
    TempDir dir;
    REQUIRE(spit(dir / "data.txt", "recorded file contents"));
    Options options = seeded_node(seed);
    options.record_full_outputs = true;
    Rerecorded r = record_replay_rerecord(dir, mixed(dir.path()), options);
    std::size_t full = 0;
    REQUIRE(r.tb.records.size() == r.ta.records.size());
    for (std::size_t i = 0; i < r.ta.records.size(); ++i) {
        INFO("event #" << i << ": A " << trace::describe(r.ta.records[i].get()) << "\n  B "
                        << trace::describe(r.tb.records[i].get()));
        REQUIRE(same_record(r.ta.records[i], r.tb.records[i]));
        const auto* out = std::get_if<trace::Output>(&r.tb.records[i].get());
        full += out != nullptr && !out->bytes.empty() ? 1 : 0;
    }
    REQUIRE(full > 0);
}

TEST_CASE("--record-full while re-recording a digest-only trace keeps every written byte, each matching its digest") {
    const std::uint64_t seed = test_seed("rerecord-full-later");
    TempDir dir;
    REQUIRE(spit(dir / "data.txt", "recorded file contents"));
    Rerecorded r = record_replay_rerecord(dir, mixed(dir.path()), seeded_node(seed), true);
    std::size_t outputs = 0;
    REQUIRE(r.tb.records.size() == r.ta.records.size());
    for (std::size_t i = 0; i < r.ta.records.size(); ++i) {
        const trace::Record& ra = r.ta.records[i].get();
        const trace::Record& rb = r.tb.records[i].get();
        INFO("event #" << i << ": A " << trace::describe(ra) << "\n  B " << trace::describe(rb));
        REQUIRE(trace::kind_of(ra) == trace::kind_of(rb));
        const auto* a = std::get_if<trace::Output>(&ra);
        if (a == nullptr || a->length == 0)
            continue;
        const auto& b = std::get<trace::Output>(rb);
        ++outputs;
        CHECK(a->bytes.empty());
        REQUIRE(b.bytes.size() == a->length);
        REQUIRE(trace::digest64(b.bytes) == a->digest);
    }
    REQUIRE(outputs > 0);
}

TEST_CASE("reprise diff finds a re-recording identical and flags a trace changed in one record") {
    const std::uint64_t seed = test_seed("rerecord-diff");
    const std::string tool = built("tools/reprise");
    TempDir dir;
    REQUIRE(spit(dir / "data.txt", "recorded file contents"));
    Rerecorded r = record_replay_rerecord(dir, mixed(dir.path()), seeded_node(seed));

    ChildResult same = run_program({tool, "diff", dir / "A.trace", dir / "B.trace"});
    INFO(same.describe());
    REQUIRE(same.exited_with(0));
    REQUIRE(same.out.find("identical: " + std::to_string(r.ta.records.size()) + " events") != std::string::npos);

    // One byte of one read changed: diff names that event.
    std::vector<trace::RecordCopy> changed = r.tb.records;
    std::size_t at = changed.size();
    for (std::size_t i = 0; i < changed.size(); ++i) {
        const auto* w = std::get_if<trace::Wake>(&changed[i].get());
        if (w != nullptr && w->wake == trace::WakeKind::bytes_read && !w->data.empty()) {
            at = i;
            break;
        }
    }
    REQUIRE(at < changed.size());
    trace::Wake flipped = std::get<trace::Wake>(changed[at].get());
    std::string data(flipped.data);
    data[0] ^= 0x20;
    flipped.data = data;
    changed[at].assign(flipped);
    REQUIRE(spit(dir / "C.trace", encode_trace(r.tb.header, changed)));
    ChildResult differs = run_program({tool, "diff", dir / "A.trace", dir / "C.trace"});
    INFO(differs.describe());
    REQUIRE(differs.exited_with(1));
    REQUIRE(differs.out.find("the traces differ at event #" + std::to_string(at) + ": data") != std::string::npos);

    // Unchanged records re-encoded the same way compare equal (the check above is not the encoding's).
    REQUIRE(spit(dir / "D.trace", encode_trace(r.tb.header, r.tb.records)));
    REQUIRE(run_program({tool, "diff", dir / "A.trace", dir / "D.trace"}).exited_with(0));

    // A tick one nanosecond later is a difference too.
    std::vector<trace::RecordCopy> later = r.tb.records;
    std::size_t tick = later.size();
    for (std::size_t i = 1; i < later.size(); ++i)
        if (trace::is<trace::Tick>(later[i].get())) {
            tick = i;
            break;
        }
    REQUIRE(tick < later.size());
    trace::Tick moved = std::get<trace::Tick>(later[tick].get());
    moved.mono_ns += 1;
    later[tick].assign(moved);
    REQUIRE(spit(dir / "E.trace", encode_trace(r.tb.header, later)));
    ChildResult late = run_program({tool, "diff", dir / "A.trace", dir / "E.trace"});
    INFO(late.describe());
    REQUIRE(late.exited_with(1));
    REQUIRE(late.out.find("the traces differ at event #" + std::to_string(tick) + ": time") != std::string::npos);
}

TEST_CASE("the echo demo replayed with --record gives a trace reprise diff finds identical") {
    const std::string echo = built("examples/echo/reprise-echo");
    const std::string tool = built("tools/reprise");
    TempDir dir;
    ChildResult rec = run_program({echo, "--node=echo", "--record=A.trace", "demo"}, dir.path());
    INFO(rec.describe());
    REQUIRE(rec.exited_with(0));
    ChildResult rerec = run_program({echo, "--replay=A.trace", "--record=B.trace"}, dir.path());
    INFO(rerec.describe());
    REQUIRE(rerec.exited_with(0));
    REQUIRE(rerec.out == rec.out);
    ChildResult diff = run_program({tool, "diff", "A.trace", "B.trace"}, dir.path());
    INFO(diff.describe());
    REQUIRE(diff.exited_with(0));
    REQUIRE(diff.out.find("identical:") != std::string::npos);
    REQUIRE(diff.out.find("note:") == std::string::npos);  // not even the headers differ
}

TEST_CASE("a replay refuses to record into the trace it replays") {
    TempDir dir;
    const std::string a = dir / "A.trace";
    REQUIRE(spit(dir / "data.txt", "recorded file contents"));
    Recording rec = record(a, mixed(dir.path()), seeded_node(test_seed("rerecord-same-file")));
    REQUIRE(rec.trace.saw_end);
    const std::string before = slurp(a);
    for (const std::string& same : {a, dir.path() + "/./A.trace"}) {
        Options options;
        options.replay_path = a;
        options.record_path = same;
        REQUIRE_THROWS_WITH(Runtime(options), Catch::Contains("it is the trace being replayed"));
        REQUIRE(slurp(a) == before);
    }
}

