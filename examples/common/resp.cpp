// RESP2 request parsing (multibulk and inline, resumable) and reply writing.
#include "resp.hpp"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstring>

namespace reprise::resp {

namespace {

Parsed make_error(std::string text) {
    Parsed p;
    p.status = Status::error;
    p.error = std::move(text);
    return p;
}

Parsed make_incomplete(std::size_t needed) {
    Parsed p;
    p.status = Status::incomplete;
    p.needed = needed;
    return p;
}

Parsed make_complete(std::size_t consumed) {
    Parsed p;
    p.status = Status::complete;
    p.consumed = consumed;
    return p;
}

bool is_space(char c) noexcept {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

enum class Line { found, incomplete, too_long };

/// Finds the CRLF ending the header line (`*N` or `$N`) that starts at `start`:
/// `cr` is then the position of its '\r'. The search looks at no more than
/// `max_bytes` + 2 bytes, so a hostile header costs a bounded scan.
Line find_header_end(std::string_view in, std::size_t start, std::size_t max_bytes, std::size_t& cr) {
    const std::size_t window = std::min(in.size() - start, max_bytes + 2);
    const void* hit = window == 0 ? nullptr : std::memchr(in.data() + start, '\r', window);
    if (hit == nullptr)
        return window >= max_bytes + 2 ? Line::too_long : Line::incomplete;
    cr = static_cast<std::size_t>(static_cast<const char*>(hit) - in.data());
    if (cr + 1 >= in.size())
        return Line::incomplete;
    return Line::found;
}

/// The text of a protocol error naming an unexpected byte (CR and LF must not end up in a reply).
std::string expected_dollar(char got) {
    std::string s = "Protocol error: expected '$', got '";
    s.push_back(got == '\r' || got == '\n' ? ' ' : got);
    s.push_back('\'');
    return s;
}

/// Parses a multibulk request from `r.pos` on; `emit(offset, length)` takes each argument.
template <class Emit>
Parsed parse_multibulk(std::string_view in, const Limits& limits, Parser::Resume& r, std::size_t& done, Emit&& emit) {
    if (r.count < 0) {
        std::size_t cr = 0;
        switch (find_header_end(in, 0, limits.max_inline_bytes, cr)) {
        case Line::too_long: return make_error("Protocol error: too big mbulk count string");
        case Line::incomplete: return make_incomplete(in.size() + 1);
        case Line::found: break;
        }
        long long count = 0;
        if (in[cr + 1] != '\n' || !parse_integer(in.substr(1, cr - 1), count) || count > INT_MAX ||
            (count > 0 && static_cast<unsigned long long>(count) > limits.max_args))
            return make_error("Protocol error: invalid multibulk length");
        if (count <= 0)
            return make_complete(cr + 2);
        r.count = count;
        r.pos = cr + 2;
        done = 0;
    }
    while (done < static_cast<std::size_t>(r.count)) {
        const std::size_t pos = r.pos;
        if (pos >= in.size())
            return make_incomplete(pos + 1);
        if (in[pos] != '$')
            return make_error(expected_dollar(in[pos]));
        std::size_t cr = 0;
        switch (find_header_end(in, pos, limits.max_inline_bytes, cr)) {
        case Line::too_long: return make_error("Protocol error: too big bulk count string");
        case Line::incomplete: return make_incomplete(in.size() + 1);
        case Line::found: break;
        }
        long long length = 0;
        if (in[cr + 1] != '\n' || !parse_integer(in.substr(pos + 1, cr - pos - 1), length) || length < 0 ||
            static_cast<unsigned long long>(length) > limits.max_bulk_bytes)
            return make_error("Protocol error: invalid bulk length");
        const std::size_t data = cr + 2;
        const std::size_t len = static_cast<std::size_t>(length);
        const std::size_t end = data + len + 2;  // no overflow: len <= max_bulk_bytes, data <= in.size()
        if (in.size() < end)
            return make_incomplete(end);
        if (in[data + len] != '\r' || in[data + len + 1] != '\n')
            return make_error("Protocol error: expected CRLF after bulk data");
        emit(data, len);
        ++done;
        r.pos = end;
    }
    return make_complete(r.pos);
}

/// Splits one inline line like sdssplitargs. Simple words are views into `line`;
/// words with quotes or escapes are decoded into `scratch`.
Parsed split_inline(std::string_view line, std::size_t consumed, std::vector<std::string_view>& args,
                    std::string* scratch) {
    if (scratch != nullptr) {
        scratch->clear();
        scratch->reserve(line.size());  // decoded words never outgrow the line: views stay valid
    }
    const std::size_t end = line.size();
    std::size_t p = 0;
    for (;;) {
        while (p < end && is_space(line[p]))
            ++p;
        if (p == end)
            break;
        std::size_t q = p;
        while (q < end && !is_space(line[q]) && line[q] != '"' && line[q] != '\'')
            ++q;
        if (q == end || is_space(line[q])) {
            args.push_back(line.substr(p, q - p));
            p = q;
            continue;
        }
        if (scratch == nullptr)
            return make_error("Protocol error: unsupported escape in inline request");
        const std::size_t first = scratch->size();
        bool in_double = false;
        bool in_single = false;
        bool done = false;
        while (!done) {
            if (in_double) {
                if (p == end)
                    return make_error("Protocol error: unbalanced quotes in request");
                const char c = line[p];
                if (c == '\\' && p + 3 < end && line[p + 1] == 'x' && hex_value(line[p + 2]) >= 0 &&
                    hex_value(line[p + 3]) >= 0) {
                    scratch->push_back(static_cast<char>(hex_value(line[p + 2]) * 16 + hex_value(line[p + 3])));
                    p += 3;
                } else if (c == '\\' && p + 1 < end) {
                    ++p;
                    char e = line[p];
                    switch (e) {
                    case 'n': e = '\n'; break;
                    case 'r': e = '\r'; break;
                    case 't': e = '\t'; break;
                    case 'b': e = '\b'; break;
                    case 'a': e = '\a'; break;
                    default: break;
                    }
                    scratch->push_back(e);
                } else if (c == '"') {
                    if (p + 1 < end && !is_space(line[p + 1]))
                        return make_error("Protocol error: unbalanced quotes in request");
                    done = true;
                } else {
                    scratch->push_back(c);
                }
            } else if (in_single) {
                if (p == end)
                    return make_error("Protocol error: unbalanced quotes in request");
                const char c = line[p];
                if (c == '\\' && p + 1 < end && line[p + 1] == '\'') {
                    ++p;
                    scratch->push_back('\'');
                } else if (c == '\'') {
                    if (p + 1 < end && !is_space(line[p + 1]))
                        return make_error("Protocol error: unbalanced quotes in request");
                    done = true;
                } else {
                    scratch->push_back(c);
                }
            } else {
                if (p == end || is_space(line[p])) {
                    done = true;
                    break;  // the word ends before this byte: do not step over it
                }
                const char c = line[p];
                if (c == '"')
                    in_double = true;
                else if (c == '\'')
                    in_single = true;
                else
                    scratch->push_back(c);
            }
            if (p < end)
                ++p;
        }
        args.push_back(std::string_view(*scratch).substr(first));
    }
    return make_complete(consumed);
}

/// Parses an inline request: one line ended by LF (a CR before it is dropped).
Parsed parse_inline(std::string_view in, std::vector<std::string_view>& args, const Limits& limits,
                    std::size_t& scanned, std::string* scratch) {
    const std::size_t from = std::min(scanned, in.size());
    const void* hit = from == in.size() ? nullptr : std::memchr(in.data() + from, '\n', in.size() - from);
    if (hit == nullptr) {
        if (in.size() > limits.max_inline_bytes)
            return make_error("Protocol error: too big inline request");
        scanned = in.size();
        return make_incomplete(in.size() + 1);
    }
    const std::size_t nl = static_cast<std::size_t>(static_cast<const char*>(hit) - in.data());
    if (nl > limits.max_inline_bytes)
        return make_error("Protocol error: too big inline request");
    std::string_view line = in.substr(0, nl);
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    return split_inline(line, nl + 1, args, scratch);
}

} // namespace

Parsed parse_command(std::string_view input, std::vector<std::string_view>& args, const Limits& limits,
                     std::string* scratch) {
    args.clear();
    if (input.empty())
        return make_incomplete(1);
    Parser::Resume r;
    if (input[0] == '*') {
        std::size_t done = 0;
        Parsed p = parse_multibulk(input, limits, r, done, [&](std::size_t offset, std::size_t length) {
            args.push_back(input.substr(offset, length));
        });
        if (p.status != Status::complete)
            args.clear();
        return p;
    }
    Parsed p = parse_inline(input, args, limits, r.scanned, scratch);
    if (p.status != Status::complete)
        args.clear();
    return p;
}

void Parser::reset() noexcept {
    resume_ = Resume{};
    spans_.clear();
}

Parsed Parser::parse(std::string_view input, std::vector<std::string_view>& args) {
    args.clear();
    if (input.empty()) {
        reset();
        return make_incomplete(1);
    }
    Parsed p;
    if (input[0] == '*') {
        std::size_t done = spans_.size();
        p = parse_multibulk(input, limits_, resume_, done, [&](std::size_t offset, std::size_t length) {
            spans_.emplace_back(offset, length);
        });
        if (p.status == Status::complete) {
            for (const auto& [offset, length] : spans_)
                args.push_back(input.substr(offset, length));
        }
    } else {
        p = parse_inline(input, args, limits_, resume_.scanned, &scratch_);
        if (p.status != Status::complete)
            args.clear();
    }
    if (p.status != Status::incomplete)
        reset();
    return p;
}

void append_simple(std::string& out, std::string_view s) {
    out.push_back('+');
    out.append(s);
    out.append("\r\n", 2);
}

void append_error(std::string& out, std::string_view s) {
    out.push_back('-');
    const std::size_t start = out.size();
    out.append(s);
    std::replace_if(
        out.begin() + static_cast<std::ptrdiff_t>(start), out.end(), [](char c) { return c == '\r' || c == '\n'; },
        ' ');
    out.append("\r\n", 2);
}

namespace {
void append_prefixed_number(std::string& out, char prefix, long long v) {
    char buffer[24];
    buffer[0] = prefix;
    auto [end, ec] = std::to_chars(buffer + 1, buffer + sizeof buffer - 2, v);
    (void)ec;  // 21 bytes hold any long long
    *end++ = '\r';
    *end++ = '\n';
    out.append(buffer, static_cast<std::size_t>(end - buffer));
}
} // namespace

void append_integer(std::string& out, long long v) { append_prefixed_number(out, ':', v); }

void append_bulk(std::string& out, std::string_view s) {
    append_prefixed_number(out, '$', static_cast<long long>(s.size()));
    out.append(s);
    out.append("\r\n", 2);
}

void append_null(std::string& out) { out.append("$-1\r\n", 5); }

void append_null_array(std::string& out) { out.append("*-1\r\n", 5); }

void append_array_header(std::string& out, std::size_t n) {
    append_prefixed_number(out, '*', static_cast<long long>(n));
}

bool parse_integer(std::string_view s, long long& out) noexcept {
    if (s.empty() || s.size() > 20)
        return false;
    if (s.size() == 1 && s[0] == '0') {
        out = 0;
        return true;
    }
    std::size_t i = 0;
    const bool negative = s[0] == '-';
    if (negative && ++i == s.size())
        return false;
    if (s[i] < '1' || s[i] > '9')
        return false;
    unsigned long long v = 0;
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c < '0' || c > '9')
            return false;
        const unsigned digit = static_cast<unsigned>(c - '0');
        if (v > (ULLONG_MAX - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    if (negative) {
        if (v > static_cast<unsigned long long>(LLONG_MAX) + 1)
            return false;
        out = v == static_cast<unsigned long long>(LLONG_MAX) + 1 ? LLONG_MIN : -static_cast<long long>(v);
    } else {
        if (v > static_cast<unsigned long long>(LLONG_MAX))
            return false;
        out = static_cast<long long>(v);
    }
    return true;
}

std::string encode_command(const std::vector<std::string_view>& args) {
    std::string out;
    append_array_header(out, args.size());
    for (std::string_view a : args)
        append_bulk(out, a);
    return out;
}

} // namespace reprise::resp
