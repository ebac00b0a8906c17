// The GNU build-id of the running executable, kept in a trace's header.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include <string>

namespace reprise::detail {

/// Hex of the main executable's NT_GNU_BUILD_ID note; empty when it has none.
std::string executable_build_id();

} // namespace reprise::detail
