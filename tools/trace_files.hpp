// The traces in a folder, as `reprise cluster` and `reprise debug` read a folder given for its traces, and the labels a joint replay gives them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace reprise::tool {

/// Whether the file starts with the trace magic.
bool has_magic(const std::filesystem::path& p);

/// The traces in a folder, sorted by name: files starting with the trace magic; the segments of a
/// segmented trace (NAME.0, NAME.1, ... with no NAME) as NAME once. Empty with `why` set when the
/// folder cannot be listed.
std::vector<std::string> traces_in(const std::filesystem::path& dir, std::string& why);

/// One trace of a joint session, as the joint replay (replay/joint.cpp) names it.
struct JointTrace {
    std::string path;
    std::string node;                ///< the node's name, from the header
    std::int64_t start_wall_ns = 0;  ///< the recording's start, from the header
    std::string label;               ///< the node's name, or NAME/K for the K-th of several runs
};

/// The traces in the joint replay's order (by start wall time, stable) with their labels: what
/// `reprise nodes` lists and what --break-at=NODE:N and the node indexes refer to.
std::vector<JointTrace> joint_labels(std::vector<JointTrace> traces);

/// The index of --break-at's NODE among labelled traces, as the joint replay matches it: a label,
/// the name of a node that ran once, or an index. Empty with `why` set (naming the valid labels)
/// when NODE names no trace or several.
std::optional<std::size_t> find_joint_node(const std::vector<JointTrace>& traces, const std::string& node,
                                           std::string& why);

} // namespace reprise::tool
