// Damaged traces: truncated at every offset, bytes flipped, random and hostile files — the reader never crashes and says where.
#include "../support/reprise_test.hpp"

#include <reprise/record/chunk.hpp>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

using namespace reprise;
using namespace reprise::test;
using namespace std::chrono_literals;

namespace {

constexpr int exit_damaged = 2;

/// A header as a recorder would write it.
trace::Header header_of(std::string node, std::int64_t start_mono_ns = 1000) {
    trace::Header h;
    h.node = std::move(node);
    h.seed = 1;
    h.start_mono_ns = start_mono_ns;
    return h;
}

/// Three small chunks (each burst of records is followed by a sleep longer than
/// the recorder's 50 ms seal interval), then thousands of records and enough
/// harvested bytes for several full-size chunks.
int chunky(std::string& log) {
    for (int phase = 0; phase < 3; ++phase) {
        std::int64_t sum = 0;
        for (int i = 0; i < 25; ++i)
            sum += input<int>("n", [&] { return phase * 100 + i; });
        must(spawn(fmt::format("phase-{}", phase), [] {}).join(), "join phase");
        log += fmt::format("phase {} sum={}\n", phase, sum);
        must(sleep_for(60ms), "sleep");
    }
    Listener listener = must(listen(Address::loopback(0)), "listen");
    Connection client = must(connect(Address::loopback(listener.port()), generous), "connect");
    Connection server = must(listener.accept(generous), "accept");
    constexpr std::size_t total = 256 * 1024;
    auto writer = spawn("writer", [&] {
        for (std::size_t at = 0; at < total; at += 512) {
            must(client.write(pattern(at, 512)), "write");
            yield();
        }
        client.shutdown();
    });
    std::size_t received = 0;
    std::size_t mismatches = 0;
    for (;;) {
        auto got = server.read_some(64 * 1024, generous);
        if (!got.ok())
            break;
        if (pattern_mismatch(*got, received) != std::string_view::npos)
            ++mismatches;
        received += got->size();
    }
    must(writer.join(generous), "join writer");
    std::int64_t sum = 0;
    for (int i = 0; i < 2000; ++i)
        sum += input<int>("m", [i] { return i; });
    log += fmt::format("received={} mismatches={} sum={}\n", received, mismatches, sum);
    return 0;
}

/// Where the chunks of a trace file are, found from its framing, and how many
/// records the reader returns from the chunks before each.
struct Layout {
    std::string bytes;
    std::uint64_t header_end = 0;
    std::vector<std::uint64_t> chunk_start;    ///< plus one past the last chunk at the back
    std::vector<std::uint64_t> records_before; ///< records in the chunks before chunk i (and in all, at the back)
    std::uint64_t records = 0;

    std::size_t chunks() const { return chunk_start.size() - 1; }
    /// The index of the chunk holding byte `offset` (chunks() when past the end).
    std::size_t chunk_of(std::uint64_t offset) const {
        auto it = std::upper_bound(chunk_start.begin(), chunk_start.end(), offset);
        return static_cast<std::size_t>(it - chunk_start.begin()) - 1;
    }
};

std::uint32_t u32_at(const std::string& b, std::uint64_t at) {
    std::uint32_t v = 0;
    for (int i = 3; i >= 0; --i)
        v = v << 8 | static_cast<unsigned char>(b[at + static_cast<std::uint64_t>(i)]);
    return v;
}

Layout layout_of(const std::string& path) {
    Layout l;
    l.bytes = slurp(path);
    REQUIRE(l.bytes.size() > 20);
    REQUIRE(l.bytes.compare(0, 8, std::string(trace::magic, 8)) == 0);
    l.header_end = 20 + u32_at(l.bytes, 12);
    for (std::uint64_t at = l.header_end; at < l.bytes.size(); at += trace::chunk_frame_bytes + u32_at(l.bytes, at)) {
        REQUIRE(at + trace::chunk_frame_bytes <= l.bytes.size());
        l.chunk_start.push_back(at);
    }
    l.chunk_start.push_back(l.bytes.size());
    REQUIRE(l.chunk_start.back() == l.bytes.size());
    // Records per chunk, from the reader's own account of which chunk it reads.
    std::string error;
    auto reader = trace::Reader::open(path, &error);
    REQUIRE(reader.ok());
    l.records_before.assign(l.chunk_start.size(), 0);
    trace::Record r;
    std::vector<std::uint64_t> per_chunk(l.chunks(), 0);
    while (reader->next(r)) {
        std::size_t c = l.chunk_of(reader->offset());
        REQUIRE(c < l.chunks());
        REQUIRE(reader->offset() == l.chunk_start[c]);
        ++per_chunk[c];
    }
    REQUIRE_FALSE(reader->error().has_value());
    REQUIRE(reader->saw_end());
    l.records = reader->records_read();
    for (std::size_t c = 0; c < l.chunks(); ++c)
        l.records_before[c + 1] = l.records_before[c] + per_chunk[c];
    REQUIRE(l.records_before.back() == l.records);
    return l;
}

/// The recording every damage test starts from, made once per test process.
const Layout& chunky_trace(std::string* path_out = nullptr) {
    static TempDir dir;
    static const std::string path = dir / "chunky";
    static const Layout layout = [] {
        Recording rec = record(path, chunky);
        REQUIRE(rec.trace.saw_end);
        REQUIRE_THAT(rec.log, Catch::Contains("received=262144 mismatches=0"));
        return layout_of(path);
    }();
    if (path_out)
        *path_out = path;
    return layout;
}

/// One plain (uncompressed, unsealed) chunk around `payload`, framed as the recorder frames.
std::string plain_chunk(std::string_view payload) {
    std::string out;
    trace::ChunkSealer(std::string_view{}, nullptr).seal(payload, 0, false, out);
    return out;
}

/// `v` as the trace's little-endian u32.
std::string le32(std::uint32_t v) {
    std::string out;
    for (int i = 0; i < 4; ++i)
        out += static_cast<char>(v >> (8 * i));
    return out;
}

/// A message a person can read: not empty, printable ASCII.
bool clear_message(const std::string& m) {
    return !m.empty() && std::all_of(m.begin(), m.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

/// Reads `path` to its end or first error; the reader's account of it.
struct ReadOutcome {
    bool opened = false;
    std::string open_error;
    std::uint64_t records = 0;
    bool saw_end = false;
    std::optional<trace::ReadError> error;
};

ReadOutcome read_all(const std::string& path) {
    TraceFacts f = read_trace(path);
    return ReadOutcome{f.opened, f.open_error, f.records, f.saw_end, f.error};
}

bool truncate_to(const std::string& path, std::uint64_t size) {
    return ::truncate(path.c_str(), static_cast<off_t>(size)) == 0;
}

} // namespace

TEST_CASE("the damage tests' trace has thousands of records in several chunks, the first three small") {
    const Layout& l = chunky_trace();
    INFO("chunks: " << l.chunks() << ", records: " << l.records << ", bytes: " << l.bytes.size());
    REQUIRE(l.records >= 2000);
    REQUIRE(l.chunks() >= 6);
    for (std::size_t c = 0; c < 3; ++c)
        REQUIRE(l.chunk_start[c + 1] - l.chunk_start[c] < 4096);
}

TEST_CASE("a trace truncated at any offset reads back its complete chunks and says where it stops") {
    const Layout& l = chunky_trace();
    TempDir dir;
    const std::string path = dir / "cut";
    // Every offset up to the end of the third chunk, every offset near a chunk
    // boundary, and a step across the rest.
    std::vector<std::uint64_t> offsets;
    const std::uint64_t dense_end = l.chunk_start[3];
    for (std::uint64_t at = 0; at <= dense_end; ++at)
        offsets.push_back(at);
    for (std::uint64_t start : l.chunk_start)
        for (std::uint64_t d = 0; d < 24; ++d) {
            if (start >= d)
                offsets.push_back(start - d);
            if (start + d <= l.bytes.size())
                offsets.push_back(start + d);
        }
    const std::uint64_t step = std::max<std::uint64_t>(1, l.bytes.size() / 300);
    for (std::uint64_t at = dense_end; at <= l.bytes.size(); at += step)
        offsets.push_back(at);
    offsets.push_back(l.bytes.size());
    std::sort(offsets.begin(), offsets.end(), std::greater<>());
    offsets.erase(std::unique(offsets.begin(), offsets.end()), offsets.end());

    // Largest first: each cut shortens the same file.
    REQUIRE(spit(path, l.bytes));
    std::uint64_t records_at_larger_offset = l.records;
    for (std::uint64_t at : offsets) {
        REQUIRE(truncate_to(path, at));
        ReadOutcome r = read_all(path);
        CAPTURE(at, r.records, r.open_error);
        if (at < l.header_end) {
            REQUIRE_FALSE(r.opened);
            REQUIRE(clear_message(r.open_error));
            records_at_larger_offset = 0;
            continue;
        }
        REQUIRE(r.opened);
        REQUIRE(r.records <= records_at_larger_offset);
        records_at_larger_offset = r.records;
        const std::size_t c = l.chunk_of(at);  // the chunk the cut falls in (or the end)
        REQUIRE(r.records == l.records_before[c]);
        if (at == l.bytes.size()) {
            REQUIRE(r.saw_end);
            REQUIRE_FALSE(r.error.has_value());
        } else if (at == l.chunk_start[c]) {
            // A cut between chunks: nothing is damaged, but the end record is missing.
            REQUIRE_FALSE(r.saw_end);
            REQUIRE_FALSE(r.error.has_value());
        } else {
            REQUIRE_FALSE(r.saw_end);
            REQUIRE(r.error.has_value());
            CAPTURE(r.error->message);
            REQUIRE(r.error->offset == l.chunk_start[c]);
            REQUIRE(r.error->records_good == r.records);
            REQUIRE(clear_message(r.error->message));
            REQUIRE_THAT(r.error->message, Catch::Contains("truncated"));
        }
    }
}

TEST_CASE("flipped bytes are caught by the chunk checksums at the damaged chunk") {
    const Layout& l = chunky_trace();
    const std::uint64_t seed = test_seed("flipped bytes");
    std::mt19937_64 rng(seed);
    TempDir dir;
    const std::string path = dir / "flipped";
    for (int round = 0; round < 300; ++round) {
        std::string bytes = l.bytes;
        // Half the rounds aim at the small first chunks and the header.
        const std::uint64_t span = round % 2 == 0 ? l.chunk_start[3] : bytes.size();
        const int flips = 1 + static_cast<int>(rng() % 3);
        std::vector<std::uint64_t> flipped;
        while (flipped.size() < static_cast<std::size_t>(flips)) {
            const std::uint64_t at = rng() % span;
            if (std::find(flipped.begin(), flipped.end(), at) != flipped.end())
                continue;  // a second flip of one byte could undo the first
            bytes[at] = static_cast<char>(bytes[at] ^ static_cast<char>(1 + rng() % 255));
            flipped.push_back(at);
        }
        const std::uint64_t first = *std::min_element(flipped.begin(), flipped.end());
        REQUIRE(spit(path, bytes));
        ReadOutcome r = read_all(path);
        CAPTURE(seed, round, first, r.open_error);
        if (first < l.header_end) {
            REQUIRE_FALSE(r.opened);
            REQUIRE(clear_message(r.open_error));
            continue;
        }
        REQUIRE(r.opened);
        const std::size_t c = l.chunk_of(first);
        REQUIRE_FALSE(r.saw_end);
        REQUIRE(r.error.has_value());
        CAPTURE(r.error->message);
        REQUIRE(clear_message(r.error->message));
        REQUIRE(r.error->offset == l.chunk_start[c]);
        REQUIRE(r.records == l.records_before[c]);
        REQUIRE(r.error->records_good == r.records);
    }
}

TEST_CASE("random files of random length are refused or read with a clear message, never a crash") {
    const std::uint64_t seed = test_seed("random files");
    std::mt19937_64 rng(seed);
    TempDir dir;
    const std::string path = dir / "random";
    const std::string header = trace::encode_header(header_of("fuzz"));
    // Bytes that start msgpack values of every shape, big lengths included.
    static constexpr unsigned char msgpack_starts[] = {0x90, 0x93, 0x9f, 0xdc, 0xdd, 0xc4, 0xc5, 0xc6, 0xd9, 0xda,
                                                       0xdb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd3, 0x80, 0xde, 0xdf,
                                                       0xc7, 0xc8, 0xc9, 0xd4, 0xc0, 0xc1, 0xff, 0x01, 0x06, 0xa3};
    auto random_bytes = [&](std::size_t n, bool msgpack_like) {
        std::string b(n, '\0');
        for (auto& ch : b)
            ch = static_cast<char>(msgpack_like && rng() % 3 == 0 ? msgpack_starts[rng() % std::size(msgpack_starts)]
                                                                 : rng() % 256);
        return b;
    };
    for (int round = 0; round < 2000; ++round) {
        const std::size_t n = rng() % 4096;
        std::string bytes;
        switch (round % 4) {
        case 0:  // anything
            bytes = random_bytes(n, false);
            break;
        case 1:  // a magic and version, then anything
            bytes = std::string(trace::magic, 8) + le32(trace::format_version) + random_bytes(n, false);
            break;
        case 2:  // a valid header, then garbage where chunks should be
            bytes = header + random_bytes(n, true);
            break;
        case 3:  // a valid header and chunks with valid checksums around garbage records
            bytes = header;
            for (int c = 0; c < 3; ++c)
                bytes += plain_chunk(random_bytes(1 + rng() % 512, true));
            break;
        }
        REQUIRE(spit(path, bytes));
        ReadOutcome r = read_all(path);
        CAPTURE(seed, round, bytes.size(), r.open_error);
        if (!r.opened) {
            REQUIRE(clear_message(r.open_error));
            REQUIRE(round % 4 < 2);
            continue;
        }
        REQUIRE(r.records <= bytes.size());
        if (r.error) {
            CAPTURE(r.error->message);
            REQUIRE(clear_message(r.error->message));
            REQUIRE(r.error->offset >= header.size());
            REQUIRE(r.error->offset < bytes.size());
            REQUIRE(r.error->records_good == r.records);
        }
    }
}

namespace {

/// A trace with a valid header and one chunk with a valid checksum around `payload`.
std::string hostile_trace(std::string_view payload, std::int64_t start_mono_ns = 1000) {
    return trace::encode_header(header_of("hostile", start_mono_ns)) + plain_chunk(payload);
}

std::string raw(std::initializer_list<unsigned> bytes) {
    std::string s;
    for (unsigned b : bytes)
        s += static_cast<char>(b);
    return s;
}

} // namespace

TEST_CASE("hostile records with huge lengths or wrong shapes are refused with a message at their chunk") {
    struct Case {
        const char* what;
        std::string payload;
    };
    const std::string tick = raw({0x93, 0x01, 0x00, 0x00});  // [tick, +0, +0]
    const std::vector<Case> cases = {
        {"a str32 claiming 4 GiB", raw({0xdb, 0xff, 0xff, 0xff, 0xff})},
        {"a bin32 claiming 4 GiB", raw({0xc6, 0xff, 0xff, 0xff, 0xff})},
        {"an array32 claiming 4 G items", raw({0xdd, 0xff, 0xff, 0xff, 0xff})},
        {"a map32 claiming 4 G pairs", raw({0xdf, 0xff, 0xff, 0xff, 0xff})},
        {"an ext32 claiming 4 GiB", raw({0xc9, 0xff, 0xff, 0xff, 0xff, 0x01})},
        {"a record that is not an array", raw({0x01})},
        {"an array of one field", raw({0x91, 0x01})},
        {"arrays nested too deep", raw({0x92, 0x92, 0x92, 0x01, 0x01, 0x01, 0x01})},
        {"an unknown record kind", raw({0x92, 0x07, 0x00})},
        {"record kind zero", raw({0x92, 0x00, 0x00})},
        {"a tick with a string delta", raw({0x93, 0x01, 0xa1, 'x', 0x00})},
        {"a wake of kind 0", raw({0x94, 0x02, 0x00, 0x01, 0x00})},
        {"a wake of kind 200", raw({0x94, 0x02, 0xcc, 200, 0x01, 0x00})},
        {"an input of kind 9", raw({0x94, 0x03, 0x09, 0xa0, 0xc4, 0x00})},
        {"an output with a negative handle", raw({0x95, 0x04, 0x01, 0xff, 0x00, 0x00})},
        {"a spawn without a name", raw({0x92, 0x05, 0x01})},
        {"a record cut in the middle", raw({0x94, 0x03, 0x01, 0xa5, 'a', 'b'})},
        {"nil as a record", raw({0xc0})},
        {"a reserved byte", raw({0xc1})},
    };
    TempDir dir;
    const std::string path = dir / "hostile";
    const std::uint64_t chunk_offset = trace::encode_header(header_of("hostile")).size();
    for (const Case& c : cases) {
        for (bool after_a_good_record : {false, true}) {
            CAPTURE(c.what, after_a_good_record);
            const std::string payload = after_a_good_record ? tick + c.payload : c.payload;
            REQUIRE(spit(path, hostile_trace(payload)));
            ReadOutcome r = read_all(path);
            REQUIRE(r.opened);
            REQUIRE_FALSE(r.saw_end);
            REQUIRE(r.error.has_value());
            CAPTURE(r.error->message, r.error->offset);
            REQUIRE(clear_message(r.error->message));
            // The chunk passed its checksum, so the offset is the bad record's own.
            REQUIRE(r.error->offset == chunk_offset + trace::chunk_frame_bytes + (after_a_good_record ? tick.size() : 0));
            REQUIRE(r.records == (after_a_good_record ? 1u : 0u));
            REQUIRE(r.error->records_good == r.records);
        }
    }
}

TEST_CASE("hostile chunk framing and headers are refused with a message") {
    TempDir dir;
    const std::string path = dir / "hostile";
    const std::string header = trace::encode_header(header_of("hostile"));
    SECTION("a chunk longer than the limit") {
        REQUIRE(spit(path, header + raw({0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0})));
        ReadOutcome r = read_all(path);
        REQUIRE(r.opened);
        REQUIRE(r.error.has_value());
        REQUIRE_THAT(r.error->message, Catch::Contains("raw length"));
        REQUIRE(r.error->offset == header.size());
    }
    SECTION("a chunk frame with an unknown flag or a reserved byte set") {
        for (unsigned at : {8u, 9u, 11u}) {
            std::string frame = raw({1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
            frame[at] = at == 8 ? '\x04' : '\x01';
            REQUIRE(spit(path, header + frame + "x"));
            ReadOutcome r = read_all(path);
            REQUIRE(r.opened);
            REQUIRE(r.error.has_value());
            CAPTURE(at, r.error->message);
            REQUIRE(clear_message(r.error->message));
            REQUIRE(r.error->offset == header.size());
        }
    }
    SECTION("a chunk of zero bytes") {
        REQUIRE(spit(path, header + raw({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})));
        ReadOutcome r = read_all(path);
        REQUIRE(r.opened);
        REQUIRE(r.error.has_value());
        REQUIRE(r.error->offset == header.size());
    }
    SECTION("a header claiming a huge length") {
        std::string bytes = header;
        bytes[12] = bytes[13] = bytes[14] = bytes[15] = '\xff';
        REQUIRE(spit(path, bytes));
        ReadOutcome r = read_all(path);
        REQUIRE_FALSE(r.opened);
        REQUIRE_THAT(r.open_error, Catch::Contains("exceeds the limit"));
    }
    SECTION("another format version") {
        std::string bytes = header;
        bytes[8] = static_cast<char>(trace::format_version + 1);
        REQUIRE(spit(path, bytes));
        ReadOutcome r = read_all(path);
        REQUIRE_FALSE(r.opened);
        REQUIRE_THAT(r.open_error, Catch::Contains("version") && Catch::Contains("not supported"));
    }
    SECTION("a header that is valid msgpack of the wrong shape") {
        const std::string body = raw({0x92, 0x01, 0x02});
        std::string bytes = std::string(trace::magic, 8) + le32(trace::format_version) +
                            le32(static_cast<std::uint32_t>(body.size())) + le32(trace::crc32c(body));
        REQUIRE(spit(path, bytes + body));
        ReadOutcome r = read_all(path);
        REQUIRE_FALSE(r.opened);
        REQUIRE(clear_message(r.open_error));
    }
    SECTION("no file at all") {
        ReadOutcome r = read_all(dir / "nothing-here");
        REQUIRE_FALSE(r.opened);
        REQUIRE_THAT(r.open_error, Catch::Contains("no such trace"));
    }
}

// A hostile delta must not overflow the running tick time (signed overflow is
// undefined behaviour: UBSan halts, a normal build would hand replay a time that
// runs backwards). Run in a child so that a UBSan halt fails this test alone.
TEST_CASE("a tick whose delta overflows the clock is refused as malformed") {
    TempDir dir;
    const std::string path = dir / "overflow";
    // [tick, INT64_MAX, 0] on top of a start time of 1000 ns.
    const std::string payload = raw({0x93, 0x01, 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00});
    REQUIRE(spit(path, hostile_trace(payload, 1000)));
    auto child = run_in_child([&] {
        ReadOutcome r = read_all(path);
        std::printf("opened=%d records=%llu error=%s\n", r.opened ? 1 : 0, static_cast<unsigned long long>(r.records),
                    r.error ? r.error->message.c_str() : "none");
        return 0;
    });
    INFO(child.describe());
    REQUIRE(child.exited_with(0));
    REQUIRE_THAT(child.out, Catch::Contains("opened=1 records=0 error=") && !Catch::Contains("error=none"));
}

TEST_CASE("replaying a trace cut inside a chunk stops with exit 2 at the last good event") {
    std::string original;
    const Layout& l = chunky_trace(&original);
    TempDir dir;
    const std::string path = dir / "cut";
    // Inside the fifth chunk, past its framing.
    const std::size_t c = 4;
    REQUIRE(l.chunks() > c + 1);
    REQUIRE(spit(path, std::string_view(l.bytes).substr(0, l.chunk_start[c] + 20)));
    Replay rep = replay(path, chunky);
    INFO(rep.child.describe());
    REQUIRE(rep.child.exited_with(exit_damaged));
    REQUIRE_FALSE(rep.finished);
    REQUIRE_THAT(rep.child.err, Catch::Contains(fmt::format("the trace is damaged at byte offset {}:", l.chunk_start[c])));
    REQUIRE_THAT(rep.child.err, Catch::Contains("truncated"));
    REQUIRE_THAT(rep.child.err, Catch::Contains(fmt::format("last good event: #{} ", l.records_before[c] - 1)));
    REQUIRE_THAT(rep.child.err, Catch::Contains(fmt::format("replay stopped: {} events", l.records_before[c])));
    REQUIRE_THAT(rep.child.err, !Catch::Contains("DIVERGENCE"));
}

TEST_CASE("replaying a trace cut between chunks stops with exit 2: it ends without an end record") {
    const Layout& l = chunky_trace();
    TempDir dir;
    const std::string path = dir / "cut";
    const std::size_t c = 3;
    REQUIRE(l.chunks() > c + 1);
    REQUIRE(spit(path, std::string_view(l.bytes).substr(0, l.chunk_start[c])));
    Replay rep = replay(path, chunky);
    INFO(rep.child.describe());
    REQUIRE(rep.child.exited_with(exit_damaged));
    REQUIRE_THAT(rep.child.err,
                 Catch::Contains(fmt::format("the trace ends at event {} without an end record", l.records_before[c])));
    REQUIRE_THAT(rep.child.err, Catch::Contains(fmt::format("last good event: #{} ", l.records_before[c] - 1)));
}

TEST_CASE("--break-at past what a cut or damaged trace holds is said, beside exit 2") {
    const Layout& l = chunky_trace();
    TempDir dir;
    const std::string path = dir / "cut";
    const std::size_t c = 3;
    REQUIRE(l.chunks() > c + 1);
    Options past;
    past.break_at = l.records;  // an event of the whole trace, past the cut
    REQUIRE(spit(path, std::string_view(l.bytes).substr(0, l.chunk_start[c])));
    Replay cut = replay(path, chunky, past);
    INFO(cut.child.describe());
    REQUIRE(cut.child.exited_with(exit_damaged));
    REQUIRE_THAT(cut.child.err, Catch::Contains(fmt::format("error: --break-at {} is past what the trace holds: it has {} "
                                                            "events, #0 to #{}",
                                                            l.records, l.records_before[c], l.records_before[c] - 1)));
    REQUIRE(spit(path, std::string_view(l.bytes).substr(0, l.chunk_start[c] + 20)));
    Replay damaged = replay(path, chunky, past);
    INFO(damaged.child.describe());
    REQUIRE(damaged.child.exited_with(exit_damaged));
    REQUIRE_THAT(damaged.child.err, Catch::Contains(fmt::format("error: --break-at {} is past what the trace holds",
                                                                l.records)));
    // A --break-at inside what the trace holds is no error: the process stops there (SIGTRAP).
    Options inside;
    inside.break_at = l.records_before[c] - 1;
    Replay stops = replay(path, chunky, inside);
    REQUIRE_THAT(stops.child.err, !Catch::Contains("is past what the trace holds"));
}

TEST_CASE("a flipped byte makes replay stop with exit 2 at the damaged chunk") {
    const Layout& l = chunky_trace();
    TempDir dir;
    const std::string path = dir / "flipped";
    const std::size_t c = 2;
    std::string bytes = l.bytes;
    const std::uint64_t at = (l.chunk_start[c] + l.chunk_start[c + 1]) / 2;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x20);
    REQUIRE(spit(path, bytes));
    Replay rep = replay(path, chunky);
    INFO(rep.child.describe());
    REQUIRE(rep.child.exited_with(exit_damaged));
    REQUIRE_THAT(rep.child.err, Catch::Contains(fmt::format("damaged at byte offset {}: chunk checksum mismatch",
                                                            l.chunk_start[c])));
    REQUIRE_THAT(rep.child.err, Catch::Contains(fmt::format("last good event: #{} ", l.records_before[c] - 1)));
}

namespace {

/// Every record of a reader as a line (JSON and the offset of its chunk), then how it ended.
struct ReadLog {
    std::vector<std::string> lines;
    bool saw_end = false;
    bool nothing_after = false;
    std::optional<trace::ReadError> error;
    std::uint64_t chunks = 0, stored = 0, payload = 0;
};

ReadLog log_of(trace::Reader& reader) {
    ReadLog out;
    trace::Record r;
    while (reader.next(r))
        out.lines.push_back(fmt::format("{} @{}", trace::to_json(r), reader.offset()));
    out.saw_end = reader.saw_end();
    out.nothing_after = out.saw_end && reader.check_nothing_after_end();
    out.error = reader.error();
    out.chunks = reader.chunks_read();
    out.stored = reader.chunk_stored_bytes();
    out.payload = reader.chunk_payload_bytes();
    return out;
}

/// Reads `path` twice, the second reader taking the chunks the first kept (up to `max_bytes`).
std::pair<ReadLog, ReadLog> read_shared(const std::string& path, std::size_t max_bytes,
                                        std::shared_ptr<trace::ChunkShare>* share_out = nullptr) {
    std::string error;
    auto first = trace::Reader::open(path, &error);
    REQUIRE(first.ok());
    auto share = std::make_shared<trace::ChunkShare>(max_bytes);
    first->keep_chunks(share);
    ReadLog a = log_of(*first);
    auto second = trace::Reader::open(path, &error);
    REQUIRE(second.ok());
    second->take_chunks(share);
    if (share_out)
        *share_out = share;
    return {std::move(a), log_of(*second)};
}

void require_same(const ReadLog& a, const ReadLog& b) {
    REQUIRE(a.lines.size() == b.lines.size());
    for (std::size_t i = 0; i < a.lines.size(); ++i) {
        CAPTURE(i);
        REQUIRE(a.lines[i] == b.lines[i]);
    }
    REQUIRE(a.saw_end == b.saw_end);
    REQUIRE(a.nothing_after == b.nothing_after);
    REQUIRE(a.error.has_value() == b.error.has_value());
    if (a.error) {
        REQUIRE(a.error->offset == b.error->offset);
        REQUIRE(a.error->records_good == b.error->records_good);
        REQUIRE(a.error->message == b.error->message);
    }
    REQUIRE(a.chunks == b.chunks);
    REQUIRE(a.stored == b.stored);
    REQUIRE(a.payload == b.payload);
}

} // namespace

TEST_CASE("a reader taking the chunks another reader kept reads the same records, offsets and end") {
    const Layout& l = chunky_trace();
    std::string path;
    chunky_trace(&path);
    SECTION("every chunk shared") {
        std::shared_ptr<trace::ChunkShare> share;
        auto [a, b] = read_shared(path, std::size_t{1} << 30, &share);
        REQUIRE(a.lines.size() == l.records);
        REQUIRE(a.saw_end);
        REQUIRE(a.nothing_after);
        require_same(a, b);
        REQUIRE(share->chunks.empty());  // all taken
        REQUIRE(share->bytes == 0);
        REQUIRE_FALSE(share->full);
    }
    SECTION("a share that holds the first chunks only: the rest is read from the file") {
        std::shared_ptr<trace::ChunkShare> share;
        auto [a, b] = read_shared(path, 3000, &share);
        REQUIRE(share->full);
        require_same(a, b);
    }
    SECTION("bytes after the end record are found after taken chunks too") {
        TempDir dir;
        const std::string extra = dir / "extra";
        REQUIRE(spit(extra, l.bytes + "x"));
        auto [a, b] = read_shared(extra, std::size_t{1} << 30);
        REQUIRE(a.saw_end);
        REQUIRE_FALSE(a.nothing_after);
        require_same(a, b);
    }
    SECTION("a damaged or cut chunk past the shared ones is found at the same place") {
        TempDir dir;
        const std::string damaged = dir / "damaged";
        const std::size_t c = l.chunks() / 2;
        std::string bytes = l.bytes;
        bytes[l.chunk_start[c] + trace::chunk_frame_bytes + 3] ^= 0x40;
        REQUIRE(spit(damaged, bytes));
        auto [a, b] = read_shared(damaged, std::size_t{1} << 30);
        REQUIRE(a.error.has_value());
        REQUIRE(a.error->offset == l.chunk_start[c]);
        require_same(a, b);
        REQUIRE(spit(damaged, l.bytes.substr(0, l.chunk_start[c] + 5)));
        auto [d, e] = read_shared(damaged, std::size_t{1} << 30);
        REQUIRE(d.error.has_value());
        require_same(d, e);
    }
}

TEST_CASE("skimming a trace reads what decoding it reads: kinds, wall times, handles, lengths, ends, and where it stops") {
    const Layout& l = chunky_trace();
    TempDir dir;
    const std::string path = dir / "skimmed";
    const std::size_t c = l.chunks() / 2;
    std::string flipped = l.bytes;
    flipped[l.chunk_start[c] + trace::chunk_frame_bytes + 3] ^= 0x40;
    for (const std::string& bytes : {l.bytes, l.bytes.substr(0, l.chunk_start[c] + 7), flipped}) {
        REQUIRE(spit(path, bytes));
        std::string error;
        auto decoding = trace::Reader::open(path, &error);
        auto skimming = trace::Reader::open(path, &error);
        REQUIRE(decoding.ok());
        REQUIRE(skimming.ok());
        trace::Record r;
        trace::Skim s;
        std::int64_t wall_ns = 0;
        std::uint64_t n = 0;
        while (decoding->next(r)) {
            CAPTURE(n);
            REQUIRE(skimming->skim(s));
            REQUIRE(s.kind == trace::kind_of(r));
            if (const auto* t = std::get_if<trace::Tick>(&r))
                wall_ns = t->wall_ns;
            if (s.kind == trace::RecordKind::tick)
                REQUIRE(s.wall_ns == wall_ns);
            if (const auto* w = std::get_if<trace::Wake>(&r)) {
                REQUIRE(s.sub == static_cast<std::uint8_t>(w->wake));
                REQUIRE(s.handle == w->handle);
                REQUIRE(s.value == w->value);
                REQUIRE(s.length == w->data.size());
            }
            if (const auto* o = std::get_if<trace::Output>(&r)) {
                REQUIRE(s.sub == static_cast<std::uint8_t>(o->output));
                REQUIRE(s.handle == o->handle);
                REQUIRE(s.length == o->length);
            }
            if (const auto* a = std::get_if<trace::Accepted>(&r)) {
                REQUIRE(s.handle == a->connection);
                REQUIRE(s.local.to_string() == a->local.to_string());
                REQUIRE(s.peer.to_string() == a->peer.to_string());
            }
            if (const auto* k = std::get_if<trace::Connected>(&r)) {
                REQUIRE(s.handle == k->connection);
                REQUIRE(s.value == k->error);
            }
            if (const auto* e = std::get_if<trace::End>(&r))
                REQUIRE(s.value == e->exit_code);
            ++n;
        }
        REQUIRE_FALSE(skimming->skim(s));
        REQUIRE(skimming->records_read() == decoding->records_read());
        REQUIRE(skimming->saw_end() == decoding->saw_end());
        REQUIRE(skimming->error().has_value() == decoding->error().has_value());
        if (decoding->error())
            REQUIRE(skimming->error()->offset == decoding->error()->offset);
    }
}
