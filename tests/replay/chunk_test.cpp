// The chunk envelope: frames, CRC-32C, compression and sealing round trips, and every way a chunk or a key file is refused.
#include "../support/reprise_test.hpp"

#include <reprise/record/chunk.hpp>

#include <catch2/catch.hpp>
#include <fmt/core.h>
#include <zstd.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <sys/stat.h>

using namespace reprise;
using namespace reprise::trace;

namespace {

const std::string header_body = "a header body: the chunks' additional data names its hash";

TraceKey key_of(unsigned char first) {
    TraceKey k;
    for (std::size_t i = 0; i < trace_key_bytes; ++i)
        k.bytes[i] = static_cast<unsigned char>(first + i);
    return k;
}

/// RESP requests as a kv recording holds them: compresses well.
std::string resp_text(std::size_t bytes) {
    std::string s;
    for (int i = 0; s.size() < bytes; ++i)
        s += fmt::format("*3\r\n$3\r\nSET\r\n$10\r\nkey:{:06}\r\n$16\r\nvalue-{:010}\r\n", i % 1000, i * 7919);
    s.resize(bytes);
    return s;
}

std::string random_bytes(std::size_t n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::string s(n, '\0');
    for (char& c : s)
        c = static_cast<char>(rng() & 0xff);
    return s;
}

ChunkFrame frame_of(std::string_view chunk) {
    REQUIRE(chunk.size() >= chunk_frame_bytes);
    ChunkFrame f;
    auto why = parse_chunk_frame(reinterpret_cast<const unsigned char*>(chunk.data()), f);
    INFO(why.value_or(""));
    REQUIRE_FALSE(why.has_value());
    REQUIRE(chunk.size() == chunk_frame_bytes + f.stored_bytes);
    return f;
}

/// Parses and opens a whole chunk (frame and stored bytes); a message when either refuses.
std::optional<std::string> open_chunk(ChunkOpener& opener, std::string_view chunk, std::uint64_t index,
                                      std::string& payload) {
    ChunkFrame f;
    if (auto why = parse_chunk_frame(reinterpret_cast<const unsigned char*>(chunk.data()), f))
        return why;
    if (chunk.size() != chunk_frame_bytes + f.stored_bytes)
        return std::string("the chunk's length differs from its frame's");
    std::string stored(chunk.substr(chunk_frame_bytes));
    return opener.open(f, stored, index, payload);
}

/// What open_chunk says: its message, or "(opened)".
std::string refusal(ChunkOpener& opener, std::string_view chunk, std::uint64_t index) {
    std::string payload;
    return open_chunk(opener, chunk, index, payload).value_or("(opened)");
}

std::string seal(ChunkSealer& sealer, std::string_view payload, std::uint64_t index, bool compress = true) {
    std::string out;
    sealer.seal(payload, index, compress, out);
    return out;
}

/// Puts back the CRC a damaged chunk's frame should carry, so that what refuses it is not the checksum.
void repair_crc(std::string& chunk) {
    const std::uint32_t crc = crc32c_extend(crc32c(std::string_view(chunk).substr(0, chunk_frame_checked_bytes)),
                                            std::string_view(chunk).substr(chunk_frame_bytes));
    for (int i = 0; i < 4; ++i)
        chunk[chunk_frame_checked_bytes + i] = static_cast<char>(crc >> (8 * i));
}

std::string frame_bytes(const ChunkFrame& f) {
    std::string out(chunk_frame_bytes, '\0');
    write_chunk_frame(out.data(), f);
    return out;
}

std::optional<std::string> parse(const std::string& frame) {
    ChunkFrame f;
    return parse_chunk_frame(reinterpret_cast<const unsigned char*>(frame.data()), f);
}

void write_text(const std::string& path, std::string_view text, mode_t mode) {
    REQUIRE(reprise::test::spit(path, text));
    REQUIRE(::chmod(path.c_str(), mode) == 0);
}

} // namespace

// --- CRC-32C -------------------------------------------------------------------------------

TEST_CASE("crc32c has the CRC-32C check value") {
    CHECK(crc32c("123456789") == 0xE3069283u);
    CHECK(crc32c("") == 0u);
}

TEST_CASE("crc32c_extend continues a crc32c over the next bytes") {
    const std::string text = resp_text(1000);
    for (std::size_t split : {0, 1, 7, 8, 9, 63, 500, 999, 1000}) {
        INFO("split at " << split);
        const std::string_view a = std::string_view(text).substr(0, split), b = std::string_view(text).substr(split);
        CHECK(crc32c_extend(crc32c(a), b) == crc32c(text));
    }
    CHECK(crc32c_extend(0, text) == crc32c(text));
    CHECK(crc32c_extend(crc32c("1234"), "56789") == 0xE3069283u);
}

// --- round trips -----------------------------------------------------------------------------

TEST_CASE("every combination of the flags opens to the payload sealed") {
    const std::uint64_t seed = reprise::test::test_seed("flag combinations");
    const TraceKey key = key_of(1);
    const std::string compressible = resp_text(64 * 1024), incompressible = random_bytes(4096, seed);
    struct Case {
        const char* name;
        const TraceKey* key;
        const std::string* payload;
        std::uint8_t flags;
    };
    const Case cases[] = {
        {"plain", nullptr, &incompressible, 0},
        {"compressed", nullptr, &compressible, chunk_flag_compressed},
        {"encrypted", &key, &incompressible, chunk_flag_encrypted},
        {"compressed and encrypted", &key, &compressible, chunk_flag_compressed | chunk_flag_encrypted},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        ChunkSealer sealer(header_body, c.key);
        ChunkOpener opener(header_body, c.key);
        CHECK(sealer.encrypts() == (c.key != nullptr));
        for (std::uint64_t index : {0ull, 1ull, 1ull << 40}) {
            const std::string chunk = seal(sealer, *c.payload, index);
            const ChunkFrame f = frame_of(chunk);
            CHECK(f.flags == c.flags);
            CHECK(f.raw_bytes == c.payload->size());
            std::string payload;
            auto why = open_chunk(opener, chunk, index, payload);
            INFO(why.value_or(""));
            REQUIRE_FALSE(why.has_value());
            CHECK(payload == *c.payload);
        }
    }
}

TEST_CASE("seal appends to what the output holds, and a sealer seals chunk after chunk") {
    ChunkSealer sealer(header_body, nullptr);
    ChunkOpener opener(header_body, nullptr);
    std::string out = "before";
    const std::string a = resp_text(5000), b = "x";
    sealer.seal(a, 0, true, out);
    const std::size_t first_end = out.size();
    sealer.seal(b, 1, true, out);
    REQUIRE(out.substr(0, 6) == "before");
    std::string payload;
    REQUIRE_FALSE(open_chunk(opener, std::string_view(out).substr(6, first_end - 6), 0, payload).has_value());
    CHECK(payload == a);
    REQUIRE_FALSE(open_chunk(opener, std::string_view(out).substr(first_end), 1, payload).has_value());
    CHECK(payload == b);
}

TEST_CASE("a plain chunk opens by swapping buffers, not by copying") {
    ChunkSealer sealer(header_body, nullptr);
    ChunkOpener opener(header_body, nullptr);
    const std::string text(200, 'a');  // longer than a std::string holds inline, which a swap would copy
    const std::string chunk = seal(sealer, text, 0, false);
    const ChunkFrame f = frame_of(chunk);
    REQUIRE(f.flags == 0);
    std::string stored = chunk.substr(chunk_frame_bytes);
    const char* stored_buffer = stored.data();
    std::string payload;
    REQUIRE_FALSE(opener.open(f, stored, 0, payload).has_value());
    CHECK(payload == text);
    CHECK(static_cast<const void*>(payload.data()) == static_cast<const void*>(stored_buffer));
}

TEST_CASE("a compressible payload is stored compressed, more than 3x smaller") {
    const std::string text = resp_text(64 * 1024);
    const TraceKey some_key = key_of(9);
    for (const TraceKey* key : {static_cast<const TraceKey*>(nullptr), &some_key}) {
        ChunkSealer sealer(header_body, key);
        const std::string chunk = seal(sealer, text, 3);
        const ChunkFrame f = frame_of(chunk);
        INFO("stored " << f.stored_bytes << " of " << text.size());
        CHECK((f.flags & chunk_flag_compressed) != 0);
        CHECK(f.stored_bytes * 3 < text.size());
    }
}

TEST_CASE("an incompressible payload is stored as it is, the compressed flag clear") {
    const std::uint64_t seed = reprise::test::test_seed("incompressible");
    const std::string noise = random_bytes(64 * 1024, seed);
    ChunkSealer sealer(header_body, nullptr);
    const ChunkFrame f = frame_of(seal(sealer, noise, 0));
    CHECK(f.flags == 0);
    CHECK(f.stored_bytes == noise.size());
    // One byte cannot shrink either.
    CHECK(frame_of(seal(sealer, "z", 0)).flags == 0);
}

TEST_CASE("compression is only tried when asked for") {
    ChunkSealer sealer(header_body, nullptr);
    const std::string text = resp_text(8192);
    CHECK(frame_of(seal(sealer, text, 0, false)).flags == 0);
    CHECK(frame_of(seal(sealer, text, 0, true)).flags == chunk_flag_compressed);
}

// --- what an encrypted chunk is bound to ----------------------------------------------------------

TEST_CASE("every single-bit flip of an encrypted chunk is refused, even with its CRC repaired") {
    const TraceKey key = key_of(7);
    ChunkSealer sealer(header_body, &key);
    ChunkOpener opener(header_body, &key);
    for (const std::string& payload : {resp_text(600), std::string("0123456789abcdef")}) {
        const std::string chunk = seal(sealer, payload, 5);
        INFO("flags " << int(frame_of(chunk).flags));
        for (std::size_t bit = 0; bit < 8 * chunk.size(); ++bit) {
            INFO("bit " << bit);
            std::string damaged = chunk;
            damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
            CHECK(refusal(opener, damaged, 5) != "(opened)");
            if (bit / 8 >= chunk_frame_checked_bytes && bit / 8 < chunk_frame_bytes)
                continue;  // the CRC itself: repairing it undoes the flip
            repair_crc(damaged);
            CHECK(refusal(opener, damaged, 5) != "(opened)");
        }
    }
}

TEST_CASE("a damaged unencrypted chunk is refused at its checksum") {
    ChunkSealer sealer(header_body, nullptr);
    ChunkOpener opener(header_body, nullptr);
    std::string chunk = seal(sealer, resp_text(2000), 0);
    chunk[chunk.size() / 2] ^= 0x10;
    CHECK(refusal(opener, chunk, 0) == "chunk checksum mismatch (the file is damaged)");
}

TEST_CASE("an encrypted chunk does not open with another key") {
    const TraceKey key = key_of(1), other = key_of(2);
    ChunkSealer sealer(header_body, &key);
    ChunkOpener opener(header_body, &other);
    CHECK(refusal(opener, seal(sealer, resp_text(3000), 0), 0) ==
          "the chunk does not open with this key (a wrong key, or the chunk was altered or moved)");
}

TEST_CASE("an encrypted chunk without a key says the trace needs one") {
    const TraceKey key = key_of(1);
    ChunkSealer sealer(header_body, &key);
    ChunkOpener opener(header_body, nullptr);
    CHECK(refusal(opener, seal(sealer, "payload", 0), 0) == "the trace is encrypted: give its key with --record-key=FILE");
}

TEST_CASE("a plain chunk is refused by a reader that holds a key") {
    const TraceKey key = key_of(5);
    ChunkSealer plain(header_body, nullptr);
    ChunkOpener keyed(header_body, &key);
    for (const std::string& payload : {resp_text(5000), std::string("x")})
        CHECK_THAT(refusal(keyed, seal(plain, payload, 0), 0), Catch::Contains("the chunk is not encrypted"));
}

TEST_CASE("an encrypted chunk moved to another index or another trace does not open") {
    const TraceKey key = key_of(4);
    ChunkSealer sealer(header_body, &key);
    const std::string chunk = seal(sealer, resp_text(1000), 10);
    const std::string moved = "the chunk does not open with this key (a wrong key, or the chunk was altered or moved)";
    ChunkOpener same(header_body, &key);
    REQUIRE(refusal(same, chunk, 10) == "(opened)");
    CHECK(refusal(same, chunk, 11) == moved);
    CHECK(refusal(same, chunk, 10 + (1ull << 32)) == moved);
    ChunkOpener other_trace(header_body + " ", &key);
    CHECK(refusal(other_trace, chunk, 10) == moved);
}

TEST_CASE("a sealer with a key never writes an unencrypted chunk") {
    const TraceKey key = key_of(3);
    ChunkSealer sealer(header_body, &key);
    for (bool compress : {false, true})
        for (const std::string& payload : {std::string("a"), resp_text(10000), random_bytes(1000, 1)})
            CHECK((frame_of(seal(sealer, payload, 0, compress)).flags & chunk_flag_encrypted) != 0);
}

// --- the crash path ------------------------------------------------------------------------------

TEST_CASE("a chunk sealed in place by the crash path opens with ChunkOpener") {
    const TraceKey key = key_of(11);
    for (const TraceKey* k : {static_cast<const TraceKey*>(nullptr), &key}) {
        INFO((k ? "with a key" : "without a key"));
        ChunkSealer sealer(header_body, k);
        ChunkOpener opener(header_body, k);
        const std::string original = resp_text(5000);
        std::string buffer = original;
        SealedInPlace parts;
        REQUIRE(sealer.seal_in_place(buffer.data(), buffer.size(), 42, parts));
        CHECK(parts.encrypted == (k != nullptr));
        CHECK((buffer == original) == (k == nullptr));
        // What the crash path write()s, in order.
        std::string chunk(parts.frame, chunk_frame_bytes);
        if (parts.encrypted)
            chunk.append(reinterpret_cast<const char*>(parts.nonce), chunk_nonce_bytes);
        chunk += buffer;
        if (parts.encrypted)
            chunk.append(reinterpret_cast<const char*>(parts.tag), chunk_tag_bytes);
        CHECK((frame_of(chunk).flags & chunk_flag_compressed) == 0);
        std::string out;
        auto why = open_chunk(opener, chunk, 42, out);
        INFO(why.value_or(""));
        REQUIRE_FALSE(why.has_value());
        CHECK(out == original);
    }
}

TEST_CASE("the crash path refuses an empty payload rather than sealing it") {
    ChunkSealer sealer(header_body, nullptr);
    SealedInPlace parts;
    char byte = 0;
    CHECK_FALSE(sealer.seal_in_place(&byte, 0, 0, parts));
}

// --- bad frames ------------------------------------------------------------------------------

TEST_CASE("a frame writes and parses back") {
    const ChunkFrame f{.stored_bytes = 1040, .raw_bytes = 4000, .flags = chunk_flag_compressed | chunk_flag_encrypted,
                       .crc = 0xdeadbeef};
    const std::string bytes = frame_bytes(f);
    CHECK(bytes.substr(0, 4) == std::string("\x10\x04\0\0", 4));
    CHECK(bytes.substr(4, 4) == std::string("\xa0\x0f\0\0", 4));
    CHECK(bytes.substr(8, 4) == std::string("\x03\0\0\0", 4));
    CHECK(bytes.substr(12, 4) == "\xef\xbe\xad\xde");
    ChunkFrame back;
    REQUIRE_FALSE(parse_chunk_frame(reinterpret_cast<const unsigned char*>(bytes.data()), back).has_value());
    CHECK(back.stored_bytes == f.stored_bytes);
    CHECK(back.raw_bytes == f.raw_bytes);
    CHECK(back.flags == f.flags);
    CHECK(back.crc == f.crc);
}

TEST_CASE("bad frames are refused with a message") {
    const ChunkFrame good{.stored_bytes = 100, .raw_bytes = 100, .flags = 0, .crc = 0};
    REQUIRE_FALSE(parse(frame_bytes(good)).has_value());
    auto refused = [](ChunkFrame f) { return parse(frame_bytes(f)).value_or("(accepted)"); };
    ChunkFrame f = good;

    f.flags = 4;
    CHECK_THAT(refused(f), Catch::Contains("a bit this version does not know"));
    f.flags = 0x80;
    CHECK_THAT(refused(f), Catch::Contains("a bit this version does not know"));

    f = good;
    f.raw_bytes = 0;
    CHECK_THAT(refused(f), Catch::Contains("raw length 0 is outside"));
    f.raw_bytes = chunk_bytes_max + 1;
    f.stored_bytes = chunk_bytes_max + 1;
    CHECK_THAT(refused(f), Catch::Contains("is outside 1.."));

    f = good;
    f.stored_bytes = 99;
    CHECK_THAT(refused(f), Catch::Contains("uncompressed chunk body of 99 bytes where its raw length is 100"));
    f.flags = chunk_flag_encrypted;
    f.stored_bytes = 100;  // 40 of overhead leave 60 for a body of 100
    CHECK_THAT(refused(f), Catch::Contains("uncompressed chunk body of 60 bytes"));
    f.stored_bytes = static_cast<std::uint32_t>(chunk_seal_overhead_bytes);
    CHECK_THAT(refused(f), Catch::Contains("leaves no room for a body"));

    f = good;
    f.flags = chunk_flag_compressed;
    CHECK_THAT(refused(f), Catch::Contains("is not shorter than its raw length"));
    f.stored_bytes = 0xffffffffu;
    CHECK_THAT(refused(f), Catch::Contains("stored length 4294967295 exceeds"));

    std::string reserved = frame_bytes(good);
    reserved[10] = 1;
    CHECK_THAT(parse(reserved).value_or("(accepted)"), Catch::Contains("reserved bytes must be zero"));
}

TEST_CASE("a zstd frame that does not say R, or says another size, is refused") {
    ChunkOpener opener(header_body, nullptr);
    const std::string text = resp_text(10000);
    auto chunk_of = [](std::string_view body, std::uint32_t raw_bytes) {
        std::string chunk =
            frame_bytes({.stored_bytes = static_cast<std::uint32_t>(body.size()), .raw_bytes = raw_bytes,
                         .flags = chunk_flag_compressed, .crc = 0});
        chunk += body;
        repair_crc(chunk);
        return chunk;
    };
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    auto compress = [&](int content_size_flag) {
        REQUIRE_FALSE(ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, content_size_flag)));
        std::string z(ZSTD_compressBound(text.size()), '\0');
        const std::size_t n = ZSTD_compress2(cctx, z.data(), z.size(), text.data(), text.size());
        REQUIRE_FALSE(ZSTD_isError(n));
        z.resize(n);
        return z;
    };
    const std::string sized = compress(1), unsized = compress(0);
    ZSTD_freeCCtx(cctx);
    REQUIRE(ZSTD_getFrameContentSize(unsized.data(), unsized.size()) == ZSTD_CONTENTSIZE_UNKNOWN);

    CHECK(refusal(opener, chunk_of(unsized, 10000), 0) == "the chunk's zstd frame does not say its content size");
    CHECK(refusal(opener, chunk_of(sized, 9999), 0) ==
          "the chunk's zstd frame holds 10000 bytes where its frame says 9999");
    CHECK(refusal(opener, chunk_of(sized + "!", 10000), 0) == "the chunk's body is not exactly one zstd frame");
    CHECK(refusal(opener, chunk_of("not zstd at all", 10000), 0) == "the chunk's zstd frame header does not decode");
    std::string payload;
    REQUIRE_FALSE(open_chunk(opener, chunk_of(sized, 10000), 0, payload).has_value());
    CHECK(payload == text);
}

// --- key files ------------------------------------------------------------------------------

TEST_CASE("a key file is read when it holds 64 hex digits and only its owner may read it") {
    reprise::test::TempDir dir;
    const std::string path = dir / "key";
    std::string hex;
    for (int i = 0; i < 32; ++i)
        hex += fmt::format("{:02X}", i * 7);
    for (const std::string& text : {hex, hex + "\n", hex + " \r\n\t"}) {
        ::unlink(path.c_str());
        write_text(path, text, 0600);
        std::string error;
        auto key = load_trace_key(path, error);
        INFO(error);
        REQUIRE(key.ok());
        for (int i = 0; i < 32; ++i)
            CHECK(key->bytes[i] == static_cast<unsigned char>(i * 7));
    }
}

TEST_CASE("a key file is refused with a message when it is not 64 hex digits or others may read it") {
    reprise::test::TempDir dir;
    const std::string hex(64, 'a');
    struct Case {
        const char* name;
        std::string text;
        mode_t mode;
        const char* message;
    };
    const Case cases[] = {
        {"short", hex.substr(1), 0600, "it holds 63 hex digits"},
        {"long", hex + "b", 0600, "it holds 65 hex digits"},
        {"empty", "", 0600, "it holds 0 hex digits"},
        {"not hex", hex.substr(0, 10) + "g" + hex.substr(11), 0600, "byte 10 ('g') is not a hex digit"},
        {"leading space", " " + hex, 0600, "byte 0 (0x20) is not a hex digit"},
        {"more after the key", hex + "\nab", 0600, "byte 64 (a newline: only one may end the key) is not a hex digit"},
        {"huge", std::string(4096, 'a'), 0600, "it is longer than 128 bytes"},
        {"0644", hex, 0644, "is readable by other users (mode 0644): chmod 600 it"},
        {"0640", hex, 0640, "is readable by other users (mode 0640): chmod 600 it"},
        {"0620", hex, 0620, "is writable by other users (mode 0620): chmod 600 it"},
    };
    for (const Case& c : cases) {
        INFO(c.name);
        const std::string path = dir / c.name;
        write_text(path, c.text, c.mode);
        std::string error;
        auto key = load_trace_key(path, error);
        CHECK_FALSE(key.ok());
        CHECK_THAT(error, Catch::Contains(c.message));
        CHECK_THAT(error, Catch::Contains(path));
    }
    std::string error;
    CHECK(load_trace_key(dir / "missing", error).code() == Errc::not_found);
    CHECK_THAT(error, Catch::Contains("No such file"));
    CHECK_FALSE(load_trace_key(dir.path(), error).ok());
    CHECK_THAT(error, Catch::Contains("is not a regular file"));
}

TEST_CASE("write_new_trace_key creates a 0600 key file that loads, and never overwrites one") {
    reprise::test::TempDir dir;
    const std::string path = dir / "new.key";
    std::string error;
    auto made = write_new_trace_key(path, error);
    INFO(error);
    REQUIRE(made.ok());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0600);
    auto loaded = load_trace_key(path, error);
    REQUIRE(loaded.ok());
    CHECK(std::string_view(reinterpret_cast<const char*>(loaded->bytes), trace_key_bytes) ==
          std::string_view(reinterpret_cast<const char*>(made->bytes), trace_key_bytes));

    auto again = write_new_trace_key(path, error);
    CHECK_FALSE(again.ok());
    CHECK_THAT(error, Catch::Contains("exists already: a key file is never overwritten"));
    auto still = load_trace_key(path, error);
    REQUIRE(still.ok());
    CHECK(still->bytes[0] == made->bytes[0]);

    // Two fresh keys differ: the key is drawn, not derived from the path.
    auto other = write_new_trace_key(dir / "other.key", error);
    REQUIRE(other.ok());
    CHECK(std::string_view(reinterpret_cast<const char*>(other->bytes), trace_key_bytes) !=
          std::string_view(reinterpret_cast<const char*>(made->bytes), trace_key_bytes));
}
