// Linearizability of key-value histories: each key's history checked alone (Wing-Gong/Lowe search), a violation shrunk to a minimal witness.
#pragma once

#include "reprise/runtime/limits.hpp"

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace reprise::sim {

/// One operation of a client on one key, as the client saw it: when it was invoked, when (and
/// whether) it completed, and what it returned. Operations that failed for sure (the server
/// refused them, nothing was applied) do not belong in a history.
struct Operation {
    enum class Kind { get, set, incr, del };
    enum class Outcome {
        ok,       ///< completed at complete_ns with `result`
        unknown,  ///< no reply (timeout, crash): it may or may not have taken effect (Knossos's `info`)
    };

    std::uint64_t client = 0;
    std::string key = {};
    Kind kind = Kind::get;
    /// set: the value written. Unused by the other kinds.
    std::string value = {};
    std::int64_t invoke_ns = 0;
    /// When the reply arrived; ignored when the outcome is unknown (its return is at +infinity).
    std::int64_t complete_ns = std::numeric_limits<std::int64_t>::max();
    Outcome outcome = Outcome::ok;
    /// get: the value read, nullopt for nil. incr: the new value as decimal text, or "error"
    /// when the stored value is not an integer. del: "1" if the key existed, "0" if not, or
    /// nullopt not to check it. set: unused. Ignored when the outcome is unknown.
    std::optional<std::string> result = {};
};

/// What a check found.
struct CheckResult {
    enum class Verdict {
        ok,         ///< every key's history is linearizable
        violation,  ///< `key`'s history is not; `witness` shows it
        unknown,    ///< the budget ran out before an answer (and no violation was found)
    };
    Verdict verdict = Verdict::ok;
    /// The key whose history is not linearizable (violation) or was not finished (unknown).
    std::string key = {};
    /// A readable account of the verdict: for a violation, the witness one operation a line.
    std::string explanation = {};
    /// A violation's witness: a part of `key`'s history that is not linearizable, and becomes
    /// linearizable when any one of its operations is removed. Sorted by invocation.
    std::vector<Operation> witness = {};
    /// Search steps spent (the shrinking of a witness included).
    std::uint64_t steps = 0;
    /// Wall time the check took (monotonic clock), for benchmarks and progress lines.
    std::int64_t wall_ns = 0;
};

/// How much a check may spend before it answers unknown.
struct CheckBudget {
    /// Search steps (one step: one attempt to linearize an operation) for the whole check;
    /// the shrinking of a violation's witness gets as many again, and the same wall time.
    /// Deterministic: prefer it in tests and in simulations.
    std::uint64_t max_steps = limits::linearizability_steps_default;
    /// Wall time for the whole check, read from the monotonic clock; zero: no wall limit.
    /// A wall limit makes the verdict depend on the machine's speed.
    std::chrono::nanoseconds max_wall{0};
    /// Search steps one attempt to remove operations from a witness may spend (an attempt
    /// that runs out keeps the operations: the witness stays a violation, perhaps not minimal).
    std::uint64_t shrink_attempt_steps_max = limits::linearizability_shrink_attempt_steps_default;
};

/// Checks that `history` is linearizable against a register per key (get reads it, set
/// writes it, del clears it, incr adds one to an integer, nil counting as 0). Keys are
/// checked independently (linearizability is compositional) in their sorted order; the
/// first violation found is shrunk to a minimal witness.
CheckResult check_linearizable(const std::vector<Operation>& history, const CheckBudget& budget = {});

/// Same, bounded by wall time (and the default step budget).
CheckResult check_linearizable(const std::vector<Operation>& history, std::chrono::nanoseconds wall_budget);

/// One line for an operation: client, what it did, its result, and [invoke, complete] in ms.
std::string format_operation(const Operation& op);

/// A history or a witness, one operation a line, in the order given.
std::string format_history(const std::vector<Operation>& history);

/// "ok", "violation" or "unknown".
const char* verdict_name(CheckResult::Verdict verdict) noexcept;

} // namespace reprise::sim
