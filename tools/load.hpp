// `reprise load`: drives a live server with a trace's recorded inbound traffic and compares its answers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace reprise::trace {
struct TraceKey;
}

namespace reprise::tool {

/// What `reprise load` was asked to do (parsed by the tool's command line).
struct LoadRequest {
    std::string trace;                   ///< the recorded server's trace
    std::string host;                    ///< the target (numeric IPv4 or IPv6, or a name)
    std::string port;
    double speed = 1.0;                  ///< recorded pace times this; 0 = as fast as possible
    std::vector<std::string> ignore;     ///< commands (upper case) whose replies are not compared
    bool json = false;                   ///< a JSON summary on stdout instead of text
    std::int64_t timeout_ns = 10'000'000'000;  ///< longest wait for a connect or an answer
    const trace::TraceKey* key = nullptr;
};

extern const char* const load_help;

/// Runs the request; returns the tool's exit code (0 every connection answered as recorded,
/// 1 differences, 2 usage or an unreadable trace, 3 the target failed or was unreachable).
int load_main(const LoadRequest& request);

} // namespace reprise::tool
