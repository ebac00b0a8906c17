// The fixed key the trace fuzzer's encrypted seeds are sealed with and its target opens every input with.
#pragma once

#include <reprise/record/chunk.hpp>

namespace reprise::fuzz {

/// Bytes 0x00, 0x01, ..., 0x1f: as a key file, 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f
/// (tests/fuzz/README.md). A test key, public on purpose: it guards nothing.
inline trace::TraceKey fuzz_trace_key() {
    trace::TraceKey key;
    for (std::size_t i = 0; i < trace::trace_key_bytes; ++i)
        key.bytes[i] = static_cast<unsigned char>(i);
    return key;
}

} // namespace reprise::fuzz
