// warp_program: a timer-driven program that is idle most of its time, for the warp benchmark.
//
// A periodic Timer fires every --period-ms (100 ms by default) for --seconds of loop time
// (12 s by default). Each fire does a little work (a hash over a 4 KiB buffer and one
// precise_now(), a recorded input), and a second task sleeps in steps of 700 ms beside it.
// Recorded, it takes --seconds of wall time; replayed, the runtime warps its clock over the
// idle stretches, so the replay takes as long as the work alone.
#include <reprise/runtime/reprise.hpp>

#include <fmt/core.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;
using namespace reprise;

namespace {

constexpr const char* usage = R"(Program usage:
  warp_program [--seconds=S] [--period-ms=P]
      fire a periodic timer every P ms (default 100) for S seconds of loop time (default 12),
      doing a little work per fire, with a sleeping task beside it; prints "ticks done N ...")";

// FNV-1a over the buffer: the "little work" of one fire.
std::uint64_t fnv1a(const std::array<std::uint8_t, 4096>& bytes, std::uint64_t h) {
    for (std::uint8_t b : bytes) {
        h ^= b;
        h *= 1099511628211ULL;
    }
    return h;
}

bool parse_number(const std::string& arg, const char* flag, double& out) {
    std::string prefix = std::string(flag) + "=";
    if (arg.rfind(prefix, 0) != 0)
        return false;
    out = std::stod(arg.substr(prefix.size()));
    return true;
}

} // namespace

int main(int argc, char** argv) {
    return run_main(
        argc, argv,
        [](MainContext& ctx) -> int {
            double seconds = 12, period_ms = 100;
            for (std::size_t i = 1; i < ctx.args.size(); ++i) {
                const std::string& a = ctx.args[i];
                if (!parse_number(a, "--seconds", seconds) && !parse_number(a, "--period-ms", period_ms)) {
                    fmt::print(stderr, "warp_program: unknown argument '{}'\n{}\n", a, usage);
                    return 2;
                }
            }
            if (!(seconds > 0 && seconds <= 3600 && period_ms >= 1 && period_ms <= 60'000)) {
                fmt::print(stderr, "warp_program: --seconds wants (0, 3600], --period-ms [1, 60000]\n");
                return 2;
            }
            const Duration period = std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::milli>(period_ms));
            const Duration span = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
            const Instant end = now() + span;
            const std::uint64_t fires_wanted = static_cast<std::uint64_t>(span / period);

            // Beside the timer: a task that sleeps in 700 ms steps until the end.
            auto sleeper = spawn("sleeper", [end]() -> std::uint64_t {
                std::uint64_t sleeps = 0;
                while (now() + 700ms <= end) {
                    if (!sleep_for(700ms).ok())
                        break;
                    ++sleeps;
                }
                return sleeps;
            });

            std::array<std::uint8_t, 4096> buffer{};
            std::uint64_t hash = 14695981039346656037ULL, fires = 0, waits = 0;
            Duration work{0};
            Timer timer;
            timer.start(period, period);
            while (fires < fires_wanted) {
                auto n = timer.wait();
                if (!n.ok()) {
                    fmt::print(stderr, "warp_program: timer wait failed: {}\n", n.error().message());
                    return 1;
                }
                ++waits;
                fires += *n;
                Instant t0 = precise_now();
                buffer[fires % buffer.size()] ^= static_cast<std::uint8_t>(fires);
                hash = fnv1a(buffer, hash);
                work += precise_now() - t0;
            }
            timer.cancel();
            auto sleeps = sleeper.join();
            if (!sleeps.ok())
                return 1;
            fmt::print("ticks done {} (fires {}, sleeps {}, hash {:016x}, work {} us, loop time {:.6f} s)\n", waits, fires,
                       *sleeps, hash, std::chrono::duration_cast<std::chrono::microseconds>(work).count(),
                       std::chrono::duration<double>(now() - (end - span)).count());
            std::fflush(stdout);
            return 0;
        },
        ProgramInfo{"warp_program", usage});
}
