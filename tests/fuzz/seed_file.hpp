// Writes one seed file of a fuzz corpus (the seed generators' one piece of I/O); exits 1 on failure.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace reprise::fuzz {

inline void write_seed(const char* program, const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
        std::fprintf(stderr, "%s: cannot write %s\n", program, path.c_str());
        std::exit(1);
    }
}

} // namespace reprise::fuzz
