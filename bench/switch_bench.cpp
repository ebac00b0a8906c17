// Fiber switch cost: reprise tasks ping-ponging through yield(), against raw Boost.Context jumps.
#include <reprise/runtime/reprise.hpp>

#include <boost/context/detail/fcontext.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

namespace {

namespace ctx = boost::context::detail;
using steady = std::chrono::steady_clock;

constexpr std::uint64_t switches_max = 1'000'000'000;
constexpr std::uint64_t rounds_max = 1000;
constexpr std::uint64_t tasks_max = 1000;
constexpr std::size_t raw_stack_bytes = 64 * 1024;
/// A short first pass pages in stacks and warms caches and branch predictors.
constexpr std::uint64_t warmup_switches = 100'000;

// Crashes with a message when an invariant is broken, in every build.
#define BENCH_ASSERT(cond)                                                                    \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            std::fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                     \
        }                                                                                     \
    } while (0)

[[noreturn]] void usage_exit(const char* why) {
    std::fprintf(stderr,
                 "switch_bench: %s\n"
                 "usage: switch_bench [--switches N] [--rounds R] [--tasks T]\n"
                 "  N fiber resumptions per measurement (default 2000000), R rounds (default 5),\n"
                 "  T tasks yielding to each other (default 2)\n",
                 why);
    std::exit(2);
}

struct options {
    std::uint64_t switches = 2'000'000;
    std::uint64_t rounds = 5;
    std::uint64_t tasks = 2;
};

std::uint64_t parse_count(const char* name, const char* text, std::uint64_t min, std::uint64_t max) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (*text == '\0' || *end != '\0' || errno != 0 || value < min || value > max) {
        std::fprintf(stderr, "switch_bench: %s wants a whole number in [%llu, %llu], got '%s'\n", name,
                     static_cast<unsigned long long>(min), static_cast<unsigned long long>(max), text);
        std::exit(2);
    }
    return value;
}

options parse_options(int argc, char** argv) {
    options opts;
    for (int i = 1; i < argc; i += 2) {
        const std::string_view name = argv[i];
        if (i + 1 >= argc)
            usage_exit("every option takes a value");
        if (name == "--switches")
            opts.switches = parse_count(argv[i], argv[i + 1], 1000, switches_max);
        else if (name == "--rounds")
            opts.rounds = parse_count(argv[i], argv[i + 1], 1, rounds_max);
        else if (name == "--tasks")
            opts.tasks = parse_count(argv[i], argv[i + 1], 2, tasks_max);
        else
            usage_exit("unknown option");
    }
    return opts;
}

// Nanoseconds per fiber resumption (Runtime::stats().switches): `tasks` tasks each yield
// switches / tasks times. A resumption is the scheduler's bookkeeping plus one jump (a direct
// hand-over between fibers) or two (out to the loop and back in), whichever the scheduler does.
double measure_reprise(reprise::Runtime& runtime, std::uint64_t switches, std::uint64_t tasks) {
    double ns_per_switch = 0;
    const int rc = runtime.run([&] {
        const std::uint64_t yields_per_task = switches / tasks;
        std::vector<reprise::Task<void>> workers;
        workers.reserve(tasks);
        const std::uint64_t switches_before = reprise::Runtime::current()->stats().switches;
        const reprise::Instant start = reprise::precise_now();
        for (std::uint64_t t = 0; t < tasks; t++) {
            workers.push_back(reprise::spawn("yielder", [yields_per_task] {
                for (std::uint64_t i = 0; i < yields_per_task; i++)
                    reprise::yield();
            }));
        }
        for (auto& w : workers)
            w.join().value();
        const reprise::Instant end = reprise::precise_now();
        const std::uint64_t resumed = reprise::Runtime::current()->stats().switches - switches_before;
        // Each task is resumed once per yield plus once to start; main is resumed once after the joins.
        BENCH_ASSERT(resumed >= yields_per_task * tasks);
        ns_per_switch = static_cast<double>((end - start).count()) / static_cast<double>(resumed);
        return 0;
    });
    BENCH_ASSERT(rc == 0);
    return ns_per_switch;
}

// One jump from inside a function of its own, as an API-level yield() must make it. The empty
// asm after the jump keeps the compiler from turning the call into a tail jump.
__attribute__((noinline)) ctx::transfer_t hop(ctx::fcontext_t to) {
    const ctx::transfer_t back = ctx::jump_fcontext(to, nullptr);
    asm volatile("" ::: "memory");
    return back;
}

// The partner contexts of the raw measurements: they jump straight back, forever.
[[noreturn]] void bounce(ctx::transfer_t from) {
    for (;;)
        from = ctx::jump_fcontext(from.fctx, nullptr);
}
[[noreturn]] void bounce_in_call(ctx::transfer_t from) {
    for (;;)
        from = hop(from.fctx);
}

// Nanoseconds per raw switch: one jump_fcontext, timed as half of a jump pair (into a partner
// context and back). Any fiber resumption costs at least one such jump. With in_call, both
// sides jump from inside a non-inlined function: jump_fcontext leaves through an indirect jump,
// not a return, so the return predictor is one entry off for the return that follows each jump.
// That is the floor of a switch made behind a function call, such as yield().
template <bool in_call>
double measure_raw(std::uint64_t switches) {
    const std::uint64_t pairs = switches / 2;
    void* stack = std::aligned_alloc(64, raw_stack_bytes);
    BENCH_ASSERT(stack != nullptr);
    ctx::fcontext_t partner = ctx::make_fcontext(static_cast<char*>(stack) + raw_stack_bytes, raw_stack_bytes,
                                                 in_call ? bounce_in_call : bounce);
    // The first jump starts the partner, which only then runs the loop being measured.
    partner = ctx::jump_fcontext(partner, nullptr).fctx;
    const auto start = steady::now();
    for (std::uint64_t i = 0; i < pairs; i++) {
        if constexpr (in_call)
            partner = hop(partner).fctx;
        else
            partner = ctx::jump_fcontext(partner, nullptr).fctx;
    }
    const auto end = steady::now();
    // The partner only ever runs its loop; its stack holds nothing that needs unwinding.
    std::free(stack);
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count()) /
           static_cast<double>(2 * pairs);
}

double median(std::vector<double> values) {
    BENCH_ASSERT(!values.empty());
    std::sort(values.begin(), values.end());
    const std::size_t mid = values.size() / 2;
    return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

} // namespace

int main(int argc, char** argv) {
    const options opts = parse_options(argc, argv);
    reprise::Runtime runtime;
    measure_reprise(runtime, warmup_switches, opts.tasks);
    measure_raw<false>(warmup_switches);
    measure_raw<true>(warmup_switches);

    std::vector<double> reprise_ns, raw_ns, raw_call_ns, ratios;
    for (std::uint64_t round = 1; round <= opts.rounds; round++) {
        // Alternating which side goes first keeps a drift of the machine from favouring one side.
        double a = 0, b = 0, c = 0;
        if (round % 2 == 1) {
            a = measure_reprise(runtime, opts.switches, opts.tasks);
            b = measure_raw<false>(opts.switches);
            c = measure_raw<true>(opts.switches);
        } else {
            c = measure_raw<true>(opts.switches);
            b = measure_raw<false>(opts.switches);
            a = measure_reprise(runtime, opts.switches, opts.tasks);
        }
        BENCH_ASSERT(a > 0 && b > 0 && c > 0);
        reprise_ns.push_back(a);
        raw_ns.push_back(b);
        raw_call_ns.push_back(c);
        ratios.push_back(a / b);
        std::printf("round=%llu ns_per_switch=%.2f raw_ns_per_switch=%.2f raw_call_ns_per_switch=%.2f ratio=%.2f\n",
                    static_cast<unsigned long long>(round), a, b, c, a / b);
        std::fflush(stdout);
    }
    // Medians are the figures; the best round shows what the machine gives when it is quiet.
    std::printf("result ns_per_switch=%.2f raw_ns_per_switch=%.2f raw_call_ns_per_switch=%.2f best_ns_per_switch=%.2f "
                "tasks=%llu switches=%llu rounds=%llu ratio=%.2f\n",
                median(reprise_ns), median(raw_ns), median(raw_call_ns),
                *std::min_element(reprise_ns.begin(), reprise_ns.end()), static_cast<unsigned long long>(opts.tasks),
                static_cast<unsigned long long>(opts.switches), static_cast<unsigned long long>(opts.rounds),
                median(ratios));
    return 0;
}
