// The GNU build id of an ELF file (its NT_GNU_BUILD_ID note), read as `reprise debug` compares a binary with a trace's header.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace reprise::tool {

/// Reads `bytes` bytes at `offset` of the file into `out`; false when they are not all there.
using ReadAt = std::function<bool(std::uint64_t offset, void* out, std::uint64_t bytes)>;

/// The build id (lower-case hex) of the ELF file of `size` bytes that `read_at` reads, from its
/// PT_NOTE segments; empty when it has none. False (with `why`) when it is not a little-endian ELF
/// file or a header lies outside it. Every offset and size is checked against `size` before it
/// is read: the file may be anything (a fuzz target, tests/fuzz/fuzz_elf_build_id.cpp, feeds it).
bool elf_build_id(std::uint64_t size, const ReadAt& read_at, std::string& id, std::string& why);

/// The same of the file at `path` (`why` then starts with the path).
bool elf_build_id(const std::string& path, std::string& id, std::string& why);

} // namespace reprise::tool
