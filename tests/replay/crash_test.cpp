// Crashes of a recorded program (segfault, abort, failed assertion, stack overflow): the trace ends with the events just before the crash, and replay crashes at that same event.
#include "../support/reprise_test.hpp"

#include <reprise/record/chunk.hpp>

#include <reprise/runtime/assert.hpp>

#include <csignal>
#include <filesystem>
#include <sys/stat.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace reprise;
using namespace reprise::test;
using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__)
#define REPRISE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPRISE_TEST_ASAN 1
#endif
#endif

namespace {

enum class Crash { segfault, abort, assertion, stack_overflow };

const char* crash_name(Crash how) {
    switch (how) {
    case Crash::segfault: return "segfault";
    case Crash::abort: return "abort";
    case Crash::assertion: return "assertion";
    case Crash::stack_overflow: return "stack overflow";
    }
    return "?";
}

// An unmapped address the compiler cannot see through, so the store below is a
// real fault (not null: UBSan would stop at a null store before the fault).
volatile std::uintptr_t crash_address = 16;
int* volatile crash_target = nullptr;

// Deep enough to exhaust any fiber stack (a million 4 KiB frames); the volatile
// buffer keeps each frame alive.
int recurse(int depth) {
    volatile char frame[4096];
    frame[0] = static_cast<char>(depth);
    if (depth > 1'000'000)
        return frame[0];
    return recurse(depth + 1) + frame[0];
}

[[noreturn]] void crash(Crash how) {
    switch (how) {
    case Crash::segfault:
        *reinterpret_cast<int*>(crash_address) = 42;
        break;
    case Crash::abort:
        std::abort();
    case Crash::assertion:
        REPRISE_ASSERT_MSG(crash_target != nullptr, "the test's deliberate assertion failure");
        break;
    case Crash::stack_overflow:
        std::printf("%d\n", recurse(0));
        break;
    }
    std::abort();  // not reached
}

/// The program under test: a server task answers "ok N" to each line "req N" of a
/// client task of the same process, and crashes on the line "crash". The client
/// sends 20 requests, sleeping 1 ms between them (so the loop ticks on timers
/// too), prints each answer on stdout, then sends "crash" and waits.
int crashing_server(Options options, Crash how) {
    // As in a production process: Catch's own fatal-signal handlers (inherited by
    // this forked child) would print a test report into the program's output.
    for (int signo : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGTRAP})
        std::signal(signo, SIG_DFL);
    Runtime rt(std::move(options));
    return rt.run([&] {
        Listener listener = must(listen(Address::loopback(0)), "listen");
        auto server = spawn("server", [&] {
            Connection conn = must(listener.accept(generous), "accept");
            for (;;) {
                const std::string line = must(conn.read_until("\n", 1024, generous), "server read");
                if (line == "crash\n")
                    crash(how);
                must(conn.write("ok " + line.substr(4), generous), "answer");
            }
        });
        Connection client = must(connect(listener.local_address(), generous), "connect");
        for (int i = 0; i < 20; ++i) {
            must(client.write(fmt::format("req {}\n", i), generous), "request");
            const std::string answer = must(client.read_until("\n", 1024, generous), "client read");
            std::printf("%s", answer.c_str());
            std::fflush(stdout);
            must(sleep_for(1ms), "sleep");
        }
        must(client.write("crash\n", generous), "the fatal request");
        (void)client.read_some(1024, generous);  // the server dies before it answers
        return 0;
    });
}

/// How the crash shows in a child's status. ASan's own SIGSEGV handler (which the
/// runtime's hands a fault on to) reports and exits 1 instead of dying by the signal;
/// a stack overflow is reported by the runtime itself and dies by SIGSEGV anyway.
bool died_of(const ChildResult& child, Crash how) {
    switch (how) {
    case Crash::segfault:
#ifdef REPRISE_TEST_ASAN
        if (child.exited_with(1) && child.err.find("AddressSanitizer: SEGV") != std::string::npos)
            return true;
#endif
        return child.died_by(SIGSEGV);
    case Crash::abort:
    case Crash::assertion:
        return child.died_by(SIGABRT);
    case Crash::stack_overflow:
        return child.died_by(SIGSEGV) && child.err.find("stack overflow in task 'server'") != std::string::npos;
    }
    return false;
}

void check_crash_replays_at_the_same_event(Crash how, bool sealed = false) {
    INFO("crash by " << crash_name(how) << (sealed ? ", trace sealed" : ""));
    TempDir dir;
    const std::string path = dir / "trace";
    const std::string key_path = dir / "key";
    std::optional<trace::TraceKey> key;
    if (sealed) {
        std::string why;
        auto made = trace::write_new_trace_key(key_path, why);
        REQUIRE(made.ok());
        key = *made;
    }
    Options rec;
    rec.record_path = path;
    if (sealed)
        rec.trace_key_path = key_path;
    ChildResult recorded = run_in_child([&] { return crashing_server(rec, how); });
    INFO("record: " << recorded.describe());
    REQUIRE(died_of(recorded, how));
    std::string answers;
    for (int i = 0; i < 20; ++i)
        answers += fmt::format("ok {}\n", i);
    REQUIRE(recorded.out == answers);

    // The trace is intact, has no end record, and its last events are the ones right
    // before the crash: the fatal line read by the server, after the tick that
    // delivered it (both in the chunk the crash hook wrote: a chunk is sealed only
    // at a tick, before that tick's record), after the client's write of it.
    const TraceFacts facts = read_trace(path, true, key ? &*key : nullptr);
    INFO("trace: " << facts.records << " records" << (facts.error ? ", error: " + facts.error->message : std::string()));
    REQUIRE(facts.opened);
    REQUIRE_FALSE(facts.error.has_value());
    REQUIRE_FALSE(facts.saw_end);
    REQUIRE(facts.all.size() >= 3);
    // A sealed trace stays sealed to its last chunk, the one the crash hook wrote too.
    if (sealed)
        REQUIRE(facts.chunks_encrypted == facts.chunks);
    const std::uint64_t last = facts.all.size() - 1;
    const auto& fatal = std::get<trace::Wake>(facts.all[last].get());
    REQUIRE(fatal.wake == trace::WakeKind::bytes_read);
    REQUIRE(fatal.data == "crash\n");
    REQUIRE(trace::is<trace::Tick>(facts.all[last - 1].get()));
    REQUIRE(trace::is<trace::Output>(facts.all[last - 2].get()));
    const auto& write = std::get<trace::Output>(facts.all[last - 2].get());
    REQUIRE(write.length == 6);  // "crash\n"
    REQUIRE(write.digest == trace::digest64("crash\n"));

    // Replay crashes the same way, with the same output, at the same event: it
    // reaches the last event (--break-at stops just before it), it does not ask for
    // an event after it (that would end with "the trace ends", exit 2), and it does
    // not diverge on the way (exit 3).
    Options rep;
    rep.replay_path = path;
    if (sealed)
        rep.trace_key_path = key_path;
    ChildResult replayed = run_in_child([&] { return crashing_server(rep, how); });
    INFO("replay: " << replayed.describe());
    REQUIRE(died_of(replayed, how));
    // It says where it died in the trace's terms (under ASan, ASan's SEGV report replaces it).
    if (replayed.signaled)
        REQUIRE_THAT(replayed.err, Catch::Contains(fmt::format("reprise: replay: the program dies of signal {} at event {} of node",
                                                               replayed.signal, last)));
    REQUIRE(replayed.out == answers);
    REQUIRE(replayed.err.find("the trace ends") == std::string::npos);
    REQUIRE(replayed.err.find("DIVERGENCE") == std::string::npos);

    Options stop_before_last = rep;
    stop_before_last.break_at = last;
    ChildResult stopped = run_in_child([&] { return crashing_server(stop_before_last, how); });
    INFO("replay with --break-at=" << last << ": " << stopped.describe());
    REQUIRE(stopped.died_by(SIGTRAP));
    REQUIRE_THAT(stopped.err, Catch::Contains(fmt::format("break at event {} (wake bytes_read", last)));
    REQUIRE(stopped.out == answers);
}

} // namespace

TEST_CASE("a recorded program that segfaults leaves the events before the crash, and replay segfaults at the same event") {
    check_crash_replays_at_the_same_event(Crash::segfault);
}

TEST_CASE("a recorded program that aborts leaves the events before the crash, and replay aborts at the same event") {
    check_crash_replays_at_the_same_event(Crash::abort);
}

TEST_CASE("a sealed recording of a program that segfaults ends in a sealed chunk, and replays to the same crash") {
    check_crash_replays_at_the_same_event(Crash::segfault, true);
}

TEST_CASE("a recorded program whose assertion fails leaves the events before it, and replay fails it at the same event") {
    check_crash_replays_at_the_same_event(Crash::assertion);
}

TEST_CASE("a recorded program whose task overflows its stack leaves the events before it, and replay overflows at the same event") {
    check_crash_replays_at_the_same_event(Crash::stack_overflow);
}

namespace {

/// A replay with --mark-stdio that crashes as recorded: the crash hook writes out what the
/// program printed, each line marked "[node #N +S.mmms] ", the event numbers never going back.
void check_marked_output_survives_the_crash(Crash how) {
    INFO("crash by " << crash_name(how));
    TempDir dir;
    const std::string path = dir / "trace";
    Options rec;
    rec.record_path = path;
    ChildResult recorded = run_in_child([&] { return crashing_server(rec, how); });
    INFO("record: " << recorded.describe());
    REQUIRE(died_of(recorded, how));

    Options rep;
    rep.replay_path = path;
    rep.mark_stdio = true;
    ChildResult replayed = run_in_child([&] { return crashing_server(rep, how); });
    INFO("replay with --mark-stdio: " << replayed.describe());
    REQUIRE(died_of(replayed, how));
    std::vector<std::string> lines;
    for (std::size_t at = 0, nl; (nl = replayed.out.find('\n', at)) != std::string::npos; at = nl + 1)
        lines.push_back(replayed.out.substr(at, nl - at));
    REQUIRE(lines.size() == 20);
    std::uint64_t previous = 0;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        INFO("line " << i << ": " << lines[i]);
        REQUIRE(lines[i].rfind("[node #", 0) == 0);
        const std::size_t close = lines[i].find("s] ");
        REQUIRE(close != std::string::npos);
        REQUIRE(lines[i].substr(close + 3) == fmt::format("ok {}", i));
        const std::uint64_t event = std::stoull(lines[i].substr(7));
        REQUIRE(event >= previous);
        previous = event;
    }
    REQUIRE(previous > 0);
}

} // namespace

TEST_CASE("a replay with --mark-stdio that aborts as recorded writes out every line the program printed, marked") {
    check_marked_output_survives_the_crash(Crash::abort);
}

TEST_CASE("a replay with --mark-stdio that segfaults as recorded writes out every line the program printed, marked") {
    check_marked_output_survives_the_crash(Crash::segfault);
}

namespace {

/// Records `nodes` runtimes at once in this process: each runs a task that takes an app
/// input and sleeps, so each trace has records of its own. With `crash_after`, the last
/// one aborts in the middle of its run, while every runtime is alive with its crash hook.
int many_recording_runtimes(const std::string& dir, std::size_t nodes, bool crash_after) {
    for (int signo : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE})
        std::signal(signo, SIG_DFL);
    std::vector<std::unique_ptr<Runtime>> runtimes;
    for (std::size_t i = 0; i < nodes; ++i) {
        Options options;
        options.node_name = fmt::format("node-{}", i);
        options.seed = i;
        options.record_path = fmt::format("{}/node-{}.trace", dir, i);
        runtimes.push_back(std::make_unique<Runtime>(options));
    }
    for (auto& rt : runtimes) {
        const bool last = &rt == &runtimes.back();
        int code = rt->run([&] {
            std::string who = input<std::string>("who", [] { return Runtime::current()->node_name(); });
            for (int i = 0; i < 3; ++i)
                if (!sleep_for(100us).ok())
                    return 1;
            if (crash_after && last)
                std::abort();  // mid-run: only the crash hook can flush this trace
            return who == Runtime::current()->node_name() ? 0 : 1;
        });
        if (code != 0)
            return code;
    }
    runtimes.clear();
    return 0;
}

} // namespace

TEST_CASE("64 recording runtimes in one process each write their trace, and all are flushed by a crash") {
    auto crash = GENERATE(false, true);
    CAPTURE(crash);
    TempDir dir;
    constexpr std::size_t nodes = 64;
    auto child = run_in_child([&] { return many_recording_runtimes(dir.path(), nodes, crash); }, std::chrono::seconds(60));
    INFO(child.describe());
    if (crash)
        REQUIRE(child.died_by(SIGABRT));
    else
        REQUIRE(child.exited_with(0));
    for (std::size_t i = 0; i < nodes; ++i) {
        TraceFacts facts = read_trace(dir / fmt::format("node-{}.trace", i));
        INFO("node-" << i << ": " << facts.open_error);
        REQUIRE(facts.opened);
        REQUIRE_FALSE(facts.error.has_value());
        // Tick, spawn, input, three timer ticks and wake-ups at least: each was flushed.
        REQUIRE(facts.records >= 8);
        REQUIRE(facts.saw_end == !(crash && i == nodes - 1));
    }
}

TEST_CASE("one recording runtime more than limits::crash_hooks_max is refused with a message") {
    TempDir dir;
    auto child = run_in_child(
        [&] { return many_recording_runtimes(dir.path(), limits::crash_hooks_max + 1, false); },
        std::chrono::seconds(120));
    INFO(child.describe());
    REQUIRE(child.died_by(SIGABRT));
    REQUIRE_THAT(child.err, Catch::Contains("limits::crash_hooks_max"));
    // The runtimes that did start had their traces flushed by the abort.
    REQUIRE(read_trace(dir / "node-0.trace").opened);
}

// --- a trace is never overwritten, and is private ------------------------------------------

namespace {
int record_once(const std::string& path, std::string node = "node") {
    Options o;
    o.record_path = path;
    o.node_name = std::move(node);
    Runtime rt(o);
    return rt.run([] { return sleep_for(1ms).ok() ? 0 : 1; });
}
} // namespace

TEST_CASE("recording never overwrites an existing trace and creates it readable by its owner only") {
    TempDir dir;
    const std::string path = dir / "incident.trace";
    REQUIRE(record_once(path) == 0);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    const std::string before = slurp(path);
    // A restarted service with the same command line: refused, the incident's trace kept whole.
    try {
        (void)record_once(path);
        FAIL("recording into an existing trace was not refused");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()).find("never overwrites a trace") != std::string::npos);
        CHECK(std::string(e.what()).find("%c") != std::string::npos);
    }
    CHECK(slurp(path) == before);
    // Devices are written, not created: /dev/null takes a recording.
    CHECK(record_once("/dev/null") == 0);
}

TEST_CASE("a trace path pattern names each run's trace: the number past the highest, pid, node, start time") {
    TempDir dir;
    REQUIRE(record_once(dir / "kv.%c.trace") == 0);
    REQUIRE(record_once(dir / "kv.%c.trace") == 0);
    CHECK(file_is_there(dir / "kv.1.trace"));
    CHECK(file_is_there(dir / "kv.2.trace"));
    // A number past a gap: newer runs always have higher numbers (retention removes old ones).
    REQUIRE(spit(dir / "kv.4.trace", "someone else's"));
    REQUIRE(record_once(dir / "kv.%c.trace") == 0);
    CHECK_FALSE(file_is_there(dir / "kv.3.trace"));
    CHECK(slurp(dir / "kv.4.trace") == "someone else's");
    CHECK(file_is_there(dir / "kv.5.trace"));
    std::filesystem::remove(dir / "kv.1.trace");
    REQUIRE(record_once(dir / "kv.%c.trace") == 0);
    CHECK(file_is_there(dir / "kv.6.trace"));
    CHECK_FALSE(file_is_there(dir / "kv.1.trace"));
    REQUIRE(record_once(dir / "%n-%p-%%.trace", "edge") == 0);
    CHECK(file_is_there(dir / fmt::format("edge-{}-%.trace", ::getpid())));
    REQUIRE(record_once(dir / "t.%t.trace") == 0);
    bool stamped = false;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
        const std::string name = entry.path().filename().string();
        // t.20261130T151000Z.trace
        stamped = stamped || (name.size() == 24 && name.rfind("t.", 0) == 0 && name[10] == 'T' && name[17] == 'Z' &&
                              name.substr(18) == ".trace");
    }
    CHECK(stamped);
    // An unknown escape (a typo such as %C would become a fixed name that refuses the next start) is
    // refused, naming the escapes, and creates nothing.
    for (const char* bad : {"t.%q", "t.%C.trace", "t.trace%"}) {
        INFO(bad);
        try {
            (void)record_once(dir / bad);
            FAIL("an unknown escape was accepted");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()).find("unknown escape") != std::string::npos);
            CHECK(std::string(e.what()).find("%c the next number") != std::string::npos);
        }
    }
    for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
        CHECK(entry.path().filename().string().find("t.%") == std::string::npos);
}
