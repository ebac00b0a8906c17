// Folders the runtime creates for its own files (traces): mode 0700, whatever the umask allows.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include <string>

namespace reprise::detail {

/// mkdir -p with mode 0700 for every folder it creates (folders already there are left as they
/// are). 0 on success, else the errno of the first failure.
int make_private_directories(const std::string& path) noexcept;

} // namespace reprise::detail
