// Replay with --mark-stdio: every line the program prints, marked with node, event and virtual time; none lost, no deadlock on a full pipe.
#include "../support/reprise_test.hpp"

#include <reprise/runtime/limits.hpp>

#include <cstdio>
#include <string>
#include <vector>

using namespace reprise;
using namespace reprise::test;
using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__)
#define REPRISE_TEST_LEAK_CHECKED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPRISE_TEST_LEAK_CHECKED 1
#endif
#endif

namespace {
/// Set in a child that leaves with exit() on purpose (the point of its test): LeakSanitizer's
/// check at exit would report what the test framework allocated before the fork, not this
/// program's leaks.
bool leak_check_off = false;
} // namespace

#ifdef REPRISE_TEST_LEAK_CHECKED
extern "C" int __lsan_is_turned_off() { return leak_check_off ? 1 : 0; }
#endif

namespace {

constexpr std::size_t flood_lines = 64 * 1024;        // 4 MiB of stdout in one event: four times a 1 MiB pipe
constexpr std::size_t long_line_bytes = 200 * 1024;
static_assert(long_line_bytes > limits::mark_stdio_line_bytes_max, "the long line is longer than the marker holds back");

/// Prints a flood of lines to stdout within one event, a line longer than the marker's line
/// limit, a line on stderr, then (after a timer, so in a later event) a last line without its newline.
int printing_program(Options options) {
    Runtime rt(std::move(options));
    return rt.run([] {
        for (std::size_t i = 0; i < flood_lines; ++i)
            std::printf("flood %06zu %s\n", i, std::string(48, 'x').c_str());
        std::printf("%s\n", std::string(long_line_bytes, 'L').c_str());
        std::fprintf(stderr, "to stderr\n");
        must(sleep_for(5ms), "sleep");
        std::printf("after the sleep, no newline");
        return 0;
    });
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::size_t at = 0;
    for (std::size_t nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1)
        lines.push_back(text.substr(at, nl - at));
    if (at < text.size())
        lines.push_back(text.substr(at));
    return lines;
}

struct Marked {
    std::uint64_t event = 0;
    std::string vt;
    std::string text;
};

// "[node #N +S.mmms] text" taken apart; fails the test when a line is not marked.
Marked parse(const std::string& line) {
    INFO("line: " << line.substr(0, 120));
    REQUIRE(line.rfind("[node #", 0) == 0);
    const std::size_t close = line.find("s] ");
    REQUIRE(close != std::string::npos);
    const std::size_t plus = line.find(" +");
    REQUIRE(plus < close);
    return Marked{std::stoull(line.substr(7)), line.substr(plus + 2, close - plus - 2), line.substr(close + 3)};
}

} // namespace

TEST_CASE("--mark-stdio marks every line once, overlong ones too, and never blocks on a full pipe") {
    TempDir dir;
    Options rec;
    rec.record_path = dir / "trace";
    ChildResult recorded = run_in_child([&] { return printing_program(rec); });
    INFO("record: exit " << recorded.exit_code << ", stderr " << recorded.err.substr(0, 500));
    REQUIRE(recorded.exited_with(0));

    Options rep;
    rep.replay_path = rec.record_path;
    rep.mark_stdio = true;
    // The watchdog turns a deadlock on a full pipe into a failure.
    ChildResult replayed = run_in_child([&] { return printing_program(rep); }, std::chrono::seconds(60));
    INFO("replay: exit " << replayed.exit_code << (replayed.hung ? " (hung)" : "") << ", stderr "
                         << replayed.err.substr(0, 800));
    REQUIRE_FALSE(replayed.hung);
    REQUIRE(replayed.exited_with(0));

    const std::vector<std::string> out = lines_of(replayed.out);
    REQUIRE(out.size() == flood_lines + 2);
    std::vector<Marked> marked;
    for (const std::string& line : out)
        marked.push_back(parse(line));
    for (std::size_t i = 0; i < flood_lines; ++i)
        REQUIRE(marked[i].text == fmt::format("flood {:06} {}", i, std::string(48, 'x')));
    // Every flood line was printed in one event: they carry one number.
    for (std::size_t i = 1; i < flood_lines; ++i)
        REQUIRE(marked[i].event == marked[0].event);
    // A line longer than the marker holds is marked once, at its start, and goes out whole.
    REQUIRE(marked[flood_lines].text == std::string(long_line_bytes, 'L'));
    REQUIRE(marked[flood_lines].event == marked[0].event);
    // The last line came after the timer fired, in a later event and at a later time; it had no
    // newline and got one.
    const Marked& last = marked.back();
    REQUIRE(last.text == "after the sleep, no newline");
    REQUIRE(last.event > marked[0].event);
    REQUIRE(last.vt != marked[0].vt);
    REQUIRE(replayed.out.back() == '\n');

    // stderr: the program's line marked with the flood's event; the replay's own report not marked.
    const std::vector<std::string> err = lines_of(replayed.err);
    REQUIRE_FALSE(err.empty());
    const Marked to_stderr = parse(err.front());
    REQUIRE(to_stderr.text == "to stderr");
    REQUIRE(to_stderr.event == marked[0].event);
    REQUIRE_THAT(replayed.err, Catch::Contains("\nreprise: no divergence"));
}

TEST_CASE("--mark-stdio writes out a program's last lines when it calls exit() itself") {
    // The replay calls exit() where the recording returned: a recording ended by exit() keeps no
    // trace to replay (the recorder seals it when the run ends), and no event after it is asked for.
    auto exiting_program = [](Options options) {
        const bool replaying = !options.replay_path.empty();
        Runtime rt(std::move(options));
        return rt.run([replaying] {
            std::printf("a whole line\n");
            must(sleep_for(1ms), "sleep");
            std::printf("a partial line");  // in stdout's buffer when exit() runs
            if (replaying) {
                leak_check_off = true;
                std::exit(7);
            }
            return 0;
        });
    };
    TempDir dir;
    Options rec;
    rec.record_path = dir / "trace";
    ChildResult recorded = run_in_child([&] { return exiting_program(rec); });
    INFO("record: " << recorded.describe());
    REQUIRE(recorded.exited_with(0));

    Options rep;
    rep.replay_path = rec.record_path;
    rep.mark_stdio = true;
    ChildResult replayed = run_in_child([&] { return exiting_program(rep); });
    INFO("replay: " << replayed.describe());
    REQUIRE(replayed.exited_with(7));
    const std::vector<std::string> out = lines_of(replayed.out);
    REQUIRE(out.size() == 2);
    const Marked first = parse(out[0]);
    const Marked last = parse(out[1]);
    REQUIRE(first.text == "a whole line");
    REQUIRE(last.text == "a partial line");
    REQUIRE(last.event > first.event);
}
