// The key and header body the chunk fuzzer opens with, shared with its seed generator.
#pragma once

#include <reprise/record/chunk.hpp>

#include <string_view>

namespace reprise::fuzz {

inline constexpr std::string_view chunk_header_body = "the chunk fuzzer's header body";

/// A fixed key: the seeds are sealed with it, so the fuzzer starts from chunks that open.
inline trace::TraceKey chunk_key() {
    trace::TraceKey k;
    for (std::size_t i = 0; i < trace::trace_key_bytes; ++i)
        k.bytes[i] = static_cast<unsigned char>(0xa0 + i);
    return k;
}

} // namespace reprise::fuzz
