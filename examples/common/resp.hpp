// RESP2 (the Redis protocol): a pure request parser and reply writers, shared by the example servers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace reprise::resp {

/// Bounds on one request. A request past a bound is a protocol error (the server
/// answers `-ERR Protocol error: ...` and closes that connection).
struct Limits {
    /// One bulk string (a key or a value). Redis allows 512 MiB; 8 MiB holds any
    /// sane value while keeping a hostile client's cost per connection small.
    std::size_t max_bulk_bytes = 8 * 1024 * 1024;
    /// Elements of one multibulk (Redis's own bound for clients, 1024 * 1024).
    std::size_t max_args = 1024 * 1024;
    /// One inline command line, and the length of a `*N` / `$N` header line before
    /// its CRLF (Redis's PROTO_INLINE_MAX_SIZE, 64 KiB).
    std::size_t max_inline_bytes = 64 * 1024;
};

enum class Status { complete, incomplete, error };

/// Outcome of one parse.
struct Parsed {
    Status status = Status::incomplete;
    /// Bytes of input this command used (complete only). A complete request may
    /// hold no arguments (an empty inline line, `*0`, `*-1`): skip those bytes.
    std::size_t consumed = 0;
    /// For Status::error: the text after "-ERR ", e.g. "Protocol error: invalid bulk length".
    std::string error;
    /// For Status::incomplete: a lower bound on the input size (counted from the
    /// same front) before a new parse can get further. A caller that re-parses only
    /// once it holds `needed` bytes never pays twice for the bytes of a big bulk:
    /// a 1 MiB value arriving in 1 KiB pieces is parsed once, when it is all there.
    std::size_t needed = 0;
};

/// Parses one request (a RESP array of bulk strings, or an inline command line) from
/// the front of `input`. On complete, `args` holds views into `input` (or into
/// `*scratch`, see below). Never reads past `input`; any input is safe. A pure
/// function of its arguments.
///
/// Inline commands split like Redis's sdssplitargs: on whitespace, with "double"
/// (backslash escapes \n \r \t \b \a \xHH) and 'single' quotes. An argument that
/// needs decoding (an escape, or a quote inside a word) cannot be a view into
/// `input`: it is decoded into `*scratch` (cleared and reserved once, so views into
/// it stay valid until the next call). Without a scratch string such a line is an
/// error ("Protocol error: unsupported escape in inline request").
Parsed parse_command(std::string_view input, std::vector<std::string_view>& args, const Limits& limits = Limits{},
                     std::string* scratch = nullptr);

/// An incremental parser for a connection: the same results as parse_command, but
/// a request that arrives in pieces is parsed in time linear in its size overall
/// (it resumes where the last call stopped instead of starting over).
/// Contract: after an incomplete result, the next call's `input` starts at the same
/// byte (it may live at another address: only offsets are kept) and holds at least
/// the bytes given before. After complete or error the parser is ready for the next
/// request (the caller drops `consumed` bytes, or closes the connection on error).
class Parser {
public:
    explicit Parser(const Limits& limits = Limits{}) : limits_(limits) {}
    Parsed parse(std::string_view input, std::vector<std::string_view>& args);
    void reset() noexcept;
    const Limits& limits() const noexcept { return limits_; }

    /// Where the last incomplete parse stopped (internal state, public for the parser's helpers).
    struct Resume {
        std::size_t pos = 0;        ///< bytes accepted so far (headers and whole bulks)
        long long count = -1;       ///< multibulk count once its header is read
        std::size_t scanned = 0;    ///< inline: bytes already searched for the newline
    };

private:
    Limits limits_;
    Resume resume_;
    std::vector<std::pair<std::size_t, std::size_t>> spans_;  ///< offset, length of args parsed so far
    std::string scratch_;
};

// Reply writers, appending to `out`.
/// +s\r\n (s must hold no CR or LF).
void append_simple(std::string& out, std::string_view s);
/// -s\r\n; s includes the prefix word, e.g. "ERR syntax error". CR and LF in s
/// become spaces, as Redis does, so a reply can never be split by its text.
void append_error(std::string& out, std::string_view s);
/// :v\r\n
void append_integer(std::string& out, long long v);
/// $n\r\n...\r\n
void append_bulk(std::string& out, std::string_view s);
/// $-1\r\n (the null bulk string).
void append_null(std::string& out);
/// *-1\r\n (the null array).
void append_null_array(std::string& out);
/// *n\r\n
void append_array_header(std::string& out, std::size_t n);

/// Parses a whole signed decimal integer the way Redis's string2ll does: optional
/// '-', no '+', no leading zeros, no spaces, within long long. False otherwise.
bool parse_integer(std::string_view s, long long& out) noexcept;

/// Builds one request as a RESP array of bulk strings (for clients and tests).
std::string encode_command(const std::vector<std::string_view>& args);

} // namespace reprise::resp
