// A RESP client for simulated clients: one connection, one command at a time, every failure an Errc.
#pragma once

#include "resp.hpp"

#include <reprise/runtime/reprise.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace reprise::examples {

/// One RESP connection. A reply comes back as text: "+OK", "$value", "$nil", "-ERR ...", ":3".
class RespClient {
public:
    Result<void> open(const Address& to, Duration timeout) {
        auto c = connect(to, timeout);
        if (!c.ok())
            return c.error();
        conn_ = std::move(*c);
        return {};
    }
    bool is_open() const { return static_cast<bool>(conn_) && conn_.is_open(); }
    void close() { conn_.close(); }

    /// Sends one command and reads its reply, each within `timeout`.
    Result<std::string> call(const std::vector<std::string_view>& args, Duration timeout) {
        if (auto w = conn_.write(resp::encode_command(args), timeout); !w.ok())
            return w.error();
        auto line = conn_.read_until("\r\n", 64 * 1024, timeout);
        if (!line.ok())
            return line.error();
        std::string head = line->substr(0, line->size() - 2);
        if (head.empty())
            return Errc::invalid_argument;
        if (head[0] != '$')
            return head;
        long long n = 0;
        if (!resp::parse_integer(std::string_view(head).substr(1), n))
            return Errc::invalid_argument;
        if (n < 0)
            return std::string("$nil");
        auto body = conn_.read_exact(static_cast<std::size_t>(n) + 2, timeout);
        if (!body.ok())
            return body.error();
        std::string reply = "$";
        reply.append(*body, 0, static_cast<std::size_t>(n));
        return reply;
    }

private:
    Connection conn_;
};

} // namespace reprise::examples
