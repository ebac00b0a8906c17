// Fuzz target: bytes as one direction of a recorded connection, through the trace tools'
// protocol decoders (tools/decoders.cpp: RESP both ways, reprise-raft's peer protocol).
//
// Each input runs through every protocol's decoder and through the sniffing decoder, fed
// all at once and in small pieces. Checks: feeding in pieces describes the same messages
// as feeding at once (a decoder's state carries a message across pieces); a description
// is never empty and never longer than a bound (values are shortened, as shown).
#include "decoders.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace reprise::tool;

// A description shows at most shown_resp_elements values of shown_value_bytes each (escaped:
// up to 4 bytes per byte), plus words; this bound is far above what any input can reach.
constexpr std::size_t description_bytes_max = 16 * 1024;

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_decoders: %s\n", what);
    std::abort();
}

std::vector<std::string> feed(StreamDecoder& d, std::string_view input, std::size_t piece) {
    std::vector<std::string> out;
    if (piece == 0) {
        d.feed(input, out);
        return out;
    }
    for (std::size_t at = 0; at < input.size(); at += piece)
        d.feed(input.substr(at, piece), out);
    return out;
}

void run(const std::function<std::unique_ptr<StreamDecoder>()>& make, std::string_view input, std::size_t piece) {
    auto whole_decoder = make();
    auto pieces_decoder = make();
    const auto whole = feed(*whole_decoder, input, 0);
    const auto pieces = feed(*pieces_decoder, input, piece);
    if (whole != pieces)
        fail("feeding in pieces describes other messages than feeding at once");
    for (const std::string& m : whole)
        if (m.empty() || m.size() > description_bytes_max)
            fail("a description is empty or unbounded");
}

// resp_frame (reprise load's framing): a value framed in a prefix of the input is framed the
// same in the whole input, never claims more bytes than it was given, and its description is bounded.
void frame(std::string_view input, std::size_t piece) {
    std::size_t at = 0;
    while (at < input.size()) {
        std::size_t whole_bytes = 0;
        std::string whole_text;
        const RespFrame whole = resp_frame(input.substr(at), whole_bytes, whole_text);
        const std::size_t step = std::max(piece, (input.size() - at) / 64);  // a bounded number of prefixes
        for (std::size_t n = step; n < input.size() - at; n += step) {
            std::size_t b = 0;
            std::string t;
            const RespFrame f = resp_frame(input.substr(at, n), b, t);
            if (f == RespFrame::complete && (whole != RespFrame::complete || b != whole_bytes || b > n))
                fail("resp_frame frames a prefix other than the whole stream");
            if (f == RespFrame::complete)
                break;
        }
        if (whole != RespFrame::complete)
            return;
        if (whole_bytes == 0 || whole_bytes > input.size() - at || whole_text.empty() ||
            whole_text.size() > description_bytes_max)
            fail("resp_frame framed an empty, overlong or undescribed value");
        at += whole_bytes;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t piece = 1 + size % 7;
    for (const Protocol& p : protocols())
        run(p.make, input, piece);
    run([] { return std::unique_ptr<StreamDecoder>(std::make_unique<SniffingDecoder>()); }, input, piece);
    frame(input, piece);
    return 0;
}
