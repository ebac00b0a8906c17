// Tests of fiber stacks: sizes from Options and SpawnOptions are honoured, an overflow faults naming the task.
//
// Every scenario that ends normally runs live and then recorded, replayed and compared (run_main_task).
// Scenarios that run live only, and why:
// - the three stack overflows and the refused stack size in SpawnOptions: the program ends
//   by a fault or an abort in a forked child; tests/replay/crash_test.cpp replays crashes,
//   a stack overflow among them.
// - a stack size outside the limits in Options: refused when the Runtime is built, before
//   anything runs.
#include <reprise/runtime/reprise.hpp>
#include "../support/reprise_test.hpp"


#include <catch2/catch.hpp>

#include <csignal>
#include <cstddef>
#include <cstdint>

using namespace reprise;
using test::run_live_only;
using test::run_main_task;

namespace {

constexpr std::size_t kib = 1024;
constexpr std::size_t mib = 1024 * 1024;
constexpr std::size_t unbounded = SIZE_MAX;

Options with_stack(std::size_t stack_bytes) {
    Options options;
    options.stack_bytes = stack_bytes;
    return options;
}

/// Why the scenarios that overflow their stack or are refused one run live only.
constexpr const char* ends_by_a_fault =
    "the program ends by a fault or an abort; tests/replay/crash_test.cpp replays crashes";

std::uintptr_t frame_address() { return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)); }

/// Recurses, touching every page on the way down, until `bytes` of stack below
/// `top` are in use; returns how many bytes were in use at the deepest frame.
[[gnu::noinline]] std::size_t dig(std::uintptr_t top, std::size_t bytes) {
    volatile char frame[1024];
    frame[0] = 1;
    frame[sizeof frame - 1] = 1;
    const std::size_t used = top - reinterpret_cast<std::uintptr_t>(&frame[0]);
    if (used >= bytes)
        return used;
    // Using the frame after the call keeps the recursion from becoming a loop.
    return dig(top, bytes) + static_cast<std::size_t>(frame[0] + frame[sizeof frame - 1] - 2);
}

/// Stack used by a task that digs `bytes` deep.
std::size_t dig_in_task(std::size_t bytes, SpawnOptions options = {}) {
    auto t = spawn("digger", [bytes] { return dig(frame_address(), bytes); }, options);
    return t.join().value();
}

} // namespace

TEST_CASE("a task spawned with a 1 MiB stack can use 700 KiB of it") {
    run_main_task([] { REQUIRE(dig_in_task(700 * kib, SpawnOptions{.stack_bytes = 1 * mib}) >= 700 * kib); });
}

TEST_CASE("Options::stack_bytes sets the stack of every task that does not ask otherwise") {
    run_main_task(
        [] {
            REQUIRE(dig(frame_address(), 700 * kib) >= 700 * kib);
            REQUIRE(dig_in_task(700 * kib) >= 700 * kib);
        },
        with_stack(1 * mib));
}

TEST_CASE("a task on the default stack can use most of it") {
    run_main_task([] { REQUIRE(dig_in_task(limits::stack_bytes_default - 64 * kib) >= limits::stack_bytes_default - 64 * kib); });
}

TEST_CASE("tasks of different stack sizes run side by side and one after another") {
    run_main_task([] {
        std::size_t total = 0;
        for (int round = 0; round < 3; ++round) {
            auto big = spawn("big", [] { return dig(frame_address(), 700 * kib); }, SpawnOptions{.stack_bytes = 1 * mib});
            auto small = spawn("small", [] { return dig(frame_address(), 8 * kib); },
                               SpawnOptions{.stack_bytes = limits::stack_bytes_min});
            auto usual = spawn("usual", [] { return dig(frame_address(), 128 * kib); });
            total += big.join().value() + small.join().value() + usual.join().value();
        }
        REQUIRE(total >= 3 * (700 + 8 + 128) * kib);
    });
}

TEST_CASE("a stack overflow in a task faults with a message naming the task") {
    auto child = test::run_in_child([] {
        run_live_only(ends_by_a_fault, [] {
            Event never;
            auto bystander = spawn("bystander", [&] { (void)never.wait(); });
            auto deep = spawn("deep-recursion", [] { return dig(frame_address(), unbounded); });
            (void)deep.join();
            bystander.cancel();
            (void)bystander.join();
        });
        return 0;
    });
    INFO(child.describe());
    REQUIRE(child.died_by(SIGSEGV));
    REQUIRE_THAT(child.err, Catch::Contains("stack overflow in task 'deep-recursion'"));
}

TEST_CASE("700 KiB of stack overflow the default stack: the size option is what makes room") {
    auto child = test::run_in_child([] {
        run_live_only(ends_by_a_fault, [] { REQUIRE(dig_in_task(700 * kib) >= 700 * kib); });
        return 0;
    });
    INFO(child.describe());
    REQUIRE(child.died_by(SIGSEGV));
    REQUIRE_THAT(child.err, Catch::Contains("stack overflow in task 'digger'"));
}

TEST_CASE("a stack overflow in main names main") {
    auto child = test::run_in_child([] {
        run_live_only(ends_by_a_fault, [] { REQUIRE(dig(frame_address(), unbounded) > 0); }, with_stack(limits::stack_bytes_min));
        return 0;
    });
    INFO(child.describe());
    REQUIRE(child.died_by(SIGSEGV));
    REQUIRE_THAT(child.err, Catch::Contains("stack overflow in task 'main'"));
}

TEST_CASE("a stack size outside the limits is refused") {
    SECTION("in SpawnOptions") {
        auto child = test::run_in_child([] {
            run_live_only(ends_by_a_fault, [] {
                auto t = spawn("tiny", [] {}, SpawnOptions{.stack_bytes = limits::stack_bytes_min / 2});
                t.join().value();
            });
            return 0;
        });
        INFO(child.describe());
        REQUIRE(child.died_by(SIGABRT));
        REQUIRE_THAT(child.err, Catch::Contains("stack size outside"));
    }
    SECTION("in Options") {
        auto child = test::run_in_child([] {
            Runtime rt(with_stack(limits::stack_bytes_max + limits::page_bytes));
            return 0;
        });
        INFO(child.describe());
        REQUIRE(child.died_by(SIGABRT));
        REQUIRE_THAT(child.err, Catch::Contains("stack_bytes"));
    }
}
