// trace_stats: reads a trace with reprise::trace::Reader and prints its records, payload bytes and size.
//
// Prints one line on stdout:
//   records=N file_bytes=F payload_bytes=P overhead_bytes=F-P bytes_per_event=(F-P)/N span_s=S
//   tick=.. wake=.. input=.. output=.. spawn=.. end=.. wake_data_bytes=.. input_data_bytes=..
//   output_data_bytes=.. name_bytes=.. complete=yes|no
// Payload is what the program read from the world: the data of wake records (bytes read,
// offload results) and the values of inputs. Everything else in the file (header, chunk
// framing, record encodings, input and task names, output digests) is overhead.
// Exit status: 0 for a complete trace, 1 for a damaged or truncated one, 2 for usage.
#include <reprise/record/trace.hpp>

#include <fmt/core.h>

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

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
    using reprise::trace::RecordKind;
    std::array<std::uint64_t, 8> per_kind{};
    std::uint64_t wake_data = 0, input_data = 0, output_data = 0, name_bytes = 0, records = 0;
    std::int64_t last_mono_ns = reader->header().start_mono_ns;
    reprise::trace::Record r;
    while (reader->next(r)) {
        ++records;
        auto k = static_cast<std::size_t>(r.kind);
        if (k < per_kind.size())
            ++per_kind[k];
        switch (r.kind) {
        case RecordKind::tick:
            last_mono_ns = r.mono_ns;
            break;
        case RecordKind::wake:
            wake_data += r.data.size();
            break;
        case RecordKind::input:
            input_data += r.data.size();
            break;
        case RecordKind::output:
            output_data += r.data.size();
            break;
        default:
            break;
        }
        name_bytes += r.name.size();
    }
    if (reader->error())
        fmt::print(stderr, "trace_stats: {} at offset {} after {} records\n", reader->error()->message,
                   reader->error()->offset, reader->error()->records_good);
    std::uint64_t file_bytes = trace_file_bytes(path);
    std::uint64_t payload = wake_data + input_data;
    std::uint64_t overhead = file_bytes > payload ? file_bytes - payload : 0;
    double span_s = static_cast<double>(last_mono_ns - reader->header().start_mono_ns) / 1e9;
    fmt::print("records={} file_bytes={} payload_bytes={} overhead_bytes={} bytes_per_event={:.2f} span_s={:.3f} "
               "tick={} wake={} input={} output={} spawn={} end={} wake_data_bytes={} input_data_bytes={} "
               "output_data_bytes={} name_bytes={} complete={}\n",
               records, file_bytes, payload, overhead, records ? static_cast<double>(overhead) / records : 0.0, span_s,
               per_kind[static_cast<std::size_t>(RecordKind::tick)], per_kind[static_cast<std::size_t>(RecordKind::wake)],
               per_kind[static_cast<std::size_t>(RecordKind::input)], per_kind[static_cast<std::size_t>(RecordKind::output)],
               per_kind[static_cast<std::size_t>(RecordKind::spawn)], per_kind[static_cast<std::size_t>(RecordKind::end)],
               wake_data, input_data, output_data, name_bytes, reader->saw_end() && !reader->error() ? "yes" : "no");
    return reader->saw_end() && !reader->error() ? 0 : 1;
}
