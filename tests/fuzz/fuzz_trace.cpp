// Fuzz target: bytes as a trace file, read through trace::Reader exactly as `reprise verify` and the replayer do.
//
// The reader takes paths (it reopens segments by name), so each input is written to
// one memfd and opened as /proc/self/fd/N, with the fuzzer's fixed key (fuzz_trace_key.hpp),
// so that encrypted inputs reach the decryption and the records behind it. That covers the
// header's decoding and every chunk path (plain, compressed, encrypted, both). Every record
// read is then checked again (check), described and turned into JSON (what `reprise dump`
// and divergence reports do with hostile records), copied (RecordCopy) and re-encoded:
// the copy and the re-encoding must read back as the same JSON. An input that is not a
// trace file (no magic) is decoded as one chunk payload, straight with decode_record, and
// skimmed (skim_record, a joint replay's plan) beside it.
//
// Under libFuzzer a custom mutator helps mutations past the envelope: a trace with one
// flipped byte is refused at its checksum, a compressed or encrypted chunk with one at its
// zstd frame or its tag. So a third of the mutations are followed by a repair of the
// checksums, and a third are made to one chunk's payload, which is then sealed again
// (compressed and encrypted as before) with the trace's own header and the fixed key.
#include "fuzz_trace_key.hpp"

#include <reprise/record/chunk.hpp>
#include <reprise/record/trace.hpp>
#include <reprise/runtime/assert.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <sys/mman.h>
#include <unistd.h>
#include <vector>

namespace {

namespace trace = reprise::trace;

// The fixed part of a file header: magic, version, header length, header CRC.
constexpr std::size_t fixed_header_bytes = sizeof trace::magic + 12;
constexpr std::size_t header_length_at = sizeof trace::magic + 4;
constexpr std::size_t header_crc_at = sizeof trace::magic + 8;
// Where a chunk frame's CRC sits (its last 4 bytes).
constexpr std::size_t chunk_crc_at = trace::chunk_frame_checked_bytes;

int memfd() {
    static const int fd = [] {
        int f = ::memfd_create("reprise-fuzz-trace", MFD_CLOEXEC);
        REPRISE_ASSERT_MSG(f >= 0, "memfd_create failed");
        return f;
    }();
    return fd;
}

void write_file(const std::uint8_t* data, std::size_t size) {
    int fd = memfd();
    REPRISE_ASSERT(::ftruncate(fd, 0) == 0);
    std::size_t done = 0;
    while (done < size) {
        ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
        REPRISE_ASSERT_MSG(n > 0, "pwrite to the memfd failed");
        done += static_cast<std::size_t>(n);
    }
}

std::string_view view(const std::uint8_t* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

bool has_magic(const std::uint8_t* data, std::size_t size) {
    return size >= sizeof trace::magic && std::memcmp(data, trace::magic, sizeof trace::magic) == 0;
}

/// Everything the tools do with a decoded record, each with what must hold of it.
void exercise(const trace::Record& r) {
    REPRISE_ASSERT_MSG(!trace::check(r).has_value(), "a decoded record passes the check it was decoded with");
    const std::string described = trace::describe(r);
    const std::string json = trace::to_json(r);
    REPRISE_ASSERT(!described.empty() && json.size() >= 2 && json.front() == '{' && json.back() == '}');

    // A copy outlives the chunk and reads as the record does.
    const trace::RecordCopy copy(r);
    REPRISE_ASSERT_MSG(trace::to_json(copy.get()) == json, "a RecordCopy reads as its record");
    trace::RecordCopy reassigned;
    reassigned = copy;
    REPRISE_ASSERT(trace::describe(reassigned.get()) == described);

    // Both sides of the format: re-encoded, the record decodes to the same record.
    trace::Encoder encoder;
    encoder.put(r);
    std::string_view rest = encoder.payload();
    std::int64_t mono_ns = 0, wall_ns = 0;
    trace::Record again;
    auto why = trace::decode_record(rest, mono_ns, wall_ns, again);
    REPRISE_ASSERT_MSG(!why.has_value(), why ? why->c_str() : "");
    REPRISE_ASSERT_MSG(rest.empty(), "a re-encoded record decodes to its last byte");
    REPRISE_ASSERT_MSG(trace::to_json(again) == json, "a re-encoded record decodes to the same record");
}

/// An input that is not a trace file: its bytes as one chunk's payload, decoded record by record.
void decode_bare_payload(const std::uint8_t* data, std::size_t size) {
    std::string_view rest = view(data, size);
    std::int64_t mono_ns = 0, wall_ns = 0;
    trace::Record r;
    while (!rest.empty()) {
        const std::size_t before = rest.size();
        // A skim of the same bytes (a joint replay's plan) never crashes; where the record
        // decodes, it reads as far and the same kind (it checks less, so it may accept more).
        std::string_view skimmed = rest;
        std::int64_t skim_mono_ns = mono_ns, skim_wall_ns = wall_ns;
        trace::Skim skim;
        const bool skim_ok = !trace::skim_record(skimmed, skim_mono_ns, skim_wall_ns, skim).has_value();
        if (trace::decode_record(rest, mono_ns, wall_ns, r).has_value()) {
            REPRISE_ASSERT_MSG(rest.size() == before, "a record that does not decode consumes nothing");
            return;
        }
        REPRISE_ASSERT_MSG(rest.size() < before, "a decoded record consumes at least one byte");
        REPRISE_ASSERT_MSG(skim_ok && skimmed.size() == rest.size() && skim.kind == trace::kind_of(r) &&
                               skim_wall_ns == wall_ns,
                           "a record that decodes skims to the same kind, length and clock");
        exercise(r);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (!has_magic(data, size)) {
        decode_bare_payload(data, size);
        return 0;
    }
    write_file(data, size);
    const std::string path = "/proc/self/fd/" + std::to_string(memfd());
    const trace::TraceKey key = reprise::fuzz::fuzz_trace_key();
    std::string why;
    auto opened = trace::Reader::open(path, &why, &key);
    if (!opened.ok()) {
        REPRISE_ASSERT_MSG(!why.empty(), "a refused trace comes with a message");
        return 0;
    }
    trace::Reader& reader = *opened;
    trace::Record r;
    // The record before the current one stays readable after the next call (Reader::next's contract).
    trace::Record previous;
    std::string previous_json;
    std::uint64_t n = 0;
    while (reader.next(r)) {
        ++n;
        if (n > 1)
            REPRISE_ASSERT_MSG(trace::to_json(previous) == previous_json,
                               "the record before the current one still reads as it did");
        exercise(r);
        previous = r;
        previous_json = trace::to_json(r);
    }
    REPRISE_ASSERT(reader.records_read() == n);
    REPRISE_ASSERT_MSG(reader.chunk_stored_bytes() <= size, "no more chunk bytes read than the file holds");
    REPRISE_ASSERT(reader.chunks_compressed() <= reader.chunks_read() && reader.chunks_encrypted() <= reader.chunks_read());
    if (reader.header().encrypted)
        REPRISE_ASSERT_MSG(reader.chunks_encrypted() == reader.chunks_read(), "an encrypted trace has no plain chunk");
    if (reader.saw_end()) {
        REPRISE_ASSERT(trace::is<trace::End>(r));
        reader.check_nothing_after_end();
        REPRISE_ASSERT(!reader.next(r));  // nothing is read past the end record
    }
    if (const auto& e = reader.error()) {
        REPRISE_ASSERT_MSG(!e->message.empty(), "a damaged trace comes with a message");
        REPRISE_ASSERT_MSG(e->offset <= size, "the damage lies inside the file");
        REPRISE_ASSERT(e->records_good == n);
    }
    return 0;
}

#ifdef REPRISE_LIBFUZZER
extern "C" std::size_t LLVMFuzzerMutate(std::uint8_t* data, std::size_t size, std::size_t max_size);

namespace {

std::uint32_t get_u32(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

void put_u32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

/// Where the header's body ends, or 0 when the input has no complete header.
std::size_t header_end(const std::uint8_t* data, std::size_t size) {
    if (size < fixed_header_bytes || !has_magic(data, size))
        return 0;
    const std::uint32_t length = get_u32(data + header_length_at);
    return length <= size - fixed_header_bytes ? fixed_header_bytes + length : 0;
}

/// Rewrites the header's and every complete chunk's CRC-32C so they match the bytes
/// they cover (the framing itself is left as it is).
void repair_checksums(std::uint8_t* data, std::size_t size) {
    std::size_t at = header_end(data, size);
    if (at == 0)
        return;
    put_u32(data + header_crc_at, trace::crc32c(view(data + fixed_header_bytes, at - fixed_header_bytes)));
    while (size - at >= trace::chunk_frame_bytes) {
        const std::uint32_t stored = get_u32(data + at);
        if (stored > size - at - trace::chunk_frame_bytes)
            return;
        const std::uint32_t crc = trace::crc32c_extend(trace::crc32c(view(data + at, chunk_crc_at)),
                                                       view(data + at + trace::chunk_frame_bytes, stored));
        put_u32(data + at + chunk_crc_at, crc);
        at += trace::chunk_frame_bytes + stored;
    }
}

/// Opens every chunk with the trace's header and the fixed key, mutates one chunk's payload,
/// and seals them all again as they were (compressed or not; encrypted when the header says
/// so). The new size, or 0 when the input has no chunk that opens (or grows past max_size).
std::size_t mutate_a_payload(std::uint8_t* data, std::size_t size, std::size_t max_size, unsigned int seed) {
    const std::size_t body_end = header_end(data, size);
    if (body_end == 0)
        return 0;
    const std::string_view body = view(data + fixed_header_bytes, body_end - fixed_header_bytes);
    trace::Header h;
    if (trace::decode_header(body, h).has_value())
        return 0;
    const trace::TraceKey key = reprise::fuzz::fuzz_trace_key();
    trace::ChunkOpener opener(body, &key);
    struct Chunk {
        std::string payload;
        bool compressed;
    };
    std::vector<Chunk> chunks;
    std::size_t at = body_end;
    while (size - at >= trace::chunk_frame_bytes) {
        trace::ChunkFrame frame;
        if (trace::parse_chunk_frame(data + at, frame).has_value() ||
            frame.stored_bytes > size - at - trace::chunk_frame_bytes)
            break;
        std::string stored(view(data + at + trace::chunk_frame_bytes, frame.stored_bytes));
        Chunk c{{}, (frame.flags & trace::chunk_flag_compressed) != 0};
        if (opener.open(frame, stored, chunks.size(), c.payload).has_value())
            break;
        chunks.push_back(std::move(c));
        at += trace::chunk_frame_bytes + frame.stored_bytes;
    }
    if (chunks.empty())
        return 0;
    std::string& payload = chunks[seed % chunks.size()].payload;
    const std::size_t used = payload.size();
    payload.resize(used + max_size);  // room to grow as LLVMFuzzerMutate may
    payload.resize(LLVMFuzzerMutate(reinterpret_cast<std::uint8_t*>(payload.data()), used, payload.size()));
    std::string out(view(data, body_end));
    trace::ChunkSealer sealer(body, h.encrypted ? &key : nullptr);
    std::uint64_t index = 0;
    for (const Chunk& c : chunks)
        if (!c.payload.empty())  // an emptied payload is no chunk: the ones after it move up one place
            sealer.seal(c.payload, index++, c.compressed, out);
    out.append(view(data + at, size - at));  // whatever followed the last chunk that opened
    if (out.size() > max_size)
        return 0;
    std::memcpy(data, out.data(), out.size());
    return out.size();
}

} // namespace

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
    if (seed % 3 == 2) {
        if (std::size_t n = mutate_a_payload(data, size, max_size, seed / 3))
            return n;
    }
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 3 == 1)
        repair_checksums(data, size);
    return size;
}
#endif
