// `reprise cluster check|log|timeline`: the traces of several nodes read as one cluster.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace reprise::trace {
struct TraceKey;
}

namespace reprise::tool {

/// What `reprise cluster` was asked to do (parsed by the tool's command line).
struct ClusterRequest {
    std::string action;                                          ///< check, log or timeline
    std::vector<std::string> inputs;                             ///< traces and folders of traces
    std::vector<std::pair<std::string, std::string>> maps;       ///< --map FROM=TO (an address seen as another)
    bool json = false;                                           ///< log: JSON lines
    bool ticks = false;                                          ///< log: tick records too
    bool connections = false;                                    ///< check: list every connection
    bool html = false;                                           ///< timeline: a self-contained HTML page
    std::optional<std::int64_t> from_ns;                         ///< log, timeline: cluster time window
    std::optional<std::int64_t> to_ns;
    std::vector<std::string> nodes;                              ///< log, timeline: only these nodes
    std::string output = "-";                                    ///< timeline: the file written ("-": stdout)
    std::uint64_t max_bytes = 512ull * 1024 * 1024;              ///< timeline: refuse to write more
    const trace::TraceKey* key = nullptr;                        ///< of sealed traces
};

extern const char* const cluster_help;

/// Runs the request; returns the tool's exit code (0 fine, 1 inconsistent, 2 usage or
/// unreadable input, 3 check cannot tell).
int cluster_main(const ClusterRequest& request);

} // namespace reprise::tool
