// `reprise debug`: gdb started on a replay of one trace, or of several nodes' traces at once.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace reprise::trace {
struct TraceKey;
}

namespace reprise::tool {

/// What `reprise debug` was asked to do (parsed by the tool's command line).
struct DebugRequest {
    std::vector<std::string> inputs;        ///< traces, or one folder of traces
    std::optional<std::string> program;     ///< --program: the binary to run, whatever the traces name
    std::optional<std::string> extension;   ///< --extension: the gdb extension to load
    std::string gdb = "gdb";                ///< --gdb: the debugger (a name looked up on PATH, or a path)
    std::optional<std::string> break_at;    ///< --break-at=[NODE:]N, checked and passed to the program
    std::optional<std::string> key_path;    ///< --record-key FILE, passed to the program
    const trace::TraceKey* key = nullptr;   ///< the key loaded from key_path
    bool print_command = false;             ///< print the command instead of running it
    std::vector<std::string> gdb_args;      ///< everything after `--`
};

extern const char* const debug_help;

/// Runs the request: execs gdb, so it returns only on an error or with --print-command. The
/// tool's exit code: 0 the command was printed; 2 a bad command line, a missing or unreadable
/// trace; 3 what the session needs cannot be found (the program, gdb, the extension).
int debug_main(const DebugRequest& request);

} // namespace reprise::tool
