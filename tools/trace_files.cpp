// The traces in a folder: files that start with the trace magic, a segmented trace once.
#include "trace_files.hpp"

#include <reprise/record/trace.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
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
            const std::string stem = name.substr(0, dot);
            std::string ignored;
            auto h = trace::Reader::read_header(name, &ignored);
            if (!std::filesystem::exists(stem, ec) && (name.substr(dot + 1) != "0" || std::filesystem::exists(stem + ".1", ec)) &&
                h.ok() && (h->segment > 0 || std::filesystem::exists(stem + ".1", ec))) {
                out.insert(stem);
                continue;
            }
        }
        out.insert(name);
    }
    return {out.begin(), out.end()};
}

} // namespace reprise::tool
