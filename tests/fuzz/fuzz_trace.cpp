// Fuzz target: bytes as a trace file, read through trace::Reader exactly as `reprise verify` and the replayer do.
//
// The reader takes paths (it reopens segments by name), so each input is written to
// one memfd and opened as /proc/self/fd/N. Every record is also described and turned
// into JSON (what `reprise dump` and divergence reports do with hostile records).
//
// Under libFuzzer a custom mutator repairs the header's and the chunks' CRC-32C after
// half of the mutations: a trace with one flipped byte is refused at its checksum, so
// without the repair almost no mutation would reach the msgpack decoding behind it.
#include <reprise/record/trace.hpp>
#include <reprise/runtime/assert.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

namespace {

using reprise::trace::Reader;
using reprise::trace::Record;

// The fixed part of a file header: magic, version, header length, header CRC.
constexpr std::size_t fixed_header_bytes = sizeof reprise::trace::magic + 12;

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

std::uint32_t get_u32(const std::uint8_t* p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

void put_u32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

/// Rewrites the header's and every complete chunk's CRC-32C so they match the bytes
/// they cover (the framing itself is left as it is). Used by the custom mutator.
[[maybe_unused]] void repair_checksums(std::uint8_t* data, std::size_t size) {
    if (size < fixed_header_bytes)
        return;
    const std::uint32_t header_len = get_u32(data + 12);
    if (header_len > size - fixed_header_bytes)
        return;
    auto view = [&](std::size_t at, std::size_t n) { return std::string_view(reinterpret_cast<char*>(data + at), n); };
    put_u32(data + 16, reprise::trace::crc32c(view(fixed_header_bytes, header_len)));
    std::size_t at = fixed_header_bytes + header_len;
    while (size - at >= 8) {
        const std::uint32_t len = get_u32(data + at);
        if (len > size - at - 8)
            return;
        put_u32(data + at + 4, reprise::trace::crc32c(view(at + 8, len)));
        at += 8 + len;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    write_file(data, size);
    const std::string path = "/proc/self/fd/" + std::to_string(memfd());
    std::string why;
    auto opened = Reader::open(path, &why);
    if (!opened.ok()) {
        REPRISE_ASSERT_MSG(!why.empty(), "a refused trace comes with a message");
        return 0;
    }
    Reader& reader = *opened;
    Record r;
    std::uint64_t n = 0;
    std::size_t text = 0;
    while (reader.next(r)) {
        ++n;
        text += reprise::trace::describe(r).size() + reprise::trace::to_json(r).size();
        REPRISE_ASSERT_MSG(r.data.size() <= size && r.name.size() <= size, "a record holds more bytes than the file");
    }
    REPRISE_ASSERT(text >= n);  // every record describes itself in at least one character
    REPRISE_ASSERT(reader.records_read() == n);
    REPRISE_ASSERT(reader.chunk_payload_bytes() <= size);
    if (reader.saw_end()) {
        REPRISE_ASSERT(r.kind == reprise::trace::RecordKind::end);
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

extern "C" std::size_t LLVMFuzzerCustomMutator(std::uint8_t* data, std::size_t size, std::size_t max_size,
                                               unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 2 == 0)
        repair_checksums(data, size);
    return size;
}
#endif
