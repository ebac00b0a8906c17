// Commands of the replicated KV map: encoding, hostile-input-safe decoding, and applying.
#include "state_machine.hpp"

#include "message.hpp"
#include <reprise/runtime/assert.hpp>

#include <fmt/core.h>

#include <charconv>

namespace reprise::raft {

static_assert(set_command_bytes_max <= wire::command_bytes_max, "every SET fits one log entry");
static_assert(incr_command_bytes_max <= wire::command_bytes_max, "every INCR fits one log entry");

namespace {

// Little-endian unsigned integers (u32 lengths and counts, the u64 delta of an incr).
template <class T>
void put_le(std::string& out, T v) {
    for (std::size_t i = 0; i < sizeof(T); ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

template <class T>
bool get_le(std::string_view& in, T& v) {
    if (in.size() < sizeof(T))
        return false;
    v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i)
        v |= static_cast<T>(static_cast<T>(static_cast<unsigned char>(in[i])) << (8 * i));
    in.remove_prefix(sizeof(T));
    return true;
}

void put_u32(std::string& out, std::uint32_t v) { put_le(out, v); }
bool get_u32(std::string_view& in, std::uint32_t& v) { return get_le(in, v); }

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
    case Command::Op::incr:
        REPRISE_ASSERT(c.keys.size() == 1 && c.keys[0].size() <= key_bytes_max);
        put_u32(out, static_cast<std::uint32_t>(c.keys[0].size()));
        out += c.keys[0];
        put_le(out, static_cast<std::uint64_t>(c.delta));
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
    case 3: {
        c.op = Command::Op::incr;
        c.keys.emplace_back();
        std::uint64_t delta = 0;
        if (!get_string(in, c.keys[0], key_bytes_max) || !get_le(in, delta))
            return std::nullopt;
        c.delta = static_cast<std::int64_t>(delta);
        break;
    }
    default:
        return std::nullopt;
    }
    if (!in.empty())
        return std::nullopt;
    return c;
}

std::optional<long long> parse_integer(std::string_view text) {
    long long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || end != text.data() + text.size())
        return std::nullopt;
    // from_chars also takes "007" and "-0"; Redis takes only the canonical spelling.
    if (fmt::format("{}", v) != text)
        return std::nullopt;
    return v;
}

Applied KvStore::apply(const Command& c) {
    switch (c.op) {
    case Command::Op::noop:
        return {};
    case Command::Op::set:
        data_[c.keys.at(0)] = c.value;
        return {1, nullptr};
    case Command::Op::del: {
        long long removed = 0;
        for (const auto& k : c.keys)
            removed += static_cast<long long>(data_.erase(k));
        return {removed, nullptr};
    }
    case Command::Op::incr: {
        auto it = data_.find(c.keys.at(0));
        long long old = 0;  // a missing key counts as 0, as in Redis
        if (it != data_.end()) {
            auto v = parse_integer(it->second);
            if (!v)
                return {0, not_an_integer_error};
            old = *v;
        }
        long long result = 0;
        if (__builtin_add_overflow(old, static_cast<long long>(c.delta), &result))
            return {0, overflow_error};
        data_[c.keys.at(0)] = fmt::format("{}", result);
        return {result, nullptr};
    }
    }
    return {};
}

const std::string* KvStore::get(const std::string& key) const {
    auto it = data_.find(key);
    return it == data_.end() ? nullptr : &it->second;
}

} // namespace reprise::raft
