// reprise-raft: one node of a RAFT-replicated key-value store (see docs/raft.md).
#include "config.hpp"
#include "node.hpp"

#include <reprise/runtime/reprise.hpp>

#include <fmt/core.h>

int main(int argc, char** argv) {
    using namespace reprise;
    return run_main(
        argc, argv,
        [](MainContext& ctx) -> int {
            std::string error;
            auto config = raft::parse_config(ctx.args, error);
            if (!config) {
                fmt::print(stderr, "reprise-raft: {}\n{}\n", error, raft::config_usage);
                return 2;
            }
            return raft::Node::run_main_task(std::move(*config));
        },
        ProgramInfo{"reprise-raft", raft::config_usage});
}
