// A simulation's run order: which recorded node took each tick, in the order the world ran them (FOLDER/sim.order beside the traces).
//
// Nodes recorded in one simulated world share one clock and one scheduler, so the order in
// which their ticks ran is known exactly. The world writes it down; a joint replay of those
// traces follows it instead of reconstructing an order from the traces (a scan of every record,
// then pairing each read with the write it needs). docs/trace-format.md, "The run order of a
// simulation", gives every byte.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace reprise::trace {

/// The file's name in a simulation's trace folder.
inline constexpr std::string_view run_order_file_name = "sim.order";

/// One recorded run of a node (one trace) the order speaks of.
struct RunOrderTrace {
    std::string file;         ///< the trace's file name, without its folder
    std::string node;         ///< its header's node name
    std::uint64_t seed = 0;   ///< its header's seed (one per run of a node)
    std::uint64_t ticks = 0;  ///< ticks recorded, the run's first (its start) included
};

/// A run order as read back (and checked).
struct RunOrder {
    std::vector<RunOrderTrace> traces;
    std::uint64_t run_count = 0;
    /// The runs as stored: (index into traces, ticks it took in a row), in the order the world
    /// ran them; RunCursor reads them.
    std::string runs;
};

/// Reads a checked RunOrder's runs, first to last.
class RunCursor {
public:
    explicit RunCursor(const RunOrder& order) noexcept : in_(order.runs), left_(order.run_count) {}
    /// The next run; false after the last.
    bool next(std::uint32_t& index, std::uint64_t& ticks) noexcept;

private:
    std::string_view in_;
    std::uint64_t left_;
};

/// Every run of `order`, decoded (tests, the fuzz target).
std::vector<std::pair<std::uint32_t, std::uint64_t>> all_runs(const RunOrder& order);

/// The world's side: traces as they start, ticks as nodes take them, the file at the end.
class RunOrderLog {
public:
    /// A new recorded run; its index for ticks(). A name the file cannot hold (empty, or with
    /// white space or control characters) makes the log unwritable (write() says why).
    std::uint32_t add_trace(std::string file, std::string node, std::uint64_t seed);
    /// Trace `index` took `count` more ticks, after every tick logged before.
    void ticks(std::uint32_t index, std::uint64_t count);
    bool empty() const noexcept { return traces_.empty(); }
    /// The file's bytes.
    std::string encode() const;
    /// Writes FOLDER/sim.order, replacing it whole (a temporary file renamed); false with `error`.
    bool write(const std::string& folder, std::string& error) const;

private:
    std::vector<RunOrderTrace> traces_;
    std::string runs_;              ///< the finished runs, encoded (two varints each)
    std::uint64_t runs_count_ = 0;  ///< runs in runs_
    std::uint32_t last_ = UINT32_MAX;  ///< the run still growing (UINT32_MAX: none yet)
    std::uint64_t last_ticks_ = 0;
    std::string unwritable_;        ///< why the file cannot be written (empty: it can)
};

/// Reads and checks a run order file. false with `error` naming the file and what is wrong.
bool read_run_order(const std::string& path, RunOrder& out, std::string& error);
/// Checks and decodes a run order's bytes (`name` for the errors).
bool parse_run_order(std::string_view data, std::string_view name, RunOrder& out, std::string& error);

} // namespace reprise::trace
