// trace_decode: records per second through trace::Reader, beside a msgpack object-tree decode of the same bytes.
//
// Usage: trace_decode [--rounds N] TRACE
//
// Each round times three passes over the whole trace, in an order that alternates from round
// to round (so a drift of the machine favours none):
//   reader   trace::Reader::open, then next() to the end: the file (from the page cache), each
//            chunk's CRC and zstd frame, and the records, decoded in place
//   records  trace::decode_record over the trace's payload bytes, held in memory
//   msgpack  the anchor: msgpack::unpack of every record into an object tree, with the unpack_limit
//            the format-2 reader used, then each field read by type, over the same payload bytes
// "records" and "msgpack" decode the very same bytes (checked: same records, same kinds), so
// their ratio compares the decoders alone; "reader" is what a replay or a tool pays per record.
// A pass repeats until a round's share lasts at least round_ns_min, the same count for all three.
//
// Prints one line per round on stderr, then one line on stdout:
//   result records=N chunks=C stored_bytes=S raw_bytes=R compression=R/S rounds=N passes=K
//   decode_per_s=.. ns_per_record=.. records_per_s=.. records_ns_per_record=..
//   msgpack_per_s=.. msgpack_ns_per_record=.. reader_over_msgpack=.. ratio=records/msgpack
// (medians over the rounds). Exit status: 0, 1 when the trace does not read completely, 2 for usage.
#include <reprise/record/trace.hpp>

#include <fmt/core.h>
#include <msgpack.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

namespace trace = reprise::trace;
using Clock = std::chrono::steady_clock;

/// A round's passes together last at least this long (so a short trace is timed over several passes).
constexpr std::int64_t round_ns_min = 100'000'000;
/// Bound on passes per round, however short the trace.
constexpr std::uint64_t passes_max = 10'000;
constexpr int rounds_max = 100;

/// The format-2 reader's limits on one record: no maps or ext, arrays two deep, strings and
/// binaries no larger than a record's payload.
const msgpack::unpack_limit v2_record_limit(16, 0, trace::record_payload_bytes_max, trace::record_payload_bytes_max,
                                            0, 2);

/// What a pass saw: the same for all three passes over one trace, or they did not read the same bytes.
struct Tally {
    std::uint64_t records = 0;
    std::uint64_t kinds = 0;  ///< sum of the records' kinds
    bool operator==(const Tally&) const = default;
};

/// The trace's records as payload bytes, in chunks of the size a recorder writes.
struct Payloads {
    std::vector<std::string> chunks;
    std::int64_t start_mono_ns = 0;
    std::int64_t start_wall_ns = 0;
};

[[noreturn]] void die(const std::string& why) {
    fmt::print(stderr, "trace_decode: {}\n", why);
    std::exit(1);
}

Tally reader_pass(const std::string& path) {
    std::string why;
    auto reader = trace::Reader::open(path, &why);
    if (!reader.ok())
        die(fmt::format("cannot open {}: {}", path, why));
    Tally t;
    trace::Record r;
    while (reader->next(r)) {
        ++t.records;
        t.kinds += static_cast<std::uint64_t>(trace::kind_of(r));
    }
    if (reader->error() || !reader->saw_end())
        die(fmt::format("{}: {}", path, reader->error() ? reader->error()->message : "no end record"));
    return t;
}

Tally records_pass(const Payloads& p) {
    Tally t;
    std::int64_t mono_ns = p.start_mono_ns, wall_ns = p.start_wall_ns;
    trace::Record r;
    for (const std::string& chunk : p.chunks) {
        std::string_view rest = chunk;
        while (!rest.empty()) {
            if (auto why = trace::decode_record(rest, mono_ns, wall_ns, r))
                die("a record does not decode: " + *why);
            ++t.records;
            t.kinds += static_cast<std::uint64_t>(trace::kind_of(r));
        }
    }
    return t;
}

// Reads one field as the format-2 reader did (typed conversion, throwing on a wrong type).
std::uint64_t read_field(const msgpack::object& o) {
    switch (o.type) {
    case msgpack::type::POSITIVE_INTEGER: return o.as<std::uint64_t>();
    case msgpack::type::NEGATIVE_INTEGER: return static_cast<std::uint64_t>(o.as<std::int64_t>());
    case msgpack::type::BIN: return o.via.bin.size + static_cast<std::uint64_t>(o.via.bin.size ? o.via.bin.ptr[0] : 0);
    case msgpack::type::STR: return o.via.str.size + static_cast<std::uint64_t>(o.via.str.size ? o.via.str.ptr[0] : 0);
    default: throw msgpack::type_error();
    }
}

Tally msgpack_pass(const Payloads& p, std::uint64_t& sink) {
    Tally t;
    for (const std::string& chunk : p.chunks) {
        std::size_t at = 0;
        while (at < chunk.size()) {
            msgpack::object_handle oh = msgpack::unpack(chunk.data(), chunk.size(), at, nullptr, nullptr, v2_record_limit);
            const msgpack::object& o = oh.get();
            if (o.type != msgpack::type::ARRAY || o.via.array.size < 1)
                die("msgpack: a record is not an array");
            const auto kind = o.via.array.ptr[0].as<std::uint64_t>();
            for (std::uint32_t i = 1; i < o.via.array.size; ++i)
                sink += read_field(o.via.array.ptr[i]);
            ++t.records;
            t.kinds += kind;
        }
    }
    return t;
}

// Reads the trace once and encodes its records again, chunk by chunk as the recorder does: the
// encoding is canonical, so these are the trace's payload bytes (checked against the reader's count).
Payloads load_payloads(const std::string& path, std::uint64_t& stored_bytes, std::uint64_t& chunks) {
    std::string why;
    auto reader = trace::Reader::open(path, &why);
    if (!reader.ok())
        die(fmt::format("cannot open {}: {}", path, why));
    Payloads p;
    p.start_mono_ns = reader->header().start_mono_ns;
    p.start_wall_ns = reader->header().start_wall_ns;
    trace::Encoder encoder;
    encoder.set_base(p.start_mono_ns, p.start_wall_ns);
    trace::Record r;
    std::uint64_t bytes = 0;
    while (reader->next(r)) {
        encoder.put(r);
        if (encoder.payload().size() >= trace::chunk_bytes_target) {
            bytes += encoder.payload().size();
            p.chunks.push_back(std::move(encoder.payload()));
            encoder.payload().clear();
        }
    }
    if (reader->error() || !reader->saw_end())
        die(fmt::format("{}: {}", path, reader->error() ? reader->error()->message : "no end record"));
    if (!encoder.payload().empty()) {
        bytes += encoder.payload().size();
        p.chunks.push_back(std::move(encoder.payload()));
    }
    if (bytes != reader->chunk_payload_bytes())
        die(fmt::format("the records encode to {} bytes where the trace's payloads hold {}: not the same bytes", bytes,
                        reader->chunk_payload_bytes()));
    stored_bytes = reader->chunk_stored_bytes();
    chunks = reader->chunks_read();
    return p;
}

template <class F>
std::int64_t time_ns(std::uint64_t passes, const Tally& want, F&& pass) {
    const auto began = Clock::now();
    for (std::uint64_t i = 0; i < passes; ++i)
        if (!(pass() == want))
            die("a pass read other records than the others");
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - began).count();
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace

int main(int argc, char** argv) {
    int rounds = 5;
    std::string path;
    bool usage_error = false;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        if (a == "--rounds" && i + 1 < argc)
            rounds = std::atoi(argv[++i]);
        else if (!a.starts_with("-") && path.empty())
            path = a;
        else
            usage_error = true;
    }
    if (usage_error || path.empty() || rounds < 1 || rounds > rounds_max) {
        fmt::print(stderr, "usage: trace_decode [--rounds N (1..{})] TRACE\n", rounds_max);
        return 2;
    }
    std::uint64_t stored_bytes = 0, chunks = 0, sink = 0;
    const Payloads payloads = load_payloads(path, stored_bytes, chunks);
    std::uint64_t raw_bytes = 0;
    for (const auto& c : payloads.chunks)
        raw_bytes += c.size();

    // Warm-up and calibration: one pass of each, which must agree.
    const Tally want = reader_pass(path);
    if (want.records == 0)
        die("the trace holds no record");
    if (!(records_pass(payloads) == want) || !(msgpack_pass(payloads, sink) == want))
        die("the passes read other records than the reader");
    const auto one = std::max<std::int64_t>(1, time_ns(1, want, [&] { return reader_pass(path); }));
    const std::uint64_t passes = std::clamp<std::uint64_t>(static_cast<std::uint64_t>(round_ns_min / one), 1, passes_max);

    std::vector<double> reader_ns, records_ns, msgpack_ns;  // per record, one per round
    const double per = static_cast<double>(passes * want.records);
    for (int round = 1; round <= rounds; ++round) {
        std::int64_t ns[3] = {};
        for (int k = 0; k < 3; ++k) {
            const int which = (round % 2 == 1) ? k : 2 - k;
            if (which == 0)
                ns[0] = time_ns(passes, want, [&] { return reader_pass(path); });
            else if (which == 1)
                ns[1] = time_ns(passes, want, [&] { return records_pass(payloads); });
            else
                ns[2] = time_ns(passes, want, [&] { return msgpack_pass(payloads, sink); });
        }
        reader_ns.push_back(static_cast<double>(ns[0]) / per);
        records_ns.push_back(static_cast<double>(ns[1]) / per);
        msgpack_ns.push_back(static_cast<double>(ns[2]) / per);
        fmt::print(stderr, "round={} passes={} reader_ns_per_record={:.2f} records_ns_per_record={:.2f} "
                           "msgpack_ns_per_record={:.2f}\n",
                   round, passes, reader_ns.back(), records_ns.back(), msgpack_ns.back());
    }
    const double reader = median(reader_ns), records = median(records_ns), anchor = median(msgpack_ns);
    fmt::print("result records={} chunks={} stored_bytes={} raw_bytes={} compression={:.2f} rounds={} passes={} "
               "decode_per_s={:.0f} ns_per_record={:.2f} records_per_s={:.0f} records_ns_per_record={:.2f} "
               "msgpack_per_s={:.0f} msgpack_ns_per_record={:.2f} reader_over_msgpack={:.2f} ratio={:.2f}\n",
               want.records, chunks, stored_bytes, raw_bytes,
               static_cast<double>(raw_bytes) / static_cast<double>(stored_bytes), rounds, passes, 1e9 / reader,
               reader, 1e9 / records, records, 1e9 / anchor, anchor, anchor / reader, anchor / records);
    // The anchor's fields are summed into `sink` so that no pass is optimised away; it is shown
    // nowhere else, so it goes to stderr.
    fmt::print(stderr, "trace_decode: field sum {}\n", sink);
    return 0;
}
