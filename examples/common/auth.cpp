// Client authentication: the AUTH gate, loopback detection and protected mode.
#include "auth.hpp"

#include "resp.hpp"

#include <reprise/io/secret.hpp>

#include <fmt/core.h>

#include <arpa/inet.h>

namespace reprise::auth {

namespace {

bool equals_ci(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i]))
            return false;
    }
    return true;
}

} // namespace

bool gate(std::string_view password, const std::vector<std::string_view>& args, bool& authenticated,
          std::string& out) {
    if (equals_ci(args[0], "auth")) {
        if (args.size() != 2 && args.size() != 3) {
            resp::append_error(out, "ERR wrong number of arguments for 'auth' command");
        } else if (password.empty()) {
            resp::append_error(out, "ERR AUTH <password> called without any password configured for the default "
                                    "user. Are you sure your configuration is correct?");
        } else if ((args.size() == 3 && args[1] != "default") || !secrets_equal(args.back(), password)) {
            authenticated = false;  // as Redis: a failed AUTH does not keep an earlier success
            resp::append_error(out, wrongpass_error);
        } else {
            authenticated = true;
            resp::append_simple(out, "OK");
        }
        return true;
    }
    if (password.empty() || authenticated || equals_ci(args[0], "quit"))
        return false;
    resp::append_error(out, noauth_error);
    return true;
}

bool is_loopback(std::string_view host) {
    if (host == "localhost")
        return true;
    std::string h(host);
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']')
        h = h.substr(1, h.size() - 2);
    unsigned char buf[16];
    if (inet_pton(AF_INET, h.c_str(), buf) == 1)
        return buf[0] == 127;
    if (inet_pton(AF_INET6, h.c_str(), buf) == 1) {
        static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
        return std::equal(std::begin(buf), std::end(buf), std::begin(loop6));
    }
    return false;
}

std::string protected_mode_refusal(std::string_view host, bool has_password, bool protected_mode) {
    if (!protected_mode || has_password || is_loopback(host))
        return {};
    return fmt::format("refusing to serve clients on {} with no password (protected mode): set --requirepass-file=FILE, "
                       "listen on a loopback address, or pass --protected-mode=no",
                       host);
}

bool parse_protected_mode(std::string_view value, bool& on) {
    if (value == "yes")
        on = true;
    else if (value == "no")
        on = false;
    else
        return false;
    return true;
}

} // namespace reprise::auth
