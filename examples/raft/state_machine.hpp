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
inline constexpr std::size_t incr_command_bytes_max = 1 + 4 + key_bytes_max + 8;

/// A state machine command. A leader appends a noop when it takes office (so that
/// entries of earlier terms commit under the current-term rule).
struct Command {
    enum class Op : std::uint8_t { noop = 0, set = 1, del = 2, incr = 3 };
    Op op = Op::noop;
    std::vector<std::string> keys;  ///< set, incr: one key; del: one or more
    std::string value;              ///< set only
    std::int64_t delta = 0;         ///< incr only: what is added (INCR 1, DECR -1, INCRBY n)
    friend bool operator==(const Command&, const Command&) = default;
};

/// Redis's errors of INCR and its kin (the text after the '-'). Arrays, not pointers to literals:
/// an inline array is one object in every file, a literal may be one copy per file.
inline constexpr char not_an_integer_error[] = "ERR value is not an integer or out of range";
inline constexpr char overflow_error[] = "ERR increment or decrement would overflow";

/// What applying a command answers its client. It is a function of the command and the
/// map alone, so every node applying the same log computes the same answer.
struct Applied {
    long long value = 0;          ///< set: 1; del: keys removed; incr: the new value; noop: 0
    const char* error = nullptr;  ///< a Redis error (one of the texts above); the map is unchanged
    /// Same value and same error text (compared as text, not as addresses).
    friend bool operator==(const Applied& a, const Applied& b) {
        return a.value == b.value && (a.error == b.error || (a.error && b.error && std::string_view(a.error) == b.error));
    }
};

/// The command's bytes (op byte, then u32-length-prefixed strings).
std::string encode_command(const Command& c);
/// The command in `bytes`, or nothing when they are not one (bounds-checked, pure).
std::optional<Command> decode_command(std::string_view bytes);
/// The integer `text` spells the way Redis accepts it (canonical decimal: no sign but a
/// leading '-', no leading zeros, no spaces, within 64 bits), or nothing.
std::optional<long long> parse_integer(std::string_view text);

/// The key-value map the committed log builds, in key order.
class KvStore {
public:
    /// Applies a committed command and returns its client's answer. An INCR of a value
    /// that is not an integer, or that would overflow, changes nothing and answers an error.
    Applied apply(const Command& c);
    /// The value of `key`, or null.
    const std::string* get(const std::string& key) const;
    std::size_t size() const noexcept { return data_.size(); }

private:
    std::map<std::string, std::string> data_;
};

} // namespace reprise::raft
