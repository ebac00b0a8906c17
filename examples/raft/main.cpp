// reprise-raft: one node of a RAFT-replicated key-value store (see docs/raft.md).
#include "config.hpp"
#include "node.hpp"

#include <reprise/runtime/reprise.hpp>

#include <fmt/core.h>

int main(int argc, char** argv) {
    using namespace reprise;
    ProgramInfo info;
    info.name = "reprise-raft";
    info.usage = raft::config_usage;
    info.flags = raft::config_flags();
    return run_main(
        argc, argv,
        [](MainContext& ctx) -> int {
            std::string error;
            auto config = raft::parse_config(ctx.args, error);
            if (!config) {
                fmt::print(stderr, "reprise-raft: {}\n(see reprise-raft --help)\n", error);
                return 2;
            }
            return raft::Node::run_main_task(std::move(*config));
        },
        std::move(info));
}
