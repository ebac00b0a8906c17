// The trace format's records: each one's check, encoding, in-place decoding, description and JSON side by side.
#include "reprise/record/trace.hpp"

#include "reprise/record/chunk.hpp"
#include "reprise/record/json.hpp"
#include "reprise/runtime/assert.hpp"

#include <msgpack.hpp>

#include <fmt/core.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <bit>
#include <cstring>
#include <limits>
#include <type_traits>

namespace reprise {

const char* wake_kind_name(WakeKind k) noexcept {
    switch (k) {
    case WakeKind::timer_fired: return "timer_fired";
    case WakeKind::bytes_read: return "bytes_read";
    case WakeKind::eof: return "eof";
    case WakeKind::io_error: return "io_error";
    case WakeKind::accepted: return "accepted";
    case WakeKind::connected: return "connected";
    case WakeKind::drained: return "drained";
    case WakeKind::signal: return "signal";
    case WakeKind::offload_done: return "offload_done";
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
    case InputKind::output_left: return "output_left";
    case InputKind::secret: return "secret";
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

} // namespace reprise

namespace reprise::trace {

namespace {

template <class... F>
struct Overloaded : F... {
    using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

std::string_view address_bytes(const Address& a) {
    if (a.empty())
        return {};
    return {reinterpret_cast<const char*>(a.sockaddr_ptr()), a.sockaddr_len()};
}

// An address's bytes, or an empty Address for no bytes; nullopt for bytes that are not a
// sockaddr_in or sockaddr_in6 (damage: refused, not read as "no address").
std::optional<Address> address_from(std::string_view bytes) {
    if (bytes.empty())
        return Address{};
    if (bytes.size() != sizeof(sockaddr_in) && bytes.size() != sizeof(sockaddr_in6))
        return std::nullopt;
    alignas(sockaddr_in6) char buf[sizeof(sockaddr_in6)] = {};
    std::memcpy(buf, bytes.data(), std::min(bytes.size(), sizeof buf));
    Address a = Address::from_sockaddr(reinterpret_cast<const sockaddr*>(buf), static_cast<socklen_t>(bytes.size()));
    if (a.empty())
        return std::nullopt;
    return a;
}

// The bytes as a shortened line for describe(): escaped(), then "..." when cut.
std::string printable(std::string_view bytes, std::size_t max) {
    return bytes.size() > max ? fmt::format("{}...", escaped(bytes.substr(0, max))) : escaped(bytes);
}

} // namespace

const char* record_kind_name(RecordKind k) noexcept {
    switch (k) {
    case RecordKind::tick: return "tick";
    case RecordKind::wake: return "wake";
    case RecordKind::input: return "input";
    case RecordKind::output: return "output";
    case RecordKind::spawn: return "spawn";
    case RecordKind::end: return "end";
    case RecordKind::accepted: return "accepted";
    case RecordKind::connected: return "connected";
    case RecordKind::annotation: return "annotation";
    }
    return "unknown";
}

std::uint64_t digest64(std::string_view bytes) noexcept { return XXH3_64bits(bytes.data(), bytes.size()); }

// --- checks: the same rules before encoding (asserted) and after decoding (damage) ---

namespace {

// The rules, one overload per record type: check() picks one by the record's kind, and
// decode_record calls the one of the type it has just read.
const auto check_one = Overloaded{
    [](const Tick&) -> std::optional<std::string> { return std::nullopt; },
    [](const Wake& r) -> std::optional<std::string> {
        const auto k = static_cast<std::uint8_t>(r.wake);
        if (k < 1 || k > wake_kind_last)
            return fmt::format("wake: unknown wake-up kind {}", k);
        if (r.wake == WakeKind::accepted || r.wake == WakeKind::connected)
            return fmt::format("wake: {} has a record of its own", wake_kind_name(r.wake));
        if ((r.wake == WakeKind::signal) != (r.handle == 0))
            return std::string("wake: a signal has handle 0, every other wake-up a handle");
        if (!r.data.empty() && r.wake != WakeKind::bytes_read && r.wake != WakeKind::offload_done)
            return fmt::format("wake: {} carries no data", wake_kind_name(r.wake));
        if (r.data.size() > record_payload_bytes_max)
            return std::string("wake: the data is larger than a record may be");
        if (r.value != 0 && r.wake == WakeKind::bytes_read &&
            (r.value < 0 || r.value % static_cast<std::int64_t>(redaction_bytes) != 0 ||
             static_cast<std::uint64_t>(r.value) > r.data.size()))
            return fmt::format("wake: a redaction trailer of {} bytes in {} bytes read", r.value, r.data.size());
        return std::nullopt;
    },
    [](const Input& r) -> std::optional<std::string> {
        const auto k = static_cast<std::uint8_t>(r.input);
        if (k < 1 || k > input_kind_last)
            return fmt::format("input: unknown input kind {}", k);
        if (r.value.size() > record_payload_bytes_max)
            return std::string("input: the value is larger than a record may be");
        return std::nullopt;
    },
    [](const Output& r) -> std::optional<std::string> {
        const auto k = static_cast<std::uint8_t>(r.output);
        if (k < 1 || k > output_kind_last)
            return fmt::format("output: unknown output kind {}", k);
        if (!r.bytes.empty() && r.bytes.size() != r.length)
            return fmt::format("output: {} bytes recorded in full for a length of {}", r.bytes.size(), r.length);
        if (!r.bytes.empty() && digest64(r.bytes) != r.digest)
            return std::string("output: the bytes recorded in full do not have the recorded digest");
        return std::nullopt;
    },
    [](const Spawn& r) -> std::optional<std::string> {
        if (r.task == 0)
            return std::string("spawn: task id 0");
        return std::nullopt;
    },
    [](const End&) -> std::optional<std::string> { return std::nullopt; },
    [](const Accepted& r) -> std::optional<std::string> {
        if (r.listener == 0 || r.connection == 0 || r.listener == r.connection)
            return fmt::format("accepted: listener {} and connection {} must be distinct non-zero ids",
                               r.listener, r.connection);
        return std::nullopt;
    },
    [](const Connected& r) -> std::optional<std::string> {
        if (r.connection == 0)
            return std::string("connected: connection id 0");
        if (r.error < 0 || r.error > std::numeric_limits<std::int32_t>::max())
            return fmt::format("connected: error {} is not an errno", r.error);
        if (r.error != 0 && (!r.peer.empty() || !r.local.empty()))
            return std::string("connected: a failed connect has no addresses");
        return std::nullopt;
    },
    [](const Annotation& r) -> std::optional<std::string> {
        if (r.name.empty() || r.name.size() > annotation_name_bytes_max)
            return fmt::format("annotation: a name of {} bytes (1..{})", r.name.size(), annotation_name_bytes_max);
        if (r.count > annotation_fields_max)
            return fmt::format("annotation: {} fields (at most {})", r.count, annotation_fields_max);
        for (std::size_t i = 0; i < r.count; ++i) {
            const AnnotationField& f = r.fields[i];
            if (f.key.empty() || f.key.size() > annotation_name_bytes_max)
                return fmt::format("annotation: field {} has a key of {} bytes (1..{})", i, f.key.size(),
                                   annotation_name_bytes_max);
            if (f.text.size() > annotation_text_bytes_max)
                return fmt::format("annotation: field {} has a text of {} bytes (at most {})", i, f.text.size(),
                                   annotation_text_bytes_max);
        }
        return std::nullopt;
    },
};

} // namespace

std::optional<std::string> check(const Record& record) { return std::visit(check_one, record); }

// --- RecordCopy ------------------------------------------------------------------

void RecordCopy::assign(const Record& r) {
    // Every view the record holds, in one list: copied into storage_, then re-pointed.
    std::string_view* views[2 + 2 * annotation_fields_max];
    std::size_t n = 0;
    record_ = r;
    std::visit(Overloaded{
                   [&](Wake& x) { views[n++] = &x.data; },
                   [&](Input& x) {
                       views[n++] = &x.name;
                       views[n++] = &x.value;
                   },
                   [&](Output& x) { views[n++] = &x.bytes; },
                   [&](Spawn& x) { views[n++] = &x.name; },
                   [&](Annotation& x) {
                       views[n++] = &x.name;
                       for (std::size_t i = 0; i < x.count && i < annotation_fields_max; ++i) {
                           views[n++] = &x.fields[i].key;
                           views[n++] = &x.fields[i].text;
                       }
                   },
                   [](auto&) {},
               },
               record_);
    std::size_t total = 0;
    for (std::size_t i = 0; i < n; ++i)
        total += views[i]->size();
    storage_.resize(total);  // keeps its capacity: no allocation once warm
    std::size_t at = 0;
    for (std::size_t i = 0; i < n; ++i) {
        std::string_view v = *views[i];
        if (!v.empty())
            std::memcpy(storage_.data() + at, v.data(), v.size());
        *views[i] = std::string_view(storage_.data() + at, v.size());
        at += v.size();
    }
}

// --- encoding: one packer per record; decode_record below mirrors each ---------------

namespace {

// msgpack's packer writes into a std::string through this adaptor.
struct StringSink {
    std::string* out;
    void write(const char* data, std::size_t n) { out->append(data, n); }
};
using Packer = msgpack::packer<StringSink>;

void pack_bin(Packer& p, std::string_view b) {
    p.pack_bin(static_cast<std::uint32_t>(b.size()));
    p.pack_bin_body(b.data(), static_cast<std::uint32_t>(b.size()));
}

void pack_str(Packer& p, std::string_view s) {
    p.pack_str(static_cast<std::uint32_t>(s.size()));
    p.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

void pack_kind(Packer& p, RecordKind k) { p.pack_uint8(static_cast<std::uint8_t>(k)); }

} // namespace

void Encoder::put(const Record& record) {
    if (auto why = check(record))
        detail::assert_fail("a valid record", __FILE__, __LINE__, why->c_str());
    StringSink sink{&buf_};
    Packer p(sink);
    std::visit(Overloaded{
                   [&](const Tick& r) {
                       p.pack_array(3);
                       pack_kind(p, RecordKind::tick);
                       p.pack(r.mono_ns - last_mono_ns_);
                       p.pack(r.wall_ns - last_wall_ns_);
                       last_mono_ns_ = r.mono_ns;
                       last_wall_ns_ = r.wall_ns;
                   },
                   [&](const Wake& r) {
                       p.pack_array(r.data.empty() ? 4 : 5);
                       pack_kind(p, RecordKind::wake);
                       p.pack_uint8(static_cast<std::uint8_t>(r.wake));
                       p.pack(r.handle);
                       p.pack(r.value);
                       if (!r.data.empty())
                           pack_bin(p, r.data);
                   },
                   [&](const Input& r) {
                       p.pack_array(4);
                       pack_kind(p, RecordKind::input);
                       p.pack_uint8(static_cast<std::uint8_t>(r.input));
                       pack_str(p, r.name);
                       pack_bin(p, r.value);
                   },
                   [&](const Output& r) {
                       p.pack_array(r.bytes.empty() ? 5 : 6);
                       pack_kind(p, RecordKind::output);
                       p.pack_uint8(static_cast<std::uint8_t>(r.output));
                       p.pack(r.handle);
                       p.pack(r.length);
                       p.pack(r.digest);
                       if (!r.bytes.empty())
                           pack_bin(p, r.bytes);
                   },
                   [&](const Spawn& r) {
                       p.pack_array(3);
                       pack_kind(p, RecordKind::spawn);
                       p.pack(r.task);
                       pack_str(p, r.name);
                   },
                   [&](const End& r) {
                       p.pack_array(2);
                       pack_kind(p, RecordKind::end);
                       p.pack(r.exit_code);
                   },
                   [&](const Accepted& r) {
                       p.pack_array(5);
                       pack_kind(p, RecordKind::accepted);
                       p.pack(r.listener);
                       p.pack(r.connection);
                       pack_bin(p, address_bytes(r.peer));
                       pack_bin(p, address_bytes(r.local));
                   },
                   [&](const Connected& r) {
                       const bool addresses = r.error == 0;
                       p.pack_array(addresses ? 5 : 3);
                       pack_kind(p, RecordKind::connected);
                       p.pack(r.connection);
                       p.pack(r.error);
                       if (addresses) {
                           pack_bin(p, address_bytes(r.peer));
                           pack_bin(p, address_bytes(r.local));
                       }
                   },
                   [&](const Annotation& r) {
                       p.pack_array(2 + 2 * r.count);
                       pack_kind(p, RecordKind::annotation);
                       pack_str(p, r.name);
                       for (std::size_t i = 0; i < r.count; ++i) {
                           pack_str(p, r.fields[i].key);
                           if (r.fields[i].is_text)
                               pack_str(p, r.fields[i].text);
                           else
                               p.pack(r.fields[i].number);
                       }
                   },
               },
               record);
}

// --- decoding, in place ----------------------------------------------------------------

namespace {

// Reads msgpack values from the front of a byte range without building objects: the
// subset records use (arrays, integers, str, bin). Every length is checked against
// the bytes left; the first error sticks and every later read returns zero.
class Cursor {
public:
    explicit Cursor(std::string_view in) : p_(reinterpret_cast<const unsigned char*>(in.data())), n_(in.size()) {}

    std::size_t used() const noexcept { return used_; }
    const char* error() const noexcept { return error_; }

    std::uint32_t array() {
        const unsigned b = byte();
        if (b >= 0x90 && b <= 0x9f)
            return b & 0x0f;
        if (b == 0xdc)
            return static_cast<std::uint32_t>(be(2));
        if (b == 0xdd)
            return static_cast<std::uint32_t>(be(4));
        return fail("a record is not an array");
    }

    // An integer of any msgpack encoding, as its sign and 64-bit magnitude.
    bool integer(std::uint64_t& magnitude, bool& negative) {
        negative = false;
        const unsigned b = byte();
        if (error_)
            return false;
        if (b <= 0x7f) {
            magnitude = b;
            return true;
        }
        if (b >= 0xe0) {
            negative = true;
            magnitude = static_cast<std::uint64_t>(-static_cast<std::int64_t>(static_cast<std::int8_t>(b)));
            return true;
        }
        std::size_t width = 0;
        bool is_signed = false;
        switch (b) {
        case 0xcc: width = 1; break;
        case 0xcd: width = 2; break;
        case 0xce: width = 4; break;
        case 0xcf: width = 8; break;
        case 0xd0: width = 1; is_signed = true; break;
        case 0xd1: width = 2; is_signed = true; break;
        case 0xd2: width = 4; is_signed = true; break;
        case 0xd3: width = 8; is_signed = true; break;
        default: fail("a field is not an integer"); return false;
        }
        std::uint64_t raw = be(width);
        if (error_)
            return false;
        if (!is_signed) {
            magnitude = raw;
            return true;
        }
        // Sign-extend from `width` bytes.
        const unsigned shift = static_cast<unsigned>(64 - 8 * width);
        const std::int64_t v = static_cast<std::int64_t>(raw << shift) >> shift;
        negative = v < 0;
        magnitude = negative ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
        return true;
    }

    // Most fields are small non-negative numbers (a positive fixint, one byte): read inline,
    // the rest out of line.
    [[gnu::always_inline]] std::uint64_t u64() {
        if (used_ < n_ && p_[used_] <= 0x7f) [[likely]]
            return p_[used_++];
        return u64_slow();
    }

    [[gnu::always_inline]] std::int64_t i64() {
        if (used_ < n_ && p_[used_] <= 0x7f) [[likely]]
            return p_[used_++];
        return i64_slow();
    }

    [[gnu::noinline]] std::uint64_t u64_slow() {
        // The unsigned encodings (a digest, a handle above 127) are read without integer()'s switch.
        if (used_ < n_ && p_[used_] >= 0xcc && p_[used_] <= 0xcf) {
            const unsigned width_log2 = p_[used_++] - 0xcc;
            return be(std::size_t{1} << width_log2);
        }
        std::uint64_t m = 0;
        bool neg = false;
        if (integer(m, neg) && neg && m != 0)
            fail("a field is negative where it cannot be");
        return m;
    }

    [[gnu::noinline]] std::int64_t i64_slow() {
        std::uint64_t m = 0;
        bool neg = false;
        if (!integer(m, neg))
            return 0;
        constexpr std::uint64_t max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        if (!neg) {
            if (m > max)
                return fail("a field does not fit a signed 64-bit integer");
            return static_cast<std::int64_t>(m);
        }
        if (m > max + 1)
            return fail("a field does not fit a signed 64-bit integer");
        return m == max + 1 ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(m);
    }

    [[gnu::always_inline]] std::uint8_t u8() {
        std::uint64_t v = u64();
        if (v > 0xff)
            return static_cast<std::uint8_t>(fail("a kind does not fit 8 bits"));
        return static_cast<std::uint8_t>(v);
    }

    // str or bin: the bytes, pointing into the input.
    std::string_view bytes() {
        const unsigned b = peek();
        std::size_t len = 0;
        if (b >= 0xa0 && b <= 0xbf) {
            byte();
            len = b & 0x1f;
        } else if (b == 0xd9 || b == 0xc4) {
            byte();
            len = be(1);
        } else if (b == 0xda || b == 0xc5) {
            byte();
            len = be(2);
        } else if (b == 0xdb || b == 0xc6) {
            byte();
            len = be(4);
        } else {
            fail("a field is not a string or binary");
            return {};
        }
        if (error_)
            return {};
        if (len > n_ - used_) {
            fail("a field is longer than its record");
            return {};
        }
        std::string_view v(reinterpret_cast<const char*>(p_ + used_), len);
        used_ += len;
        return v;
    }

    bool next_is_integer() {
        const unsigned b = peek();
        return !error_ && (b <= 0x7f || b >= 0xe0 || (b >= 0xcc && b <= 0xd3));
    }

    int fail(const char* why) {
        if (!error_)
            error_ = why;
        used_ = n_;
        return 0;
    }

private:
    unsigned peek() {
        if (used_ >= n_) {
            fail("the record is cut short");
            return 0;
        }
        return p_[used_];
    }
    unsigned byte() {
        unsigned b = peek();
        if (!error_)
            ++used_;
        return b;
    }
    // A big-endian unsigned integer of 1, 2, 4 or 8 bytes, loaded whole (msgpack has no other widths).
    std::uint64_t be(std::size_t width) {
        if (width > n_ - used_) {
            fail("the record is cut short");
            return 0;
        }
        const unsigned char* at = p_ + used_;
        used_ += width;
        switch (width) {
        case 1: return *at;
        case 2: return load_be16(at);
        case 4: return load_be32(at);
        case 8: return load_be64(at);
        }
        REPRISE_ASSERT_MSG(false, "msgpack integers are 1, 2, 4 or 8 bytes wide");
        return 0;
    }
    static std::uint16_t load_be16(const unsigned char* at) noexcept {
        std::uint16_t v;
        std::memcpy(&v, at, sizeof v);
        return std::endian::native == std::endian::little ? __builtin_bswap16(v) : v;
    }
    static std::uint32_t load_be32(const unsigned char* at) noexcept {
        std::uint32_t v;
        std::memcpy(&v, at, sizeof v);
        return std::endian::native == std::endian::little ? __builtin_bswap32(v) : v;
    }
    static std::uint64_t load_be64(const unsigned char* at) noexcept {
        std::uint64_t v;
        std::memcpy(&v, at, sizeof v);
        return std::endian::native == std::endian::little ? __builtin_bswap64(v) : v;
    }

    const unsigned char* p_;
    std::size_t n_;
    std::size_t used_ = 0;
    const char* error_ = nullptr;
};

bool count_is(Cursor& c, std::uint32_t n, std::initializer_list<std::uint32_t> allowed) {
    for (std::uint32_t a : allowed)
        if (n == a)
            return true;
    c.fail("a record has the wrong number of fields for its kind");
    return false;
}

// A tick's two deltas, added to the running clocks (moved on only when the record reads whole):
// the tick's times in `t`, or a message. Shared by decode_record and skim_record.
std::optional<std::string> read_tick(Cursor& c, std::int64_t& last_mono_ns, std::int64_t& last_wall_ns, Tick& t) {
    const std::int64_t dm = c.i64(), dw = c.i64();
    // Hostile deltas must not overflow the running sums (undefined behaviour).
    if (__builtin_add_overflow(last_mono_ns, dm, &t.mono_ns) || __builtin_add_overflow(last_wall_ns, dw, &t.wall_ns))
        return std::string("tick: the time overflows 64 bits");
    if (!c.error()) {
        last_mono_ns = t.mono_ns;
        last_wall_ns = t.wall_ns;
    }
    return std::nullopt;
}

} // namespace

std::optional<std::string> decode_record(std::string_view& in, std::int64_t& last_mono_ns, std::int64_t& last_wall_ns,
                                         Record& out) {
    Cursor c(in);
    auto address = [&c](Address& to) {
        if (auto a = address_from(c.bytes()))
            to = *a;
        else
            c.fail("an address is neither a sockaddr_in nor a sockaddr_in6");
    };
    // The record read whole is checked by its own type's rules (no second dispatch on its kind).
    std::optional<std::string> why;
    auto take = [&](const auto& r) {
        out = r;
        if (c.error())
            return;
        if (auto broken = check_one(r)) [[unlikely]]
            why = std::move(broken);
    };
    const std::uint32_t n = c.array();
    const std::uint8_t kind = n >= 1 ? c.u8() : static_cast<std::uint8_t>(c.fail("a record of no fields"));
    if (c.error())
        return std::string(c.error());
    switch (static_cast<RecordKind>(kind)) {
    case RecordKind::tick: {
        if (!count_is(c, n, {3}))
            break;
        Tick t;
        if (auto why = read_tick(c, last_mono_ns, last_wall_ns, t))
            return why;
        take(t);
        break;
    }
    case RecordKind::wake: {
        if (!count_is(c, n, {4, 5}))
            break;
        Wake w;
        w.wake = static_cast<WakeKind>(c.u8());
        w.handle = c.u64();
        w.value = c.i64();
        if (n == 5) {
            w.data = c.bytes();
            if (w.data.empty() && !c.error())
                return std::string("wake: empty data is written as no field");
        }
        take(w);
        break;
    }
    case RecordKind::input: {
        if (!count_is(c, n, {4}))
            break;
        Input r;
        r.input = static_cast<InputKind>(c.u8());
        r.name = c.bytes();
        r.value = c.bytes();
        take(r);
        break;
    }
    case RecordKind::output: {
        if (!count_is(c, n, {5, 6}))
            break;
        Output r;
        r.output = static_cast<OutputKind>(c.u8());
        r.handle = c.u64();
        r.length = c.u64();
        r.digest = c.u64();
        if (n == 6) {
            r.bytes = c.bytes();
            if (r.bytes.empty() && !c.error())
                return std::string("output: empty bytes are written as no field");
        }
        take(r);
        break;
    }
    case RecordKind::spawn: {
        if (!count_is(c, n, {3}))
            break;
        Spawn r;
        r.task = c.u64();
        r.name = c.bytes();
        take(r);
        break;
    }
    case RecordKind::end: {
        if (!count_is(c, n, {2}))
            break;
        take(End{c.i64()});
        break;
    }
    case RecordKind::accepted: {
        if (!count_is(c, n, {5}))
            break;
        Accepted r;
        r.listener = c.u64();
        r.connection = c.u64();
        address(r.peer);
        address(r.local);
        take(r);
        break;
    }
    case RecordKind::connected: {
        if (!count_is(c, n, {3, 5}))
            break;
        Connected r;
        r.connection = c.u64();
        r.error = c.i64();
        if (n == 5) {
            if (r.error != 0)
                return std::string("connected: a failed connect has no addresses");
            address(r.peer);
            address(r.local);
        } else if (r.error == 0 && !c.error()) {
            return std::string("connected: a connect that succeeded has its addresses");
        }
        take(r);
        break;
    }
    case RecordKind::annotation: {
        if (n < 2 || n % 2 != 0 || (n - 2) / 2 > annotation_fields_max) {
            c.fail("an annotation has the wrong number of fields");
            break;
        }
        Annotation r;
        r.name = c.bytes();
        r.count = static_cast<std::uint8_t>((n - 2) / 2);
        for (std::size_t i = 0; i < r.count; ++i) {
            AnnotationField& f = r.fields[i];
            f.key = c.bytes();
            if (c.next_is_integer()) {
                f.number = c.i64();
            } else {
                f.is_text = true;
                f.text = c.bytes();
            }
        }
        take(r);
        break;
    }
    default:
        return fmt::format("unknown record kind {}", kind);
    }
    if (c.error())
        return fmt::format("{}: {}", record_kind_name(static_cast<RecordKind>(kind)), c.error());
    if (why)
        return why;
    in.remove_prefix(c.used());
    return std::nullopt;
}

namespace {

// The rarer kinds, skimmed by decoding them whole (a connection's ends are addresses to check);
// out of line, so that the common kinds' path does not set up a Record.
[[gnu::noinline]] std::optional<std::string> skim_whole(std::string_view& in, std::int64_t& last_mono_ns,
                                                        std::int64_t& last_wall_ns, Skim& out) {
    Record r;
    std::string_view whole = in;
    if (auto why = decode_record(whole, last_mono_ns, last_wall_ns, r))
        return why;
    if (const auto* a = std::get_if<Accepted>(&r)) {
        out.handle = a->connection;
        out.local = a->local;
        out.peer = a->peer;
    } else if (const auto* k = std::get_if<Connected>(&r)) {
        out.handle = k->connection;
        out.value = k->error;
        out.local = k->local;
        out.peer = k->peer;
    } else if (const auto* e = std::get_if<End>(&r)) {
        out.value = e->exit_code;
    }
    in = whole;
    return std::nullopt;
}

} // namespace

std::optional<std::string> skim_record(std::string_view& in, std::int64_t& last_mono_ns, std::int64_t& last_wall_ns,
                                       Skim& out) {
    Cursor c(in);
    const std::uint32_t n = c.array();
    const std::uint8_t kind = n >= 1 ? c.u8() : static_cast<std::uint8_t>(c.fail("a record of no fields"));
    if (c.error())
        return std::string(c.error());
    out.kind = static_cast<RecordKind>(kind);
    switch (out.kind) {
    case RecordKind::tick: {
        if (!count_is(c, n, {3}))
            break;
        Tick t;
        if (auto why = read_tick(c, last_mono_ns, last_wall_ns, t))
            return why;
        out.wall_ns = t.wall_ns;
        break;
    }
    case RecordKind::wake:
        if (!count_is(c, n, {4, 5}))
            break;
        out.sub = c.u8();
        out.handle = c.u64();
        out.value = c.i64();
        out.length = n == 5 ? c.bytes().size() : 0;
        break;
    case RecordKind::output:
        if (!count_is(c, n, {5, 6}))
            break;
        out.sub = c.u8();
        out.handle = c.u64();
        out.length = c.u64();
        c.u64();  // the digest
        if (n == 6)
            c.bytes();
        break;
    default:
        return skim_whole(in, last_mono_ns, last_wall_ns, out);
    }
    if (c.error())
        return fmt::format("{}: {}", record_kind_name(out.kind), c.error());
    in.remove_prefix(c.used());
    return std::nullopt;
}

// --- header -------------------------------------------------------------------------

namespace {

void put_u32(std::string& out, std::uint32_t v) {
    char b[4];
    for (int i = 0; i < 4; ++i)
        b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out.append(b, 4);
}

const msgpack::unpack_limit header_limit(4096, 64, header_bytes_max, header_bytes_max, 0, 3);

} // namespace

std::string encode_header_body(const Header& h) {
    std::string body;
    StringSink sink{&body};
    Packer p(sink);
    p.pack_map(13);
    auto key = [&](std::string_view k) { pack_str(p, k); };
    key("node");
    p.pack(h.node);
    key("program");
    p.pack(h.program);
    key("argv");
    p.pack(h.argv);
    key("executable");
    p.pack(h.executable);
    key("working_directory");
    p.pack(h.working_directory);
    key("seed");
    p.pack(h.seed);
    key("start_mono_ns");
    p.pack(h.start_mono_ns);
    key("start_wall_ns");
    p.pack(h.start_wall_ns);
    key("runtime_version");
    p.pack(h.runtime_version);
    key("build_id");
    p.pack(h.build_id);
    key("segment");
    p.pack(h.segment);
    key("encrypted");
    p.pack(h.encrypted);
    key("format_version");
    p.pack(format_version);
    return body;
}

std::string encode_header(const Header& h) {
    std::string body = encode_header_body(h);
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
                else if (key == "program")
                    h.program = kv.val.as<std::string>();
                else if (key == "argv")
                    h.argv = kv.val.as<std::vector<std::string>>();
                else if (key == "executable")
                    h.executable = kv.val.as<std::string>();
                else if (key == "working_directory")
                    h.working_directory = kv.val.as<std::string>();
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
                else if (key == "encrypted")
                    h.encrypted = kv.val.as<bool>();
                else if (key == "format_version" && kv.val.as<std::uint32_t>() != format_version)
                    return fmt::format("the header's format_version {} differs from the file's version {}",
                                       kv.val.as<std::uint32_t>(), format_version);
            } catch (const msgpack::type_error&) {
                return fmt::format("the header's field \"{}\" has the wrong type", key.substr(0, 64));
            }
        }
        return std::nullopt;
    } catch (const std::exception& e) {
        return fmt::format("the header does not decode: {}", e.what());
    }
}

// --- presentation ---------------------------------------------------------------------

std::string escaped(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    for (unsigned char c : bytes) {
        if (c == '\\' || c == '"')
            out += fmt::format("\\{}", static_cast<char>(c));
        else if (c >= 0x20 && c < 0x7f)
            out += static_cast<char>(c);
        else
            out += fmt::format("\\x{:02x}", c);
    }
    return out;
}

std::string describe(const Record& record) {
    return std::visit(
        Overloaded{
            [](const Tick& r) { return fmt::format("tick mono={}ns wall={}ns", r.mono_ns, r.wall_ns); },
            [](const Wake& r) {
                std::string s = fmt::format("wake {} handle={} value={}", wake_kind_name(r.wake), r.handle, r.value);
                if (r.wake == WakeKind::bytes_read && r.value > 0) {
                    const std::string_view read = r.data.substr(0, r.data.size() - static_cast<std::size_t>(r.value));
                    s += fmt::format(" bytes={} \"{}\" (redacted: {} spans)", read.size(), printable(read, 48),
                                     static_cast<std::size_t>(r.value) / redaction_bytes);
                } else if (!r.data.empty()) {
                    s += fmt::format(" bytes={} \"{}\"", r.data.size(), printable(r.data, 48));
                }
                return s;
            },
            [](const Input& r) {
                return fmt::format("input {} name=\"{}\" bytes={} \"{}\"", input_kind_name(r.input),
                                   printable(r.name, 64), r.value.size(), printable(r.value, 32));
            },
            [](const Output& r) {
                std::string s = fmt::format("output {} handle={} length={} digest={:016x}", output_kind_name(r.output),
                                            r.handle, r.length, r.digest);
                if (!r.bytes.empty())
                    s += fmt::format(" \"{}\"", printable(r.bytes, 48));
                return s;
            },
            [](const Spawn& r) { return fmt::format("spawn task={} name=\"{}\"", r.task, printable(r.name, 64)); },
            [](const End& r) {
                // Not an event a replay delivers: the node freezes before it (docs/trace-format.md).
                if (r.exit_code == exit_code_still_running)
                    return fmt::format("end exit_code={} (still running: the recording stopped first)", r.exit_code);
                return fmt::format("end exit_code={}", r.exit_code);
            },
            [](const Accepted& r) {
                return fmt::format("accepted listener={} connection={} peer={} local={}", r.listener, r.connection,
                                   r.peer.to_string(), r.local.to_string());
            },
            [](const Connected& r) {
                if (r.error != 0)
                    return fmt::format("connected connection={} error={} ({})", r.connection, r.error,
                                       std::strerror(static_cast<int>(r.error)));
                return fmt::format("connected connection={} peer={} local={}", r.connection, r.peer.to_string(),
                                   r.local.to_string());
            },
            [](const Annotation& r) {
                std::string s = fmt::format("annotation \"{}\"", printable(r.name, 64));
                for (std::size_t i = 0; i < r.count; ++i) {
                    const AnnotationField& f = r.fields[i];
                    if (f.is_text)
                        s += fmt::format(" {}=\"{}\"", printable(f.key, 64), printable(f.text, 64));
                    else
                        s += fmt::format(" {}={}", printable(f.key, 64), f.number);
                }
                return s;
            },
        },
        record);
}

void to_json(const Record& record, JsonWriter& j) {
    j.member("kind", record_kind_name(kind_of(record)));
    std::visit(Overloaded{
                   [&](const Tick& r) {
                       j.member("mono_ns", r.mono_ns).member("wall_ns", r.wall_ns);
                   },
                   [&](const Wake& r) {
                       j.member("wake", wake_kind_name(r.wake)).member("handle", r.handle).member("value", r.value);
                       if (r.wake == WakeKind::bytes_read && r.value > 0) {
                           // The bytes read as masked; the trailer says where (replay restores them).
                           const auto read_bytes = r.data.size() - static_cast<std::size_t>(r.value);
                           j.member("bytes", static_cast<std::uint64_t>(read_bytes))
                               .key("data_hex").hex(r.data.substr(0, read_bytes));
                           j.member("redacted_spans", static_cast<std::uint64_t>(r.value) / redaction_bytes);
                       } else {
                           j.member("bytes", static_cast<std::uint64_t>(r.data.size())).key("data_hex").hex(r.data);
                       }
                   },
                   [&](const Input& r) {
                       j.member("input", input_kind_name(r.input)).member("name", r.name);
                       j.member("bytes", static_cast<std::uint64_t>(r.value.size())).key("data_hex").hex(r.value);
                   },
                   [&](const Output& r) {
                       j.member("output", output_kind_name(r.output)).member("handle", r.handle).member("length", r.length);
                       j.member("digest", fmt::format("{:016x}", r.digest));
                       if (!r.bytes.empty())
                           j.key("data_hex").hex(r.bytes);
                   },
                   [&](const Spawn& r) { j.member("task", r.task).member("name", r.name); },
                   [&](const End& r) { j.member("exit_code", r.exit_code); },
                   [&](const Accepted& r) {
                       j.member("listener", r.listener).member("connection", r.connection);
                       j.member("peer", r.peer.to_string()).member("local", r.local.to_string());
                   },
                   [&](const Connected& r) {
                       j.member("connection", r.connection).member("error", r.error);
                       if (r.error == 0)
                           j.member("peer", r.peer.to_string()).member("local", r.local.to_string());
                   },
                   [&](const Annotation& r) {
                       j.member("name", r.name).key("fields").begin_object();
                       for (std::size_t i = 0; i < r.count; ++i) {
                           const AnnotationField& f = r.fields[i];
                           if (f.is_text)
                               j.member(f.key, f.text);
                           else
                               j.member(f.key, f.number);
                       }
                       j.end_object();
                   },
               },
               record);
}

std::string to_json(const Record& r) {
    JsonWriter j;
    j.begin_object();
    to_json(r, j);
    j.end_object();
    return j.take();
}

} // namespace reprise::trace
