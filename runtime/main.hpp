// The main wrapper: owns main(), parses the runtime's flags, stops gracefully on SIGINT/SIGTERM.
#pragma once

#include "reprise/runtime/runtime.hpp"

#include <functional>
#include <string>
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
    std::string name;          ///< defaults to argv[0]
    std::string usage;         ///< the application's own usage text, printed after the runtime's
};

/// Parses the runtime's flags (--seed=N, --node=NAME, --stack-size=BYTES[k|m],
/// --offload-threads=N, --help; `--` ends them), starts a Runtime that stops
/// gracefully on SIGINT/SIGTERM (the main task is cancelled), runs `entry` as the
/// main task and returns its exit code. Bad flags print a message and return 2.
int run_main(int argc, char** argv, std::function<int(MainContext&)> entry, ProgramInfo info = {});

} // namespace reprise

/// Defines main() running `entry` (an `int(reprise::MainContext&)` callable) on a runtime.
#define REPRISE_MAIN(entry) \
    int main(int argc, char** argv) { return ::reprise::run_main(argc, argv, (entry)); }
