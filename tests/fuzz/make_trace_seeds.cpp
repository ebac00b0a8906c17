// Writes seed traces for the trace fuzzer: every record kind, through every chunk path a recorder takes.
//
// Usage: make_trace_seeds DIR. The traces are built with the real writer's pieces (trace::Encoder,
// encode_header, ChunkSealer::seal and, for the crash path, ChunkSealer::seal_in_place), so they are
// what a recorder writes: every record kind (every wake-up, input and output kind, accepted,
// connected with and without an error, annotations with integer and text fields, outputs in full),
// plain, compressed and encrypted chunks (sealed with the fuzzer's fixed key), a crash-flushed last
// chunk, deltas of both signs. Each seed is read back with trace::Reader before the program ends,
// and the program fails when one does not read as it is meant to (chunk kinds, records, end, error).
#include "fuzz_trace_key.hpp"
#include "seed_file.hpp"
#include "../support/trace_builder.hpp"

#include <reprise/io/address.hpp>
#include <reprise/record/chunk.hpp>
#include <reprise/record/trace.hpp>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

using namespace reprise;
using reprise::test::TraceBuilder;

namespace {

constexpr const char* program = "make_trace_seeds";

trace::Header header(const char* node) {
    return trace::Header{.node = node,
                         .program = "seed-program",
                         .argv = {"seed-program", "--flag", "value"},
                         .executable = "/usr/bin/seed-program",
                         .working_directory = "/tmp",
                         .seed = 0x1234'5678'9abc'def0ULL,
                         .start_mono_ns = 1'000'000'000,
                         .start_wall_ns = 1'700'000'000'000'000'000,
                         .runtime_version = "0.1.0",
                         .build_id = "00112233445566778899aabbccddeeff00112233"};
}

std::string repeated(std::string_view piece, std::size_t times) {
    std::string s;
    for (std::size_t i = 0; i < times; ++i)
        s += piece;
    return s;
}

// Views of the records below point into these: they live as long as the program.
const std::string ping_bytes = repeated("PING\r\n", 64);
const std::string pong_bytes = repeated("+PONG\r\n", 64);
const std::string offload_result = std::string("\x00\x01result", 8) + repeated("row;", 64);

trace::AnnotationField number(std::string_view key, std::int64_t n) { return {key, false, n, {}}; }
trace::AnnotationField text(std::string_view key, std::string_view t) { return {key, true, 0, t}; }

trace::Annotation annotation(std::string_view name, std::initializer_list<trace::AnnotationField> fields) {
    trace::Annotation a{.name = name};
    for (const auto& f : fields)
        a.fields[a.count++] = f;
    return a;
}

// The first chunk's records: startup, inputs, connections (accepted, connected, failed), full output.
void first_chunk(TraceBuilder& b) {
    const trace::Header& h = b.header();
    static const Address peer = *Address::parse("127.0.0.1:40000");
    static const Address local = *Address::parse("127.0.0.1:7000");
    static const Address peer6 = *Address::parse("[::1]:40001");
    static const Address local6 = *Address::parse("[::1]:7000");
    static const std::string listen_value = local.to_string();
    using trace::InputKind;
    b.put(trace::Tick{h.start_mono_ns, h.start_wall_ns});
    b.put(trace::Spawn{1, "main"});
    b.put(trace::Input{InputKind::listen, "", listen_value});
    b.put(trace::Input{InputKind::env, "HOME", "/root"});
    b.put(trace::Input{InputKind::secure_random, "", std::string_view("\x01\x02\x03\x04\x05\x06\x07\x08", 8)});
    b.put(trace::Input{InputKind::app, "config", "{\"x\":1}"});
    b.put(trace::Input{InputKind::precise_clock, "", std::string_view("\x10\x20\x30\x40\x50\x60\x70\x00", 8)});
    b.put(trace::Spawn{2, "server"});
    b.put(trace::Input{InputKind::connect, "", ""});
    b.put(trace::Tick{h.start_mono_ns + 1'000, h.start_wall_ns + 1'000});
    b.put(trace::Accepted{.listener = 3, .connection = 4, .peer = peer, .local = local});
    b.put(trace::Accepted{.listener = 3, .connection = 5, .peer = peer6, .local = local6});
    b.put(trace::Connected{.connection = 6, .error = 0, .peer = local, .local = peer});
    b.put(trace::Connected{7, ECONNREFUSED, {}, {}});
    b.put(trace::Wake{WakeKind::bytes_read, 4, 0, ping_bytes});
    b.put(trace::Output{OutputKind::conn_write, 4, pong_bytes.size(), trace::digest64(pong_bytes), pong_bytes});
    b.put(trace::Output{OutputKind::conn_write, 4, 3, trace::digest64("abc"), {}});  // length and digest only
    b.put(annotation("checkpoint", {number("round", 7), text("phase", "warm-up"), number("delta", -42)}));
}

// The second chunk's records: time jumps (wall back 1 s), every other wake-up kind, annotations, the exit.
void second_chunk(TraceBuilder& b, bool with_end) {
    const trace::Header& h = b.header();
    b.put(trace::Tick{h.start_mono_ns + 30'000'000'000, h.start_wall_ns + 29'000'000'000});
    b.put(trace::Wake{WakeKind::timer_fired, 8, 0, {}});
    b.put(trace::Wake{WakeKind::drained, 4, 0, {}});
    b.put(trace::Wake{WakeKind::signal, 0, SIGTERM, {}});
    b.put(trace::Wake{WakeKind::offload_done, 9, 0, offload_result});
    b.put(trace::Wake{WakeKind::eof, 4, 0, {}});
    b.put(trace::Wake{WakeKind::io_error, 5, ECONNRESET, {}});
    b.put(annotation("done", {}));
    b.put(annotation("every-field", {number("a", 1), text("b", "two"), number("c", -3), text("d", ""),
                                     number("e", INT64_MIN), number("f", INT64_MAX),
                                     text("g", std::string_view("\xff\x00 bytes", 8)), number("h", 0)}));
    if (with_end) {
        b.put(trace::Output{OutputKind::exit, 0, 0, 0, {}});
        b.put(trace::End{0});
    }
}
constexpr std::uint64_t records_first = 18;
constexpr std::uint64_t records_second_no_end = 9;
constexpr std::uint64_t records_second = records_second_no_end + 2;

/// What a seed must read as.
struct Expect {
    std::uint64_t records = 0;
    std::uint64_t chunks = 0;
    std::uint64_t compressed = 0;
    std::uint64_t encrypted = 0;
    bool end = false;
    std::optional<std::string> error = std::nullopt;    ///< part of the message, when reading stops at damage
    std::optional<std::string> refused = std::nullopt;  ///< part of the message, when the header is refused
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

void write_checked(const std::string& path, const std::string& bytes, const Expect& want) {
    fuzz::write_seed(program, path, bytes);
    const trace::TraceKey key = fuzz::fuzz_trace_key();
    std::string why;
    auto reader = trace::Reader::open(path, &why, &key);
    auto fail = [&](const std::string& what) { TraceBuilder::fail(path + ": " + what); };
    if (want.refused) {
        if (reader.ok() || !contains(why, *want.refused))
            fail("should be refused with \"" + *want.refused + "\", got \"" + why + "\"");
        return;
    }
    if (!reader.ok())
        fail("refused: " + why);
    trace::Record r;
    while (reader->next(r)) {
    }
    const auto& e = reader->error();
    if (want.error.has_value() != e.has_value() || (e && !contains(e->message, *want.error)))
        fail("reads with error \"" + (e ? e->message : std::string("none")) + "\" where \"" +
             want.error.value_or("none") + "\" was meant");
    if (reader->records_read() != want.records || reader->chunks_read() != want.chunks ||
        reader->chunks_compressed() != want.compressed || reader->chunks_encrypted() != want.encrypted ||
        reader->saw_end() != want.end)
        fail("reads as " + std::to_string(reader->records_read()) + " records, " + std::to_string(reader->chunks_read()) +
             " chunks (" + std::to_string(reader->chunks_compressed()) + " compressed, " +
             std::to_string(reader->chunks_encrypted()) + " encrypted), end " + (reader->saw_end() ? "yes" : "no") +
             ": not as meant");
    if (want.end && !reader->check_nothing_after_end())
        fail("bytes after the end: " + reader->error()->message);
}

// Every record kind in two chunks, ending with the end record; each chunk compressed or not.
std::string every_record(const trace::TraceKey* key, bool compress_first, bool compress_second) {
    TraceBuilder b(header("seeds"), key);
    first_chunk(b);
    b.seal(compress_first);
    second_chunk(b, true);
    b.seal(compress_second);
    return b.file();
}

// A recording that crashed: its last records flushed by the crash path (seal_in_place), no end record.
std::string crash_flushed(const trace::TraceKey* key) {
    TraceBuilder b(header("crashed"), key);
    first_chunk(b);
    b.seal(true);
    second_chunk(b, false);
    b.seal_in_place();
    return b.file();
}

// A trace killed mid-write: no end record, the last (compressed) chunk half written.
std::string cut_off() {
    TraceBuilder b(header("cut"), nullptr);
    first_chunk(b);
    b.seal(true);
    const std::size_t complete = b.file().size();
    second_chunk(b, true);
    b.seal(true);
    std::string file = b.file();
    file.resize(complete + (file.size() - complete) / 2);
    return file;
}

// An encrypted trace whose two chunks were swapped: each is bound to its place, so neither opens.
std::string chunks_swapped() {
    const trace::TraceKey key = fuzz::fuzz_trace_key();
    TraceBuilder b(header("swapped"), &key);
    const std::size_t header_bytes = b.file().size();
    first_chunk(b);
    b.seal(true);
    const std::size_t first_end = b.file().size();
    second_chunk(b, true);
    b.seal(false);
    const std::string& f = b.file();
    return f.substr(0, header_bytes) + f.substr(first_end) + f.substr(header_bytes, first_end - header_bytes);
}

// Segment 1 of a segmented trace opened on its own (the reader refuses it).
std::string later_segment() {
    trace::Header h = header("segmented");
    h.segment = 1;
    return trace::encode_header(h);
}

// Records without header or envelope: the fuzz target decodes an input that is not a trace file
// (no magic) as one chunk payload, straight with decode_record.
std::string bare_payload() {
    TraceBuilder b(header("bare"), nullptr);
    const std::size_t header_bytes = b.file().size();
    first_chunk(b);
    second_chunk(b, true);
    b.seal(false);  // plain: the chunk's stored bytes are its payload
    return b.file().substr(header_bytes + trace::chunk_frame_bytes);
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const std::string dir = argv[1];
    const trace::TraceKey key = fuzz::fuzz_trace_key();
    const std::uint64_t all = records_first + records_second;
    write_checked(dir + "/every-record.trace", every_record(nullptr, false, false),
                  {.records = all, .chunks = 2, .end = true});
    write_checked(dir + "/every-record-compressed.trace", every_record(nullptr, true, true),
                  {.records = all, .chunks = 2, .compressed = 2, .end = true});
    write_checked(dir + "/every-record-encrypted.trace", every_record(&key, true, false),
                  {.records = all, .chunks = 2, .compressed = 1, .encrypted = 2, .end = true});
    write_checked(dir + "/crash-flushed.trace", crash_flushed(nullptr),
                  {.records = records_first + records_second_no_end, .chunks = 2, .compressed = 1});
    write_checked(dir + "/crash-flushed-encrypted.trace", crash_flushed(&key),
                  {.records = records_first + records_second_no_end, .chunks = 2, .compressed = 1, .encrypted = 2});
    write_checked(dir + "/cut-off.trace", cut_off(),
                  {.records = records_first, .chunks = 1, .compressed = 1, .error = "truncated chunk"});
    write_checked(dir + "/encrypted-chunks-swapped.trace", chunks_swapped(),
                  {.refused = "does not open with this key"});  // the reader opens the first chunk at open
    write_checked(dir + "/later-segment.trace", later_segment(), {.refused = "segment 1 of a segmented trace"});
    write_checked(dir + "/bare-payload.records", bare_payload(), {.refused = "bad magic"});
    return 0;
}
