// The trace's chunk envelope (format 3): frame, CRC-32C, zstd compression and XChaCha20-Poly1305 sealing.
#pragma once

#include "reprise/record/trace.hpp"
#include "reprise/runtime/result.hpp"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace reprise::trace {

// --- CRC-32C --------------------------------------------------------------------------

/// CRC-32C (Castagnoli, the CRC of iSCSI and SSE4.2): the checksum of the header body and of
/// every chunk. crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(std::string_view bytes) noexcept;
/// Continues a CRC-32C over more bytes: crc32c_extend(crc32c(a), b) == crc32c(a + b), and
/// crc32c_extend(0, b) == crc32c(b). So a checksum over pieces that are not contiguous (a frame,
/// a nonce, a payload, a tag) needs no buffer. Allocates nothing: safe in a signal handler.
std::uint32_t crc32c_extend(std::uint32_t crc, std::string_view bytes) noexcept;

// --- the frame ------------------------------------------------------------------------

/// Bytes of a chunk's frame, before its stored bytes.
inline constexpr std::size_t chunk_frame_bytes = 16;
/// Frame bytes the CRC and the encryption's additional data cover (all but the CRC itself).
inline constexpr std::size_t chunk_frame_checked_bytes = 12;
/// Flag bit: the body is one zstd frame of the payload.
inline constexpr std::uint8_t chunk_flag_compressed = 1;
/// Flag bit: the stored bytes are nonce, ciphertext of the body, tag.
inline constexpr std::uint8_t chunk_flag_encrypted = 2;
/// Every flag bit this version knows; a reader refuses a chunk with any other.
inline constexpr std::uint8_t chunk_flags_known = chunk_flag_compressed | chunk_flag_encrypted;
/// An encrypted chunk's nonce, before its ciphertext (XChaCha20's 192 bits: random nonces never collide).
inline constexpr std::size_t chunk_nonce_bytes = 24;
/// An encrypted chunk's authentication tag (Poly1305), after its ciphertext.
inline constexpr std::size_t chunk_tag_bytes = 16;
/// What encryption adds to the body.
inline constexpr std::size_t chunk_seal_overhead_bytes = chunk_nonce_bytes + chunk_tag_bytes;
/// Largest stored length a reader accepts: a body is never longer than its payload (a writer
/// compresses only when that shrinks it), plus the encryption's overhead.
inline constexpr std::size_t chunk_stored_bytes_max = chunk_bytes_max + chunk_seal_overhead_bytes;
/// The zstd level a recorder compresses with (the measurement is in chunk.cpp).
inline constexpr int chunk_compression_level_default = 1;
static_assert(chunk_stored_bytes_max <= 0xffffffffu, "the stored length fits its u32");
static_assert(chunk_frame_checked_bytes + 4 == chunk_frame_bytes);

/// A chunk's frame, decoded. The frame's reserved bytes are always zero.
struct ChunkFrame {
    std::uint32_t stored_bytes = 0;  ///< S: bytes after the frame
    std::uint32_t raw_bytes = 0;     ///< R: the payload's length once opened
    std::uint8_t flags = 0;          ///< chunk_flag_compressed | chunk_flag_encrypted
    std::uint32_t crc = 0;           ///< CRC-32C of frame bytes 0..11, then the stored bytes
};

/// Writes the 16 frame bytes of `frame` (little-endian, reserved bytes zero).
void write_chunk_frame(char out[chunk_frame_bytes], const ChunkFrame& frame) noexcept;
/// Decodes and checks a frame read from a trace (hostile input): refuses unknown flag bits,
/// nonzero reserved bytes, a raw length outside 1..chunk_bytes_max, and a stored length that does
/// not fit the flags (a plain body of another length than R, a compressed body not shorter than
/// R, an encrypted chunk shorter than its overhead). A message on refusal; the stored length is
/// then never used to allocate.
std::optional<std::string> parse_chunk_frame(const unsigned char in[chunk_frame_bytes], ChunkFrame& out);

// --- keys -------------------------------------------------------------------------------

/// Bytes of a trace key (XChaCha20-Poly1305's key).
inline constexpr std::size_t trace_key_bytes = 32;

/// The secret a recording is sealed with and its replay opened with. Zeroed when destroyed.
struct TraceKey {
    unsigned char bytes[trace_key_bytes] = {};

    TraceKey() = default;
    TraceKey(const TraceKey&) = default;
    TraceKey& operator=(const TraceKey&) = default;
    ~TraceKey();
};

/// Reads a key file: 64 hex digits, then optionally whitespace (a newline). Refuses anything
/// else, and a file that other users may read or write ("chmod 600 it"). `error` gets the message.
Result<TraceKey> load_trace_key(const std::string& path, std::string& error);
/// Creates `path` (mode 0600; never replaces an existing file) holding a fresh random key in the
/// form load_trace_key reads, and returns the key. `error` gets the message on failure.
Result<TraceKey> write_new_trace_key(const std::string& path, std::string& error);

// --- sealing (the writer) ------------------------------------------------------------------

/// The frame, nonce and tag the crash path writes around a payload it sealed in place:
/// frame, then (when encrypted) nonce, then the payload bytes, then (when encrypted) tag.
struct SealedInPlace {
    char frame[chunk_frame_bytes] = {};
    unsigned char nonce[chunk_nonce_bytes] = {};
    unsigned char tag[chunk_tag_bytes] = {};
    bool encrypted = false;  ///< nonce and tag are meaningful, and must be written
};

/// Turns payloads into chunks for one trace: the recorder's writer thread owns one.
/// With a key, every chunk it produces is encrypted; without, none is.
class ChunkSealer {
public:
    /// `header_body` is the trace's header body (every chunk's additional data names it);
    /// `key` nullptr: chunks are not encrypted. Allocates its compression context here,
    /// once, so sealing a chunk allocates at most the caller's output growth.
    ChunkSealer(std::string_view header_body, const TraceKey* key,
                int compression_level = chunk_compression_level_default);
    ~ChunkSealer();
    ChunkSealer(ChunkSealer&&) noexcept;
    ChunkSealer& operator=(ChunkSealer&&) noexcept;

    /// Appends the chunk of `payload` (frame, then stored bytes) to `out`; `index` is the chunk's
    /// position in the whole trace, from 0 (across segments). `compress`: try zstd, and keep its
    /// frame only when it is shorter than the payload. 1 <= payload size <= chunk_bytes_max.
    void seal(std::string_view payload, std::uint64_t index, bool compress, std::string& out);

    /// The crash path: seals `payload` (n bytes) in place, uncompressed, into a chunk whose other
    /// parts land in `out`. Encrypts the payload in place when the sealer has a key, else leaves
    /// it untouched. Allocates nothing, takes no lock and reads only what the constructor set, so
    /// it may run in a fatal signal handler while the writer thread is inside seal(); its random
    /// nonce costs one system call. False (and nothing sealed) when n is 0 or above
    /// chunk_bytes_max: a signal handler cannot assert.
    bool seal_in_place(char* payload, std::size_t n, std::uint64_t index, SealedInPlace& out) const noexcept;

    /// Whether its chunks are encrypted (it was given a key).
    bool encrypts() const noexcept;

private:
    struct State;
    std::unique_ptr<State> state_;
};

// --- opening (the reader) ---------------------------------------------------------------

/// Opens the chunks of one trace, in any order: the reader owns one.
class ChunkOpener {
public:
    /// `header_body` is the trace's header body as read. `key` nullptr: an encrypted chunk is
    /// refused; with a key, a chunk that is not encrypted is.
    /// Allocates its decompression context here, once.
    ChunkOpener(std::string_view header_body, const TraceKey* key);
    ~ChunkOpener();
    ChunkOpener(ChunkOpener&&) noexcept;
    ChunkOpener& operator=(ChunkOpener&&) noexcept;

    /// Checks and opens one chunk: `frame` from parse_chunk_frame, `stored` its stored bytes
    /// (frame.stored_bytes of them), `index` its position in the trace. On success `payload` holds
    /// the frame.raw_bytes payload bytes; a message otherwise (damage, a missing or wrong key,
    /// a bad zstd frame). `stored` is consumed: its contents afterwards are unspecified. A plain
    /// chunk (no flag) costs one CRC pass and a swap of the two strings, not a copy, so that
    /// reusing both strings chunk after chunk allocates nothing once they are large enough.
    std::optional<std::string> open(const ChunkFrame& frame, std::string& stored, std::uint64_t index,
                                    std::string& payload);

private:
    struct State;
    std::unique_ptr<State> state_;
};

} // namespace reprise::trace
