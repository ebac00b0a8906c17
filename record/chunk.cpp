// The chunk envelope: CRC-32C, the 16-byte frame, zstd and XChaCha20-Poly1305 — the sealing beside the opening.
#include "reprise/record/chunk.hpp"

#include <sodium.h>
#include <zstd.h>

#include <fmt/core.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace reprise::trace {

// --- CRC-32C ------------------------------------------------------------------------------

namespace {

constexpr std::uint32_t crc32c_polynomial_reflected = 0x82f63b78u;
constexpr std::uint32_t crc32c_xor = 0xffffffffu;

// constexpr, so that a CRC computed during another file's static initialisation (or in a
// signal handler) never meets a table not yet filled.
constexpr std::array<std::uint32_t, 256> make_crc_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? (c >> 1) ^ crc32c_polynomial_reflected : c >> 1;
        t[i] = c;
    }
    return t;
}
constexpr std::array<std::uint32_t, 256> crc_table = make_crc_table();

// Both take and return the register (the CRC before its final XOR).
std::uint32_t crc32c_table(std::uint32_t c, std::string_view bytes) noexcept {
    for (unsigned char b : bytes)
        c = crc_table[(c ^ b) & 0xff] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
// The SSE4.2 crc32 instruction computes the same CRC-32C, 8 bytes at a time.
__attribute__((target("sse4.2"))) std::uint32_t crc32c_sse42(std::uint32_t c, std::string_view bytes) noexcept {
    std::size_t i = 0;
    std::uint64_t c64 = c;
    for (; i + 8 <= bytes.size(); i += 8) {
        std::uint64_t w;
        std::memcpy(&w, bytes.data() + i, 8);
        c64 = __builtin_ia32_crc32di(c64, w);
    }
    c = static_cast<std::uint32_t>(c64);
    for (; i < bytes.size(); ++i)
        c = __builtin_ia32_crc32qi(c, static_cast<unsigned char>(bytes[i]));
    return c;
}
// Read before it is set (another file's static initialisation) it is false: the table is used.
const bool have_sse42 = __builtin_cpu_supports("sse4.2");
#endif

} // namespace

std::uint32_t crc32c_extend(std::uint32_t crc, std::string_view bytes) noexcept {
    const std::uint32_t reg = crc ^ crc32c_xor;
#if defined(__x86_64__)
    if (have_sse42)
        return crc32c_sse42(reg, bytes) ^ crc32c_xor;
#endif
    return crc32c_table(reg, bytes) ^ crc32c_xor;
}

std::uint32_t crc32c(std::string_view bytes) noexcept { return crc32c_extend(0, bytes); }

// --- the frame ------------------------------------------------------------------------------

namespace {

constexpr std::size_t frame_stored_at = 0;
constexpr std::size_t frame_raw_at = 4;
constexpr std::size_t frame_flags_at = 8;
constexpr std::size_t frame_reserved_at = 9;
constexpr std::size_t frame_crc_at = 12;
static_assert(frame_crc_at == chunk_frame_checked_bytes);

static_assert(chunk_nonce_bytes == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
static_assert(chunk_tag_bytes == crypto_aead_xchacha20poly1305_ietf_ABYTES);
static_assert(trace_key_bytes == crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
static_assert(chunk_stored_bytes_max <= crypto_aead_xchacha20poly1305_ietf_MESSAGEBYTES_MAX);

void put_le32(char* p, std::uint32_t v) noexcept {
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

std::uint32_t get_le32(const unsigned char* p) noexcept {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// The rules a frame obeys beyond its bytes (shared by the parser and the opener, which may be
// handed a frame that did not come from the parser).
std::optional<std::string> check_frame(const ChunkFrame& f) {
    if ((f.flags & ~chunk_flags_known) != 0)
        return fmt::format("chunk flags {:#04x} hold a bit this version does not know", f.flags);
    if (f.raw_bytes == 0 || f.raw_bytes > chunk_bytes_max)
        return fmt::format("chunk raw length {} is outside 1..{}", f.raw_bytes, chunk_bytes_max);
    if (f.stored_bytes > chunk_stored_bytes_max)
        return fmt::format("chunk stored length {} exceeds {}", f.stored_bytes, chunk_stored_bytes_max);
    const bool encrypted = (f.flags & chunk_flag_encrypted) != 0;
    if (encrypted && f.stored_bytes <= chunk_seal_overhead_bytes)
        return fmt::format("encrypted chunk stored length {} leaves no room for a body after its {}-byte nonce and tag",
                           f.stored_bytes, chunk_seal_overhead_bytes);
    const std::uint32_t body = f.stored_bytes - (encrypted ? chunk_seal_overhead_bytes : 0);
    if ((f.flags & chunk_flag_compressed) == 0 && body != f.raw_bytes)
        return fmt::format("uncompressed chunk body of {} bytes where its raw length is {}", body, f.raw_bytes);
    // A writer keeps a zstd frame only when it is shorter than the payload, so a longer one is damage.
    if ((f.flags & chunk_flag_compressed) != 0 && body >= f.raw_bytes)
        return fmt::format("compressed chunk body of {} bytes is not shorter than its raw length {}", body,
                           f.raw_bytes);
    return std::nullopt;
}

} // namespace

void write_chunk_frame(char out[chunk_frame_bytes], const ChunkFrame& frame) noexcept {
    put_le32(out + frame_stored_at, frame.stored_bytes);
    put_le32(out + frame_raw_at, frame.raw_bytes);
    out[frame_flags_at] = static_cast<char>(frame.flags);
    std::memset(out + frame_reserved_at, 0, frame_crc_at - frame_reserved_at);
    put_le32(out + frame_crc_at, frame.crc);
}

std::optional<std::string> parse_chunk_frame(const unsigned char in[chunk_frame_bytes], ChunkFrame& out) {
    for (std::size_t i = frame_reserved_at; i < frame_crc_at; ++i)
        if (in[i] != 0)
            return fmt::format("chunk frame byte {} is {:#04x}: reserved bytes must be zero", i, in[i]);
    ChunkFrame f;
    f.stored_bytes = get_le32(in + frame_stored_at);
    f.raw_bytes = get_le32(in + frame_raw_at);
    f.flags = in[frame_flags_at];
    f.crc = get_le32(in + frame_crc_at);
    if (auto why = check_frame(f))
        return why;
    out = f;
    return std::nullopt;
}

// --- what sealing and opening share ----------------------------------------------------------

namespace {

constexpr std::size_t header_hash_bytes = crypto_generichash_BYTES;
constexpr std::size_t index_bytes = 8;
/// The additional data every chunk's tag covers: the trace (its header's hash), the chunk's
/// place in it, and its frame (lengths and flags).
constexpr std::size_t additional_data_bytes = header_hash_bytes + index_bytes + chunk_frame_checked_bytes;
static_assert(header_hash_bytes == 32);

void require_sodium() {
    // sodium_init() is thread safe and idempotent; it fails only without a source of randomness.
    REPRISE_ASSERT_MSG(sodium_init() >= 0, "libsodium does not initialise (no source of randomness?)");
}

// A trace's key (when it has one) and its header's hash, set once at construction and only read
// after, so the crash path may read them while the writer thread seals.
struct Envelope {
    std::array<unsigned char, header_hash_bytes> header_hash{};
    TraceKey key;
    bool has_key = false;

    Envelope(std::string_view header_body, const TraceKey* k) {
        require_sodium();
        crypto_generichash(header_hash.data(), header_hash.size(),
                           reinterpret_cast<const unsigned char*>(header_body.data()), header_body.size(), nullptr, 0);
        if (k != nullptr) {
            key = *k;
            has_key = true;
        }
    }

    void additional_data(std::uint64_t index, const char frame[chunk_frame_bytes],
                         unsigned char out[additional_data_bytes]) const noexcept {
        std::memcpy(out, header_hash.data(), header_hash_bytes);
        for (std::size_t i = 0; i < index_bytes; ++i)
            out[header_hash_bytes + i] = static_cast<unsigned char>(index >> (8 * i));
        std::memcpy(out + header_hash_bytes + index_bytes, frame, chunk_frame_checked_bytes);
    }
};

std::string_view bytes_of(const unsigned char* p, std::size_t n) noexcept {
    return {reinterpret_cast<const char*>(p), n};
}

// Frames a body that sits between `nonce` and `tag` (both unused without a key), encrypting it in
// place when the envelope has a key. Allocates nothing: seal() and the crash path share it.
void seal_body(const Envelope& env, std::uint64_t index, std::uint32_t raw_bytes, std::uint8_t flags,
               unsigned char* body, std::size_t body_bytes, char frame[chunk_frame_bytes],
               unsigned char nonce[chunk_nonce_bytes], unsigned char tag[chunk_tag_bytes]) noexcept {
    ChunkFrame f;
    f.raw_bytes = raw_bytes;
    f.flags = static_cast<std::uint8_t>(flags | (env.has_key ? chunk_flag_encrypted : 0));
    f.stored_bytes = static_cast<std::uint32_t>(body_bytes + (env.has_key ? chunk_seal_overhead_bytes : 0));
    write_chunk_frame(frame, f);
    std::uint32_t crc = crc32c(std::string_view(frame, chunk_frame_checked_bytes));
    if (env.has_key) {
        unsigned char ad[additional_data_bytes];
        env.additional_data(index, frame, ad);
        randombytes_buf(nonce, chunk_nonce_bytes);
        crypto_aead_xchacha20poly1305_ietf_encrypt_detached(body, tag, nullptr, body, body_bytes, ad, sizeof ad,
                                                            nullptr, nonce, env.key.bytes);
        crc = crc32c_extend(crc, bytes_of(nonce, chunk_nonce_bytes));
    }
    crc = crc32c_extend(crc, bytes_of(body, body_bytes));
    if (env.has_key)
        crc = crc32c_extend(crc, bytes_of(tag, chunk_tag_bytes));
    put_le32(frame + frame_crc_at, crc);
}

} // namespace

// --- keys -----------------------------------------------------------------------------------

namespace {

constexpr std::size_t key_hex_digits = 2 * trace_key_bytes;
/// A key file is its hex digits and a little whitespace; a larger file is not read further.
constexpr std::size_t key_file_bytes_max = 2 * key_hex_digits;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// Closes a descriptor on every way out of a function.
struct FdCloser {
    int fd;
    ~FdCloser() {
        if (fd >= 0)
            ::close(fd);
    }
};

// A buffer that held key material is zeroed however the function ends.
template <std::size_t N>
struct Secret {
    char bytes[N] = {};
    ~Secret() { sodium_memzero(bytes, N); }
};

} // namespace

TraceKey::~TraceKey() { sodium_memzero(bytes, sizeof bytes); }

Result<TraceKey> load_trace_key(const std::string& path, std::string& error) {
    require_sodium();
    FdCloser file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY)};  // reprise-allow: io (the trace's key file)
    if (file.fd < 0) {
        const int e = errno;
        error = fmt::format("trace key {}: {}", path, std::strerror(e));
        return error_from_errno(e);
    }
    struct stat st {};
    if (::fstat(file.fd, &st) != 0) {  // reprise-allow: io (the trace's key file)
        const int e = errno;
        error = fmt::format("trace key {}: {}", path, std::strerror(e));
        return error_from_errno(e);
    }
    if (!S_ISREG(st.st_mode)) {
        error = fmt::format("trace key {} is not a regular file", path);
        return Errc::invalid_argument;
    }
    // Checked before reading, as ssh does: a key others could read is no longer a secret.
    if ((st.st_mode & (S_IRGRP | S_IROTH)) != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        error = fmt::format("trace key {} is {} by other users (mode {:04o}): chmod 600 it", path,
                            (st.st_mode & (S_IRGRP | S_IROTH)) != 0 ? "readable" : "writable", st.st_mode & 07777);
        return Errc::invalid_argument;
    }
    Secret<key_file_bytes_max + 1> text;
    std::size_t got = 0;
    while (got < sizeof text.bytes) {
        ssize_t n = ::read(file.fd, text.bytes + got, sizeof text.bytes - got);  // reprise-allow: io (the key file)
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            const int e = errno;
            error = fmt::format("trace key {}: {}", path, std::strerror(e));
            return error_from_errno(e);
        }
        if (n == 0)
            break;
        got += static_cast<std::size_t>(n);
    }
    const auto refuse = [&](std::string why) -> Result<TraceKey> {
        error = fmt::format("trace key {}: {} (a key file holds 64 hex digits, optionally followed by a newline)",
                            path, why);
        return Errc::invalid_argument;
    };
    if (got > key_file_bytes_max)
        return refuse(fmt::format("it is longer than {} bytes", key_file_bytes_max));
    std::size_t digits = got;
    while (digits > 0 && is_space(text.bytes[digits - 1]))
        --digits;
    for (std::size_t i = 0; i < digits; ++i)
        if (!is_hex(text.bytes[i]))
            return refuse(fmt::format("byte {} ({}) is not a hex digit", i,
                                      text.bytes[i] == '\n'   ? std::string("a newline: only one may end the key")
                                      : text.bytes[i] > 0x20 && text.bytes[i] < 0x7f
                                          ? fmt::format("'{}'", static_cast<char>(text.bytes[i]))
                                          : fmt::format("0x{:02x}", static_cast<unsigned>(text.bytes[i]))));
    if (digits != key_hex_digits)
        return refuse(fmt::format("it holds {} hex digits", digits));
    TraceKey key;
    std::size_t decoded = 0;
    if (sodium_hex2bin(key.bytes, sizeof key.bytes, text.bytes, digits, nullptr, &decoded, nullptr) != 0 ||
        decoded != sizeof key.bytes)
        return refuse("its digits do not decode");
    return key;
}

Result<TraceKey> write_new_trace_key(const std::string& path, std::string& error) {
    require_sodium();
    // O_EXCL: a key is never replaced, or the traces sealed with it could no longer be opened.
    FdCloser file{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,  // reprise-allow: io (the key file)
                         0600)};
    if (file.fd < 0) {
        const int e = errno;
        error = e == EEXIST ? fmt::format("trace key {} exists already: a key file is never overwritten", path)
                            : fmt::format("cannot create trace key {}: {}", path, std::strerror(e));
        return error_from_errno(e);
    }
    TraceKey key;
    randombytes_buf(key.bytes, sizeof key.bytes);
    Secret<key_hex_digits + 2> text;  // the digits, a newline, and sodium_bin2hex's terminating zero
    sodium_bin2hex(text.bytes, sizeof text.bytes, key.bytes, sizeof key.bytes);
    text.bytes[key_hex_digits] = '\n';
    std::string_view left(text.bytes, key_hex_digits + 1);
    int failed_errno = 0;
    while (!left.empty() && failed_errno == 0) {
        ssize_t n = ::write(file.fd, left.data(), left.size());  // reprise-allow: io (the key file)
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            failed_errno = n < 0 ? errno : EIO;
        else
            left.remove_prefix(static_cast<std::size_t>(n));
    }
    // Synced: a key lost to a power cut takes every trace sealed with it along.
    if (failed_errno == 0 && ::fsync(file.fd) != 0)
        failed_errno = errno;
    if (failed_errno != 0) {
        ::unlink(path.c_str());  // reprise-allow: io (the key file we created)
        error = fmt::format("cannot write trace key {}: {}", path, std::strerror(failed_errno));
        return error_from_errno(failed_errno);
    }
    return key;
}

// --- sealing ----------------------------------------------------------------------------------

// Level 1, measured on real traces (reprise-kv recorded under redis-benchmark, 64 KiB chunks,
// one core of the development machine, zstd 1.5.4):
//   lengths and digests only (672 chunks, 44 MB): level 1 ratio 14.7, 925 MB/s; level 3 ratio 13.6, 871 MB/s
//   --record-full            (97 chunks, 6.3 MB): level 1 ratio 16.3, 790 MB/s; level 3 ratio 14.8, 889 MB/s
// On chunks this small level 3's larger search gains nothing (its ratio is lower), level 5 is 4x slower
// for no gain, and negative levels lose a quarter of the ratio for 1.3x the speed.
struct ChunkSealer::State {
    Envelope envelope;
    std::unique_ptr<ZSTD_CCtx, decltype(&ZSTD_freeCCtx)> cctx{ZSTD_createCCtx(), &ZSTD_freeCCtx};

    State(std::string_view header_body, const TraceKey* key) : envelope(header_body, key) {}
};

ChunkSealer::ChunkSealer(std::string_view header_body, const TraceKey* key, int compression_level)
    : state_(std::make_unique<State>(header_body, key)) {
    REPRISE_ASSERT_MSG(state_->cctx != nullptr, "out of memory for a zstd compression context");
    REPRISE_ASSERT_MSG(compression_level >= ZSTD_minCLevel() && compression_level <= ZSTD_maxCLevel(),
                       "the zstd compression level is out of range");
    // The frame says its content size (the reader checks it against R); the chunk's CRC makes zstd's
    // own checksum redundant, and no dictionary is used.
    const std::pair<ZSTD_cParameter, int> params[] = {{ZSTD_c_compressionLevel, compression_level},
                                                      {ZSTD_c_contentSizeFlag, 1},
                                                      {ZSTD_c_checksumFlag, 0},
                                                      {ZSTD_c_dictIDFlag, 0}};
    for (const auto& [param, value] : params)
        REPRISE_ASSERT_MSG(!ZSTD_isError(ZSTD_CCtx_setParameter(state_->cctx.get(), param, value)),
                           "zstd refuses a compression parameter");
}

ChunkSealer::~ChunkSealer() = default;
ChunkSealer::ChunkSealer(ChunkSealer&&) noexcept = default;
ChunkSealer& ChunkSealer::operator=(ChunkSealer&&) noexcept = default;

bool ChunkSealer::encrypts() const noexcept { return state_->envelope.has_key; }

void ChunkSealer::seal(std::string_view payload, std::uint64_t index, bool compress, std::string& out) {
    REPRISE_ASSERT_MSG(!payload.empty() && payload.size() <= chunk_bytes_max,
                       "a chunk's payload is empty or larger than chunk_bytes_max");
    const Envelope& env = state_->envelope;
    const std::size_t at = out.size();
    const std::size_t body_at = at + chunk_frame_bytes + (env.has_key ? chunk_nonce_bytes : 0);
    // Room for the payload as it is: compression must fit in less, or it is not kept.
    out.resize(body_at + payload.size() + (env.has_key ? chunk_tag_bytes : 0));
    auto* base = reinterpret_cast<unsigned char*>(out.data());
    std::size_t body_bytes = payload.size();
    std::uint8_t flags = 0;
    if (compress && payload.size() > 1) {
        // With one byte less room than the payload, zstd fails (dstSize_tooSmall) exactly when
        // compression would not shrink it; the payload is then stored as it is.
        const std::size_t n =
            ZSTD_compress2(state_->cctx.get(), base + body_at, payload.size() - 1, payload.data(), payload.size());
        if (!ZSTD_isError(n)) {
            body_bytes = n;
            flags = chunk_flag_compressed;
        }
    }
    if (flags == 0)
        std::memcpy(base + body_at, payload.data(), payload.size());
    unsigned char* tag = base + body_at + body_bytes;
    if (env.has_key && body_bytes != payload.size())
        out.resize(body_at + body_bytes + chunk_tag_bytes);  // shrinks: the buffer stays put
    seal_body(env, index, static_cast<std::uint32_t>(payload.size()), flags, base + body_at, body_bytes,
              out.data() + at, base + at + chunk_frame_bytes, tag);
    if (!env.has_key)
        out.resize(body_at + body_bytes);
    // Both sides of the contract: what was written parses back, sealed when a key is set.
    ChunkFrame written;
    REPRISE_ASSERT(!parse_chunk_frame(base + at, written).has_value());
    REPRISE_ASSERT(written.raw_bytes == payload.size() && out.size() == at + chunk_frame_bytes + written.stored_bytes);
    REPRISE_ASSERT_MSG(env.has_key == ((written.flags & chunk_flag_encrypted) != 0),
                       "a chunk of a keyed trace left unencrypted");
}

bool ChunkSealer::seal_in_place(char* payload, std::size_t n, std::uint64_t index, SealedInPlace& out) const noexcept {
    if (n == 0 || n > chunk_bytes_max)
        return false;
    const Envelope& env = state_->envelope;
    seal_body(env, index, static_cast<std::uint32_t>(n), 0, reinterpret_cast<unsigned char*>(payload), n, out.frame,
              out.nonce, out.tag);
    out.encrypted = env.has_key;
    return true;
}

// --- opening ----------------------------------------------------------------------------------

struct ChunkOpener::State {
    Envelope envelope;
    std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx{ZSTD_createDCtx(), &ZSTD_freeDCtx};

    State(std::string_view header_body, const TraceKey* key) : envelope(header_body, key) {}
};

ChunkOpener::ChunkOpener(std::string_view header_body, const TraceKey* key)
    : state_(std::make_unique<State>(header_body, key)) {
    REPRISE_ASSERT_MSG(state_->dctx != nullptr, "out of memory for a zstd decompression context");
}

ChunkOpener::~ChunkOpener() = default;
ChunkOpener::ChunkOpener(ChunkOpener&&) noexcept = default;
ChunkOpener& ChunkOpener::operator=(ChunkOpener&&) noexcept = default;

std::optional<std::string> ChunkOpener::open(const ChunkFrame& frame, std::string& stored, std::uint64_t index,
                                             std::string& payload) {
    if (auto why = check_frame(frame))
        return why;
    REPRISE_ASSERT_MSG(stored.size() == frame.stored_bytes, "open() given other stored bytes than the frame says");
    const Envelope& env = state_->envelope;
    char head[chunk_frame_bytes];
    write_chunk_frame(head, frame);  // the bytes it was parsed from: the reserved ones were zero
    if (crc32c_extend(crc32c(std::string_view(head, chunk_frame_checked_bytes)), stored) != frame.crc)
        return std::string("chunk checksum mismatch (the file is damaged)");
    const bool encrypted = (frame.flags & chunk_flag_encrypted) != 0;
    // A writer with a key encrypts every chunk, so a plain one in a keyed trace was put there
    // by someone without the key.
    if (!encrypted && env.has_key)
        return std::string("the chunk is not encrypted, yet the trace was opened with a key: a trace recorded with a "
                           "key has every chunk encrypted");
    auto* base = reinterpret_cast<unsigned char*>(stored.data());
    std::string_view body = stored;
    if (encrypted) {
        if (!env.has_key)
            return std::string("the trace is encrypted: give its key with --record-key=FILE");
        const std::size_t body_bytes = stored.size() - chunk_seal_overhead_bytes;
        unsigned char* ciphertext = base + chunk_nonce_bytes;
        unsigned char ad[additional_data_bytes];
        env.additional_data(index, head, ad);
        // Decrypted in place: the tag is checked before a byte is written.
        if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(ciphertext, nullptr, ciphertext, body_bytes,
                                                                ciphertext + body_bytes, ad, sizeof ad, base,
                                                                env.key.bytes) != 0)
            return std::string("the chunk does not open with this key (a wrong key, or the chunk was altered or moved)");
        body = bytes_of(ciphertext, body_bytes);
    }
    if ((frame.flags & chunk_flag_compressed) != 0) {
        // The frame must say its size, and say R: nothing is allocated beyond R, which
        // check_frame bounded by chunk_bytes_max.
        const unsigned long long content = ZSTD_getFrameContentSize(body.data(), body.size());
        if (content == ZSTD_CONTENTSIZE_ERROR)
            return std::string("the chunk's zstd frame header does not decode");
        if (content == ZSTD_CONTENTSIZE_UNKNOWN)
            return std::string("the chunk's zstd frame does not say its content size");
        if (content != frame.raw_bytes)
            return fmt::format("the chunk's zstd frame holds {} bytes where its frame says {}", content,
                               frame.raw_bytes);
        const std::size_t frame_bytes = ZSTD_findFrameCompressedSize(body.data(), body.size());
        if (ZSTD_isError(frame_bytes) || frame_bytes != body.size())
            return std::string("the chunk's body is not exactly one zstd frame");
        payload.resize(frame.raw_bytes);
        const std::size_t n = ZSTD_decompressDCtx(state_->dctx.get(), payload.data(), payload.size(), body.data(), body.size());
        if (ZSTD_isError(n))
            return fmt::format("the chunk does not decompress: {}", ZSTD_getErrorName(n));
        if (n != frame.raw_bytes)
            return fmt::format("the chunk decompresses to {} bytes where its frame says {}", n, frame.raw_bytes);
        return std::nullopt;
    }
    if (encrypted) {
        stored.erase(0, chunk_nonce_bytes);
        stored.resize(frame.raw_bytes);
    }
    payload.swap(stored);
    return std::nullopt;
}

} // namespace reprise::trace
