// Tests of the runtime's randomness (seeded PRNG, secure bytes) and of signals as wake-ups.
//
// Every scenario runs live and then recorded, replayed and compared (run_main_task), except these.
// Scenarios that run live only, and why:
// - "the same seed gives the same sequence to two runtimes draining in turns on one thread":
//   it runs two runtimes at once, each run() in turns (a recording or a replay is one runtime).
// (The two wait_signal tests raise their signal in the body: the replayer ignores a signal the
// program waits for, and the wake-up comes from the trace.)
#include "../support/reprise_test.hpp"

#include <csignal>
#include <limits>
#include <set>
#include <vector>

using namespace reprise;
using namespace reprise::test;

namespace {

/// The first `n` draws of random_u64 by a runtime seeded with `seed`: live, and recorded,
/// replayed and compared; the draws returned are the recording's.
std::vector<std::uint64_t> draw_u64(std::uint64_t seed, int n) {
    std::vector<std::uint64_t> out;
    run_main_task(
        [&] {
            out.clear();  // each run of the body (live, recording, replay) draws afresh
            for (int i = 0; i < n; ++i)
                out.push_back(random_u64());
        },
        seeded(seed));
    return out;
}

} // namespace

// --- the PRNG ---------------------------------------------------------------------

TEST_CASE("runtimes with the same seed draw the same random_u64 sequence") {
    const std::uint64_t seed = test_seed("same seed");
    const std::vector<std::uint64_t> first = draw_u64(seed, 1000);
    const std::vector<std::uint64_t> second = draw_u64(seed, 1000);
    INFO("seed " << seed);
    REQUIRE(first.size() == 1000);
    CHECK(first == second);
    // The sequence is not degenerate.
    CHECK(std::set<std::uint64_t>(first.begin(), first.end()).size() == first.size());
}

TEST_CASE("the same seed gives the same sequence to two runtimes draining in turns on one thread") {
    // Live only (see the top of the file): two runtimes at once.
    const std::uint64_t seed = test_seed("interleaved runtimes");
    Runtime a(seeded(seed));
    Runtime b(seeded(seed));
    std::vector<std::uint64_t> from_a, from_b;
    // Runs interleave: the state of one runtime's PRNG is not shared with the other.
    for (int round = 0; round < 4; ++round) {
        a.run([&] {
            for (int i = 0; i < 10; ++i)
                from_a.push_back(random_u64());
            return 0;
        });
        b.run([&] {
            for (int i = 0; i < 10; ++i)
                from_b.push_back(random_u64());
            return 0;
        });
    }
    INFO("seed " << seed);
    CHECK(from_a == from_b);
    CHECK(from_a == draw_u64(seed, 40));
}

TEST_CASE("runtimes with different seeds draw different sequences, and a runtime reports its seed") {
    const std::uint64_t seed = test_seed("different seeds");
    INFO("seed " << seed);
    CHECK(draw_u64(seed, 8) != draw_u64(seed + 1, 8));
    run_main_task([&] { REQUIRE(Runtime::current()->seed() == seed); }, seeded(seed));
    // Without a seed one is drawn, and reported so that the run can be repeated (the replay
    // reports the recording's). The values kept are the recording's.
    std::uint64_t drawn_seed = 0;
    std::vector<std::uint64_t> out;
    run_main_task([&] {
        drawn_seed = Runtime::current()->seed();
        out.clear();
        for (int i = 0; i < 8; ++i)
            out.push_back(random_u64());
    });
    CHECK(out == draw_u64(drawn_seed, 8));
}

TEST_CASE("random_below stays below its bound and reaches every value") {
    const std::uint64_t seed = test_seed("random_below");
    INFO("seed " << seed);
    run_main_task(
        [] {
            bool below = true;
            std::vector<int> hits(7, 0);
            REQUIRE(random_below(0) == 0);
            REQUIRE(random_below(1) == 0);
            for (std::uint64_t bound : {2ULL, 3ULL, 10ULL, 1000ULL, (1ULL << 63) + 1, ~0ULL}) {
                for (int i = 0; i < 2000; ++i)
                    below = below && random_below(bound) < bound;
            }
            for (int i = 0; i < 7000; ++i)
                ++hits[random_below(7)];
            REQUIRE(below);
            for (int h : hits)
                REQUIRE(h > 700);  // about 1000 each; below 700 is far outside chance
        },
        seeded(seed));
}

TEST_CASE("random_between includes both bounds and nothing outside them") {
    const std::uint64_t seed = test_seed("random_between");
    INFO("seed " << seed);
    run_main_task(
        [] {
            bool inside = true;
            std::set<std::int64_t> seen;
            for (int i = 0; i < 5000; ++i) {
                const std::int64_t v = random_between(-3, 3);
                inside = inside && v >= -3 && v <= 3;
                seen.insert(v);
            }
            REQUIRE(random_between(5, 5) == 5);
            REQUIRE(random_between(-9, -9) == -9);
            constexpr std::int64_t lo = std::numeric_limits<std::int64_t>::min();
            constexpr std::int64_t hi = std::numeric_limits<std::int64_t>::max();
            bool negative = false, positive = false;
            for (int i = 0; i < 200; ++i) {
                const std::int64_t v = random_between(lo, hi);
                negative = negative || v < 0;
                positive = positive || v > 0;
            }
            REQUIRE(negative);
            REQUIRE(positive);
            for (int i = 0; i < 1000; ++i) {
                const std::int64_t v = random_between(hi - 1, hi);
                inside = inside && (v == hi - 1 || v == hi);
                const std::int64_t w = random_between(lo, lo + 1);
                inside = inside && (w == lo || w == lo + 1);
            }
            REQUIRE(inside);
            REQUIRE(seen == std::set<std::int64_t>{-3, -2, -1, 0, 1, 2, 3});
        },
        seeded(seed));
}

TEST_CASE("secure_random returns the bytes asked for up to its limit and refuses more") {
    run_main_task([] {
        REQUIRE(must(secure_random(0), "0 bytes").empty());
        REQUIRE(must(secure_random(1), "1 byte").size() == 1);
        const std::string a = must(secure_random(32), "32 bytes");
        const std::string b = must(secure_random(32), "32 bytes");
        REQUIRE(a.size() == 32);
        REQUIRE(a != b);  // equal with probability 2^-256
        REQUIRE(must(secure_random(limits::secure_random_bytes_max), "the limit").size() ==
                limits::secure_random_bytes_max);
        REQUIRE(outcome(secure_random(limits::secure_random_bytes_max + 1)) == Errc::limit);
    });
}

// --- signals ----------------------------------------------------------------------

TEST_CASE("wait_signal wakes when another task raises the signal") {
    run_main_task(
        [] {
            bool waiting = false;
            auto waiter = spawn("waiter", [&] {
                waiting = true;
                return wait_signal(SIGUSR1, generous);
            });
            yield();  // the waiter now watches SIGUSR1 and blocks
            REQUIRE(waiting);
            REQUIRE_FALSE(waiter.done());
            REQUIRE(::raise(SIGUSR1) == 0);
            REQUIRE(must(waiter.join().value(), "wait_signal") == 1);
        });
}

TEST_CASE("wait_signal counts the signals that arrived since the last wait") {
    run_main_task(
        [] {
            // A wait that times out at once still starts watching the signal.
            REQUIRE(outcome(wait_signal(SIGUSR2, Deadline(now()))) == Errc::timed_out);
            for (int i = 0; i < 3; ++i)
                REQUIRE(::raise(SIGUSR2) == 0);
            REQUIRE(must(wait_signal(SIGUSR2, generous), "wait_signal") == 3);
            // Nothing more came: the count restarted from zero.
            REQUIRE(outcome(wait_signal(SIGUSR2, 20ms)) == Errc::timed_out);
            REQUIRE(::raise(SIGUSR2) == 0);
            REQUIRE(must(wait_signal(SIGUSR2, generous), "wait_signal") == 1);
        });
}

TEST_CASE("a task blocked in wait_signal is cancelled with Errc::cancelled") {
    run_main_task([] {
        auto waiter = spawn("waiter", [&] { return task_outcome(wait_signal(SIGUSR1, generous)); });
        yield();
        REQUIRE_FALSE(waiter.done());
        waiter.cancel();
        REQUIRE(waiter.join().value().code == Errc::cancelled);
    });
}
