// A trace's lock and outcome file, and retention's choice among a pattern's runs (record/trace_state.hpp).
#include "../support/reprise_test.hpp"

#include <reprise/record/trace_state.hpp>

#include <cstdio>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/file.h>
#include <unistd.h>

namespace fs = std::filesystem;
using reprise::trace::Outcome;

namespace {

struct TempDir {
    fs::path path;
    TempDir() {
        char name[] = "/tmp/reprise-trace-state-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path = name;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string file(const std::string& name, std::size_t bytes) const {
        const std::string p = (path / name).string();
        std::ofstream(p) << std::string(bytes, 'x');
        return p;
    }
};

void outcome(const std::string& trace, Outcome o) {
    const std::string path = reprise::trace::outcome_path(trace);
    REQUIRE(reprise::trace::write_outcome(path.c_str(), (path + ".tmp").c_str(), o));
}

// Start times an hour ago, a second apart: a run without an outcome file (ordered by its last
// change, now) comes after them all.
constexpr std::int64_t an_hour_ago_ns(std::int64_t now_ns) { return now_ns - 3600'000'000'000; }
std::int64_t start_ns(int run) {
    const auto now = fs::file_time_type::clock::now().time_since_epoch();
    return an_hour_ago_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()) + run * 1'000'000'000ll;
}

Outcome exited(int code, int run) {
    return Outcome{.ended = Outcome::Ended::exited, .exit_code = code, .start_wall_ns = start_ns(run)};
}

} // namespace

TEST_CASE("a pattern's wildcards match what the recorder puts there, and nothing else") {
    using reprise::trace::pattern_matches;
    std::uint64_t counter = 0;
    REQUIRE(pattern_matches("kv.%c.trace", "kv.12.trace", &counter));
    REQUIRE(counter == 12);
    REQUIRE_FALSE(pattern_matches("kv.%c.trace", "kv..trace"));
    REQUIRE_FALSE(pattern_matches("kv.%c.trace", "kv.1x.trace"));
    REQUIRE_FALSE(pattern_matches("kv.%c.trace", "kv.1.trace.0"));
    REQUIRE(pattern_matches("%n.%p.%t.trace", "node-1.4242.20261130T151000Z.trace"));
    REQUIRE_FALSE(pattern_matches("%n.%t.trace", "node-1.20261130T1510Z.trace"));
    REQUIRE(pattern_matches("100%%-%c", "100%-3"));
    REQUIRE_FALSE(pattern_matches("other.%c.trace", "kv.1.trace"));
}

TEST_CASE("an outcome file reads back as written, and a damaged one is refused with a message") {
    TempDir d;
    const std::string trace = (d.path / "t.trace").string();
    REQUIRE_FALSE(reprise::trace::read_outcome(trace).has_value());
    outcome(trace, Outcome{.ended = Outcome::Ended::crashed, .signal = 11, .recording = Outcome::Recording::budget,
                           .stored_bytes = 4096, .budget_bytes = 8192, .start_wall_ns = -5});
    auto o = reprise::trace::read_outcome(trace);
    REQUIRE(o.has_value());
    REQUIRE(o->ended == Outcome::Ended::crashed);
    REQUIRE(o->signal == 11);
    REQUIRE(o->recording == Outcome::Recording::budget);
    REQUIRE(o->budget_bytes == 8192);
    REQUIRE(o->start_wall_ns == -5);
    REQUIRE(reprise::trace::describe_outcome(*o) == "run crashed with SIGSEGV");
    REQUIRE((fs::status(reprise::trace::outcome_path(trace)).permissions() & fs::perms::all) ==
            (fs::perms::owner_read | fs::perms::owner_write));
    std::ofstream(reprise::trace::outcome_path(trace)) << "reprise-outcome 1\nended sideways\n";
    std::string why;
    REQUIRE_FALSE(reprise::trace::read_outcome(trace, &why).has_value());
    REQUIRE(why.find("bad line 'ended sideways'") != std::string::npos);
}

TEST_CASE("a trace is being written while another open file holds its lock, and not after") {
    TempDir d;
    const std::string trace = d.file("t.trace", 10);
    REQUIRE_FALSE(reprise::trace::being_written(trace));
    const int fd = ::open(trace.c_str(), O_RDONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    REQUIRE(::flock(fd, LOCK_EX) == 0);
    REQUIRE(reprise::trace::being_written(trace));
    REQUIRE(reprise::trace::kept_because(true, std::nullopt) == "still being written");
    ::close(fd);
    REQUIRE_FALSE(reprise::trace::being_written(trace));
}

TEST_CASE("retention removes the oldest clean runs, segments and outcome files included, and keeps the others") {
    TempDir d;
    // Run 1: clean, two segments. Run 2: clean. Run 3: exit code 3. Run 4: no outcome (killed).
    // Run 5: crashed. Run 6: clean. Another pattern's file is never looked at.
    const std::string r1 = (d.path / "kv.1.trace").string();
    d.file("kv.1.trace.0", 1000);
    d.file("kv.1.trace.1", 1000);
    outcome(r1, exited(0, 1));
    outcome(d.file("kv.2.trace", 1000), exited(0, 2));
    outcome(d.file("kv.3.trace", 1000), exited(3, 3));
    d.file("kv.4.trace", 1000);
    outcome(d.file("kv.5.trace", 1000), Outcome{.ended = Outcome::Ended::crashed, .signal = 6, .start_wall_ns = start_ns(5)});
    outcome(d.file("kv.6.trace", 1000), exited(0, 6));
    d.file("other.1.trace", 1000);

    std::string why;
    auto runs = reprise::trace::find_runs(d.path.string(), "kv.%c.trace", &why);
    REQUIRE(why.empty());
    REQUIRE(runs.size() == 6);
    REQUIRE(runs[0].path == r1);
    REQUIRE(runs[0].files.size() == 3);  // two segments, then the outcome file
    REQUIRE(runs[0].files.back() == reprise::trace::outcome_path(r1));
    REQUIRE(runs[1].path == (d.path / "kv.2.trace").string());
    REQUIRE(runs[5].path == (d.path / "kv.4.trace").string());  // no outcome: its last change, now
    REQUIRE_FALSE(runs[5].outcome.has_value());

    auto plan = reprise::trace::plan_retention(runs, {.keep_runs = 3});
    // At most two old runs: the clean ones go (1, 2, 6); 3, 4 and 5 stay whatever the count.
    REQUIRE(plan.remove.size() == 3);
    REQUIRE(runs[plan.remove[0]].path == r1);
    REQUIRE(plan.kept_runs == 3);
    REQUIRE_FALSE(plan.over_budget);

    auto by_bytes = reprise::trace::plan_retention(runs, {.keep_bytes = 6000, .reserve_bytes = 1000});
    // Old runs within 5000 bytes (of 7000 and six outcome files): runs 1 and 2 go, the oldest clean ones.
    REQUIRE(by_bytes.remove.size() == 2);
    REQUIRE(runs[by_bytes.remove[1]].path == (d.path / "kv.2.trace").string());
    REQUIRE(by_bytes.kept_bytes <= 5000);
    REQUIRE(by_bytes.room_bytes == 6000 - by_bytes.kept_bytes);

    auto full = reprise::trace::plan_retention(runs, {.keep_bytes = 2500, .reserve_bytes = 1000});
    // The three runs kept whatever the budget take more than 2500 bytes: nothing is recorded.
    REQUIRE(full.over_budget);
}
