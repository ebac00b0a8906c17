// Commands of the replicated KV map: encoding, hostile-input-safe decoding, and applying.
#include "state_machine.hpp"

#include "message.hpp"
#include <reprise/runtime/assert.hpp>

namespace reprise::raft {

static_assert(set_command_bytes_max <= wire::command_bytes_max, "every SET fits one log entry");

namespace {

void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool get_u32(std::string_view& in, std::uint32_t& v) {
    if (in.size() < 4)
        return false;
    v = 0;
    for (std::size_t i = 0; i < 4; ++i)
        v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << (8 * i);
    in.remove_prefix(4);
    return true;
}

bool get_string(std::string_view& in, std::string& s, std::size_t max_bytes) {
    std::uint32_t n = 0;
    if (!get_u32(in, n) || n > max_bytes || n > in.size())
        return false;
    s.assign(in.substr(0, n));
    in.remove_prefix(n);
    return true;
}

} // namespace

std::string encode_command(const Command& c) {
    std::string out;
    out.push_back(static_cast<char>(c.op));
    switch (c.op) {
    case Command::Op::noop:
        break;
    case Command::Op::set:
        REPRISE_ASSERT(c.keys.size() == 1 && c.keys[0].size() <= key_bytes_max && c.value.size() <= value_bytes_max);
        put_u32(out, static_cast<std::uint32_t>(c.keys[0].size()));
        out += c.keys[0];
        put_u32(out, static_cast<std::uint32_t>(c.value.size()));
        out += c.value;
        break;
    case Command::Op::del:
        REPRISE_ASSERT(!c.keys.empty() && c.keys.size() <= del_keys_max);
        put_u32(out, static_cast<std::uint32_t>(c.keys.size()));
        for (const auto& k : c.keys) {
            REPRISE_ASSERT(k.size() <= key_bytes_max);
            put_u32(out, static_cast<std::uint32_t>(k.size()));
            out += k;
        }
        break;
    }
    REPRISE_ASSERT(out.size() <= wire::command_bytes_max);
    return out;
}

std::optional<Command> decode_command(std::string_view in) {
    if (in.empty())
        return std::nullopt;
    Command c;
    auto op = static_cast<std::uint8_t>(in[0]);
    in.remove_prefix(1);
    switch (op) {
    case 0:
        c.op = Command::Op::noop;
        break;
    case 1: {
        c.op = Command::Op::set;
        c.keys.emplace_back();
        if (!get_string(in, c.keys[0], key_bytes_max) || !get_string(in, c.value, value_bytes_max))
            return std::nullopt;
        break;
    }
    case 2: {
        c.op = Command::Op::del;
        std::uint32_t n = 0;
        if (!get_u32(in, n) || n == 0 || n > del_keys_max || n > in.size() / 4)
            return std::nullopt;
        c.keys.reserve(n);
        for (std::uint32_t i = 0; i < n; ++i) {
            std::string k;
            if (!get_string(in, k, key_bytes_max))
                return std::nullopt;
            c.keys.push_back(std::move(k));
        }
        break;
    }
    default:
        return std::nullopt;
    }
    if (!in.empty())
        return std::nullopt;
    return c;
}

long long KvStore::apply(const Command& c) {
    switch (c.op) {
    case Command::Op::noop:
        return 0;
    case Command::Op::set:
        data_[c.keys.at(0)] = c.value;
        return 1;
    case Command::Op::del: {
        long long removed = 0;
        for (const auto& k : c.keys)
            removed += static_cast<long long>(data_.erase(k));
        return removed;
    }
    }
    return 0;
}

const std::string* KvStore::get(const std::string& key) const {
    auto it = data_.find(key);
    return it == data_.end() ? nullptr : &it->second;
}

} // namespace reprise::raft
