// Who recorded a trace: the running executable's build id, resolved path and working directory, for the header.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include <string>

namespace reprise::detail {

/// Hex of the main executable's NT_GNU_BUILD_ID note; empty when it has none.
std::string executable_build_id();
/// The running executable's resolved path (/proc/self/exe); empty when unknown.
std::string executable_path();
/// The working directory; empty when unknown (deleted, or too long).
std::string working_directory();
/// A program's name when none was declared: the file name of argv[0].
std::string program_name_from(const std::string& argv0);

} // namespace reprise::detail
