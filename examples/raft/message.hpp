// RAFT peer messages and their length-prefixed binary codec (pure functions of their bytes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace reprise::raft {

/// Limits of the wire format. A decoder never allocates more than the frame it was given holds.
namespace wire {
/// Bytes of the length prefix (big-endian u32: the body's length).
inline constexpr std::size_t frame_header_bytes = 4;
/// Largest body a peer accepts; a larger declared length drops the connection.
inline constexpr std::size_t frame_body_bytes_max = 8 * 1024 * 1024;
/// Largest command an entry carries.
inline constexpr std::size_t command_bytes_max = 1024 * 1024;
/// Entries one AppendEntries carries at most.
inline constexpr std::size_t entries_per_message_max = 4096;
/// Bytes of entries (commands) a leader packs into one AppendEntries (it always sends at least one entry).
inline constexpr std::size_t entries_bytes_per_message = 1024 * 1024;
/// Fixed bytes of one encoded entry besides its command (term u64, command length u32).
inline constexpr std::size_t entry_overhead_bytes = 12;
static_assert(command_bytes_max + entry_overhead_bytes + 64 <= frame_body_bytes_max);
static_assert(entries_bytes_per_message + command_bytes_max +
                  entries_per_message_max * entry_overhead_bytes + 64 <= frame_body_bytes_max);
} // namespace wire

/// One log entry: the term it was created in and the state machine command it carries.
struct Entry {
    std::uint64_t term = 0;
    std::string command;
    friend bool operator==(const Entry&, const Entry&) = default;
};

/// A candidate asks for a vote (RAFT §5.2).
struct RequestVote {
    std::uint64_t term = 0;
    std::uint32_t candidate = 0;
    std::uint64_t last_log_index = 0;
    std::uint64_t last_log_term = 0;
    friend bool operator==(const RequestVote&, const RequestVote&) = default;
};

/// The answer to a RequestVote.
struct VoteReply {
    std::uint64_t term = 0;
    std::uint32_t from = 0;
    bool granted = false;
    friend bool operator==(const VoteReply&, const VoteReply&) = default;
};

/// The leader replicates entries, or only asserts itself (a heartbeat: no entries).
struct AppendEntries {
    std::uint64_t term = 0;
    std::uint32_t leader = 0;
    std::uint64_t prev_log_index = 0;
    std::uint64_t prev_log_term = 0;
    std::uint64_t leader_commit = 0;
    std::vector<Entry> entries;
    friend bool operator==(const AppendEntries&, const AppendEntries&) = default;
};

/// The answer to an AppendEntries. On success `match_index` is the last index known
/// to match the leader's log; on failure `conflict_index` is where the leader should
/// retry from (the follower's log end + 1, or the first index of the conflicting term).
struct AppendReply {
    std::uint64_t term = 0;
    std::uint32_t from = 0;
    bool success = false;
    std::uint64_t match_index = 0;
    std::uint64_t conflict_index = 0;
    friend bool operator==(const AppendReply&, const AppendReply&) = default;
};

/// Before it starts an election, a node asks whether its peers would vote for it in
/// `term` (its own term + 1); nobody changes term or vote for it (RAFT thesis §9.6).
struct PreVote {
    std::uint64_t term = 0;  ///< the term the candidate would stand in
    std::uint32_t candidate = 0;
    std::uint64_t last_log_index = 0;
    std::uint64_t last_log_term = 0;
    friend bool operator==(const PreVote&, const PreVote&) = default;
};

/// The answer to a PreVote: `term` is the answering node's own term (a node of a higher
/// term refuses, and the asker moves to that term).
struct PreVoteReply {
    std::uint64_t term = 0;
    std::uint32_t from = 0;
    bool granted = false;
    friend bool operator==(const PreVoteReply&, const PreVoteReply&) = default;
};

using Message = std::variant<RequestVote, VoteReply, AppendEntries, AppendReply, PreVote, PreVoteReply>;

/// The frame of `m`: the length prefix, then the body (type byte, fields little-endian).
/// Asserts the frame fits wire::frame_body_bytes_max (callers bound what they pack).
std::string encode_message(const Message& m);

/// A decoded message, or why the bytes are not one (a static string).
struct Decoded {
    std::optional<Message> message;
    const char* error = nullptr;
};

/// Decodes exactly one whole frame (length prefix included; trailing bytes are an
/// error). Pure, bounds-checked, hostile-input safe: it allocates at most what the
/// frame holds.
Decoded decode_message(std::string_view frame);

/// The body length a frame header declares, or nothing when it is above
/// wire::frame_body_bytes_max. `header` holds at least wire::frame_header_bytes bytes.
std::optional<std::size_t> frame_body_length(std::string_view header);

/// A short name of the message's kind ("append", "append-reply", ...), for logs.
const char* message_name(const Message& m);

} // namespace reprise::raft
