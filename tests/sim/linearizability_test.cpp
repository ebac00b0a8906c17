// The linearizability checker: known-good and known-bad key-value histories, unknown outcomes, budgets, minimal witnesses.
#include "../support/reprise_test.hpp"

#include <fmt/core.h>

#include <reprise/sim/linearizability.hpp>

#include <algorithm>
#include <chrono>
#include <random>

using namespace reprise::sim;
using Kind = Operation::Kind;
using Verdict = CheckResult::Verdict;

namespace {

constexpr std::int64_t ms = 1'000'000;

Operation op(std::uint64_t client, Kind kind, std::int64_t invoke_ms, std::int64_t complete_ms,
             std::optional<std::string> result = std::nullopt, std::string value = {}, std::string key = "x") {
    return Operation{.client = client, .key = std::move(key), .kind = kind, .value = std::move(value),
                     .invoke_ns = invoke_ms * ms, .complete_ns = complete_ms * ms,
                     .outcome = Operation::Outcome::ok, .result = std::move(result)};
}
Operation set(std::uint64_t client, std::string value, std::int64_t invoke_ms, std::int64_t complete_ms, std::string key = "x") {
    return op(client, Kind::set, invoke_ms, complete_ms, std::nullopt, std::move(value), std::move(key));
}
Operation get(std::uint64_t client, std::optional<std::string> result, std::int64_t invoke_ms, std::int64_t complete_ms,
              std::string key = "x") {
    return op(client, Kind::get, invoke_ms, complete_ms, std::move(result), {}, std::move(key));
}
Operation incr(std::uint64_t client, std::string result, std::int64_t invoke_ms, std::int64_t complete_ms) {
    return op(client, Kind::incr, invoke_ms, complete_ms, std::move(result));
}
Operation del(std::uint64_t client, std::optional<std::string> result, std::int64_t invoke_ms, std::int64_t complete_ms) {
    return op(client, Kind::del, invoke_ms, complete_ms, std::move(result));
}
/// The same operation, its reply never seen.
Operation unknown(Operation o) {
    o.outcome = Operation::Outcome::unknown;
    o.complete_ns = std::numeric_limits<std::int64_t>::max();
    o.result.reset();
    return o;
}

CheckBudget steps(std::uint64_t max_steps) {
    CheckBudget b;
    b.max_steps = max_steps;
    b.shrink_attempt_steps_max = max_steps;
    return b;
}

CheckResult check(const std::vector<Operation>& h) {
    CheckResult r = check_linearizable(h, steps(1'000'000));
    INFO(verdict_name(r.verdict) << "\n" << r.explanation);
    CHECK(r.verdict != Verdict::unknown);
    return r;
}
bool ok(const std::vector<Operation>& h) { return check(h).verdict == Verdict::ok; }

bool witness_has(const CheckResult& r, const Operation& o) {
    return std::any_of(r.witness.begin(), r.witness.end(), [&](const Operation& w) {
        return w.client == o.client && w.kind == o.kind && w.invoke_ns == o.invoke_ns && w.result == o.result;
    });
}

} // namespace

TEST_CASE("sequential histories that follow the register's rules are linearizable") {
    CHECK(ok({}));
    CHECK(ok({get(1, std::nullopt, 0, 1), set(1, "1", 2, 3), get(2, "1", 4, 5), incr(1, "2", 6, 7), del(2, "1", 8, 9),
              get(1, std::nullopt, 10, 11), del(1, "0", 12, 13), incr(2, "1", 14, 15), del(1, std::nullopt, 16, 17)}));
    // And each of the same results, changed, is not.
    CHECK_FALSE(ok({set(1, "1", 2, 3), get(2, "2", 4, 5)}));
    CHECK_FALSE(ok({set(1, "1", 2, 3), incr(1, "3", 6, 7)}));
    CHECK_FALSE(ok({set(1, "1", 2, 3), del(2, "0", 8, 9)}));
    CHECK_FALSE(ok({del(2, "1", 8, 9)}));
}

TEST_CASE("concurrent operations may take effect in any order inside their intervals") {
    // b's set lies inside a's: b first, then a; every read that starts after both sees a.
    CHECK(ok({set(1, "a", 0, 10), set(2, "b", 2, 8), get(3, "b", 3, 5), get(3, "a", 9, 12), get(4, "a", 13, 14)}));
    // Both orders of two overlapping sets, seen by a later read.
    CHECK(ok({set(1, "a", 0, 10), set(2, "b", 5, 15), get(3, "a", 20, 21)}));
    CHECK(ok({set(1, "a", 0, 10), set(2, "b", 5, 15), get(3, "b", 20, 21)}));
    // Operations that touch (one completes when the other is invoked) count as overlapping.
    CHECK(ok({set(1, "a", 0, 10), get(2, std::nullopt, 10, 12)}));
}

TEST_CASE("a read that starts after a write completed and sees the old value is a violation") {
    CheckResult r = check({set(1, "1", 0, 1), get(2, std::nullopt, 2, 3)});
    REQUIRE(r.verdict == Verdict::violation);
    CHECK(r.key == "x");
    CHECK(r.witness.size() == 2);
    CHECK(r.explanation.find("get x -> nil") != std::string::npos);
    CHECK(r.explanation.find("[2.000, 3.000] ms") != std::string::npos);
    // The same read begun before the write completed could have been ordered first.
    CHECK(ok({set(1, "1", 0, 2), get(2, std::nullopt, 1, 3)}));
}

TEST_CASE("a read of a value never written is a violation shown by that read alone") {
    CheckResult r = check({set(1, "1", 0, 1), set(2, "2", 0, 5), get(3, "7", 0, 3)});
    REQUIRE(r.verdict == Verdict::violation);
    REQUIRE(r.witness.size() == 1);
    CHECK(r.witness[0].result == "7");
}

TEST_CASE("two reads under one concurrent write may not see new then old (Lamport's atomic register)") {
    // A regular register allows this new-old inversion; an atomic (linearizable) one does not.
    std::vector<Operation> h = {set(1, "0", 0, 1), set(1, "1", 2, 20), get(2, "1", 3, 5), get(3, "0", 6, 8)};
    CheckResult r = check(h);
    REQUIRE(r.verdict == Verdict::violation);
    CHECK(r.witness.size() == 4);
    // Old then new is fine, and so are two reads that overlap each other.
    CHECK(ok({set(1, "0", 0, 1), set(1, "1", 2, 20), get(2, "0", 3, 5), get(3, "1", 6, 8)}));
    CHECK(ok({set(1, "0", 0, 1), set(1, "1", 2, 20), get(2, "1", 3, 7), get(3, "0", 6, 8)}));
}

TEST_CASE("a write of unknown outcome may take effect at any time after its invocation, or never") {
    const Operation lost = unknown(set(9, "2", 2, 0));
    CHECK(ok({set(1, "1", 0, 1), lost, get(2, "1", 5, 6)}));
    CHECK(ok({set(1, "1", 0, 1), lost, get(2, "2", 5, 6)}));
    CHECK(ok({set(1, "1", 0, 1), lost, get(2, "1", 5, 6), get(2, "2", 100, 101)}));  // it applied late
    CHECK_FALSE(ok({set(1, "1", 0, 1), lost, get(2, "3", 5, 6)}));                  // a value nobody wrote
    CHECK_FALSE(ok({set(1, "1", 0, 1), lost, get(2, "2", 5, 6), get(2, "1", 7, 8)}));  // once applied, it stays
    CHECK_FALSE(ok({lost, get(2, "2", 0, 1)}));  // not before its invocation
    // Knossos's `info`: a crashed incr may or may not have counted.
    const Operation maybe = unknown(incr(9, "", 0, 0));
    CHECK(ok({maybe, incr(1, "1", 5, 6)}));
    CHECK(ok({maybe, incr(1, "2", 5, 6)}));
    CHECK_FALSE(ok({maybe, incr(1, "3", 5, 6)}));
    // Unknown reads constrain nothing.
    CHECK(ok({set(1, "1", 0, 1), unknown(get(2, std::nullopt, 2, 0))}));
}

TEST_CASE("incr counts from nil as 0 and fails on a value that is not an integer") {
    CHECK(ok({incr(1, "1", 0, 10), incr(2, "2", 0, 10)}));
    CHECK(ok({incr(1, "2", 0, 10), incr(2, "1", 0, 10)}));
    CheckResult r = check({incr(1, "1", 0, 10), incr(2, "1", 0, 10)});
    REQUIRE(r.verdict == Verdict::violation);
    CHECK(r.witness.size() == 2);
    CHECK(ok({set(1, "abc", 0, 1), incr(1, "error", 2, 3), get(2, "abc", 4, 5)}));
    CHECK_FALSE(ok({set(1, "abc", 0, 1), incr(1, "1", 2, 3)}));
    CHECK_FALSE(ok({set(1, "07", 0, 1), incr(1, "8", 2, 3)}));  // Redis reads canonical decimals only
    CHECK(ok({set(1, "-1", 0, 1), incr(1, "0", 2, 3)}));
    CHECK(ok({set(1, "9223372036854775807", 0, 1), incr(1, "error", 2, 3)}));  // would overflow
    CHECK_FALSE(ok({incr(1, "error", 2, 3)}));
}

TEST_CASE("keys are checked independently, and a violation names its key and its operations alone") {
    // One register for both keys would make this stale; two registers make it fine.
    CHECK(ok({set(1, "1", 0, 1, "x"), get(2, std::nullopt, 2, 3, "y"), get(2, "1", 4, 5, "x")}));
    CheckResult r = check({set(1, "1", 0, 1, "x"), get(2, "1", 2, 3, "x"), set(1, "1", 0, 1, "y"),
                           get(2, std::nullopt, 2, 3, "y"), set(3, "z", 0, 9, "z")});
    REQUIRE(r.verdict == Verdict::violation);
    CHECK(r.key == "y");
    REQUIRE(r.witness.size() == 2);
    for (const Operation& o : r.witness)
        CHECK(o.key == "y");
}

TEST_CASE("after Porcupine's README: a get overlapping a put may see either value, one after it may not") {
    // A register that holds 0, a put of 100 over [0, 100], and two gets.
    const Operation init = set(0, "0", -10, -5);
    CHECK(ok({init, set(0, "100", 0, 100), get(1, "100", 25, 75), get(2, "0", 30, 60)}));
    CheckResult r = check({init, set(0, "100", 0, 100), get(1, "100", 25, 75), get(2, "0", 80, 90)});
    REQUIRE(r.verdict == Verdict::violation);
    CHECK(r.witness.size() == 4);
}

TEST_CASE("a budget too small for a hard history answers unknown, never ok or violation") {
    // 24 overlapping writes and a read of a value none wrote: the search must try every order.
    std::vector<Operation> h;
    for (int i = 0; i < 24; ++i)
        h.push_back(set(static_cast<std::uint64_t>(i), std::to_string(i), 0, 100));
    h.push_back(get(99, "none", 0, 200));
    CheckResult r = check_linearizable(h, steps(10'000));
    INFO(r.explanation);
    CHECK(r.verdict == Verdict::unknown);
    CHECK(r.key == "x");
    CHECK(r.steps == 10'000);
    CHECK(r.explanation.find("budget") != std::string::npos);
    // The same with a wall-time budget.
    CheckResult wall = check_linearizable(h, std::chrono::milliseconds(20));
    CHECK(wall.verdict == Verdict::unknown);
    // A violation the search reaches within the budget is still reported.
    CHECK(check_linearizable({set(1, "1", 0, 1), get(2, "none", 2, 3)}, steps(10)).verdict == Verdict::violation);
}

TEST_CASE("the witness of a stale read hidden in a long history is the few operations that show it") {
    // 200 sequential operations of three clients over two keys, then a read of x's old value.
    std::vector<Operation> h;
    std::int64_t t = 0;
    for (int i = 0; i < 100; ++i) {
        std::string key = i % 3 == 0 ? "y" : "x";
        h.push_back(set(static_cast<std::uint64_t>(i % 3), std::to_string(i), t, t + 1, key));
        h.push_back(get(static_cast<std::uint64_t>((i + 1) % 3), std::to_string(i), t + 1, t + 2, key));
        t += 3;
    }
    REQUIRE(ok(h));
    const Operation stale = get(7, "50", t, t + 1);  // set by op 50 on x, overwritten since
    h.push_back(stale);
    CheckResult r = check(h);
    REQUIRE(r.verdict == Verdict::violation);
    INFO(r.explanation);
    CHECK(r.witness.size() <= 4);
    CHECK(witness_has(r, stale));
    CHECK(r.explanation.find("minimal") != std::string::npos);
    // The witness itself is a violation, and removing any one operation (but the write the read saw) is not.
    CHECK(check_linearizable(r.witness, steps(100'000)).verdict == Verdict::violation);
    for (std::size_t i = 0; i < r.witness.size(); ++i) {
        std::vector<Operation> less = r.witness;
        less.erase(less.begin() + static_cast<std::ptrdiff_t>(i));
        if (r.witness[i].kind == Kind::set && r.witness[i].value == "50")
            continue;
        CHECK(check_linearizable(less, steps(100'000)).verdict == Verdict::ok);
    }
}

TEST_CASE("a stale read among deletes and increments that saw every write still gets a small witness") {
    // Each DEL that found the key and each INCR could have seen any earlier write: removing one
    // write alone is unsound, so the shrinker removes a write together with what could have seen it.
    std::vector<Operation> h;
    std::int64_t t = 0;
    for (int i = 0; i < 40; ++i) {
        // Values far apart, as reprise-raft-sim's clients write them: an INCR's result is no SET's value.
        h.push_back(set(static_cast<std::uint64_t>(i % 3), std::to_string((1000 + i) * 1000), t, t + 1));
        h.push_back(get(static_cast<std::uint64_t>((i + 1) % 3), std::to_string((1000 + i) * 1000), t + 1, t + 2));
        h.push_back(incr(static_cast<std::uint64_t>((i + 2) % 3), std::to_string((1000 + i) * 1000 + 1), t + 2, t + 3));
        h.push_back(del(static_cast<std::uint64_t>(i % 3), "1", t + 3, t + 4));
        h.push_back(incr(static_cast<std::uint64_t>((i + 1) % 3), "1", t + 4, t + 5));
        t += 6;
    }
    REQUIRE(ok(h));
    const Operation stale = get(7, "1020000", t, t + 1);  // set in round 20, overwritten since
    h.push_back(stale);
    CheckResult r = check(h);
    REQUIRE(r.verdict == Verdict::violation);
    INFO(r.explanation);
    CHECK(r.witness.size() <= 6);
    CHECK(witness_has(r, stale));
    CHECK(check_linearizable(r.witness, steps(100'000)).verdict == Verdict::violation);
}

namespace {

/// A history of `clients` clients each doing `per_client` operations on `keys` keys, made
/// from a real sequential execution: each operation takes effect at a random point inside a
/// random interval, the register runs them in that order, and the results are what it returned.
/// A few operations have an unknown outcome; half of those took effect.
std::vector<Operation> generated_history(std::uint64_t seed, int clients, int per_client, int keys) {
    std::mt19937_64 rng(seed);
    auto draw = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
    struct Planned {
        Operation op;
        std::int64_t point_ns;
        bool applies;
    };
    std::vector<Planned> plan;
    for (int c = 0; c < clients; ++c) {
        std::int64_t t = draw(0, 1'000'000);
        for (int i = 0; i < per_client; ++i) {
            Operation o;
            o.client = static_cast<std::uint64_t>(c);
            o.key = fmt::format("k{}", draw(0, keys - 1));  // (not "k" + to_string: g++ 12 -O3 warns -Wrestrict)
            std::int64_t k = draw(0, 99);
            o.kind = k < 40 ? Kind::get : k < 70 ? Kind::set : k < 90 ? Kind::incr : Kind::del;
            if (o.kind == Kind::set)
                o.value = draw(0, 9) == 0 ? fmt::format("v{}", draw(0, 9)) : std::to_string(draw(0, 50));
            o.invoke_ns = t + draw(0, 200'000);
            o.complete_ns = o.invoke_ns + draw(10'000, 2'000'000);
            std::int64_t point = draw(o.invoke_ns, o.complete_ns);
            bool applies = true;
            t = o.complete_ns;
            if (draw(0, 49) == 0) {
                o.outcome = Operation::Outcome::unknown;
                applies = draw(0, 1) == 0;
                o.complete_ns = std::numeric_limits<std::int64_t>::max();
            }
            plan.push_back({o, point, applies});
        }
    }
    std::stable_sort(plan.begin(), plan.end(), [](const Planned& a, const Planned& b) { return a.point_ns < b.point_ns; });
    std::map<std::string, std::optional<std::string>> store;
    std::vector<Operation> history;
    for (Planned& p : plan) {
        Operation& o = p.op;
        std::optional<std::string>& v = store[o.key];
        if (p.applies) {
            switch (o.kind) {
            case Kind::get:
                o.result = v;
                break;
            case Kind::set:
                v = o.value;
                break;
            case Kind::del:
                o.result = v ? "1" : "0";
                v.reset();
                break;
            case Kind::incr: {
                std::int64_t n = 0;
                if (v && (std::to_string(std::strtoll(v->c_str(), nullptr, 10)) != *v)) {
                    o.result = "error";
                    break;
                }
                n = v ? std::strtoll(v->c_str(), nullptr, 10) : 0;
                v = std::to_string(n + 1);
                o.result = v;
                break;
            }
            }
        }
        if (o.outcome == Operation::Outcome::unknown)
            o.result.reset();
        history.push_back(o);
    }
    std::shuffle(history.begin(), history.end(), rng);  // the checker orders them itself
    return history;
}

} // namespace

TEST_CASE("a history of 5 clients x 200 operations over 4 keys from a real execution is linearizable") {
    std::uint64_t seed = reprise::test::test_seed("linearizability performance");
    std::vector<Operation> h = generated_history(seed, 5, 200, 4);
    auto start = std::chrono::steady_clock::now();
    CheckResult r = check_linearizable(h, steps(5'000'000));
    auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start);
    std::printf("linearizability: %zu operations checked in %lld us, %llu steps: %s\n", h.size(),
                static_cast<long long>(took.count()), static_cast<unsigned long long>(r.steps), verdict_name(r.verdict));
    INFO(r.explanation);
    CHECK(r.verdict == Verdict::ok);

    // The same history with one read changed to a value nobody wrote is a violation, shown by that read.
    auto read = std::find_if(h.begin(), h.end(), [](const Operation& o) {
        return o.kind == Kind::get && o.outcome == Operation::Outcome::ok;
    });
    REQUIRE(read != h.end());
    read->result = "never written";
    CheckResult bad = check_linearizable(h, steps(5'000'000));
    INFO(bad.explanation);
    REQUIRE(bad.verdict == Verdict::violation);
    CHECK(bad.key == read->key);
    CHECK(bad.witness.size() == 1);
}

TEST_CASE("a violation found at the end of the budget is still shrunk: shrinking has a budget of its own") {
    // Twelve concurrent writes make the search try many orders before it gives up on a stale
    // read at the end; the witness (the stale read and the write it saw, and the write after
    // it) is cheap to find once the search is over.
    std::vector<Operation> h;
    for (int i = 0; i < 12; ++i)
        h.push_back(set(static_cast<std::uint64_t>(i), "s" + std::to_string(i), 0, 100));
    h.push_back(get(20, "s5", 200, 201));
    h.push_back(set(21, "z", 300, 301));
    h.push_back(get(22, "z", 302, 303));
    const Operation stale = get(23, "s5", 400, 401);
    h.push_back(stale);
    // The smallest step budget under which the search itself finds the violation: with the
    // budget shared, nothing would be left to shrink with.
    std::uint64_t least = 0;
    for (std::uint64_t b = 16; b <= 10'000'000 && least == 0; b = b * 9 / 8)
        if (check_linearizable(h, steps(b)).verdict == Verdict::violation)
            least = b;
    REQUIRE(least > 0);
    for (std::uint64_t low = least * 8 / 9; low + 1 < least;) {  // to the step
        const std::uint64_t mid = low + (least - low) / 2;
        (check_linearizable(h, steps(mid)).verdict == Verdict::violation ? least : low) = mid;
    }
    CheckResult r = check_linearizable(h, steps(least));
    INFO("budget " << least << ": " << r.explanation);
    REQUIRE(r.verdict == Verdict::violation);
    CHECK(witness_has(r, stale));
    CHECK(r.witness.size() <= 4);
    CHECK(r.steps > least / 2);  // the shrink's steps are counted beside the search's
}
