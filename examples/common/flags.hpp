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

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// two adjacent characters each cost 1 ("prot" is 1 away from "port").
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate nearest to `given`, leading dashes ignored on both sides, when it is near
/// enough to be a typo of it (at most 1 + |given|/4 edits, and at most 3); otherwise "".
/// Ties go to the first candidate.
std::string closest(std::string_view given, const std::vector<std::string>& candidates);

/// Parses a program's own arguments (MainContext::args: argv[0] first, the runtime's flags
/// already removed) with `app`, whose options are long flags taking one value each. Each
/// flag takes its value as the next argument or after '=', and the last one given wins;
/// the app's help flag is removed (run_main answers -h/--help with the program's usage).
/// Returns "" on success, else the message to print:
///   "unknown flag --prot; did you mean --port?"   (or "unknown flag --x" when none is near)
///   "--port needs a value"                        (at the end, before another flag, or "--port=")
///   "unexpected argument 'x'"
std::string parse(CLI::App& app, const std::vector<std::string>& args);

} // namespace reprise::flags
