// trace_stats: reads a trace with reprise::trace::Reader and prints its records, payload bytes and size.
//
// Prints one line on stdout:
//   records=N file_bytes=F payload_bytes=P overhead_bytes=F-P bytes_per_event=(F-P)/N span_s=S
//   tick=.. wake=.. input=.. output=.. spawn=.. end=.. accepted=.. connected=.. annotation=..
//   wake_data_bytes=.. input_data_bytes=.. output_data_bytes=.. name_bytes=..
//   chunks=.. chunks_compressed=.. chunks_encrypted=.. stored_bytes=.. raw_bytes=.. compression=R/S
//   raw_bytes_per_event=(R-P)/N
//   complete=yes|no
// Payload is what the program read from the world: the data of wake records (bytes read,
// offload results) and the values of inputs. Everything else in the file (header, chunk
// framing, record encodings, input and task names, output digests, addresses, annotations)
// is overhead. stored_bytes are the chunks as stored (framed, compressed, sealed), raw_bytes
// their records once opened; compression is raw over stored. A compressed trace may be smaller
// than its payload (overhead_bytes is then 0): raw_bytes_per_event is the records' own overhead
// before compression.
// Exit status: 0 for a complete trace, 1 for a damaged or truncated one, 2 for usage.
#include <reprise/record/trace.hpp>

#include <fmt/core.h>

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>
#include <variant>

namespace {

// Size of the trace at `path`, or the sum of its segments path.0, path.1, ... when segmented.
std::uint64_t trace_file_bytes(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0)
        return static_cast<std::uint64_t>(st.st_size);
    std::uint64_t total = 0;
    for (int i = 0;; ++i) {
        if (::stat(fmt::format("{}.{}", path, i).c_str(), &st) != 0)
            break;
        total += static_cast<std::uint64_t>(st.st_size);
    }
    return total;
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        fmt::print(stderr, "usage: trace_stats TRACE\n");
        return 2;
    }
    std::string path = argv[1];
    std::string error;
    auto reader = reprise::trace::Reader::open(path, &error);
    if (!reader.ok()) {
        fmt::print(stderr, "trace_stats: cannot open {}: {}\n", path, error);
        return 1;
    }
    namespace trace = reprise::trace;
    using trace::RecordKind;
    std::array<std::uint64_t, trace::record_kind_last + 1> per_kind{};
    std::uint64_t wake_data = 0, input_data = 0, output_data = 0, name_bytes = 0, records = 0;
    std::int64_t last_mono_ns = reader->header().start_mono_ns;
    trace::Record r;
    while (reader->next(r)) {
        ++records;
        ++per_kind[static_cast<std::size_t>(trace::kind_of(r))];
        if (const auto* t = std::get_if<trace::Tick>(&r)) {
            last_mono_ns = t->mono_ns;
        } else if (const auto* w = std::get_if<trace::Wake>(&r)) {
            wake_data += w->data.size();
        } else if (const auto* in = std::get_if<trace::Input>(&r)) {
            input_data += in->value.size();
            name_bytes += in->name.size();
        } else if (const auto* out = std::get_if<trace::Output>(&r)) {
            output_data += out->bytes.size();
        } else if (const auto* s = std::get_if<trace::Spawn>(&r)) {
            name_bytes += s->name.size();
        }
    }
    if (reader->error())
        fmt::print(stderr, "trace_stats: {} at offset {} after {} records\n", reader->error()->message,
                   reader->error()->offset, reader->error()->records_good);
    std::uint64_t file_bytes = trace_file_bytes(path);
    std::uint64_t payload = wake_data + input_data;
    std::uint64_t overhead = file_bytes > payload ? file_bytes - payload : 0;
    double span_s = static_cast<double>(last_mono_ns - reader->header().start_mono_ns) / 1e9;
    const std::uint64_t stored = reader->chunk_stored_bytes(), raw = reader->chunk_payload_bytes();
    auto count = [&](RecordKind k) { return per_kind[static_cast<std::size_t>(k)]; };
    fmt::print("records={} file_bytes={} payload_bytes={} overhead_bytes={} bytes_per_event={:.2f} span_s={:.3f} "
               "tick={} wake={} input={} output={} spawn={} end={} accepted={} connected={} annotation={} "
               "wake_data_bytes={} input_data_bytes={} output_data_bytes={} name_bytes={} "
               "chunks={} chunks_compressed={} chunks_encrypted={} stored_bytes={} raw_bytes={} compression={:.2f} "
               "raw_bytes_per_event={:.2f} complete={}\n",
               records, file_bytes, payload, overhead, records ? static_cast<double>(overhead) / records : 0.0, span_s,
               count(RecordKind::tick), count(RecordKind::wake), count(RecordKind::input), count(RecordKind::output),
               count(RecordKind::spawn), count(RecordKind::end), count(RecordKind::accepted),
               count(RecordKind::connected), count(RecordKind::annotation), wake_data, input_data, output_data,
               name_bytes, reader->chunks_read(), reader->chunks_compressed(), reader->chunks_encrypted(), stored, raw,
               stored ? static_cast<double>(raw) / static_cast<double>(stored) : 0.0,
               records && raw > payload ? static_cast<double>(raw - payload) / static_cast<double>(records) : 0.0,
               reader->saw_end() && !reader->error() ? "yes" : "no");
    return reader->saw_end() && !reader->error() ? 0 : 1;
}
