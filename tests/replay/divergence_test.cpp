// Divergence: a program changed between record and replay is stopped (exit 3) at the first event that differs, with a report.
#include "../support/reprise_test.hpp"

#include <string>

using namespace reprise;
using namespace reprise::test;
using namespace std::chrono_literals;

namespace {

constexpr int exit_diverged = 3;

/// What a replay of a changed program produced.
struct Diverged {
    Replay replay;
    DivergenceReport report;
    std::string trace_path;
};

/// Records `original`, replays `changed` against the trace, and checks what holds
/// for every divergence: exit code 3, no "replay done", a report naming the node,
/// what the trace says, what the program did, and the task.
Diverged record_then_diverge(const TempDir& dir, const Scenario& original, const Scenario& changed,
                             bool record_full_outputs = false) {
    Options options;
    options.record_full_outputs = record_full_outputs;
    options.node_name = "node-under-test";
    options.seed = 7;
    Diverged d;
    d.trace_path = dir / "trace";
    Recording rec = record(d.trace_path, original, options);
    INFO(rec.log);
    REQUIRE(rec.trace.saw_end);
    REQUIRE_FALSE(rec.trace.error.has_value());
    // The unchanged program replays: whatever diverges below is the change's doing.
    Replay same = replay(d.trace_path, original);
    INFO("unchanged replay: " << same.child.describe());
    REQUIRE(same.child.exited_with(0));
    REQUIRE(same.log == rec.log);

    d.replay = replay(d.trace_path, changed);
    d.report = parse_divergence(d.replay.child.err);
    INFO("changed replay: " << d.replay.child.describe());
    REQUIRE(d.replay.child.exited_with(exit_diverged));
    REQUIRE_FALSE(d.replay.finished);
    REQUIRE_THAT(d.replay.child.err, !Catch::Contains("replay done"));
    REQUIRE(d.report.present);
    REQUIRE(d.report.node == "node-under-test");
    REQUIRE_FALSE(d.report.task.empty());
    return d;
}

/// The event number of the first record matching `pred` in the trace.
template <class Pred>
std::uint64_t event_of(const std::string& trace_path, Pred pred) {
    auto at = index_of_first(trace_path, pred);
    REQUIRE(at.has_value());
    return *at;
}

/// A scenario that reads two environment variables; `extra` is what it does in between.
Scenario between_two_inputs(std::function<void()> extra = {}) {
    return [extra](std::string& log) {
        log += env("REPRISE_DIVERGE_A").value_or("-");
        if (extra)
            extra();
        log += env("REPRISE_DIVERGE_B").value_or("-");
        return 0;
    };
}

bool is_input(const trace::Record& r, trace::InputKind kind, std::string_view name) {
    const auto* in = std::get_if<trace::Input>(&r);
    return in != nullptr && in->input == kind && in->name == name;
}

} // namespace

// The report names the timer_fired record itself (an earlier runtime counted the
// wake-up as consumed before checking it, and named the event after it).
TEST_CASE("a timer whose duration changed diverges at its recorded fire") {
    TempDir dir;
    auto timer_for = [](Duration d) -> Scenario {
        return [d](std::string& log) {
            Timer t;
            t.start(d);
            log += fmt::format("fires={}", must(t.wait(generous), "timer wait"));
            return 0;
        };
    };
    Diverged d = record_then_diverge(dir, timer_for(10ms), timer_for(60ms));
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::StartsWith("wake timer_fired") && Catch::Contains("fires at this tick"));
    REQUIRE_THAT(d.report.program_did, Catch::Contains("armed timer") && Catch::Contains("later than that"));
    REQUIRE_THAT(d.report.task, Catch::Contains("the loop"));
    REQUIRE(d.report.event == event_of(d.trace_path, [](const trace::Record& r) {
                const auto* w = std::get_if<trace::Wake>(&r);
                return w != nullptr && w->wake == trace::WakeKind::timer_fired;
            }));
}

/// A program that sleeps `d` once.
Scenario sleeper(Duration d) {
    return [d](std::string& log) {
        must(sleep_for(d), "sleep");
        log += "woke";
        return 0;
    };
}

TEST_CASE("a sleep made longer diverges when the recorded wake-up comes before its deadline") {
    TempDir dir;
    Diverged d = record_then_diverge(dir, sleeper(10ms), sleeper(50ms));
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::StartsWith("wake timer_fired") && Catch::Contains("fires at this tick"));
    REQUIRE_THAT(d.report.program_did, Catch::Contains("later than that"));
}

/// A program that writes "first write is the same", then `payload`, to itself over loopback.
Scenario two_writes(std::string payload) {
    return [payload](std::string& log) {
        Listener l = must(listen(Address::loopback(0)), "listen");
        Connection client = must(connect(Address::loopback(l.port()), generous), "connect");
        Connection server = must(l.accept(generous), "accept");
        must(client.write("first write is the same"), "write");
        must(client.write(payload), "write");
        log += must(server.read_exact(23 + payload.size(), generous), "read");
        return 0;
    };
}

TEST_CASE("a changed byte in a write diverges at that output, naming both digests and the program's bytes") {
    TempDir dir;
    Diverged d = record_then_diverge(dir, two_writes("hello, world"), two_writes("hello, World"));
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::StartsWith("output conn_write") && Catch::Contains("length=12"));
    REQUIRE_THAT(d.report.program_did, Catch::StartsWith("output conn_write") && Catch::Contains("length=12") &&
                                           Catch::Contains("\"hello, World\""));
    REQUIRE(d.report.trace_says != d.report.program_did);  // the digests differ
    REQUIRE_THAT(d.report.task, Catch::Contains("'main'"));
    // The second output record: the first write matched.
    const auto first_output = event_of(d.trace_path, [](const trace::Record& r) { return trace::is<trace::Output>(r); });
    REQUIRE(d.report.event == event_of(d.trace_path, [&, seen = 0](const trace::Record& r) mutable {
                return trace::is<trace::Output>(r) && ++seen == 2;
            }));
    REQUIRE(d.report.event > first_output);
}

TEST_CASE("recorded in full, a changed write's report shows where it first differs, both sides") {
    TempDir dir;
    Diverged d = record_then_diverge(dir, two_writes("hello, world: the rest is the same"),
                                     two_writes("hello, World: the rest is the same"), true);
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.replay.child.err, Catch::Contains("first difference at byte 7 of the write:\n"
                                                     "    recorded: \"hello, world: the rest \"\n"
                                                     "    program:  \"hello, World: the rest \""));
}

TEST_CASE("an extra precise_now() diverges at the input the trace has there") {
    TempDir dir;
    Diverged d = record_then_diverge(dir, between_two_inputs(), between_two_inputs([] { (void)precise_now(); }));
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::Contains("input env name=\"REPRISE_DIVERGE_B\""));
    REQUIRE_THAT(d.report.program_did, Catch::Contains("input precise_clock"));
    REQUIRE_THAT(d.report.task, Catch::Contains("'main'"));
    REQUIRE(d.report.event == event_of(d.trace_path, [](const trace::Record& r) {
                return is_input(r, trace::InputKind::env, "REPRISE_DIVERGE_B");
            }));
}

TEST_CASE("an extra connect diverges at its connect input") {
    TempDir dir;
    auto connector = [](bool extra) -> Scenario {
        return [extra](std::string& log) {
            Listener l = must(listen(Address::loopback(0)), "listen");
            Connection client = must(connect(Address::loopback(l.port()), generous), "connect");
            Connection server = must(l.accept(generous), "accept");
            if (extra)
                (void)connect(Address::loopback(l.port()), generous);
            must(client.write("x"), "write");
            log += must(server.read_exact(1, generous), "read");
            return 0;
        };
    };
    Diverged d = record_then_diverge(dir, connector(false), connector(true));
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.program_did, Catch::Contains("input connect name=\"127.0.0.1:"));
    REQUIRE_THAT(d.report.trace_says, Catch::StartsWith("output conn_write"));
    REQUIRE(d.report.event ==
            event_of(d.trace_path, [](const trace::Record& r) { return trace::is<trace::Output>(r); }));
}

TEST_CASE("tasks spawned in another order diverge at the first spawn") {
    TempDir dir;
    auto spawner = [](bool swapped) -> Scenario {
        return [swapped](std::string& log) {
            auto a = spawn(swapped ? "beta" : "alpha", [] { return 1; });
            auto b = spawn(swapped ? "alpha" : "beta", [] { return 2; });
            log += fmt::format("{}", must(a.join(), "join") + must(b.join(), "join"));
            return 0;
        };
    };
    Diverged d = record_then_diverge(dir, spawner(false), spawner(true));
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::StartsWith("spawn ") && Catch::Contains("name=\"alpha\""));
    REQUIRE_THAT(d.report.program_did, Catch::StartsWith("spawn ") && Catch::Contains("name=\"beta\""));
    REQUIRE(d.report.event == event_of(d.trace_path, [](const trace::Record& r) {
                const auto* sp = std::get_if<trace::Spawn>(&r);
                return sp != nullptr && sp->name == "alpha";
            }));
}

TEST_CASE("a program that ends early diverges where the trace goes on") {
    TempDir dir;
    const Scenario early = [](std::string& log) {
        log += env("REPRISE_DIVERGE_A").value_or("-");
        return 0;
    };
    Diverged d = record_then_diverge(dir, between_two_inputs(), early);
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::Contains("input env name=\"REPRISE_DIVERGE_B\""));
    REQUIRE_THAT(d.report.program_did, Catch::Contains("ended with exit code 0"));
    REQUIRE(d.report.event == event_of(d.trace_path, [](const trace::Record& r) {
                return is_input(r, trace::InputKind::env, "REPRISE_DIVERGE_B");
            }));
}

TEST_CASE("a program that asks for more inputs than the trace holds diverges at the end record") {
    TempDir dir;
    const Scenario longer = [](std::string& log) {
        log += env("REPRISE_DIVERGE_A").value_or("-");
        log += env("REPRISE_DIVERGE_B").value_or("-");
        log += env("REPRISE_DIVERGE_C").value_or("-");
        return 0;
    };
    Diverged d = record_then_diverge(dir, between_two_inputs(), longer);
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::Contains("end exit_code=0"));
    REQUIRE_THAT(d.report.program_did, Catch::Contains("input env name=\"REPRISE_DIVERGE_C\""));
    REQUIRE(d.report.event ==
            event_of(d.trace_path, [](const trace::Record& r) { return trace::is<trace::End>(r); }));
}

TEST_CASE("a program that waits for the world past the trace's end diverges at the end record") {
    TempDir dir;
    auto sleeper = [](int sleeps) -> Scenario {
        return [sleeps](std::string& log) {
            for (int i = 0; i < sleeps; ++i)
                must(sleep_for(2ms), "sleep");
            log += "slept";
            return 0;
        };
    };
    Diverged d = record_then_diverge(dir, sleeper(2), sleeper(3));
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::Contains("end exit_code=0"));
    REQUIRE_THAT(d.report.program_did, Catch::Contains("waits for the world"));
    REQUIRE(d.report.event ==
            event_of(d.trace_path, [](const trace::Record& r) { return trace::is<trace::End>(r); }));
}

TEST_CASE("another exit code diverges at the end record") {
    TempDir dir;
    auto exiting = [](int code) -> Scenario { return [code](std::string&) { return code; }; };
    Diverged d = record_then_diverge(dir, exiting(0), exiting(7));
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::Contains("end exit_code=0"));
    REQUIRE_THAT(d.report.program_did, Catch::Contains("ended with exit code 7"));
}

TEST_CASE("an input read as another type diverges instead of decoding garbage") {
    TempDir dir;
    const Scenario as_int = [](std::string& log) {
        log += fmt::format("{}", input<std::int64_t>("value", [] { return std::int64_t{5}; }));
        return 0;
    };
    const Scenario as_string = [](std::string& log) {
        log += input<std::string>("value", [] { return std::string("five"); });
        return 0;
    };
    Diverged d = record_then_diverge(dir, as_int, as_string);
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says + d.report.program_did, Catch::Contains("\"value\""));
}

TEST_CASE("a divergence is reported to the driver's on_divergence before the replay exits 3") {
    TempDir dir;
    Options recording;
    recording.node_name = "node-7";
    Recording rec = record(dir / "trace", sleeper(10ms), recording);
    REQUIRE(rec.trace.saw_end);
    Options replaying;
    replaying.on_divergence = [](std::string_view report) {
        std::printf("driver saw: %.*s", static_cast<int>(report.size()), report.data());
        std::fflush(stdout);
    };
    Replay r = replay(dir / "trace", sleeper(50ms), replaying);
    INFO(r.child.describe());
    REQUIRE(r.child.exited_with(3));
    REQUIRE_THAT(r.child.out, Catch::Contains("driver saw: reprise: DIVERGENCE at event") &&
                                  Catch::Contains("node 'node-7'") && Catch::Contains("trace says:  wake timer_fired"));
}

// A changed program that draws one more handle id shifts every later id: the recorded
// wake-up then names a handle of another kind (a timer where a connection was). That
// is reported as a divergence, never an assertion of the gate.
TEST_CASE("a wake-up for a handle that is another kind of handle in the changed program diverges") {
    auto offloading = [](bool extra_timer) -> Scenario {
        return [extra_timer](std::string& log) {
            std::optional<Timer> extra;
            if (extra_timer)
                extra.emplace();  // takes the id the offload request had when recorded
            log += std::to_string(must(offload([] { return 6 * 7; }), "offload"));
            return 0;
        };
    };
    TempDir dir;
    Diverged d = record_then_diverge(dir, offloading(false), offloading(true));
    INFO(d.replay.child.err);
    REQUIRE_THAT(d.report.trace_says, Catch::StartsWith("wake offload_done"));
    REQUIRE_THAT(d.report.program_did, Catch::Contains("as another kind of handle"));
}
