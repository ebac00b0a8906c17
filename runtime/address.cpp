// Address parsing and printing.
#include "reprise/runtime/address.hpp"

#include <arpa/inet.h>
#include <charconv>
#include <cstring>
#include <fmt/core.h>

namespace reprise {

Result<Address> Address::parse(std::string_view text) {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
        return Error{Errc::invalid_argument};
    std::string_view host = text.substr(0, colon);
    std::string_view port_text = text.substr(colon + 1);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535 || port_text.empty())
        return Error{Errc::invalid_argument};

    Address a;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        std::string h(host.substr(1, host.size() - 2));
        a.storage_.v6.sin6_family = AF_INET6;
        a.storage_.v6.sin6_port = htons(static_cast<std::uint16_t>(port));
        if (::inet_pton(AF_INET6, h.c_str(), &a.storage_.v6.sin6_addr) != 1)
            return Error{Errc::invalid_argument};
        a.len_ = sizeof(sockaddr_in6);
        return a;
    }
    std::string h = host.empty() ? "0.0.0.0" : host == "localhost" ? "127.0.0.1" : std::string(host);
    a.storage_.v4.sin_family = AF_INET;
    a.storage_.v4.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, h.c_str(), &a.storage_.v4.sin_addr) != 1)
        return Error{Errc::invalid_argument};
    a.len_ = sizeof(sockaddr_in);
    return a;
}

Address Address::loopback(std::uint16_t port) {
    Address a;
    a.storage_.v4.sin_family = AF_INET;
    a.storage_.v4.sin_port = htons(port);
    a.storage_.v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.len_ = sizeof(sockaddr_in);
    return a;
}

Address Address::from_sockaddr(const sockaddr* sa, socklen_t len) {
    Address a;
    if (sa->sa_family == AF_INET && len >= sizeof(sockaddr_in)) {
        std::memcpy(&a.storage_.v4, sa, sizeof(sockaddr_in));
        a.len_ = sizeof(sockaddr_in);
    } else if (sa->sa_family == AF_INET6 && len >= sizeof(sockaddr_in6)) {
        std::memcpy(&a.storage_.v6, sa, sizeof(sockaddr_in6));
        a.len_ = sizeof(sockaddr_in6);
    }
    return a;
}

std::string Address::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (family() == AF_INET) {
        ::inet_ntop(AF_INET, &storage_.v4.sin_addr, buf, sizeof buf);
        return fmt::format("{}:{}", buf, port());
    }
    if (family() == AF_INET6) {
        ::inet_ntop(AF_INET6, &storage_.v6.sin6_addr, buf, sizeof buf);
        return fmt::format("[{}]:{}", buf, port());
    }
    return "(none)";
}

std::uint16_t Address::port() const noexcept {
    if (family() == AF_INET)
        return ntohs(storage_.v4.sin_port);
    if (family() == AF_INET6)
        return ntohs(storage_.v6.sin6_port);
    return 0;
}

bool operator==(const Address& a, const Address& b) noexcept {
    return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

} // namespace reprise
