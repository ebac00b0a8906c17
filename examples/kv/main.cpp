// reprise-kv: a Redis-protocol key-value server on the reprise runtime (the server lives in kv_server.cpp).
#include "kv_server.hpp"

int main(int argc, char** argv) { return reprise::run_main(argc, argv, reprise::kv::program()); }
