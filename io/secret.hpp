// Secrets (a client password, a cluster key): read from a file, never recorded, supplied again at replay.
#pragma once

#include "reprise/runtime/result.hpp"

#include <string>
#include <string_view>

namespace reprise {

/// Reads the secret `name` from the file at `path` (one trailing newline dropped; at most
/// limits::secret_bytes_max bytes; empty is refused). Unlike every other input, the secret
/// is not in the trace: recording writes only a salted digest of it and redacts it from every
/// read it records; replay reads the file again (or the file named by the environment variable
/// REPRISE_SECRET_FILE_<NAME>, NAME in upper case, '-' as '_'), refuses it when it does not match
/// the recorded digest, and puts it back wherever the trace redacted it, so the program sees
/// exactly the bytes it saw. Errors: not_found, invalid_argument (empty), limit (too big), io.
Result<std::string> read_secret(std::string_view name, const std::string& path);

/// True when `a` and `b` are equal, in time independent of where they differ (for comparing
/// a password a client sent with the secret).
bool secrets_equal(std::string_view a, std::string_view b) noexcept;

} // namespace reprise
