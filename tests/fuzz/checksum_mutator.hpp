// The libFuzzer mutator of targets whose input carries checksums: mutates, then repairs them half of the time.
//
// A target includes this and defines reprise::fuzz::repair_checksums. A mutation of a checksummed
// input is almost always refused at its checksum; repairing it lets half of the mutations reach
// the parsing behind the checksum, while the other half still exercise the checksum itself.
#pragma once

#include <cstddef>
#include <cstdint>

namespace reprise::fuzz {

/// Rewrites the checksums of `data` so they match the bytes they cover (the target's own format).
void repair_checksums(std::uint8_t* data, std::size_t size);

} // namespace reprise::fuzz

#ifdef REPRISE_LIBFUZZER
extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 2 == 0)
        reprise::fuzz::repair_checksums(data, size);
    return size;
}
#endif
