// The RAFT wire codec: every read is bounds-checked against the frame it was given.
#include "message.hpp"

#include <reprise/runtime/assert.hpp>

#include <iterator>
#include <type_traits>

namespace reprise::raft {

namespace {

enum class Type : std::uint8_t {
    request_vote = 1,
    vote_reply = 2,
    append_entries = 3,
    append_reply = 4,
    pre_vote = 5,
    pre_vote_reply = 6,
};

class Writer {
public:
    explicit Writer(std::string& out) : out_(out) {}
    void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u32(std::uint32_t v) {
        for (int i = 0; i < 4; ++i)
            out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
    void u64(std::uint64_t v) {
        for (int i = 0; i < 8; ++i)
            out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    }
    void bytes(std::string_view s) {
        REPRISE_ASSERT(s.size() <= wire::command_bytes_max);
        u32(static_cast<std::uint32_t>(s.size()));
        out_.append(s);
    }

private:
    std::string& out_;
};

// Reads fields from a body; once a read fails every later read fails too.
class Reader {
public:
    explicit Reader(std::string_view in) : in_(in) {}
    bool u8(std::uint8_t& v) {
        if (!take(1))
            return false;
        v = static_cast<std::uint8_t>(in_[pos_ - 1]);
        return true;
    }
    bool u32(std::uint32_t& v) {
        if (!take(4))
            return false;
        v = 0;
        for (int i = 0; i < 4; ++i)
            v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in_[pos_ - 4 + static_cast<std::size_t>(i)])) << (8 * i);
        return true;
    }
    bool u64(std::uint64_t& v) {
        if (!take(8))
            return false;
        v = 0;
        for (int i = 0; i < 8; ++i)
            v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in_[pos_ - 8 + static_cast<std::size_t>(i)])) << (8 * i);
        return true;
    }
    bool boolean(bool& v) {
        std::uint8_t b = 0;
        if (!u8(b) || b > 1)
            return fail();
        v = b == 1;
        return true;
    }
    bool bytes(std::string& s) {
        std::uint32_t n = 0;
        if (!u32(n) || n > wire::command_bytes_max || n > remaining())
            return fail();
        s.assign(in_.substr(pos_, n));
        pos_ += n;
        return true;
    }
    std::size_t remaining() const { return ok_ ? in_.size() - pos_ : 0; }
    bool ok() const { return ok_; }
    bool fail() {
        ok_ = false;
        return false;
    }

private:
    bool take(std::size_t n) {
        if (!ok_ || in_.size() - pos_ < n)
            return fail();
        pos_ += n;
        return true;
    }
    std::string_view in_;
    std::size_t pos_ = 0;
    bool ok_ = true;
};

} // namespace

std::string encode_message(const Message& m) {
    std::string out(wire::frame_header_bytes, '\0');
    Writer w(out);
    std::visit(
        [&](const auto& msg) {
            using T = std::decay_t<decltype(msg)>;
            if constexpr (std::is_same_v<T, RequestVote> || std::is_same_v<T, PreVote>) {
                w.u8(static_cast<std::uint8_t>(std::is_same_v<T, PreVote> ? Type::pre_vote : Type::request_vote));
                w.u64(msg.term);
                w.u32(msg.candidate);
                w.u64(msg.last_log_index);
                w.u64(msg.last_log_term);
            } else if constexpr (std::is_same_v<T, VoteReply> || std::is_same_v<T, PreVoteReply>) {
                w.u8(static_cast<std::uint8_t>(std::is_same_v<T, PreVoteReply> ? Type::pre_vote_reply : Type::vote_reply));
                w.u64(msg.term);
                w.u32(msg.from);
                w.u8(msg.granted ? 1 : 0);
            } else if constexpr (std::is_same_v<T, AppendEntries>) {
                REPRISE_ASSERT(msg.entries.size() <= wire::entries_per_message_max);
                w.u8(static_cast<std::uint8_t>(Type::append_entries));
                w.u64(msg.term);
                w.u32(msg.leader);
                w.u64(msg.prev_log_index);
                w.u64(msg.prev_log_term);
                w.u64(msg.leader_commit);
                w.u32(static_cast<std::uint32_t>(msg.entries.size()));
                for (const Entry& e : msg.entries) {
                    w.u64(e.term);
                    w.bytes(e.command);
                }
            } else {
                static_assert(std::is_same_v<T, AppendReply>);
                w.u8(static_cast<std::uint8_t>(Type::append_reply));
                w.u64(msg.term);
                w.u32(msg.from);
                w.u8(msg.success ? 1 : 0);
                w.u64(msg.match_index);
                w.u64(msg.conflict_index);
            }
        },
        m);
    const std::size_t body = out.size() - wire::frame_header_bytes;
    REPRISE_ASSERT_MSG(body <= wire::frame_body_bytes_max, "a message larger than wire::frame_body_bytes_max");
    for (std::size_t i = 0; i < 4; ++i)
        out[i] = static_cast<char>((body >> (8 * (3 - i))) & 0xff);
    return out;
}

std::optional<std::size_t> frame_body_length(std::string_view header) {
    REPRISE_ASSERT(header.size() >= wire::frame_header_bytes);
    std::size_t n = 0;
    for (std::size_t i = 0; i < 4; ++i)
        n = (n << 8) | static_cast<unsigned char>(header[i]);
    if (n > wire::frame_body_bytes_max)
        return std::nullopt;
    return n;
}

Decoded decode_message(std::string_view frame) {
    if (frame.size() < wire::frame_header_bytes)
        return {std::nullopt, "frame shorter than its length prefix"};
    auto declared = frame_body_length(frame);
    if (!declared)
        return {std::nullopt, "frame length above the limit"};
    std::string_view body = frame.substr(wire::frame_header_bytes);
    if (body.size() != *declared)
        return {std::nullopt, "frame length differs from its prefix"};
    Reader r(body);
    std::uint8_t type = 0;
    if (!r.u8(type))
        return {std::nullopt, "empty frame body"};
    Message out;
    // A vote request and a pre-vote request share their fields, as do their replies.
    auto read_vote_request = [&r](auto m) {
        r.u64(m.term);
        r.u32(m.candidate);
        r.u64(m.last_log_index);
        r.u64(m.last_log_term);
        return m;
    };
    auto read_vote_reply = [&r](auto m) {
        r.u64(m.term);
        r.u32(m.from);
        r.boolean(m.granted);
        return m;
    };
    switch (static_cast<Type>(type)) {
    case Type::request_vote:
        out = read_vote_request(RequestVote{});
        break;
    case Type::vote_reply:
        out = read_vote_reply(VoteReply{});
        break;
    case Type::pre_vote:
        out = read_vote_request(PreVote{});
        break;
    case Type::pre_vote_reply:
        out = read_vote_reply(PreVoteReply{});
        break;
    case Type::append_entries: {
        AppendEntries m;
        std::uint32_t count = 0;
        r.u64(m.term);
        r.u32(m.leader);
        r.u64(m.prev_log_index);
        r.u64(m.prev_log_term);
        r.u64(m.leader_commit);
        r.u32(count);
        if (!r.ok())
            return {std::nullopt, "truncated append-entries header"};
        // Bound the count by what the body can hold before reserving anything.
        if (count > wire::entries_per_message_max || count > r.remaining() / wire::entry_overhead_bytes)
            return {std::nullopt, "entry count above the limit or the frame"};
        m.entries.reserve(count);
        for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
            Entry e;
            r.u64(e.term);
            r.bytes(e.command);
            m.entries.push_back(std::move(e));
        }
        out = std::move(m);
        break;
    }
    case Type::append_reply: {
        AppendReply m;
        r.u64(m.term);
        r.u32(m.from);
        r.boolean(m.success);
        r.u64(m.match_index);
        r.u64(m.conflict_index);
        out = m;
        break;
    }
    default:
        return {std::nullopt, "unknown message type"};
    }
    if (!r.ok())
        return {std::nullopt, "truncated or malformed message"};
    if (r.remaining() != 0)
        return {std::nullopt, "trailing bytes after the message"};
    return {std::move(out), nullptr};
}

const char* message_name(const Message& m) {
    static constexpr const char* names[] = {"request-vote", "vote-reply", "append", "append-reply", "pre-vote",
                                            "pre-vote-reply"};
    static_assert(std::size(names) == std::variant_size_v<Message>);
    return names[m.index()];
}

} // namespace reprise::raft
