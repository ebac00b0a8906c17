// The simulation runner: a user's main that puts their programs under simulation, seed after seed.
#pragma once

#include "reprise/runtime/time.hpp"
#include "reprise/sim/world.hpp"

#include <functional>
#include <string>
#include <vector>

namespace reprise::sim {

/// What one run of a simulation is made of; the runner builds a fresh World per seed.
struct Simulation {
    /// The runner's name in messages and in the reproduction line (default: argv[0]).
    std::string name = {};
    /// What the simulation does, for --help.
    std::string description = {};
    /// The simulation's own flags ("--clients"), each taking one value, with a line of help each;
    /// their values reach setup() and check() through RunContext::flag().
    std::vector<std::pair<std::string, std::string>> flags = {};
    /// Adds the nodes (and any scripted faults, World::at) to a fresh world. A std::invalid_argument
    /// it throws is a bad flag: the runner prints it and exits 2.
    std::function<void(World&, const struct RunContext&)> setup = {};
    /// After the run (the virtual time is over, or every node ended): "" when it went right,
    /// else what went wrong (the runner prints it and the line that reproduces the run).
    std::function<std::string(World&, const struct RunContext&)> check = {};
    /// After a run: a few words on what it did, added to its result line ("ops=812 elections=3").
    std::function<std::string(World&, const struct RunContext&)> describe = {};
    /// After a run that passed: "" when every check reached a verdict, else which did not, in a few
    /// words ("linearizability unknown"): the summary counts such runs apart, as not proven.
    std::function<std::string(World&, const struct RunContext&)> inconclusive = {};
    /// After a run that failed: writes what explains the failure (a history, say) into `folder`,
    /// beside the nodes' traces (see --failure-dir).
    std::function<void(World&, const struct RunContext&, const std::string& folder)> save = {};
    /// Virtual time of one run unless --time says otherwise.
    Duration default_time = std::chrono::seconds(30);
};

/// What a run's setup and check see.
struct RunContext {
    std::uint64_t seed = 0;
    Duration time{};
    /// The value of one of Simulation::flags as given ("" when absent).
    std::string flag(const std::string& name) const;
    /// The same, as a number (`fallback` when absent); throws std::invalid_argument on a non-number.
    std::int64_t flag_int(const std::string& name, std::int64_t fallback) const;
    std::vector<std::pair<std::string, std::string>> values = {};
    /// The runner's command line that repeats this run (for a failure's findings).
    std::string reproduce = {};
};

/// Parses the runner's flags and runs the simulation once per seed:
///   --seed N              the first seed (default: drawn, and printed)
///   --seeds K | A..B      run K seeds: N, N+1, ... (default 1), or the seeds A to B
///                         (a progress line on stderr, and a summary: failures by kind)
///   --time DURATION       virtual time of a run (10s, 500ms, 5m; default Simulation::default_time)
///   --faults on|off       random faults from the seed (crash/restart, partitions, clogs, pauses, clock jumps)
///   --fault-interval D    mean virtual time between faults (default 2s; implies --faults on)
///   --fault-duration D    mean time a fault lasts before it heals (default 1s)
///   --no-crash            random faults never crash a node (for programs that keep nothing on disk)
///   --latency MIN..MAX    one-way latency of every link (default 50us..500us)
///   --fsync-failure-rate P  an fsync fails with EIO with chance P, on every node's disk
///   --disk-capacity BYTES every node's disk holds this much (then writes fail with ENOSPC)
///   --trace-dir DIR       every node records its trace into DIR (one folder per seed with --seeds)
///   --check-determinism   run each seed twice and compare every event's hash (and a third time
///                         recording traces when --trace-dir is not given... into a temporary folder)
///   --failure-dir DIR     where a failed seed's traces (it is run again, recording) and what
///                         Simulation::save writes go: DIR/seed-N (default <name>-failures;
///                         "none": nothing is written)
///   -v, --verbose         print the world's log of faults and node events
/// Prints one line per run ("seed=N ok events=... virtual=... wall=... hash=...") and, for a run
/// that fails, what failed and the line that reproduces it. A failure's kind is the text before
/// the first ':' of what check() returned ("linearizability: ..."), counted in the summary. Returns 0 when every run passed,
/// 1 when one failed, 2 on bad flags.
int run_simulation(int argc, char** argv, const Simulation& simulation);

/// Parses "10s", "250ms", "3m", "1h", "20us", "5000ns" (a bare number is seconds).
Result<Duration> parse_duration(std::string_view text);

} // namespace reprise::sim
