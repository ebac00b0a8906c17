// Writes seed inputs for the chunk fuzzer: one chunk of each flag combination, sealed by ChunkSealer.
//
// Usage: make_chunk_seeds DIR. Each seed is fuzz_chunk's input: a byte saying whether the
// opener holds the fuzz key (1) or not (0), then the chunk, opened as index 0.
#include "fuzz_chunk_key.hpp"
#include "seed_file.hpp"

#include <reprise/record/chunk.hpp>

#include <cstdio>
#include <string>

using namespace reprise;

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    std::string text;
    for (int i = 0; text.size() < 2000; ++i)
        text += "*3\r\n$3\r\nSET\r\n$5\r\nkey:" + std::to_string(i % 10) + "\r\n$5\r\nvalue\r\n";
    const std::string binary = "\x01\x9f\x00\xff\x37 not much to compress";
    const trace::TraceKey key = fuzz::chunk_key();
    struct Seed {
        const char* name;
        const trace::TraceKey* key;
        const std::string* payload;
    };
    const Seed seeds[] = {{"plain", nullptr, &binary},
                          {"compressed", nullptr, &text},
                          {"encrypted", &key, &binary},
                          {"compressed-encrypted", &key, &text}};
    for (const Seed& s : seeds) {
        trace::ChunkSealer sealer(fuzz::chunk_header_body, s.key);
        std::string input(1, s.key ? '\x01' : '\x00');
        sealer.seal(*s.payload, 0, true, input);
        fuzz::write_seed("make_chunk_seeds", dir + "/" + s.name, input);
    }
    return 0;
}
