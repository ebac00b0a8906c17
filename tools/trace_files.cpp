// The traces in a folder (files that start with the trace magic, a segmented trace once) and a joint session's labels.
#include "trace_files.hpp"

#include <reprise/record/trace.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>

namespace reprise::tool {

namespace trace = reprise::trace;

bool has_magic(const std::filesystem::path& p) {
    std::FILE* f = std::fopen(p.c_str(), "rb");  // reprise-allow: io (a command line tool, not a program on the runtime)
    if (f == nullptr)
        return false;
    char head[sizeof trace::magic] = {};
    const bool ok = std::fread(head, 1, sizeof head, f) == sizeof head && std::memcmp(head, trace::magic, sizeof head) == 0;
    std::fclose(f);
    return ok;
}

std::vector<std::string> traces_in(const std::filesystem::path& dir, std::string& why) {
    std::error_code ec;
    std::vector<std::filesystem::path> files;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_regular_file(ec))
            files.push_back(it->path());
    if (ec) {
        why = fmt::format("cannot list {}: {}", dir.string(), ec.message());
        return {};
    }
    std::sort(files.begin(), files.end());
    std::set<std::string> out;
    for (const auto& f : files) {
        if (!has_magic(f))
            continue;
        const std::string name = f.string();
        const auto dot = name.rfind('.');
        const bool numbered = dot != std::string::npos && dot + 1 < name.size() &&
                              name.find_first_not_of("0123456789", dot + 1) == std::string::npos;
        if (numbered) {
            // PATH.0, PATH.1, ... of a segmented trace PATH: the trace once, by its name. (A later
            // segment's header cannot be read alone: its times continue the segment before.)
            const std::string stem = name.substr(0, dot);
            const bool first = name.compare(dot + 1, std::string::npos, "0") == 0;
            if (!std::filesystem::exists(stem, ec) && std::filesystem::exists(stem + (first ? ".1" : ".0"), ec)) {
                out.insert(stem);
                continue;
            }
        }
        out.insert(name);
    }
    return {out.begin(), out.end()};
}

std::vector<JointTrace> joint_labels(std::vector<JointTrace> traces) {
    // The same order and labels as run_joint_replay (replay/joint.cpp) gives them.
    std::stable_sort(traces.begin(), traces.end(),
                     [](const JointTrace& a, const JointTrace& b) { return a.start_wall_ns < b.start_wall_ns; });
    std::map<std::string, int> runs, seen;
    for (const JointTrace& t : traces)
        ++runs[t.node];
    for (JointTrace& t : traces)
        t.label = runs[t.node] > 1 ? fmt::format("{}/{}", t.node, ++seen[t.node]) : t.node;
    return traces;
}

std::optional<std::size_t> find_joint_node(const std::vector<JointTrace>& traces, const std::string& node,
                                           std::string& why) {
    std::vector<std::size_t> matches;
    std::vector<std::string> runs_of_name;
    for (std::size_t i = 0; i < traces.size(); ++i) {
        const JointTrace& t = traces[i];
        if (t.label == node || (t.label == t.node && t.node == node) || node == std::to_string(i))
            matches.push_back(i);
        else if (t.node == node)
            runs_of_name.push_back(t.label);
    }
    if (matches.size() == 1)
        return matches.front();
    std::string labels;
    for (std::size_t i = 0; i < traces.size(); ++i)
        labels += fmt::format("{}{} ({})", i == 0 ? "" : ", ", traces[i].label, i);
    if (matches.empty() && !runs_of_name.empty()) {
        std::string runs;
        for (const std::string& r : runs_of_name)
            runs += (runs.empty() ? "" : ", ") + r;
        why = fmt::format("node '{}' ran {} times in these traces: name one of its runs ({})", node,
                          runs_of_name.size(), runs);
    } else {
        why = fmt::format("{} node '{}' among the traces' nodes: {}", matches.empty() ? "no" : "more than one", node,
                          labels);
    }
    return std::nullopt;
}

} // namespace reprise::tool
