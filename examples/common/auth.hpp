// Client authentication as Redis has it (requirepass, AUTH, protected mode), shared by reprise-kv and reprise-raft.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace reprise::auth {

inline constexpr std::string_view noauth_error = "NOAUTH Authentication required.";
inline constexpr std::string_view wrongpass_error = "WRONGPASS invalid username-password pair or user is disabled.";

/// Redis's gate in front of a client's commands. With a password (non-empty), a client that
/// has not sent the right `AUTH [default] PASSWORD` gets -NOAUTH for anything but AUTH and QUIT.
/// True when the request was answered here (an AUTH, or a refusal): the caller runs it otherwise.
/// `args[0]` is the command's name in any case.
bool gate(std::string_view password, const std::vector<std::string_view>& args, bool& authenticated,
          std::string& out);

/// True for a numeric loopback address (127.0.0.0/8, ::1) or "localhost".
bool is_loopback(std::string_view host);

/// Protected mode: the reason to refuse listening on `host` for clients with no password
/// (empty when allowed: a loopback host, a password, or --protected-mode=no).
std::string protected_mode_refusal(std::string_view host, bool has_password, bool protected_mode);

/// Parses --protected-mode's value ("yes" or "no") into `on`; false for anything else.
bool parse_protected_mode(std::string_view value, bool& on);

} // namespace reprise::auth
