// Helpers shared by the runtime and clock tests: running a main task, naming outcomes.
#pragma once

#include <reprise/runtime/reprise.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <utility>

namespace reprise::test {

/// How an operation ended, as a name: "ok" or the error's ("cancelled"), so that
/// tasks can report outcomes as readable strings.
template <class R>
std::string outcome(const R& r) {
    return r.ok() ? "ok" : reprise::errc_name(r.code());
}

/// Runs `body` as the main task of a fresh runtime and checks it returned 0.
template <class Body>
void run_main_task(Body&& body, reprise::Options options = {}) {
    reprise::Runtime rt(std::move(options));
    REQUIRE(rt.run([&] {
        body();
        return 0;
    }) == 0);
}

/// Loop iterations of the running runtime so far.
inline std::uint64_t ticks_now() { return reprise::Runtime::current()->stats().ticks; }

} // namespace reprise::test
