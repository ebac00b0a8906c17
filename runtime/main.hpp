// The main wrapper: owns main(), parses the runtime's flags, stops gracefully on SIGINT/SIGTERM.
#pragma once

#include "reprise/runtime/runtime.hpp"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace reprise {

/// What the application's entry gets: its own arguments (the runtime's flags
/// removed; argv[0] first) and the runtime it runs on.
struct MainContext {
    std::vector<std::string> args;
    Runtime& runtime;
};

/// Describes the program for --help.
struct ProgramInfo {
    std::string name = {};     ///< defaults to argv[0]
    std::string usage = {};    ///< the application's own usage text, printed after the runtime's
    /// The program's own flags (e.g. "--port"), if it declares them: an unknown flag close to
    /// a runtime flag is refused as a typo ("did you mean --record?") unless it is listed here.
    std::vector<std::string> flags = {};
};

/// A program the runtime can host: its name, main and usage. One process can host
/// several programs' mains, each on a runtime of its own (simulation, joint replay):
/// start_entry() on each runtime, then a driver steps them (Runtime::step).
struct ProgramEntry {
    std::string name = {};
    std::function<int(MainContext&)> main = {};
    std::string usage = {};
    std::vector<std::string> flags = {};  ///< the program's own flags (see ProgramInfo::flags)
};

/// The runtime's flags read from a command line: the first half of run_main.
struct CommandLine {
    Options options;                ///< what to build the Runtime from
    std::vector<std::string> args;  ///< the program's own arguments, argv[0] first
    bool help = false;              ///< -h or --help was given
    bool verbose_seed = false;
    std::string error;              ///< not empty: a bad flag (run_main prints it and returns 2)
    /// Every --replay given, in order: more than one is a joint replay (options.replay_path
    /// is the first).
    std::vector<std::string> replay_paths;
    /// --break-at's text when it names a node (NODE:N); options.break_at holds N.
    std::string break_at_node;
};
CommandLine parse_command_line(int argc, char** argv, const ProgramInfo& info = {});

/// Starts `entry`'s main as the task "main" of `runtime`, with the program arguments
/// `args` (argv[0] first); nothing runs before the runtime is stepped. The second half
/// of run_main, for drivers of several runtimes.
void start_entry(Runtime& runtime, const ProgramEntry& entry, std::vector<std::string> args);
/// start_entry, then steps the runtime until the program ends; its exit code.
int run_entry(Runtime& runtime, const ProgramEntry& entry, std::vector<std::string> args);

/// Parses the runtime's flags (`--seed N` or `--seed=N`, --node, --stack-size, --offload-threads,
/// --record..., --replay..., -h/--help; `--` ends them; the list is in --help), starts a
/// Runtime that stops gracefully on SIGINT/SIGTERM (the main task is cancelled), runs `entry`
/// as the main task and returns its exit code. Flags that are not the runtime's go to the
/// program in order. Bad flags, flags that cannot take effect (--break-at without a replay)
/// and near-misses of runtime flags print a message and return 2.
int run_main(int argc, char** argv, std::function<int(MainContext&)> entry, ProgramInfo info = {});
/// The same for a program declared as a ProgramEntry.
int run_main(int argc, char** argv, const ProgramEntry& entry);

/// The flag of `known` closest to `unknown` (spelled as given, e.g. "--recrod"), or "" when
/// none is close (edit distance at most 2, 1 for short names): for "did you mean" messages
/// of programs that parse their own flags.
std::string closest_flag(std::string_view unknown, const std::vector<std::string>& known);

} // namespace reprise

/// Defines main() running `entry` (an `int(reprise::MainContext&)` callable) on a runtime.
#define REPRISE_MAIN(entry) \
    int main(int argc, char** argv) { return ::reprise::run_main(argc, argv, (entry)); }
