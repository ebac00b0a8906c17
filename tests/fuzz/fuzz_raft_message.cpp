// Fuzz target: bytes as one RAFT peer frame, through raft::decode_message as a node reads them from a peer.
//
// The wire format is canonical (fixed-width fields, booleans 0 or 1, no trailing bytes),
// so a frame that decodes must encode back to exactly the same bytes; the declared body
// length must agree with frame_body_length.
#include "message.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

[[noreturn]] void fail(const char* what) {
    std::fprintf(stderr, "fuzz_raft_message: %s\n", what);
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace reprise::raft;
    const std::string_view frame(reinterpret_cast<const char*>(data), size);
    Decoded d = decode_message(frame);
    if (d.message.has_value() == (d.error != nullptr))
        fail("a decode gives a message or an error, never both nor neither");
    if (!d.message) {
        if (d.error[0] == '\0')
            fail("an empty error message");
        return 0;
    }
    auto declared = frame_body_length(frame);
    if (!declared || *declared + wire::frame_header_bytes != size)
        fail("a decoded frame's length prefix does not match its size");
    if (message_name(*d.message) == nullptr)
        fail("a message without a name");
    const std::string again = encode_message(*d.message);
    if (again != frame)
        fail("a decoded message does not encode back to the same bytes");
    Decoded twice = decode_message(again);
    if (!twice.message || !(*twice.message == *d.message))
        fail("a re-encoded message does not decode to itself");
    return 0;
}
