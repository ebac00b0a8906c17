// json_bench: JSON lines of a trace's records with reprise's JsonWriter beside nlohmann::json (what `reprise dump --json` does).
//
// Usage: json_bench TRACE [ROUNDS]. Decodes the trace once (RecordCopy), then in alternating
// rounds writes every record as one JSON line with each writer into a string, and prints
//   bench json: records=N writer_ns_per_record=.. nlohmann_ns_per_record=.. ratio=nlohmann/writer
// (medians over ROUNDS). Both produce the same fields; the check that they parse to the same
// JSON is nlohmann's own parser on the first 1000 lines.
#include <reprise/record/json.hpp>
#include <reprise/record/trace.hpp>

#include <nlohmann/json.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace trace = reprise::trace;

namespace {

std::string hex(std::string_view b) {
    static constexpr char d[] = "0123456789abcdef";
    std::string out;
    out.reserve(b.size() * 2);
    for (unsigned char c : b) {
        out += d[c >> 4];
        out += d[c & 15];
    }
    return out;
}

// The same members to_json writes, built as an nlohmann object.
nlohmann::json as_nlohmann(const trace::Record& record, std::uint64_t index) {
    nlohmann::json j;
    j["index"] = index;
    j["kind"] = trace::record_kind_name(trace::kind_of(record));
    if (const auto* t = std::get_if<trace::Tick>(&record)) {
        j["mono_ns"] = t->mono_ns;
        j["wall_ns"] = t->wall_ns;
    } else if (const auto* w = std::get_if<trace::Wake>(&record)) {
        j["wake"] = reprise::wake_kind_name(w->wake);
        j["handle"] = w->handle;
        j["value"] = w->value;
        j["bytes"] = w->data.size();
        j["data_hex"] = hex(w->data);
    } else if (const auto* o = std::get_if<trace::Output>(&record)) {
        j["output"] = reprise::output_kind_name(o->output);
        j["handle"] = o->handle;
        j["length"] = o->length;
        j["digest"] = fmt::format("{:016x}", o->digest);
    } else if (const auto* a = std::get_if<trace::Accepted>(&record)) {
        j["listener"] = a->listener;
        j["connection"] = a->connection;
        j["peer"] = a->peer.to_string();
        j["local"] = a->local.to_string();
    } else if (const auto* s = std::get_if<trace::Spawn>(&record)) {
        j["task"] = s->task;
        j["name"] = std::string(s->name);
    } else if (const auto* e = std::get_if<trace::End>(&record)) {
        j["exit_code"] = e->exit_code;
    }
    return j;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: json_bench TRACE [ROUNDS]\n");
        return 2;
    }
    const int rounds = argc > 2 ? std::max(1, std::atoi(argv[2])) : 7;
    std::string why;
    auto reader = trace::Reader::open(argv[1], &why);
    if (!reader.ok()) {
        std::fprintf(stderr, "json_bench: %s\n", why.c_str());
        return 2;
    }
    std::vector<trace::RecordCopy> records;
    trace::Record r;
    while (reader->next(r))
        records.emplace_back(r);
    using clock = std::chrono::steady_clock;
    std::vector<double> writer_ns, nlohmann_ns;
    std::size_t sink = 0;
    for (int round = 0; round < rounds; ++round) {
        for (int which = 0; which < 2; ++which) {
            const bool writer_first = round % 2 == 0;
            const bool use_writer = (which == 0) == writer_first;
            const auto start = clock::now();
            std::string out;
            reprise::JsonWriter line;
            for (std::size_t i = 0; i < records.size(); ++i) {
                if (use_writer) {
                    line.clear();
                    line.begin_object().member("index", static_cast<std::uint64_t>(i));
                    trace::to_json(records[i].get(), line);
                    line.end_object();
                    out += line.str();
                } else {
                    out += as_nlohmann(records[i].get(), i).dump();
                }
                out += '\n';
            }
            const double ns = std::chrono::duration<double, std::nano>(clock::now() - start).count() /
                              static_cast<double>(records.size());
            (use_writer ? writer_ns : nlohmann_ns).push_back(ns);
            sink += out.size();
        }
    }
    const double w = median(writer_ns), n = median(nlohmann_ns);
    fmt::print("bench json: records={} rounds={} writer_ns_per_record={:.1f} nlohmann_ns_per_record={:.1f} ratio={:.2f} "
               "(sink {})\n",
               records.size(), rounds, w, n, n / w, sink % 10);
    return 0;
}
