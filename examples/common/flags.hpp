// A program's own flags, the way people type them: "--port 7000" or "--port=7000", and an
// unknown flag answered with the closest known one. Shared by reprise-kv and reprise-raft.
// CLI11 does the tokenising; this header only forward-declares it, so including it does not
// pull CLI11 into a file (the .cpp that builds the CLI::App includes <CLI/CLI.hpp>).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace reprise::flags {

/// Parses a program's own arguments (MainContext::args: argv[0] first, the runtime's flags
/// already removed) with `app`, whose options are long flags taking one value each (or, added
/// with add_flag, none: "--quiet"). Each
/// flag takes its value as the next argument or after '=', and the last one given wins;
/// the app's help flag is removed (run_main answers -h/--help with the program's usage).
/// Returns "" on success, else the message to print:
///   "unknown flag --prot; did you mean --port?"   (or "unknown flag --x" when none is near;
///                                                  the suggestion is the runtime's closest_flag)
///   "--port needs a value"                        (at the end, before another flag, or "--port=")
///   "unexpected argument 'x'"
std::string parse(CLI::App& app, const std::vector<std::string>& args);

} // namespace reprise::flags
