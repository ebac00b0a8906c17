// The traces in a folder, as `reprise cluster` and `reprise debug` read a folder given for its traces.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace reprise::tool {

/// Whether the file starts with the trace magic.
bool has_magic(const std::filesystem::path& p);

/// The traces in a folder, sorted by name: files starting with the trace magic; the segments of a
/// segmented trace (NAME.0, NAME.1, ... with no NAME) as NAME once. Empty with `why` set when the
/// folder cannot be listed.
std::vector<std::string> traces_in(const std::filesystem::path& dir, std::string& why);

} // namespace reprise::tool
