// debug_tasks: spawns --tasks sleeping tasks and waits with all of them parked, for `bench/run debug`'s tasks_s.
//
// Recorded once, then replayed under gdb: the benchmark stops the replay at the timer that wakes
// the main task (every other task is parked in its sleep by then) and times `reprise tasks`.
// Then the tasks are cancelled and joined, and the program prints one line and exits 0.
#include <reprise/runtime/reprise.hpp>

#include <fmt/core.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace reprise;

namespace {

constexpr std::uint64_t tasks_max = 100'000;

constexpr const char* usage = R"(Program usage:
  debug_tasks [--tasks=N]
      spawns N tasks (default 10000, at most 100000), each asleep for an hour; sleeps 10 ms itself
      with all of them parked, then cancels and joins them; prints "parked N tasks")";

} // namespace

int main(int argc, char** argv) {
    return run_main(
        argc, argv,
        [](MainContext& ctx) -> int {
            std::uint64_t count = 10'000;
            for (std::size_t i = 1; i < ctx.args.size(); ++i) {
                const std::string& a = ctx.args[i];
                const std::string prefix = "--tasks=";
                std::uint64_t n = 0;
                if (a.rfind(prefix, 0) != 0 ||
                    std::from_chars(a.data() + prefix.size(), a.data() + a.size(), n).ec != std::errc{} || n == 0 ||
                    n > tasks_max) {
                    fmt::print(stderr, "debug_tasks: bad argument '{}'\n{}\n", a, usage);
                    return 2;
                }
                count = n;
            }
            std::vector<Task<void>> sleepers;
            sleepers.reserve(count);
            for (std::uint64_t i = 0; i < count; ++i)
                sleepers.push_back(spawn(fmt::format("sleeper-{}", i), []() { (void)sleep_for(1h); }));
            // The benchmark stops here: the first timer to fire is this one, every sleeper parked.
            (void)sleep_for(10ms);
            for (auto& t : sleepers)
                t.cancel();
            for (auto& t : sleepers)
                (void)t.join();
            fmt::print("parked {} tasks\n", count);
            std::fflush(stdout);
            return 0;
        },
        ProgramInfo{"debug_tasks", usage});
}
