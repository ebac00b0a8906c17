// Helpers shared by the runtime, clock and io tests: running a scenario live and again through record, replay and compare.
#pragma once

#include "replay/replay_harness.hpp"

#include <reprise/runtime/reprise.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <utility>

namespace reprise::test {

/// Runs `body` as the main task of a fresh runtime and checks it returned 0: live, and
/// then again recorded, replayed in a child and compared (rr's compare_test): the body's
/// own checks hold in the replay too, which ends at the recorded end with the same
/// counts of ticks, wake-ups, switches and tasks, without ever waiting on the real clock.
/// The body runs three times (live, recording, replay): it must not count its runs in
/// variables outside it. A scenario that cannot be replayed runs with run_live_only.
template <class Body>
void run_main_task(Body&& body, reprise::Options options = {}) {
    {
        reprise::Runtime rt(options);
        REQUIRE(rt.run([&] {
            body();
            return 0;
        }) == 0);
    }
    if (!options.record_path.empty() || !options.replay_path.empty())
        return;  // the scenario chose its mode itself
    TempDir dir;
    const Scenario scenario = [&](std::string&) {
        body();
        return 0;
    };
    INFO("the same scenario, recorded and replayed");
    record_and_replay(dir / "trace", scenario, options);
}

/// Runs `body` live only; `why` says why it cannot be replayed (kept in the test file,
/// where a reader of the suite sees each exception and its reason).
template <class Body>
void run_live_only(const char* why, Body&& body, reprise::Options options = {}) {
    INFO("live only: " << why);
    reprise::Runtime rt(std::move(options));
    REQUIRE(rt.run([&] {
        body();
        return 0;
    }) == 0);
}

/// Loop iterations of the running runtime so far.
inline std::uint64_t ticks_now() { return reprise::Runtime::current()->stats().ticks; }

} // namespace reprise::test
