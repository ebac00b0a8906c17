// Address: an IPv4 or IPv6 socket address, parsed from and printed as "host:port".
#pragma once

#include "reprise/runtime/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <netinet/in.h>
#include <sys/socket.h>

namespace reprise {

/// A numeric IPv4/IPv6 address with a port. "localhost" parses as 127.0.0.1;
/// other host names are not resolved (name lookup is blocking work for offload()).
class Address {
public:
    Address() = default;
    /// Parses "127.0.0.1:80", "[::1]:80", "localhost:80" or ":80" (any IPv4 address).
    static Result<Address> parse(std::string_view text);
    /// 127.0.0.1:port.
    static Address loopback(std::uint16_t port);
    static Address from_sockaddr(const sockaddr* sa, socklen_t len);

    std::string to_string() const;
    std::uint16_t port() const noexcept;
    bool empty() const noexcept { return storage_.sa.sa_family == AF_UNSPEC; }
    int family() const noexcept { return storage_.sa.sa_family; }
    const sockaddr* sockaddr_ptr() const noexcept { return &storage_.sa; }
    socklen_t sockaddr_len() const noexcept { return len_; }

    friend bool operator==(const Address& a, const Address& b) noexcept;

private:
    union Storage {
        sockaddr sa;
        sockaddr_in v4;
        sockaddr_in6 v6;
    };
    Storage storage_{};
    socklen_t len_ = 0;
};

} // namespace reprise
