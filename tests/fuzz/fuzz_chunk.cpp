// Fuzz target: bytes as one chunk of a trace, through parse_chunk_frame and ChunkOpener, and back through ChunkSealer.
//
// Input: byte 0 says whether the opener holds the fuzz key (odd) or none (even); the rest
// is a chunk, its frame then its stored bytes. Checks: a refusal has a message; an opened
// chunk holds exactly R bytes; and whatever the rest is, sealed as a payload (with the same
// key, compressed when it shrinks) it opens back to itself. Under libFuzzer a custom
// mutator repairs the chunk's CRC after half of the mutations, so that mutations reach the
// zstd and AEAD checks behind it.
#include "checksum_mutator.hpp"
#include "fuzz_chunk_key.hpp"

#include <reprise/record/chunk.hpp>
#include <reprise/runtime/assert.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace reprise::trace;

/// The largest payload the round trip seals (the rest of a longer input is still opened).
constexpr std::size_t round_trip_bytes_max = 1 << 16;

/// Both sides of the envelope, with and without the fuzz key, made once.
struct Sides {
    TraceKey key = reprise::fuzz::chunk_key();
    ChunkOpener plain{reprise::fuzz::chunk_header_body, nullptr};
    ChunkOpener keyed{reprise::fuzz::chunk_header_body, &key};
    ChunkSealer plain_sealer{reprise::fuzz::chunk_header_body, nullptr};
    ChunkSealer keyed_sealer{reprise::fuzz::chunk_header_body, &key};
};

Sides& sides() {
    static Sides s;
    return s;
}

} // namespace

/// The chunk's CRC-32C, over its frame and whatever follows it in the input.
void reprise::fuzz::repair_checksums(std::uint8_t* data, std::size_t size) {
    if (size < 1 + chunk_frame_bytes)
        return;
    std::uint8_t* chunk = data + 1;
    const std::string_view checked(reinterpret_cast<const char*>(chunk), chunk_frame_checked_bytes);
    const std::string_view stored(reinterpret_cast<const char*>(chunk + chunk_frame_bytes), size - 1 - chunk_frame_bytes);
    const std::uint32_t crc = crc32c_extend(crc32c(checked), stored);
    for (int i = 0; i < 4; ++i)
        chunk[chunk_frame_checked_bytes + i] = static_cast<std::uint8_t>(crc >> (8 * i));
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1)
        return 0;
    Sides& o = sides();
    const bool keyed = (data[0] & 1) != 0;
    const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);

    if (rest.size() >= chunk_frame_bytes) {
        ChunkFrame f;
        if (auto why = parse_chunk_frame(reinterpret_cast<const unsigned char*>(rest.data()), f)) {
            REPRISE_ASSERT_MSG(!why->empty(), "a refused frame comes with a message");
        } else if (rest.size() == chunk_frame_bytes + f.stored_bytes) {
            std::string stored(rest.substr(chunk_frame_bytes)), payload;
            if (auto why = (keyed ? o.keyed : o.plain).open(f, stored, 0, payload))
                REPRISE_ASSERT_MSG(!why->empty(), "a refused chunk comes with a message");
            else
                REPRISE_ASSERT_MSG(payload.size() == f.raw_bytes, "an opened chunk holds other than R bytes");
        }
    }

    if (!rest.empty()) {
        const std::string_view payload = rest.substr(0, round_trip_bytes_max);
        std::string chunk, stored, back;
        (keyed ? o.keyed_sealer : o.plain_sealer).seal(payload, 7, true, chunk);
        ChunkFrame f;
        REPRISE_ASSERT(!parse_chunk_frame(reinterpret_cast<const unsigned char*>(chunk.data()), f));
        stored.assign(chunk, chunk_frame_bytes);
        REPRISE_ASSERT_MSG(!(keyed ? o.keyed : o.plain).open(f, stored, 7, back), "a sealed chunk does not open");
        REPRISE_ASSERT_MSG(back == payload, "a sealed chunk opens to other bytes");
    }
    return 0;
}
