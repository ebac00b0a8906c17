// The replicated state machine: KV commands carried by log entries, and the map they build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reprise::raft {

/// Bounds of client commands (a command must fit one log entry, wire::command_bytes_max).
inline constexpr std::size_t key_bytes_max = 64 * 1024;
inline constexpr std::size_t value_bytes_max = 512 * 1024;
inline constexpr std::size_t del_keys_max = 1024;
/// Encoded sizes (see encode_command): a SET always fits one entry; a DEL of many long
/// keys may not, so the front-end checks its total (op byte + count, then length + key each).
inline constexpr std::size_t del_command_overhead_bytes = 1 + 4;
inline constexpr std::size_t del_key_overhead_bytes = 4;
inline constexpr std::size_t set_command_bytes_max = 1 + 4 + key_bytes_max + 4 + value_bytes_max;

/// A state machine command. A leader appends a noop when it takes office (so that
/// entries of earlier terms commit under the current-term rule).
struct Command {
    enum class Op : std::uint8_t { noop = 0, set = 1, del = 2 };
    Op op = Op::noop;
    std::vector<std::string> keys;  ///< set: one key; del: one or more
    std::string value;              ///< set only
    friend bool operator==(const Command&, const Command&) = default;
};

/// The command's bytes (op byte, then u32-length-prefixed strings).
std::string encode_command(const Command& c);
/// The command in `bytes`, or nothing when they are not one (bounds-checked, pure).
std::optional<Command> decode_command(std::string_view bytes);

/// The key-value map the committed log builds, in key order.
class KvStore {
public:
    /// Applies a committed command; returns its reply value (set: 1, del: keys removed, noop: 0).
    long long apply(const Command& c);
    /// The value of `key`, or null.
    const std::string* get(const std::string& key) const;
    std::size_t size() const noexcept { return data_.size(); }

private:
    std::map<std::string, std::string> data_;
};

} // namespace reprise::raft
