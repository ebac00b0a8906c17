// The trace format: chunk framing, each record's encoder beside its decoder, and the hostile-input reader.
#include "reprise/record/trace.hpp"

#include <msgpack.hpp>

#include <fmt/core.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sys/stat.h>

namespace reprise::trace {

namespace {

// msgpack's packer writes into a std::string through this adaptor.
struct StringSink {
    std::string* out;
    void write(const char* data, std::size_t n) { out->append(data, n); }
};

void put_u32(std::string& out, std::uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i)
        b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out.append(b, 4);
}

std::uint32_t get_u32(const unsigned char* p) {
    return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
           static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

std::array<std::uint32_t, 256> make_crc_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        t[i] = c;
    }
    return t;
}
const std::array<std::uint32_t, 256> crc_table = make_crc_table();

std::string_view address_bytes(const Address& a) {
    return {reinterpret_cast<const char*>(a.sockaddr_ptr()), a.sockaddr_len()};
}

Address address_from(std::string_view bytes) {
    if (bytes.size() < sizeof(sa_family_t))
        return {};
    alignas(sockaddr_in6) char buf[sizeof(sockaddr_in6)] = {};
    std::memcpy(buf, bytes.data(), std::min(bytes.size(), sizeof buf));
    return Address::from_sockaddr(reinterpret_cast<const sockaddr*>(buf), static_cast<socklen_t>(bytes.size()));
}

// The limits a reader puts on msgpack: no maps or ext in records, shallow arrays,
// strings and binaries no larger than a record may be.
const msgpack::unpack_limit record_limit(16, 0, record_payload_bytes_max, record_payload_bytes_max, 0, 2);
const msgpack::unpack_limit header_limit(4096, 64, header_bytes_max, header_bytes_max, 0, 3);

// Typed access to a decoded record's fields; throws msgpack::type_error on a wrong type.
struct Fields {
    const msgpack::object_array& a;
    std::size_t size() const { return a.size; }
    std::uint64_t u64(std::size_t i) const { return a.ptr[i].as<std::uint64_t>(); }
    std::int64_t i64(std::size_t i) const { return a.ptr[i].as<std::int64_t>(); }
    // A kind or sub-kind: refused (not truncated to 8 bits) when it does not fit.
    std::uint8_t u8(std::size_t i) const {
        std::uint64_t v = u64(i);
        if (v > 0xff)
            throw msgpack::type_error();
        return static_cast<std::uint8_t>(v);
    }
    std::string_view bytes(std::size_t i) const {
        const msgpack::object& o = a.ptr[i];
        if (o.type == msgpack::type::BIN)
            return {o.via.bin.ptr, o.via.bin.size};
        if (o.type == msgpack::type::STR)
            return {o.via.str.ptr, o.via.str.size};
        throw msgpack::type_error();
    }
};

} // namespace

namespace {
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
const bool have_sse42 = __builtin_cpu_supports("sse4.2");
#endif
} // namespace

std::uint32_t crc32c(std::string_view bytes) noexcept {
#if defined(__x86_64__)
    if (have_sse42)
        return crc32c_sse42(0xffffffffu, bytes) ^ 0xffffffffu;
#endif
    return crc32c_table(0xffffffffu, bytes) ^ 0xffffffffu;
}

std::uint64_t digest64(std::string_view bytes) noexcept {
    // Four independent multiply-xorshift lanes over 32-byte blocks (so the CPU
    // overlaps them), folded together with the tail and the length. Stable across
    // machines; good enough to tell a changed output from the recorded one.
    constexpr std::uint64_t k0 = 0x9e3779b97f4a7c15ULL, k1 = 0xbf58476d1ce4e5b9ULL, k2 = 0x94d049bb133111ebULL;
    std::uint64_t lane[4] = {0x243f6a8885a308d3ULL, 0x13198a2e03707344ULL, 0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
    const char* p = bytes.data();
    std::size_t n = bytes.size();
    for (; n >= 32; p += 32, n -= 32) {
        for (int i = 0; i < 4; ++i) {
            std::uint64_t w;
            std::memcpy(&w, p + 8 * i, 8);
            lane[i] = (lane[i] ^ w) * k1;
            lane[i] ^= lane[i] >> 29;
        }
    }
    std::uint64_t h = bytes.size() * k0;
    for (std::uint64_t l : lane)
        h = (h ^ l) * k2 + (h >> 31);
    for (; n >= 8; p += 8, n -= 8) {
        std::uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * k1;
        h ^= h >> 29;
    }
    std::uint64_t tail = 0;
    if (n > 0)
        std::memcpy(&tail, p, n);
    h = (h ^ tail ^ n) * k2;
    h ^= h >> 31;
    h *= k0;
    h ^= h >> 32;
    return h;
}

const char* record_kind_name(RecordKind k) noexcept {
    switch (k) {
    case RecordKind::tick: return "tick";
    case RecordKind::wake: return "wake";
    case RecordKind::input: return "input";
    case RecordKind::output: return "output";
    case RecordKind::spawn: return "spawn";
    case RecordKind::end: return "end";
    }
    return "unknown";
}

const char* input_kind_name(InputKind k) noexcept {
    switch (k) {
    case InputKind::precise_clock: return "precise_clock";
    case InputKind::secure_random: return "secure_random";
    case InputKind::env: return "env";
    case InputKind::app: return "app";
    case InputKind::listen: return "listen";
    case InputKind::connect: return "connect";
    }
    return "unknown";
}

const char* output_kind_name(OutputKind k) noexcept {
    switch (k) {
    case OutputKind::conn_write: return "conn_write";
    case OutputKind::exit: return "exit";
    }
    return "unknown";
}

const char* wake_kind_name(std::uint8_t k) noexcept {
    static constexpr const char* names[] = {"?",      "timer_fired", "bytes_read", "eof",         "io_error",
                                            "accepted", "connected", "drained",    "signal",      "offload_done"};
    return k < std::size(names) ? names[k] : "unknown";
}

// --- encoding: one function per record; decode_record below mirrors each --------

void Encoder::tick(std::int64_t mono_ns, std::int64_t wall_ns) {
    StringSink sink{&buf_};
    msgpack::packer<StringSink> p(sink);
    p.pack_array(3);
    p.pack_uint8(static_cast<std::uint8_t>(RecordKind::tick));
    p.pack(mono_ns - last_mono_ns_);
    p.pack(wall_ns - last_wall_ns_);
    last_mono_ns_ = mono_ns;
    last_wall_ns_ = wall_ns;
}

void Encoder::wake(std::uint8_t kind, std::uint64_t handle, std::int64_t value, std::string_view data,
                   const Address* peer, const Address* local) {
    StringSink sink{&buf_};
    msgpack::packer<StringSink> p(sink);
    const bool addresses = peer != nullptr && local != nullptr;
    p.pack_array(addresses ? 7 : data.empty() ? 4 : 5);
    p.pack_uint8(static_cast<std::uint8_t>(RecordKind::wake));
    p.pack_uint8(kind);
    p.pack(handle);
    p.pack(value);
    if (addresses || !data.empty()) {
        p.pack_bin(static_cast<std::uint32_t>(data.size()));
        p.pack_bin_body(data.data(), static_cast<std::uint32_t>(data.size()));
    }
    if (addresses) {
        for (const Address* a : {peer, local}) {
            std::string_view b = address_bytes(*a);
            p.pack_bin(static_cast<std::uint32_t>(b.size()));
            p.pack_bin_body(b.data(), static_cast<std::uint32_t>(b.size()));
        }
    }
}

void Encoder::input(InputKind kind, std::string_view name, std::string_view value) {
    StringSink sink{&buf_};
    msgpack::packer<StringSink> p(sink);
    p.pack_array(4);
    p.pack_uint8(static_cast<std::uint8_t>(RecordKind::input));
    p.pack_uint8(static_cast<std::uint8_t>(kind));
    p.pack_str(static_cast<std::uint32_t>(name.size()));
    p.pack_str_body(name.data(), static_cast<std::uint32_t>(name.size()));
    p.pack_bin(static_cast<std::uint32_t>(value.size()));
    p.pack_bin_body(value.data(), static_cast<std::uint32_t>(value.size()));
}

void Encoder::output(OutputKind kind, std::uint64_t handle, std::uint64_t length, std::uint64_t digest,
                     std::string_view full_bytes) {
    StringSink sink{&buf_};
    msgpack::packer<StringSink> p(sink);
    p.pack_array(full_bytes.empty() ? 5 : 6);
    p.pack_uint8(static_cast<std::uint8_t>(RecordKind::output));
    p.pack_uint8(static_cast<std::uint8_t>(kind));
    p.pack(handle);
    p.pack(length);
    p.pack(digest);
    if (!full_bytes.empty()) {
        p.pack_bin(static_cast<std::uint32_t>(full_bytes.size()));
        p.pack_bin_body(full_bytes.data(), static_cast<std::uint32_t>(full_bytes.size()));
    }
}

void Encoder::spawn(std::uint64_t id, std::string_view name) {
    StringSink sink{&buf_};
    msgpack::packer<StringSink> p(sink);
    p.pack_array(3);
    p.pack_uint8(static_cast<std::uint8_t>(RecordKind::spawn));
    p.pack(id);
    p.pack_str(static_cast<std::uint32_t>(name.size()));
    p.pack_str_body(name.data(), static_cast<std::uint32_t>(name.size()));
}

void Encoder::end(std::int64_t exit_code) {
    StringSink sink{&buf_};
    msgpack::packer<StringSink> p(sink);
    p.pack_array(2);
    p.pack_uint8(static_cast<std::uint8_t>(RecordKind::end));
    p.pack(exit_code);
}

namespace {

// Decodes one record (the mirror of the Encoder functions above). Returns a
// message when the record is malformed.
std::optional<std::string> decode_record(const msgpack::object& o, std::int64_t& last_mono, std::int64_t& last_wall,
                                         Record& r) {
    if (o.type != msgpack::type::ARRAY || o.via.array.size < 2)
        return std::string("a record is not an array of at least 2 fields");
    Fields f{o.via.array};
    try {
        auto kind = static_cast<RecordKind>(f.u8(0));
        r = Record{};
        r.kind = kind;
        switch (kind) {
        case RecordKind::tick:
            if (f.size() != 3)
                return std::string("tick: wrong field count");
            // Hostile deltas must not overflow the running sums (undefined behaviour).
            if (__builtin_add_overflow(last_mono, f.i64(1), &last_mono) ||
                __builtin_add_overflow(last_wall, f.i64(2), &last_wall))
                return std::string("tick: the time overflows 64 bits");
            r.mono_ns = last_mono;
            r.wall_ns = last_wall;
            return std::nullopt;
        case RecordKind::wake:
            if (f.size() != 4 && f.size() != 5 && f.size() != 7)
                return std::string("wake: wrong field count");
            r.sub = f.u8(1);
            if (r.sub < 1 || r.sub > 9)
                return fmt::format("wake: unknown wake-up kind {}", r.sub);
            r.handle = f.u64(2);
            r.value = f.i64(3);
            if (f.size() >= 5)
                r.data = std::string(f.bytes(4));
            if (f.size() == 7) {
                r.peer = address_from(f.bytes(5));
                r.local = address_from(f.bytes(6));
                r.has_addresses = true;
            }
            return std::nullopt;
        case RecordKind::input:
            if (f.size() != 4)
                return std::string("input: wrong field count");
            r.sub = f.u8(1);
            if (r.sub < 1 || r.sub > 6)
                return fmt::format("input: unknown input kind {}", r.sub);
            r.name = std::string(f.bytes(2));
            r.data = std::string(f.bytes(3));
            return std::nullopt;
        case RecordKind::output:
            if (f.size() != 5 && f.size() != 6)
                return std::string("output: wrong field count");
            r.sub = f.u8(1);
            if (r.sub < 1 || r.sub > 2)
                return fmt::format("output: unknown output kind {}", r.sub);
            r.handle = f.u64(2);
            r.value = f.i64(3);
            r.digest = f.u64(4);
            if (f.size() == 6)
                r.data = std::string(f.bytes(5));
            return std::nullopt;
        case RecordKind::spawn:
            if (f.size() != 3)
                return std::string("spawn: wrong field count");
            r.handle = f.u64(1);
            r.name = std::string(f.bytes(2));
            return std::nullopt;
        case RecordKind::end:
            if (f.size() != 2)
                return std::string("end: wrong field count");
            r.value = f.i64(1);
            return std::nullopt;
        }
        return fmt::format("unknown record kind {}", static_cast<unsigned>(kind));
    } catch (const msgpack::type_error&) {
        return std::string("a record field has the wrong type");
    }
}

} // namespace

// --- header ---------------------------------------------------------------------

std::string encode_header(const Header& h) {
    std::string body;
    StringSink sink{&body};
    msgpack::packer<StringSink> p(sink);
    p.pack_map(8);
    p.pack(std::string("node"));
    p.pack(h.node);
    p.pack(std::string("argv"));
    p.pack(h.argv);
    p.pack(std::string("seed"));
    p.pack(h.seed);
    p.pack(std::string("start_mono_ns"));
    p.pack(h.start_mono_ns);
    p.pack(std::string("start_wall_ns"));
    p.pack(h.start_wall_ns);
    p.pack(std::string("runtime_version"));
    p.pack(h.runtime_version);
    p.pack(std::string("build_id"));
    p.pack(h.build_id);
    p.pack(std::string("segment"));
    p.pack(h.segment);
    std::string out(magic, sizeof magic);
    put_u32(out, format_version);
    put_u32(out, static_cast<std::uint32_t>(body.size()));
    put_u32(out, crc32c(body));
    out += body;
    return out;
}

std::optional<std::string> decode_header(std::string_view bytes, Header& h) {
    try {
        msgpack::object_handle oh = msgpack::unpack(bytes.data(), bytes.size(), nullptr, nullptr, header_limit);
        const msgpack::object& o = oh.get();
        if (o.type != msgpack::type::MAP)
            return std::string("the header is not a map");
        for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
            const auto& kv = o.via.map.ptr[i];
            if (kv.key.type != msgpack::type::STR)
                return fmt::format("the header's key {} is not a string", i);
            std::string key = kv.key.as<std::string>();
            try {
                if (key == "node")
                    h.node = kv.val.as<std::string>();
                else if (key == "argv")
                    h.argv = kv.val.as<std::vector<std::string>>();
                else if (key == "seed")
                    h.seed = kv.val.as<std::uint64_t>();
                else if (key == "start_mono_ns")
                    h.start_mono_ns = kv.val.as<std::int64_t>();
                else if (key == "start_wall_ns")
                    h.start_wall_ns = kv.val.as<std::int64_t>();
                else if (key == "runtime_version")
                    h.runtime_version = kv.val.as<std::string>();
                else if (key == "build_id")
                    h.build_id = kv.val.as<std::string>();
                else if (key == "segment")
                    h.segment = kv.val.as<std::uint32_t>();
            } catch (const msgpack::type_error&) {
                return fmt::format("the header's field \"{}\" has the wrong type", key.substr(0, 64));
            }
        }
        return std::nullopt;
    } catch (const std::exception& e) {
        return fmt::format("the header does not decode: {}", e.what());
    }
}

std::string frame_chunk(std::string_view payload) {
    std::string out;
    out.reserve(payload.size() + 8);
    put_u32(out, static_cast<std::uint32_t>(payload.size()));
    put_u32(out, crc32c(payload));
    out += payload;
    return out;
}

// --- reader -----------------------------------------------------------------------

Reader::Reader(Reader&& o) noexcept { *this = std::move(o); }

Reader& Reader::operator=(Reader&& o) noexcept {
    if (this != &o) {
        if (file_)
            std::fclose(file_);
        paths_ = std::move(o.paths_);
        segment_ = o.segment_;
        file_ = std::exchange(o.file_, nullptr);
        header_ = std::move(o.header_);
        chunk_ = std::move(o.chunk_);
        chunk_pos_ = o.chunk_pos_;
        chunk_offset_ = o.chunk_offset_;
        file_offset_ = o.file_offset_;
        records_ = o.records_;
        chunks_ = o.chunks_;
        chunk_payload_bytes_ = o.chunk_payload_bytes_;
        last_mono_ns_ = o.last_mono_ns_;
        last_wall_ns_ = o.last_wall_ns_;
        error_ = std::move(o.error_);
        saw_end_ = o.saw_end_;
        done_ = o.done_;
    }
    return *this;
}

Reader::~Reader() {
    if (file_)
        std::fclose(file_);
}

Result<Reader> Reader::open(const std::string& path, std::string* error_message) {
    Reader r;
    namespace fs = std::filesystem;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        if (error_message)
            *error_message = fmt::format("{}: is a directory, not a trace", path);
        return Errc::invalid_argument;
    }
    if (fs::exists(path, ec)) {
        r.paths_.push_back(path);
    } else {
        for (std::size_t i = 0; fs::exists(fmt::format("{}.{}", path, i), ec); ++i)
            r.paths_.push_back(fmt::format("{}.{}", path, i));
    }
    if (r.paths_.empty()) {
        if (error_message)
            *error_message = fmt::format("{}: no such trace (nor segments {}.0, {}.1, ...)", path, path, path);
        return Errc::not_found;
    }
    if (!r.open_segment(0, error_message))
        return Errc::invalid_argument;
    r.last_mono_ns_ = r.header_.start_mono_ns;
    r.last_wall_ns_ = r.header_.start_wall_ns;
    return r;
}

bool Reader::open_segment(std::size_t index, std::string* error_message) {
    if (file_)
        std::fclose(file_);
    const std::string& path = paths_[index];
    file_ = std::fopen(path.c_str(), "rb");  // reprise-allow: io (the trace reader is part of record/)
    auto refuse = [&](std::string why) {
        if (error_message)
            *error_message = fmt::format("{}: {}", path, why);
        return false;
    };
    if (!file_)
        return refuse(std::strerror(errno));
    unsigned char fixed[sizeof magic + 12];
    if (std::fread(fixed, 1, sizeof fixed, file_) != sizeof fixed)
        return refuse("not a reprise trace (too short for a header)");
    if (std::memcmp(fixed, magic, sizeof magic) != 0)
        return refuse("not a reprise trace (bad magic)");
    std::uint32_t version = get_u32(fixed + 8);
    if (version != format_version)
        return refuse(fmt::format("trace format version {} is not supported: this reader reads version {} only",
                                  version, format_version));
    std::uint32_t length = get_u32(fixed + 12);
    std::uint32_t crc = get_u32(fixed + 16);
    if (length > header_bytes_max)
        return refuse(fmt::format("header length {} exceeds the limit of {} bytes", length, header_bytes_max));
    std::string body(length, '\0');
    if (std::fread(body.data(), 1, length, file_) != length)
        return refuse("the header is truncated");
    if (crc32c(body) != crc)
        return refuse("the header's checksum does not match");
    Header h;
    if (auto why = decode_header(body, h))
        return refuse(*why);
    // Times are delta-encoded across segment boundaries: a later segment alone
    // cannot be read, only the whole trace from segment 0.
    if (index == 0 && h.segment != 0)
        return refuse(fmt::format("this is segment {} of a segmented trace; open the trace by its name without the "
                                  "\".{}\" suffix to read it from segment 0",
                                  h.segment, h.segment));
    if (index == 0)
        header_ = std::move(h);
    else if (h.segment != index)
        return refuse(fmt::format("segment number {} where {} was expected", h.segment, index));
    else if (h.start_mono_ns != header_.start_mono_ns || h.start_wall_ns != header_.start_wall_ns ||
             h.node != header_.node || h.seed != header_.seed || h.build_id != header_.build_id)
        return refuse("this segment belongs to another recording (its header differs from segment 0's); "
                      "a leftover of an earlier recording to the same path?");
    segment_ = index;
    file_offset_ = sizeof fixed + length;
    return true;
}

bool Reader::fail(std::uint64_t offset, std::string message, std::size_t segment) {
    error_ = ReadError{offset, records_, std::move(message), paths_[segment]};
    done_ = true;
    return false;
}

std::uint64_t Reader::bytes_left_in_file() const {
    struct stat st {};
    if (::fstat(fileno(file_), &st) != 0)  // reprise-allow: io (the trace reader)
        return 0;
    std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    std::uint64_t at = file_offset_ + 8;
    return size > at ? size - at : 0;
}

bool Reader::load_chunk() {
    for (;;) {
        unsigned char frame[8];
        std::size_t got = std::fread(frame, 1, sizeof frame, file_);
        if (got == 0 && std::feof(file_)) {
            if (segment_ + 1 < paths_.size()) {
                std::string why;
                if (!open_segment(segment_ + 1, &why))
                    return fail(0, why, segment_ + 1);
                continue;
            }
            done_ = true;
            return false;
        }
        chunk_offset_ = file_offset_;
        if (got != sizeof frame)
            return fail(chunk_offset_, "truncated chunk header (the recording stopped mid-write)");
        std::uint32_t length = get_u32(frame);
        std::uint32_t crc = get_u32(frame + 4);
        if (length == 0 || length > chunk_bytes_max)
            return fail(chunk_offset_, fmt::format("chunk length {} is outside 1..{}", length, chunk_bytes_max));
        // Allocate no more than the file really holds: a hostile length is bounded
        // by chunk_bytes_max, and a truncated file by its size.
        if (length > bytes_left_in_file())
            return fail(chunk_offset_, "truncated chunk (the recording stopped mid-write)");
        chunk_.resize(length);
        if (std::fread(chunk_.data(), 1, length, file_) != length)
            return fail(chunk_offset_, "truncated chunk (the recording stopped mid-write)");
        if (crc32c(chunk_) != crc)
            return fail(chunk_offset_, "chunk checksum mismatch (the file is damaged)");
        file_offset_ += sizeof frame + length;
        chunk_pos_ = 0;
        ++chunks_;
        chunk_payload_bytes_ += length;
        return true;
    }
}

bool Reader::next(Record& out) {
    if (done_ || saw_end_)
        return false;
    if (chunk_pos_ >= chunk_.size() && !load_chunk())
        return false;
    // The record's own offset: its chunk passed its checksum, so the record is the bad part.
    const std::size_t before = chunk_pos_;
    const std::uint64_t record_offset = chunk_offset_ + 8 + before;
    try {
        msgpack::object_handle oh =
            msgpack::unpack(chunk_.data(), chunk_.size(), chunk_pos_, nullptr, nullptr, record_limit);
        if (chunk_pos_ == before)
            return fail(record_offset, "a record of zero bytes");
        std::int64_t mono = last_mono_ns_, wall = last_wall_ns_;
        if (auto why = decode_record(oh.get(), mono, wall, out))
            return fail(record_offset, fmt::format("record {} is malformed: {}", records_, *why));
        if (out.kind == RecordKind::tick) {
            last_mono_ns_ = mono;
            last_wall_ns_ = wall;
        }
    } catch (const std::exception& e) {
        return fail(record_offset, fmt::format("record {} does not decode: {}", records_, e.what()));
    }
    ++records_;
    if (out.kind == RecordKind::end)
        saw_end_ = true;
    return true;
}

bool Reader::check_nothing_after_end() {
    REPRISE_ASSERT_MSG(saw_end_, "check_nothing_after_end() before the end record");
    if (error_)
        return false;
    if (chunk_pos_ < chunk_.size())
        return fail(chunk_offset_ + 8 + chunk_pos_,
                    fmt::format("{} byte(s) follow the end record in its chunk", chunk_.size() - chunk_pos_));
    unsigned char byte;
    if (std::fread(&byte, 1, 1, file_) == 1)
        return fail(file_offset_, "bytes follow the chunk that holds the end record");
    if (segment_ + 1 < paths_.size())
        return fail(0,
                    fmt::format("segment {} follows the one that holds the end record (a leftover of an earlier "
                                "recording to the same path?)",
                                paths_[segment_ + 1]),
                    segment_ + 1);
    return true;
}

// --- presentation ---------------------------------------------------------------

namespace {
std::string printable(std::string_view bytes, std::size_t max) {
    std::string out;
    for (std::size_t i = 0; i < bytes.size() && i < max; ++i) {
        unsigned char c = static_cast<unsigned char>(bytes[i]);
        if (c == '\\' || c == '"')
            out += fmt::format("\\{}", static_cast<char>(c));
        else if (c >= 0x20 && c < 0x7f)
            out += static_cast<char>(c);
        else
            out += fmt::format("\\x{:02x}", c);
    }
    if (bytes.size() > max)
        out += "...";
    return out;
}

// The bytes as the inside of a JSON string: printable ASCII as is, every other
// byte as \u00XX (JSON has no \x escape, and the bytes need not be UTF-8).
std::string json_chars(std::string_view bytes) {
    std::string out;
    for (unsigned char c : bytes) {
        if (c == '\\' || c == '"')
            out += fmt::format("\\{}", static_cast<char>(c));
        else if (c >= 0x20 && c < 0x7f)
            out += static_cast<char>(c);
        else
            out += fmt::format("\\u{:04x}", c);
    }
    return out;
}
} // namespace

std::string describe(const Record& r) {
    switch (r.kind) {
    case RecordKind::tick:
        return fmt::format("tick mono={}ns wall={}ns", r.mono_ns, r.wall_ns);
    case RecordKind::wake: {
        std::string s = fmt::format("wake {} handle={} value={}", wake_kind_name(r.sub), r.handle, r.value);
        if (!r.data.empty())
            s += fmt::format(" bytes={} \"{}\"", r.data.size(), printable(r.data, 48));
        if (r.has_addresses)
            s += fmt::format(" peer={} local={}", r.peer.to_string(), r.local.to_string());
        return s;
    }
    case RecordKind::input:
        return fmt::format("input {} name=\"{}\" bytes={} \"{}\"", input_kind_name(static_cast<InputKind>(r.sub)),
                           printable(r.name, 64), r.data.size(), printable(r.data, 32));
    case RecordKind::output: {
        std::string s = fmt::format("output {} handle={} length={} digest={:016x}",
                                    output_kind_name(static_cast<OutputKind>(r.sub)), r.handle, r.value, r.digest);
        if (!r.data.empty())
            s += fmt::format(" \"{}\"", printable(r.data, 48));
        return s;
    }
    case RecordKind::spawn:
        return fmt::format("spawn task={} name=\"{}\"", r.handle, printable(r.name, 64));
    case RecordKind::end:
        return fmt::format("end exit_code={}", r.value);
    }
    return "unknown";
}

std::string to_json(const Record& r) {
    auto hex = [](std::string_view b) {
        std::string out;
        for (unsigned char c : b)
            out += fmt::format("{:02x}", c);
        return out;
    };
    std::string s = fmt::format("{{\"kind\":\"{}\"", record_kind_name(r.kind));
    switch (r.kind) {
    case RecordKind::tick:
        s += fmt::format(",\"mono_ns\":{},\"wall_ns\":{}", r.mono_ns, r.wall_ns);
        break;
    case RecordKind::wake:
        s += fmt::format(",\"wake\":\"{}\",\"handle\":{},\"value\":{},\"bytes\":{},\"data_hex\":\"{}\"", wake_kind_name(r.sub),
                         r.handle, r.value, r.data.size(), hex(r.data));
        if (r.has_addresses)
            s += fmt::format(",\"peer\":\"{}\",\"local\":\"{}\"", r.peer.to_string(), r.local.to_string());
        break;
    case RecordKind::input:
        s += fmt::format(",\"input\":\"{}\",\"name\":\"{}\",\"bytes\":{},\"data_hex\":\"{}\"",
                         input_kind_name(static_cast<InputKind>(r.sub)), json_chars(r.name), r.data.size(), hex(r.data));
        break;
    case RecordKind::output:
        s += fmt::format(",\"output\":\"{}\",\"handle\":{},\"length\":{},\"digest\":\"{:016x}\"",
                         output_kind_name(static_cast<OutputKind>(r.sub)), r.handle, r.value, r.digest);
        if (!r.data.empty())
            s += fmt::format(",\"data_hex\":\"{}\"", hex(r.data));
        break;
    case RecordKind::spawn:
        s += fmt::format(",\"task\":{},\"name\":\"{}\"", r.handle, json_chars(r.name));
        break;
    case RecordKind::end:
        s += fmt::format(",\"exit_code\":{}", r.value);
        break;
    }
    return s + "}";
}

} // namespace reprise::trace
