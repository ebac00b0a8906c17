// Fuzz target: bytes as an executable file, through the build-id reader `reprise debug` runs on the program it picks (tools/elf_build_id.cpp).
//
// The file may be anything (a script, a damaged binary, a file that is not one). Checks: every
// read the reader asks for lies inside the file (it checks before it reads); a refusal has a
// reason; a build id is lower-case hex of whole bytes; every prefix of the input is read too
// (a file cut anywhere), with the same checks.
#include "elf_build_id.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

// Prefixes tried per input: the cuts at every byte of the headers (the first 1 KiB) are enough to
// reach every branch; beyond that the input itself.
constexpr std::size_t prefixes_max = 1024;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_elf_build_id: %s\n", what);
    std::abort();
}

void read_one(const std::uint8_t* data, std::size_t size) {
    const reprise::tool::ReadAt read_at = [&](std::uint64_t offset, void* out, std::uint64_t bytes) {
        if (offset > size || bytes > size - offset)
            return false;  // (the file reader answers the same: a short read)
        std::memcpy(out, data + offset, bytes);
        return true;
    };
    std::string id, why;
    const bool ok = reprise::tool::elf_build_id(size, read_at, id, why);
    if (!ok && why.empty())
        fail("a refusal without a reason");
    if (!ok && !id.empty())
        fail("a refusal with a build id");
    if (id.size() % 2 != 0)
        fail("a build id of half a byte");
    for (char c : id)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            fail("a build id that is not lower-case hex");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    read_one(data, size);
    for (std::size_t cut = 0; cut < size && cut < prefixes_max; ++cut)
        read_one(data, cut);
    return 0;
}
