// Tests of the main wrapper: flags, --help, exit codes, and the graceful stop on SIGINT/SIGTERM.
//
// Most tests here are of flag parsing and of run_main's entry, not scenarios of a program.
// The programs run_main runs for their exit code or a stop by signal are recorded with
// --record and replayed with --replay in a child (run_main_recorded_and_replayed); the
// runtime's own stop scenarios run through run_main_task or record_and_replay.
// A signal comes from outside the program: the tests' programs send it to themselves only
// when live or recording (`!replaying()`); a replay takes it from the trace.
// Scenarios that run live only, and why:
// - "--seed=N makes random_u64 reproducible" and the argument tests: they compare what
//   run_main hands the program under different flags; the draws themselves are
//   replayed by tests/io/random_signal_test.cpp.
// - "--stack-size sets the default fiber stack": a flag test; the stack a recording
//   ran with is not in the trace (see stack_test.cpp).
#include <reprise/runtime/reprise.hpp>
#include "../support/reprise_test.hpp"


#include <catch2/catch.hpp>
#include <fmt/core.h>

#include <csignal>
#include <cstdio>
#include <cstdint>
#include <string>
#include <vector>

using namespace reprise;
using namespace std::chrono_literals;

namespace {

/// An argv for run_main built from strings (run_main takes a mutable char**).
class Argv {
public:
    Argv(std::initializer_list<std::string> args) : strings_(args) {
        for (auto& s : strings_)
            pointers_.push_back(s.data());
        pointers_.push_back(nullptr);
    }
    int argc() const { return static_cast<int>(strings_.size()); }
    char** argv() { return pointers_.data(); }

private:
    std::vector<std::string> strings_;
    std::vector<char*> pointers_;
};

template <class Entry>
int run_with(Argv argv, Entry entry, ProgramInfo info = {}) {
    return run_main(argv.argc(), argv.argv(), entry, std::move(info));
}

/// Runs `entry` with run_main recording (--record) and returns its exit code, after
/// replaying the trace with --replay in a child that must end the same way and say
/// it replayed every record. What the program prints (to stdout) must match too.
template <class Entry>
int run_main_recorded_and_replayed(Entry entry) {
    test::TempDir dir;
    const std::string trace = dir / "trace";
    const test::ChildResult recorded = test::run_in_child([&] { return run_with({"prog", "--record=" + trace}, entry); });
    INFO("recorded: " << recorded.describe());
    REQUIRE(recorded.exited);
    const test::TraceFacts facts = test::read_trace(trace);
    REQUIRE(facts.saw_end);
    REQUIRE_FALSE(facts.error.has_value());
    const test::ChildResult replayed = test::run_in_child([&] { return run_with({"prog", "--replay=" + trace}, entry); });
    INFO("replayed: " << replayed.describe());
    REQUIRE(replayed.exited_with(recorded.exit_code));
    REQUIRE(replayed.out == recorded.out);
    REQUIRE_THAT(replayed.err, Catch::Contains(fmt::format("replay done: {} events", facts.records)));
    return recorded.exit_code;
}

} // namespace

TEST_CASE("--help prints the usage and returns 0 without running the program") {
    auto child = test::run_in_child([] {
        return run_with({"prog", "--help"}, [](MainContext&) { return 7; },
                        ProgramInfo{.name = "demo-server", .usage = "  --port=N   where to listen"});
    });
    INFO(child.describe());
    REQUIRE(child.exited_with(0));
    REQUIRE_THAT(child.out, Catch::Contains("Usage: demo-server") && Catch::Contains("--port=N   where to listen") &&
                                Catch::Contains("--seed N") && Catch::Contains("--stack-size"));
}

TEST_CASE("a bad runtime flag returns 2 with a message naming the flag") {
    auto flag = GENERATE(as<std::string>{}, "--seed=abc", "--seed=", "--stack-size=1k", "--stack-size=64m",
                         "--offload-threads=0", "--node=");
    CAPTURE(flag);
    auto child = test::run_in_child([&] {
        return run_with({"prog", flag}, [](MainContext&) {
            std::printf("the program ran\n");
            return 0;
        });
    });
    INFO(child.describe());
    REQUIRE(child.exited_with(2));
    const std::string name = flag.substr(0, flag.find('='));
    REQUIRE_THAT(child.err, Catch::Contains(name) && Catch::Contains("--help"));
    REQUIRE_THAT(child.out, !Catch::Contains("the program ran"));
}

TEST_CASE("--seed=N makes random_u64 reproducible") {
    auto draw = [](std::string seed_flag, std::uint64_t& seed_seen) {
        std::vector<std::uint64_t> out;
        int code = run_with({"prog", seed_flag}, [&](MainContext& ctx) {
            seed_seen = ctx.runtime.seed();
            for (int i = 0; i < 8; ++i)
                out.push_back(random_u64());
            return 0;
        });
        REQUIRE(code == 0);
        return out;
    };
    std::uint64_t seed_a = 0;
    std::uint64_t seed_b = 0;
    std::uint64_t seed_c = 0;
    auto a = draw("--seed=18446744073709551615", seed_a);
    auto b = draw("--seed=18446744073709551615", seed_b);
    auto c = draw("--seed=42", seed_c);
    REQUIRE(seed_a == UINT64_MAX);
    REQUIRE(seed_b == UINT64_MAX);
    REQUIRE(seed_c == 42);
    REQUIRE(a == b);
    REQUIRE(a != c);
}

TEST_CASE("the program gets its own arguments without the runtime's flags") {
    std::vector<std::string> args;
    std::string node;
    int code = run_with({"prog", "--node=n1", "--port=80", "--seed=5", "file", "--", "--seed=6", "--help"},
                        [&](MainContext& ctx) {
                            args = ctx.args;
                            node = ctx.runtime.node_name();
                            return static_cast<int>(ctx.runtime.seed());
                        });
    REQUIRE(code == 5);
    REQUIRE(node == "n1");
    REQUIRE(args == std::vector<std::string>{"prog", "--port=80", "file", "--seed=6", "--help"});
}

TEST_CASE("runtime flags take their value as the next argument too, and -h is --help") {
    std::vector<std::string> args;
    std::string node;
    int code = run_with({"prog", "--node", "n2", "--port", "7000", "--seed", "9", "--stack-size", "512k", "file"},
                        [&](MainContext& ctx) {
                            args = ctx.args;
                            node = ctx.runtime.node_name();
                            return static_cast<int>(ctx.runtime.seed());
                        });
    REQUIRE(code == 9);
    REQUIRE(node == "n2");
    REQUIRE(args == std::vector<std::string>{"prog", "--port", "7000", "file"});

    auto child = test::run_in_child([] {
        return run_with({"prog", "-h"}, [](MainContext&) { return 7; }, ProgramInfo{.name = "demo-server"});
    });
    INFO(child.describe());
    REQUIRE(child.exited_with(0));
    REQUIRE_THAT(child.out, Catch::Contains("Usage: demo-server") && Catch::Contains("--record PATH"));
}

TEST_CASE("a near miss of a runtime flag is refused with the flag it resembles, unless the program declares it") {
    auto [typo, meant] = GENERATE(table<std::string, std::string>({{"--recrod=t.trace", "--record"},
                                                                   {"--replya", "--replay"},
                                                                   {"--sede", "--seed"},
                                                                   {"--break_at=3", "--break-at"}}));
    CAPTURE(typo);
    auto child = test::run_in_child([&] {
        return run_with({"prog", typo}, [](MainContext&) {
            std::printf("the program ran\n");
            return 0;
        });
    });
    INFO(child.describe());
    REQUIRE(child.exited_with(2));
    REQUIRE_THAT(child.err, Catch::Contains("did you mean '" + meant + "'"));
    REQUIRE_THAT(child.out, !Catch::Contains("the program ran"));

    // Declared by the program, or after --, the same flag is the program's.
    const std::string flag = typo.substr(0, typo.find('='));
    std::vector<std::string> args;
    REQUIRE(run_with({"prog", typo}, [&](MainContext& ctx) { args = ctx.args; return 0; },
                     ProgramInfo{.name = "p", .usage = "", .flags = {flag}}) == 0);
    REQUIRE(args == std::vector<std::string>{"prog", typo});
    REQUIRE(run_with({"prog", "--", typo}, [&](MainContext& ctx) { args = ctx.args; return 0; }) == 0);
    REQUIRE(args == std::vector<std::string>{"prog", typo});
    // Flags far from every runtime flag are the program's business.
    REQUIRE(run_with({"prog", "--port=1", "--peers", "a,b"}, [&](MainContext& ctx) { args = ctx.args; return 0; }) == 0);
    REQUIRE(args == std::vector<std::string>{"prog", "--port=1", "--peers", "a,b"});
}

TEST_CASE("flags that cannot take effect are refused") {
    auto [flags, says] = GENERATE(table<std::vector<std::string>, std::string>({
        {{"--break-at=5"}, "--break-at applies to a replay"},
        {{"--speed", "1"}, "--speed applies to a replay"},
        {{"--record-full"}, "--record-full applies to a recording"},
        {{"--record-fsync"}, "--record-fsync applies to a recording"},
        {{"--record-segment=8m"}, "--record-segment applies to a recording"},
    }));
    CAPTURE(flags);
    auto child = test::run_in_child([&] {
        std::vector<std::string> argv{"prog"};
        argv.insert(argv.end(), flags.begin(), flags.end());
        std::vector<char*> pointers;
        for (auto& a : argv)
            pointers.push_back(a.data());
        pointers.push_back(nullptr);
        return run_main(static_cast<int>(argv.size()), pointers.data(), [](MainContext&) {
            std::printf("the program ran\n");
            return 0;
        });
    });
    INFO(child.describe());
    REQUIRE(child.exited_with(2));
    REQUIRE_THAT(child.err, Catch::Contains(says));
    REQUIRE_THAT(child.out, !Catch::Contains("the program ran"));
}

TEST_CASE("closest_flag suggests a near known flag and nothing for a far or known one") {
    const std::vector<std::string> known{"--port", "--bind", "--maxmemory", "--requirepass"};
    CHECK(closest_flag("--prot", known) == "--port");
    CHECK(closest_flag("--maxmemroy", known) == "--maxmemory");
    CHECK(closest_flag("--requirepas", known) == "--requirepass");
    CHECK(closest_flag("--port", known).empty());
    CHECK(closest_flag("--verbose", known).empty());
    CHECK(closest_flag("--bd", known).empty());
}

TEST_CASE("run_main returns the program's exit code") {
    auto returns_3 = [](MainContext&) {
        sleep_for(1ms).value();
        return 3;
    };
    REQUIRE(run_with({"prog"}, [](MainContext&) { return 0; }) == 0);
    REQUIRE(run_with({"prog"}, returns_3) == 3);
    REQUIRE(run_main_recorded_and_replayed([](MainContext&) { return 0; }) == 0);
    REQUIRE(run_main_recorded_and_replayed(returns_3) == 3);
}

TEST_CASE("--stack-size sets the default fiber stack") {
    // With 1 MiB stacks, main can hold a 700 KiB frame chain.
    auto child = test::run_in_child([] {
        return run_with({"prog", "--stack-size=1m"}, [](MainContext&) {
            auto t = spawn("big-frames", [] {
                // Touched from the top down, so a stack too small faults on its guard page.
                volatile char block[700 * 1024];
                for (std::size_t i = sizeof block; i > 0; i -= 1024)
                    block[i - 1] = 1;
                block[0] = 2;
                return block[0] == 2 && block[sizeof block - 1] == 1;
            });
            return t.join().value() ? 0 : 1;
        });
    });
    INFO(child.describe());
    REQUIRE(child.exited_with(0));
}

TEST_CASE("SIGTERM cancels main's blocking sleep and run_main returns") {
    // The program prints what it saw (compared between recording and replay) and
    // returns 4 only when main's sleep was cancelled by the stop.
    auto program = [](MainContext& ctx) {
        spawn("raiser", [&] {
            if (!ctx.runtime.replaying())
                ::raise(SIGTERM);
            // Only main is cancelled by the stop; this task is drained once main returns.
            std::printf("helper: %s\n", errc_name(sleep_for(1h).code()));
            std::fflush(stdout);
        });
        const Errc main_sleep = sleep_for(1h).code();
        std::printf("main: %s stop_requested=%d\n", errc_name(main_sleep), ctx.runtime.stop_requested() ? 1 : 0);
        std::fflush(stdout);
        return main_sleep == Errc::cancelled && ctx.runtime.stop_requested() ? 4 : 1;
    };
    const test::ChildResult live = test::run_in_child([&] { return run_with({"prog"}, program); });
    INFO(live.describe());
    REQUIRE(live.exited_with(4));
    REQUIRE(live.out == "main: cancelled stop_requested=1\nhelper: cancelled\n");
    REQUIRE(run_main_recorded_and_replayed(program) == 4);
}

TEST_CASE("SIGINT cancels main's blocking accept") {
    // Returns 0 only when the accept was cancelled.
    auto program = [](MainContext& ctx) {
        Listener listener = test::must(listen(Address::loopback(0)), "listen");
        spawn("raiser", [&] {
            if (!ctx.runtime.replaying())
                ::kill(::getpid(), SIGINT);
        });
        auto conn = listener.accept();
        return !conn.ok() && conn.code() == Errc::cancelled ? 0 : 1;
    };
    REQUIRE(run_with({"prog"}, program) == 0);
    REQUIRE(run_main_recorded_and_replayed(program) == 0);
}

TEST_CASE("a runtime with stop_on_signals stops gracefully on SIGTERM") {
    Options options;
    options.stop_on_signals = true;
    test::run_main_task(
        [] {
            spawn("raiser", [] {
                sleep_for(1ms).value();
                if (!Runtime::current()->replaying())
                    ::raise(SIGTERM);
            });
            REQUIRE(sleep_for(1h).code() == Errc::cancelled);
            REQUIRE(Runtime::current()->stop_requested());
        },
        options);
}

TEST_CASE("request_stop cancels only main and the others are drained after it returns") {
    // The worker ends while the runtime drains, after main returned: the test reads the
    // log after run(), live and in the recording (whose replay must leave the same log).
    const test::Scenario scenario = [](std::string& log) {
        spawn("worker", [&] { log += std::string("worker:") + errc_name(sleep_for(1h).code()) + "\n"; });
        spawn("stopper", [] { Runtime::current()->request_stop(); });
        log += std::string("main:") + errc_name(sleep_for(1h).code());
        log += Runtime::current()->stop_requested() ? " stop_requested\n" : "\n";
        return 8;
    };
    {
        Runtime rt;
        std::string log;
        REQUIRE(rt.run([&] { return scenario(log); }) == 8);
        REQUIRE(rt.stop_requested());
        REQUIRE(log == "main:cancelled stop_requested\nworker:cancelled\n");
    }
    test::TempDir dir;
    const test::RoundTrip trip = test::record_and_replay(dir / "trace", scenario);
    REQUIRE(trip.recorded.exit_code == 8);
    REQUIRE(trip.recorded.log == "main:cancelled stop_requested\nworker:cancelled\n");
}
