// reprise-kv: a Redis-protocol key-value server on the reprise runtime (the server lives in kv_server.cpp).
#include "kv_server.hpp"

int main(int argc, char** argv) {
    reprise::ProgramInfo info;
    info.name = "reprise-kv";
    info.usage = reprise::kv::usage_text();
    info.flags = reprise::kv::flag_names();
    return reprise::run_main(argc, argv, reprise::kv::main_entry, std::move(info));
}
