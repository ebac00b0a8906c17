// The protocols the trace tools decode: RESP (both directions: commands and replies) and
// reprise-raft's peer protocol. Written like the trace reader: every length is checked
// against what is there before it is used, nothing is allocated beyond the bounds in
// decoders.hpp, and a stream that breaks the protocol stops being decoded.
#include "decoders.hpp"

#include "message.hpp"        // examples/raft: the peer protocol's codec
#include "peer_auth.hpp"      // examples/raft: the handshake and frame tags of authenticated links
#include "state_machine.hpp"  // examples/raft: the commands its entries carry

#include <reprise/record/trace.hpp>

#include <fmt/core.h>

#include <charconv>
#include <optional>

namespace reprise::tool {

std::string escaped(std::string_view s) { return trace::escaped(s); }

std::string shown(std::string_view s) {
    bool plain = !s.empty();
    for (unsigned char c : s)
        plain = plain && c > 0x20 && c < 0x7f && c != '"' && c != '\\';
    return plain ? std::string(s) : fmt::format("\"{}\"", escaped(s));
}

std::string shown_short(std::string_view s, std::size_t max) {
    if (s.size() <= max)
        return shown(s);
    return fmt::format("{}...({} bytes)", shown(s.substr(0, max)), s.size());
}

namespace {

// Bytes a decoder holds: appended at the back, consumed from the front, compacted lazily.
class Buffer {
public:
    void append(std::string_view b) {
        if (start_ > 0 && start_ >= data_.size() / 2) {
            data_.erase(0, start_);
            start_ = 0;
        }
        data_.append(b);
    }
    std::string_view view() const noexcept { return std::string_view(data_).substr(start_); }
    void consume(std::size_t n) noexcept { start_ += n; }
    std::size_t size() const noexcept { return data_.size() - start_; }
    void clear() noexcept {
        data_.clear();
        start_ = 0;
    }

private:
    std::string data_;
    std::size_t start_ = 0;
};

// --- RESP ----------------------------------------------------------------------------------

constexpr std::size_t resp_depth_max = 8;
constexpr std::size_t resp_elements_shown = 8;
constexpr std::int64_t resp_elements_max = 1024 * 1024;
constexpr std::size_t resp_line_bytes_max = 64 * 1024;

enum class Got { value, incomplete, error };

// Parses one RESP value at in[pos...]; on Got::value, pos is past it and text describes it.
// A top-level array of bulk strings (a command) reads as its words: SET k v.
class RespParser {
public:
    explicit RespParser(std::string_view in) : in_(in) {}

    Got value(std::size_t& pos, std::string& text, std::size_t depth, bool top) {
        if (pos >= in_.size())
            return Got::incomplete;
        const char type = in_[pos];
        std::string_view line;
        std::size_t after = 0;
        if (Got g = read_line(pos + 1, line, after); g != Got::value)
            return g;
        switch (type) {
        case '+': text = fmt::format("+{}", shown_inline(line)); pos = after; return Got::value;
        case '-': text = fmt::format("-{}", shown_inline(line)); pos = after; return Got::value;
        case ':': {
            std::int64_t n = 0;
            if (!number(line, n))
                return Got::error;
            text = fmt::format(":{}", n);
            pos = after;
            return Got::value;
        }
        case '$': {
            std::int64_t n = 0;
            if (!number(line, n) || n < -1 || n > static_cast<std::int64_t>(decoder_buffer_bytes_max))
                return Got::error;
            if (n == -1) {
                text = "(nil)";
                pos = after;
                return Got::value;
            }
            const auto len = static_cast<std::size_t>(n);
            if (in_.size() - after < len + 2)
                return Got::incomplete;
            if (in_[after + len] != '\r' || in_[after + len + 1] != '\n')
                return Got::error;
            text = shown_short(in_.substr(after, len));
            pos = after + len + 2;
            return Got::value;
        }
        case '*': {
            std::int64_t n = 0;
            if (!number(line, n) || n < -1 || n > resp_elements_max || depth >= resp_depth_max)
                return Got::error;
            if (n == -1) {
                text = "(nil array)";
                pos = after;
                return Got::value;
            }
            std::size_t p = after;
            std::string joined;
            bool all_bulk = true;
            for (std::int64_t i = 0; i < n; ++i) {
                if (p < in_.size() && in_[p] != '$')
                    all_bulk = false;
                std::string element;
                if (Got g = value(p, element, depth + 1, false); g != Got::value)
                    return g;
                if (static_cast<std::size_t>(i) < resp_elements_shown)
                    joined += fmt::format("{}{}", i == 0 ? "" : top && all_bulk ? " " : ", ", element);
            }
            const std::string more = static_cast<std::size_t>(n) > resp_elements_shown
                                         ? fmt::format(" ...({} more)", static_cast<std::size_t>(n) - resp_elements_shown)
                                         : std::string();
            text = top && all_bulk && n > 0 ? joined + more : fmt::format("[{}{}]", joined, more);
            pos = p;
            return Got::value;
        }
        default:
            if (!top)
                return Got::error;
            // An inline command: the whole line is the request (redis-cli does not send these; telnet does).
            if (Got g = read_line(pos, line, after); g != Got::value)
                return g;
            text = fmt::format("(inline) {}", shown_inline(line));
            pos = after;
            return Got::value;
        }
    }

private:
    // The line at in[from...] up to CRLF (an inline line may end with LF alone).
    Got read_line(std::size_t from, std::string_view& line, std::size_t& after) const {
        const std::size_t limit = std::min(in_.size(), from + resp_line_bytes_max);
        for (std::size_t i = from; i < limit; ++i) {
            if (in_[i] == '\n') {
                const std::size_t end = i > from && in_[i - 1] == '\r' ? i - 1 : i;
                line = in_.substr(from, end - from);
                after = i + 1;
                return Got::value;
            }
        }
        return in_.size() - from >= resp_line_bytes_max ? Got::error : Got::incomplete;
    }
    static bool number(std::string_view s, std::int64_t& n) {
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        return ec == std::errc{} && end == s.data() + s.size() && !s.empty();
    }
    // A status or error line: its words as they are, unless it needs escaping.
    static std::string shown_inline(std::string_view s) {
        bool plain = true;
        for (unsigned char c : s)
            plain = plain && c >= 0x20 && c < 0x7f;
        return plain && s.size() <= 2 * shown_value_bytes ? std::string(s) : shown_short(s, 2 * shown_value_bytes);
    }

    std::string_view in_;
};

class RespDecoder final : public StreamDecoder {
public:
    void feed(std::string_view bytes, std::vector<std::string>& messages) override {
        if (broken_)
            return;
        buffer_.append(bytes);
        while (buffer_.size() > 0) {
            std::string_view in = buffer_.view();
            RespParser parser(in);
            std::size_t pos = 0;
            std::string text;
            const Got g = parser.value(pos, text, 0, true);
            if (g == Got::incomplete) {
                if (buffer_.size() > decoder_buffer_bytes_max)
                    stop(messages, fmt::format("a message longer than {} bytes", decoder_buffer_bytes_max));
                return;
            }
            if (g == Got::error) {
                stop(messages, fmt::format("not RESP from byte {} of the stream on", consumed_));
                return;
            }
            messages.push_back(std::move(text));
            buffer_.consume(pos);
            consumed_ += pos;
        }
    }
    const char* name() const noexcept override { return "resp"; }

private:
    void stop(std::vector<std::string>& messages, std::string why) {
        messages.push_back(fmt::format("(resp: stopped decoding this stream: {})", why));
        broken_ = true;
        buffer_.clear();
    }
    Buffer buffer_;
    std::uint64_t consumed_ = 0;  ///< bytes of the stream decoded before the buffer's front
    bool broken_ = false;
};

// RESP's first byte is a type marker (a raft frame's is the top byte of its length: 0); the
// second says more (a count, a length or an integer: a digit or '-'; a status or error: a
// letter), so random bytes (an authenticated link's handshake) rarely pass for RESP.
bool looks_like_resp(std::string_view first) {
    if (first.size() < 2 || std::string_view("*$+-:").find(first[0]) == std::string_view::npos)
        return false;
    const char c = first[1];
    if (first[0] == '+' || first[0] == '-')
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    return (c >= '0' && c <= '9') || c == '-';
}

// --- reprise-raft's peer protocol ---------------------------------------------------------------

std::string describe_command(std::string_view bytes) {
    auto c = raft::decode_command(bytes);
    if (!c)
        return fmt::format("(not a command: {} bytes)", bytes.size());
    using Op = raft::Command::Op;
    std::string keys;
    for (std::size_t i = 0; i < c->keys.size() && i < resp_elements_shown; ++i)
        keys += fmt::format(" {}", shown_short(c->keys[i]));
    switch (c->op) {
    case Op::noop: return "noop";
    case Op::set: return fmt::format("SET{} {}", keys, shown_short(c->value));
    case Op::del: return fmt::format("DEL{}{}", keys, c->keys.size() > resp_elements_shown ? " ..." : "");
    case Op::incr: return fmt::format("INCRBY{} {}", keys, c->delta);
    }
    return "(unknown op)";
}

std::string describe_message(const raft::Message& m) {
    struct Describe {
        std::string operator()(const raft::RequestVote& v) const {
            return fmt::format("RequestVote(term {}, candidate {}, last log {}/{})", v.term, v.candidate,
                               v.last_log_index, v.last_log_term);
        }
        std::string operator()(const raft::VoteReply& v) const {
            return fmt::format("VoteReply(term {}, from {}, {})", v.term, v.from, v.granted ? "granted" : "refused");
        }
        std::string operator()(const raft::PreVote& v) const {
            return fmt::format("PreVote(term {}, candidate {}, last log {}/{})", v.term, v.candidate, v.last_log_index,
                               v.last_log_term);
        }
        std::string operator()(const raft::PreVoteReply& v) const {
            return fmt::format("PreVoteReply(term {}, from {}, {})", v.term, v.from, v.granted ? "granted" : "refused");
        }
        std::string operator()(const raft::AppendEntries& a) const {
            std::string entries;
            if (a.entries.empty())
                entries = "heartbeat";
            else if (a.entries.size() == 1)
                entries = fmt::format("1 entry: {}", describe_command(a.entries[0].command));
            else
                entries = fmt::format("{} entries, first: {}", a.entries.size(), describe_command(a.entries[0].command));
            return fmt::format("AppendEntries(term {}, leader {}, prev {}/{}, commit {}, {})", a.term, a.leader,
                               a.prev_log_index, a.prev_log_term, a.leader_commit, entries);
        }
        std::string operator()(const raft::AppendReply& r) const {
            return r.success ? fmt::format("AppendReply(term {}, from {}, ok, match {})", r.term, r.from, r.match_index)
                             : fmt::format("AppendReply(term {}, from {}, refused, retry from {})", r.term, r.from,
                                           r.conflict_index);
        }
    };
    return std::visit(Describe{}, m);
}

// reprise-raft's peer stream. On an authenticated link (--cluster-secret-file) the stream starts
// with its side of the handshake and every frame is followed by its tag: the accepting node's
// stream starts "RPRSAUTH", its nonce, then its proof; the connecting node's with its nonce and
// proof. The handshake is shown as such (never its bytes), the tags are skipped.
class RaftDecoder final : public StreamDecoder {
public:
    enum class Link { plain, auth_accepting, auth_connecting };
    explicit RaftDecoder(Link link) : link_(link) {
        using raft::LinkAuth;
        if (link == Link::auth_accepting)
            handshake_ = {{LinkAuth::challenge_magic.size() + LinkAuth::nonce_bytes, "auth: challenge (nonce)"},
                          {LinkAuth::tag_bytes, "auth: proof of the cluster secret (accepting node)"}};
        else if (link == Link::auth_connecting)
            handshake_ = {{LinkAuth::nonce_bytes + LinkAuth::tag_bytes,
                           "auth: answer (nonce and proof of the cluster secret)"}};
    }

    void feed(std::string_view bytes, std::vector<std::string>& messages) override {
        if (broken_)
            return;
        buffer_.append(bytes);
        while (step_ < handshake_.size()) {
            if (buffer_.size() < handshake_[step_].first)
                return;
            buffer_.consume(handshake_[step_].first);
            messages.emplace_back(handshake_[step_].second);
            ++step_;
        }
        const std::size_t tag = link_ == Link::plain ? 0 : raft::LinkAuth::tag_bytes;
        while (buffer_.size() >= raft::wire::frame_header_bytes) {
            std::string_view in = buffer_.view();
            auto body = raft::frame_body_length(in.substr(0, raft::wire::frame_header_bytes));
            if (!body) {
                stop(messages, "a frame longer than the protocol allows");
                return;
            }
            const std::size_t frame = raft::wire::frame_header_bytes + *body;
            if (in.size() < frame + tag)
                return;
            auto d = raft::decode_message(in.substr(0, frame));
            if (!d.message) {
                stop(messages, d.error ? d.error : "undecodable frame");
                return;
            }
            messages.push_back(describe_message(*d.message));
            buffer_.consume(frame + tag);
        }
    }
    const char* name() const noexcept override {
        return link_ == Link::plain ? "raft" : link_ == Link::auth_accepting ? "raft-auth-accepting" : "raft-auth-connecting";
    }

private:
    void stop(std::vector<std::string>& messages, std::string_view why) {
        messages.push_back(fmt::format("(raft: stopped decoding this stream: {})", why));
        broken_ = true;
        buffer_.clear();
    }
    Link link_;
    std::vector<std::pair<std::size_t, const char*>> handshake_;
    std::size_t step_ = 0;
    Buffer buffer_;
    bool broken_ = false;
};

// A raft frame's header and type byte at `at`.
bool raft_frame_at(std::string_view first, std::size_t at) {
    if (first.size() < at + raft::wire::frame_header_bytes + 1)
        return false;
    auto body = raft::frame_body_length(first.substr(at, raft::wire::frame_header_bytes));
    const auto type = static_cast<unsigned char>(first[at + raft::wire::frame_header_bytes]);
    return body && *body > 0 && type >= 1 && type <= std::variant_size_v<raft::Message>;
}

bool looks_like_raft(std::string_view first) { return raft_frame_at(first, 0); }

bool looks_like_raft_auth_accepting(std::string_view first) {
    return first.substr(0, raft::LinkAuth::challenge_magic.size()) == raft::LinkAuth::challenge_magic;
}

// The connecting node's answer is random-looking: the stream is claimed when a frame follows it.
bool looks_like_raft_auth_connecting(std::string_view first) {
    return raft_frame_at(first, raft::LinkAuth::nonce_bytes + raft::LinkAuth::tag_bytes);
}

} // namespace

const std::vector<Protocol>& protocols() {
    static const std::vector<Protocol> list = {
        {"resp", "RESP (Redis): commands as their words, replies as values",
         looks_like_resp, [] { return std::unique_ptr<StreamDecoder>(std::make_unique<RespDecoder>()); }},
        {"raft", "reprise-raft's peer protocol: one message per frame",
         looks_like_raft,
         [] { return std::unique_ptr<StreamDecoder>(std::make_unique<RaftDecoder>(RaftDecoder::Link::plain)); }},
        {"raft-auth-accepting", "reprise-raft's peer protocol on an authenticated link: the accepting node's side",
         looks_like_raft_auth_accepting,
         [] { return std::unique_ptr<StreamDecoder>(std::make_unique<RaftDecoder>(RaftDecoder::Link::auth_accepting)); }},
        {"raft-auth-connecting", "reprise-raft's peer protocol on an authenticated link: the connecting node's side",
         looks_like_raft_auth_connecting,
         [] { return std::unique_ptr<StreamDecoder>(std::make_unique<RaftDecoder>(RaftDecoder::Link::auth_connecting)); }},
    };
    return list;
}

namespace {

// The size of the RESP value at in[0...] without describing it: iterative, so nesting is bounded by
// the elements still expected (resp_elements_max) rather than by the describer's depth. RESP3's
// aggregate and blob types are framed too (a server may answer RESP3 shapes to a RESP2 client).
Got resp_value_size(std::string_view in, std::size_t& bytes) {
    std::size_t pos = 0;
    std::int64_t expected = 1;
    while (expected > 0) {
        if (pos >= in.size())
            return Got::incomplete;
        const char type = in[pos];
        const std::size_t limit = std::min(in.size(), pos + 1 + resp_line_bytes_max);
        std::size_t eol = pos + 1;
        while (eol < limit && in[eol] != '\n')
            ++eol;
        if (eol >= limit)
            return in.size() - pos > resp_line_bytes_max ? Got::error : Got::incomplete;
        if (eol == pos + 1 || in[eol - 1] != '\r')
            return Got::error;
        const std::string_view line = in.substr(pos + 1, eol - 1 - (pos + 1));
        std::int64_t n = 0;
        const bool numeric = [&] {
            auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), n);
            return ec == std::errc{} && end == line.data() + line.size() && !line.empty();
        }();
        pos = eol + 1;
        --expected;
        switch (type) {
        case '+': case '-': case ':': case '_': case ',': case '#': case '(':
            break;
        case '$': case '=': case '!':
            if (!numeric || n < -1 || n > static_cast<std::int64_t>(decoder_buffer_bytes_max))
                return Got::error;
            if (n >= 0) {
                if (in.size() - pos < static_cast<std::size_t>(n) + 2)
                    return Got::incomplete;
                pos += static_cast<std::size_t>(n) + 2;
                if (in[pos - 2] != '\r' || in[pos - 1] != '\n')
                    return Got::error;
            }
            break;
        case '*': case '~': case '>': case '%': case '|':
            if (!numeric || n < -1 || n > resp_elements_max)
                return Got::error;
            expected += n < 0 ? 0 : (type == '%' || type == '|' ? 2 * n : n);
            if (expected > resp_elements_max)
                return Got::error;
            break;
        default:
            return Got::error;
        }
    }
    bytes = pos;
    return Got::value;
}

} // namespace

RespFrame resp_frame(std::string_view in, std::size_t& bytes, std::string& text) {
    if (in.size() > decoder_buffer_bytes_max + resp_line_bytes_max)
        in = in.substr(0, decoder_buffer_bytes_max + resp_line_bytes_max);
    RespParser parser(in);
    std::size_t pos = 0;
    Got g = parser.value(pos, text, 0, true);
    if (g == Got::error && !in.empty() && in[0] != '+' && in[0] != '-' && in[0] != ':' && in[0] != '$') {
        // Deeper than the describer goes, or a RESP3 shape: framed by size, described by it.
        g = resp_value_size(in, pos);
        if (g == Got::value)
            text = fmt::format("({} bytes of nested RESP)", pos);
    }
    if (g == Got::value)
        bytes = pos;
    return g == Got::value ? RespFrame::complete : g == Got::incomplete ? RespFrame::incomplete : RespFrame::invalid;
}

bool looks_like_resp_stream(std::string_view first) { return looks_like_resp(first); }

void SniffingDecoder::feed(std::string_view bytes, std::vector<std::string>& messages) {
    if (decided_) {
        if (inner_)
            inner_->feed(bytes, messages);
        return;
    }
    first_.append(bytes);
    for (const Protocol& p : protocols()) {
        if (p.looks_like(first_)) {
            inner_ = p.make();
            break;
        }
    }
    if (!inner_ && first_.size() < sniff_bytes)
        return;  // too few bytes to tell yet
    decided_ = true;
    if (inner_)
        inner_->feed(first_, messages);
    first_.clear();
    first_.shrink_to_fit();
}

std::unique_ptr<StreamDecoder> answering_decoder(const StreamDecoder& other_direction) {
    if (std::string_view(other_direction.name()) == "raft-auth-accepting")
        return std::make_unique<RaftDecoder>(RaftDecoder::Link::auth_connecting);
    return nullptr;
}

} // namespace reprise::tool
