// reprise-raft: one node of a RAFT-replicated key-value store (see docs/raft.md).
#include "node.hpp"

int main(int argc, char** argv) { return reprise::run_main(argc, argv, reprise::raft::program()); }
