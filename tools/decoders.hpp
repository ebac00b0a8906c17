// Protocol decoders of the trace tools: turn the bytes of one direction of a connection into
// one line per message ("SET k v", "AppendEntries(term 3, ...)"). The bytes come from traces,
// so they are hostile: every length is bounded, and a stream a decoder cannot follow stops
// being decoded (it says so once) instead of guessing.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reprise::tool {

/// Decodes one direction of one connection, fed in order, piece by piece.
class StreamDecoder {
public:
    virtual ~StreamDecoder() = default;
    /// Feeds the next bytes; appends one description per message they complete.
    virtual void feed(std::string_view bytes, std::vector<std::string>& messages) = 0;
    /// The protocol's name ("resp", "raft").
    virtual const char* name() const noexcept = 0;
};

/// A protocol the tools know: its name, whether a stream's first bytes look like it
/// (`first` holds the bytes seen so far: false until there are enough to tell; a stream
/// nobody claims by sniff_bytes is not decoded), and a fresh decoder.
struct Protocol {
    const char* name;
    const char* description;
    bool (*looks_like)(std::string_view first);
    std::unique_ptr<StreamDecoder> (*make)();
};

/// Bytes a stream's start is sniffed on.
/// (An authenticated raft link's connecting side: a 64-byte answer, then a frame's 5-byte head.)
inline constexpr std::size_t sniff_bytes = 69;
/// Bytes a decoder buffers at most while a message is incomplete (a bigger message is
/// described by its size alone, or ends the decoding).
inline constexpr std::size_t decoder_buffer_bytes_max = 16 * 1024 * 1024;
/// Bytes of one argument or value a description shows before it shortens it (saying so).
inline constexpr std::size_t shown_value_bytes = 48;

/// Every protocol, in the order they are tried.
const std::vector<Protocol>& protocols();

/// A decoder that picks its protocol from the stream's first bytes (or decodes nothing,
/// when no protocol matches: then messages stay empty and protocol() is "bytes").
class SniffingDecoder final : public StreamDecoder {
public:
    void feed(std::string_view bytes, std::vector<std::string>& messages) override;
    const char* name() const noexcept override { return inner_ ? inner_->name() : decided_ ? "bytes" : "unknown"; }

private:
    std::string first_;
    bool decided_ = false;
    std::unique_ptr<StreamDecoder> inner_;
};

/// A decoder for the stream that answers `other_direction` (the other direction of the same
/// connection), when the protocol says what it is though its first bytes cannot (the connecting
/// side of an authenticated raft link starts with random bytes); nullptr otherwise.
std::unique_ptr<StreamDecoder> answering_decoder(const StreamDecoder& other_direction);

/// Bytes from a hostile source, safe for a terminal: printable ASCII as is, quote and
/// backslash escaped by a backslash, anything else as \xNN.
std::string escaped(std::string_view s);
/// Whether the front of a RESP stream holds one complete value.
enum class RespFrame { complete, incomplete, invalid };
/// Frames the first RESP value at the front of `in` with the decoders' own parser: on
/// complete, `bytes` is its size and `text` its description (a command reads as its words).
RespFrame resp_frame(std::string_view in, std::size_t& bytes, std::string& text);
/// Whether a stream's first bytes look like RESP.
bool looks_like_resp_stream(std::string_view first);

/// A string from a hostile source, safe for a terminal: printable ASCII as is, anything
/// else escaped; quoted when it had to be escaped or holds a space.
std::string shown(std::string_view s);
/// As shown(), cut to `max` bytes with the number of bytes left out said.
std::string shown_short(std::string_view s, std::size_t max = shown_value_bytes);

} // namespace reprise::tool
