// Linearizability checker: Wing-Gong/Lowe search per key with memoisation, and the shrinking of a violation to a minimal witness.
#include "reprise/sim/linearizability.hpp"

#include "reprise/clock/internal/system_clock.hpp"
#include "reprise/runtime/assert.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <functional>
#include <map>
#include <unordered_set>
#include <utility>

namespace reprise::sim {

namespace {

constexpr std::int64_t never_ns = std::numeric_limits<std::int64_t>::max();

/// A key's register: nil or a string.
using State = std::optional<std::string>;

/// An operation applied to a state: whether its observed result is possible there, and the state after.
struct Step {
    bool legal;
    State next;
};

/// `text` as a 64-bit integer, as Redis reads one: canonical decimal only ("7", "-3"; not "07", "+7", " 7").
std::optional<std::int64_t> parse_integer(const std::string& text) {
    std::int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || std::to_string(v) != text)
        return std::nullopt;
    return v;
}

/// The register model. An operation of unknown outcome is legal in every state (it returned nothing
/// to compare); it still changes the state if it is linearized.
Step step_model(const Operation& op, const State& state) {
    const bool observed = op.outcome == Operation::Outcome::ok;
    switch (op.kind) {
    case Operation::Kind::get:
        return {!observed || op.result == state, state};
    case Operation::Kind::set:
        return {true, op.value};
    case Operation::Kind::del:
        return {!observed || !op.result || *op.result == (state ? "1" : "0"), std::nullopt};
    case Operation::Kind::incr: {
        std::optional<std::int64_t> v = state ? parse_integer(*state) : std::optional<std::int64_t>{0};
        if (!v || *v == std::numeric_limits<std::int64_t>::max())
            return {!observed || op.result == "error", state};
        std::string next = std::to_string(*v + 1);
        bool legal = !observed || op.result == next;
        return {legal, std::move(next)};
    }
    }
    REPRISE_ASSERT_MSG(false, "unknown operation kind");
    return {false, state};
}

/// Steps and wall time left to the whole check.
class Spend {
public:
    Spend(const CheckBudget& budget)
        : max_steps_(budget.max_steps),
          deadline_ns_(budget.max_wall.count() > 0 ? detail::read_monotonic_ns() + budget.max_wall.count() : 0) {}

    /// Takes one step; false once the budget is spent.
    bool take() {
        if (exhausted_)
            return false;
        if (used_ >= max_steps_ || (deadline_ns_ != 0 && used_ % 4096 == 0 && detail::read_monotonic_ns() >= deadline_ns_)) {
            exhausted_ = true;
            return false;
        }
        ++used_;
        return true;
    }
    bool exhausted() const { return exhausted_; }
    std::uint64_t used() const { return used_; }

private:
    std::uint64_t max_steps_;
    std::int64_t deadline_ns_;
    std::uint64_t used_ = 0;
    bool exhausted_ = false;
};

/// A set of operations (those linearized so far) and the state they leave: one node of the search.
struct Configuration {
    std::vector<std::uint64_t> linearized;
    State state;
    bool operator==(const Configuration&) const = default;
};

struct ConfigurationHash {
    std::size_t operator()(const Configuration& c) const noexcept {
        std::size_t h = c.state ? std::hash<std::string>{}(*c.state) : 0x51ed27;
        for (std::uint64_t w : c.linearized)
            h = (h ^ std::hash<std::uint64_t>{}(w)) * 0x100000001b3ULL;
        return h;
    }
};

enum class KeyVerdict { ok, violation, unknown };

/// Wing & Gong's search as Lowe improves it (and Porcupine implements it): the calls and returns
/// in a list by time; linearize the first call that the model allows and that leads to a
/// configuration not seen before, and start again from the list's head; at a return whose call
/// is still in the list, undo the last linearization and try the next call after it. Operations
/// of unknown outcome return at +infinity and need not be linearized at all: the search succeeds
/// once every completed operation is.
/// `step_cap`: steps this search may take on top of what `spend` allows.
KeyVerdict search(const std::vector<Operation>& ops, Spend& spend, std::uint64_t step_cap) {
    const std::size_t n = ops.size();
    struct Entry {
        std::size_t op;
        bool is_call;
        std::int64_t time_ns;
        std::size_t prev = 0, next = 0;
    };
    // Entry 0 is the list's head; a call's entry is 1 + 2 * op, its return's 2 + 2 * op.
    std::vector<Entry> entries;
    entries.reserve(2 * n + 1);
    entries.push_back({0, false, 0});
    std::size_t completed_left = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const Operation& op = ops[i];
        const bool completed = op.outcome == Operation::Outcome::ok;
        REPRISE_ASSERT_MSG(!completed || op.invoke_ns <= op.complete_ns, "an operation completes before its invocation");
        completed_left += completed ? 1 : 0;
        entries.push_back({i, true, op.invoke_ns});
        entries.push_back({i, false, completed ? op.complete_ns : never_ns});
    }
    // By time; at equal times calls first (operations that touch overlap); then by operation.
    std::vector<std::size_t> order(2 * n);
    for (std::size_t i = 0; i < order.size(); ++i)
        order[i] = i + 1;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
        const Entry& x = entries[a];
        const Entry& y = entries[b];
        if (x.time_ns != y.time_ns)
            return x.time_ns < y.time_ns;
        if (x.is_call != y.is_call)
            return x.is_call;
        return a < b;
    });
    std::size_t last = 0;
    for (std::size_t e : order) {
        entries[last].next = e;
        entries[e].prev = last;
        last = e;
    }
    entries[last].next = 0;  // 0 also ends the list
    auto call_of = [](std::size_t op) { return 1 + 2 * op; };
    auto return_of = [](std::size_t op) { return 2 + 2 * op; };
    // Takes an operation's call and return out of the list, or puts them back (in reverse order).
    auto lift = [&](std::size_t op) {
        for (std::size_t e : {call_of(op), return_of(op)}) {
            entries[entries[e].prev].next = entries[e].next;
            if (entries[e].next != 0)
                entries[entries[e].next].prev = entries[e].prev;
        }
    };
    auto unlift = [&](std::size_t op) {
        for (std::size_t e : {return_of(op), call_of(op)}) {
            entries[entries[e].prev].next = e;
            if (entries[e].next != 0)
                entries[entries[e].next].prev = e;
        }
    };

    struct Frame {
        std::size_t op;
        State before;
    };
    std::vector<Frame> stack;
    Configuration current{std::vector<std::uint64_t>((n + 63) / 64, 0), std::nullopt};
    std::unordered_set<Configuration, ConfigurationHash> seen;
    std::uint64_t steps = 0;
    std::size_t at = entries[0].next;
    for (;;) {
        if (completed_left == 0)
            return KeyVerdict::ok;
        if (steps++ >= step_cap || !spend.take())
            return KeyVerdict::unknown;
        REPRISE_ASSERT(at != 0);  // a completed operation's return is still in the list
        const Entry& e = entries[at];
        const Operation& op = ops[e.op];
        if (e.is_call) {
            Step step = step_model(op, current.state);
            if (step.legal) {
                std::uint64_t bit = std::uint64_t{1} << (e.op % 64);
                current.linearized[e.op / 64] |= bit;
                State before = std::exchange(current.state, std::move(step.next));
                if (seen.insert(current).second) {
                    stack.push_back({e.op, std::move(before)});
                    lift(e.op);
                    completed_left -= op.outcome == Operation::Outcome::ok ? 1 : 0;
                    at = entries[0].next;
                    continue;
                }
                current.linearized[e.op / 64] &= ~bit;
                current.state = std::move(before);
            }
            at = e.next;
        } else if (op.outcome == Operation::Outcome::unknown) {
            at = e.next;  // no deadline: it may still be linearized later, or never
        } else {
            // A completed operation returned before being linearized: undo the last choice.
            if (stack.empty())
                return KeyVerdict::violation;
            Frame f = std::move(stack.back());
            stack.pop_back();
            current.linearized[f.op / 64] &= ~(std::uint64_t{1} << (f.op % 64));
            current.state = std::move(f.before);
            unlift(f.op);
            completed_left += ops[f.op].outcome == Operation::Outcome::ok ? 1 : 0;
            at = entries[call_of(f.op)].next;
        }
    }
}

/// Whether an operation that changes the register can leave a state that `observer`, completed
/// and kept in a witness, would have seen as it did.
bool could_observe(const Operation& observer, const Operation& write) {
    if (write.kind == Operation::Kind::incr && write.outcome == Operation::Outcome::unknown) {
        // It wrote some integer: any observation an integer state allows.
        switch (observer.kind) {
        case Operation::Kind::get:
            return observer.result && parse_integer(*observer.result).has_value();
        case Operation::Kind::incr:
            return observer.result != "error";
        case Operation::Kind::del:
            return !observer.result || *observer.result == "1";
        case Operation::Kind::set:
            return false;
        }
    }
    State written = write.kind == Operation::Kind::set ? State{write.value}
                    : write.kind == Operation::Kind::incr ? write.result
                                                          : std::nullopt;
    return step_model(observer, written).legal;
}

/// Whether an operation changes the register (whatever the state).
bool writes(const Operation& op) {
    return op.kind == Operation::Kind::set || op.kind == Operation::Kind::del ||
           (op.kind == Operation::Kind::incr && op.result != "error");
}

/// Whether a part of a history that is not linearizable shows that the whole is not either:
/// true when no operation kept could have seen the state a removed write left. (Take a
/// linearization of the whole: each kept operation sees the state of the last write before
/// it, a kept one, so the same order of the kept operations alone is a linearization.)
/// Removing reads is always sound; removing the only write of a value a kept read saw is not:
/// that read would seem to see a value nobody wrote.
bool removal_is_sound(const std::vector<Operation>& all, const std::vector<bool>& kept) {
    for (std::size_t w = 0; w < all.size(); ++w) {
        if (kept[w] || !writes(all[w]))
            continue;
        for (std::size_t o = 0; o < all.size(); ++o) {
            if (!kept[o])
                continue;
            const Operation& observer = all[o];
            // A kept incr of unknown outcome writes a value that depends on the state it sees.
            if (observer.outcome == Operation::Outcome::unknown && observer.kind == Operation::Kind::incr)
                return false;
            const bool observes = observer.outcome == Operation::Outcome::ok && observer.kind != Operation::Kind::set &&
                                  !(observer.kind == Operation::Kind::del && !observer.result);
            if (observes && could_observe(observer, all[w]))
                return false;
        }
    }
    return true;
}

/// The operations a witness holding `all[seed]` must keep for removal_is_sound: the seed, and
/// every write a kept observer could have seen, transitively.
std::vector<bool> closure_of(const std::vector<Operation>& all, std::size_t seed) {
    std::vector<bool> in(all.size(), false);
    std::vector<std::size_t> todo = {seed};
    in[seed] = true;
    while (!todo.empty()) {
        const Operation& observer = all[todo.back()];
        todo.pop_back();
        if (observer.outcome == Operation::Outcome::unknown && observer.kind == Operation::Kind::incr)
            return std::vector<bool>(all.size(), true);
        const bool observes = observer.outcome == Operation::Outcome::ok && observer.kind != Operation::Kind::set &&
                              !(observer.kind == Operation::Kind::del && !observer.result);
        if (!observes)
            continue;
        for (std::size_t w = 0; w < all.size(); ++w) {
            if (!in[w] && writes(all[w]) && could_observe(observer, all[w])) {
                in[w] = true;
                todo.push_back(w);
            }
        }
    }
    return in;
}

/// Whether `observer` counts as observing writes (a completed read, incr or del that reported
/// what it found, or an incr of unknown outcome, which writes what it sees plus one).
bool observes_state(const Operation& observer) {
    if (observer.outcome == Operation::Outcome::unknown)
        return observer.kind == Operation::Kind::incr;
    return observer.kind != Operation::Kind::set && !(observer.kind == Operation::Kind::del && !observer.result);
}

/// Removes from `kept` every operation that could have seen a write that is not kept, and
/// whatever could have seen those (transitively), so that the removal stays sound
/// (removal_is_sound). Returns what it removed, for the caller to put back.
std::vector<std::size_t> cascade_removal(const std::vector<Operation>& all, std::vector<bool>& kept) {
    std::vector<std::size_t> removed_writes, extra;
    for (std::size_t w = 0; w < all.size(); ++w)
        if (!kept[w] && writes(all[w]))
            removed_writes.push_back(w);
    while (!removed_writes.empty()) {
        const Operation& write = all[removed_writes.back()];
        removed_writes.pop_back();
        for (std::size_t o = 0; o < all.size(); ++o) {
            if (!kept[o] || !observes_state(all[o]))
                continue;
            const bool unknown_incr = all[o].outcome == Operation::Outcome::unknown && all[o].kind == Operation::Kind::incr;
            if (unknown_incr || could_observe(all[o], write)) {
                kept[o] = false;
                extra.push_back(o);
                if (writes(all[o]))
                    removed_writes.push_back(o);
            }
        }
    }
    return extra;
}

/// Shrinks a violating history of one key: removes halves, quarters, ... then single operations
/// while the rest stays a violation and the removal is sound, until no single operation can go.
/// Returns whether the result is known to be minimal (every attempt answered in its budget).
bool shrink(std::vector<Operation>& witness, Spend& spend, std::uint64_t attempt_steps_max) {
    const std::vector<Operation> all = std::move(witness);
    std::vector<bool> kept(all.size(), true);
    // First the smallest violating closure of one operation: it, and every write one of its
    // kept observers could have seen (sound by construction). A read of a value nobody wrote
    // is its own closure; removing chunks alone can get stuck where each write is observable
    // by some kept operation (a del that saw the key exist) but many could go together.
    std::size_t best = all.size();
    for (std::size_t seed = 0; seed < all.size() && !spend.exhausted(); ++seed) {
        std::vector<bool> closure = closure_of(all, seed);
        std::size_t size = static_cast<std::size_t>(std::count(closure.begin(), closure.end(), true));
        if (size >= best)
            continue;
        std::vector<Operation> candidate;
        for (std::size_t k = 0; k < all.size(); ++k)
            if (closure[k])
                candidate.push_back(all[k]);
        if (search(candidate, spend, attempt_steps_max) == KeyVerdict::violation) {
            best = size;
            kept = std::move(closure);
        }
    }
    std::vector<std::size_t> left;
    for (std::size_t i = 0; i < all.size(); ++i)
        if (kept[i])
            left.push_back(i);
    bool decided = true;
    std::size_t chunk = std::max<std::size_t>(all.size() / 2, 1);
    for (;;) {
        bool removed = false;
        decided = true;
        for (std::size_t i = 0; i < left.size();) {
            if (spend.exhausted()) {
                decided = false;
                break;
            }
            std::size_t end = std::min(left.size(), i + chunk);
            for (std::size_t k = i; k < end; ++k)
                kept[left[k]] = false;
            // The chunk, and every operation that could have seen a write in it (they go together,
            // or the rest would not show a violation of the whole; see removal_is_sound).
            const std::vector<std::size_t> extra = cascade_removal(all, kept);
            KeyVerdict v = KeyVerdict::ok;
            std::vector<Operation> candidate;
            for (std::size_t k = 0; k < all.size(); ++k)
                if (kept[k])
                    candidate.push_back(all[k]);
            if (!candidate.empty()) {
                REPRISE_ASSERT(removal_is_sound(all, kept));
                v = search(candidate, spend, attempt_steps_max);
            }
            if (v == KeyVerdict::violation) {
                std::vector<std::size_t> still;
                for (std::size_t k : left)
                    if (kept[k])
                        still.push_back(k);
                left = std::move(still);
                removed = true;
            } else {
                for (std::size_t k = i; k < end; ++k)
                    kept[left[k]] = true;
                for (std::size_t k : extra)
                    kept[k] = true;
                decided = decided && v != KeyVerdict::unknown;
                i += chunk;
            }
        }
        if (spend.exhausted() || (chunk == 1 && !removed))
            break;
        chunk = std::max<std::size_t>(chunk / 2, 1);
    }
    witness.clear();
    for (std::size_t k : left)
        witness.push_back(all[k]);
    return decided && !spend.exhausted();
}

std::string format_ms(std::int64_t ns) {
    const char* sign = ns < 0 ? "-" : "";
    std::uint64_t magnitude = ns < 0 ? 0 - static_cast<std::uint64_t>(ns) : static_cast<std::uint64_t>(ns);
    return fmt::format("{}{}.{:03}", sign, magnitude / 1'000'000, magnitude % 1'000'000 / 1'000);
}

std::string quoted(const std::optional<std::string>& v) {
    return v ? fmt::format("\"{}\"", *v) : "nil";
}

} // namespace

std::string format_operation(const Operation& op) {
    std::string what;
    const bool observed = op.outcome == Operation::Outcome::ok;
    switch (op.kind) {
    case Operation::Kind::get:
        what = fmt::format("get {}", op.key) + (observed ? " -> " + quoted(op.result) : "");
        break;
    case Operation::Kind::set:
        what = fmt::format("set {} {}", op.key, quoted(op.value));
        break;
    case Operation::Kind::incr:
        what = fmt::format("incr {}", op.key) + (observed ? " -> " + quoted(op.result) : "");
        break;
    case Operation::Kind::del:
        what = fmt::format("del {}", op.key) + (observed && op.result ? " -> " + *op.result : "");
        break;
    }
    std::string when = observed ? fmt::format("[{}, {}] ms", format_ms(op.invoke_ns), format_ms(op.complete_ns))
                                : fmt::format("[{}, ?] ms, outcome unknown", format_ms(op.invoke_ns));
    return fmt::format("client {:<4} {:<32} {}", op.client, what, when);
}

std::string format_history(const std::vector<Operation>& history) {
    std::string out;
    for (const Operation& op : history)
        out += format_operation(op) + "\n";
    return out;
}

const char* verdict_name(CheckResult::Verdict verdict) noexcept {
    switch (verdict) {
    case CheckResult::Verdict::ok:
        return "ok";
    case CheckResult::Verdict::violation:
        return "violation";
    case CheckResult::Verdict::unknown:
        return "unknown";
    }
    return "?";
}

CheckResult check_linearizable(const std::vector<Operation>& history, const CheckBudget& budget) {
    std::map<std::string, std::vector<Operation>> by_key;
    for (const Operation& op : history)
        by_key[op.key].push_back(op);
    const std::int64_t started = detail::read_monotonic_ns();
    Spend spend(budget);
    CheckResult result;
    std::uint64_t shrink_steps = 0;
    std::size_t checked = 0;
    for (auto& [key, ops] : by_key) {
        std::stable_sort(ops.begin(), ops.end(),
                         [](const Operation& a, const Operation& b) { return a.invoke_ns < b.invoke_ns; });
        KeyVerdict v = search(ops, spend, std::numeric_limits<std::uint64_t>::max());
        if (v == KeyVerdict::ok) {
            ++checked;
            continue;
        }
        result.key = key;
        if (v == KeyVerdict::unknown) {
            result.verdict = CheckResult::Verdict::unknown;
            result.explanation = fmt::format(
                "unknown: the budget ran out after {} steps on key {} ({} operations); {} of {} keys were linearizable",
                spend.used(), key, ops.size(), checked, by_key.size());
            break;
        }
        result.verdict = CheckResult::Verdict::violation;
        std::vector<Operation> witness = ops;
        // Every removal keeps the violation a violation of the whole history (removal_is_sound).
        // Shrinking gets a budget of its own, as large as the search's: a search that found the
        // violation near the end of its budget must not leave the whole history as the witness.
        Spend shrink_spend(budget);
        bool minimal = shrink(witness, shrink_spend, budget.shrink_attempt_steps_max);
        shrink_steps = shrink_spend.used();
        result.explanation = fmt::format(
            "key {} is not linearizable: no order of these {} of its {} operations respects both their times "
            "and a register's rules, and none of them could have seen what the others wrote ({}):\n{}",
            key, witness.size(), ops.size(),
            minimal ? "minimal: without any one of them the rest is linearizable, or would seem to read a value nobody wrote"
                    : "the budget ran out while shrinking: it may not be minimal",
            format_history(witness));
        result.witness = std::move(witness);
        break;
    }
    result.steps = spend.used() + shrink_steps;
    result.wall_ns = detail::read_monotonic_ns() - started;
    return result;
}

CheckResult check_linearizable(const std::vector<Operation>& history, std::chrono::nanoseconds wall_budget) {
    CheckBudget budget;
    budget.max_wall = wall_budget;
    return check_linearizable(history, budget);
}

} // namespace reprise::sim
