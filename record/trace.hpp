// The trace format: header, chunks and records — each record's encoding and decoding side by side.
#pragma once

#include "reprise/io/address.hpp"
#include "reprise/runtime/result.hpp"

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reprise::trace {

/// Bumped on every change of the format; a reader refuses any other version.
inline constexpr std::uint32_t format_version = 2;  // 2: four-lane digest64
inline constexpr char magic[8] = {'R', 'E', 'P', 'R', 'I', 'S', 'E', '\n'};

/// Largest chunk payload a writer produces and a reader accepts.
inline constexpr std::uint32_t chunk_bytes_max = 65 * 1024 * 1024;
/// A writer seals its chunk once it holds this much.
inline constexpr std::uint32_t chunk_bytes_target = 64 * 1024;
/// Largest header a reader accepts.
inline constexpr std::uint32_t header_bytes_max = 1024 * 1024;
/// Largest payload of one record (bytes read, an input's value).
/// (An offloaded file read of limits::file_read_bytes_max must fit, with its framing.)
inline constexpr std::uint32_t record_payload_bytes_max = 64 * 1024 * 1024 + 4096;
static_assert(record_payload_bytes_max + 1024 <= chunk_bytes_max, "a record always fits in a chunk");
static_assert(chunk_bytes_target <= chunk_bytes_max);

/// What the trace says about the program that wrote it.
struct Header {
    std::string node;
    std::vector<std::string> argv;
    std::uint64_t seed = 0;
    std::int64_t start_mono_ns = 0;
    std::int64_t start_wall_ns = 0;
    std::string runtime_version;
    std::string build_id;            ///< of the recorded binary (GNU build-id, hex)
    std::uint32_t segment = 0;       ///< index of this file in a segmented trace
};

enum class RecordKind : std::uint8_t {
    tick = 1,    ///< a loop tick's monotonic and wall time
    wake = 2,    ///< a wake-up delivered through the gate
    input = 3,   ///< a synchronous input a task asked for
    output = 4,  ///< bytes the program sent to the world (length + digest)
    spawn = 5,   ///< a task started (a checkpoint of the program's own order)
    end = 6,     ///< the program ended; the trace is complete
};

/// Kinds of synchronous inputs.
enum class InputKind : std::uint8_t {
    precise_clock = 1,  ///< precise_now()
    secure_random = 2,  ///< secure_random(n)
    env = 3,            ///< env(name)
    app = 4,            ///< input(name, produce)
    listen = 5,         ///< the result of listen() (bound address or error)
    connect = 6,        ///< the immediate result of starting a connect
};

enum class OutputKind : std::uint8_t {
    conn_write = 1,  ///< bytes written to a connection
    exit = 2,        ///< the exit code (in `length`)
};

const char* record_kind_name(RecordKind k) noexcept;
const char* input_kind_name(InputKind k) noexcept;
const char* output_kind_name(OutputKind k) noexcept;
/// Wake-up kinds share numbering with the runtime's gate (detail::WakeKind).
const char* wake_kind_name(std::uint8_t k) noexcept;

/// One record, decoded. Fields are used according to `kind`; times are absolute
/// (the encoding is delta-encoded against the previous tick).
struct Record {
    RecordKind kind = RecordKind::tick;
    std::uint8_t sub = 0;          ///< wake: WakeKind; input: InputKind; output: OutputKind
    std::int64_t mono_ns = 0;      ///< tick
    std::int64_t wall_ns = 0;      ///< tick
    std::uint64_t handle = 0;      ///< wake, output: the handle; spawn: the task id
    std::int64_t value = 0;        ///< wake: errno/signal/fd; output: length; end: exit code
    std::uint64_t digest = 0;      ///< output
    std::string data;              ///< wake: bytes read / offload result; input: value; output: full bytes (optional)
    std::string name;              ///< input: name; spawn: task name
    Address peer;                  ///< wake (accepted, connected)
    Address local;
    bool has_addresses = false;
};

/// 64-bit digest of output bytes (stable across machines and builds).
std::uint64_t digest64(std::string_view bytes) noexcept;
/// CRC-32C (Castagnoli) of a chunk's payload.
std::uint32_t crc32c(std::string_view bytes) noexcept;

/// Encodes records into one chunk payload; keeps the delta-encoding state.
class Encoder {
public:
    void tick(std::int64_t mono_ns, std::int64_t wall_ns);
    void wake(std::uint8_t kind, std::uint64_t handle, std::int64_t value, std::string_view data,
              const Address* peer, const Address* local);
    void input(InputKind kind, std::string_view name, std::string_view value);
    void output(OutputKind kind, std::uint64_t handle, std::uint64_t length, std::uint64_t digest,
                std::string_view full_bytes);
    void spawn(std::uint64_t id, std::string_view name);
    void end(std::int64_t exit_code);

    std::string& payload() noexcept { return buf_; }
    /// Sets where deltas start from (the header's start times).
    void set_base(std::int64_t mono_ns, std::int64_t wall_ns) noexcept {
        last_mono_ns_ = mono_ns;
        last_wall_ns_ = wall_ns;
    }

private:
    std::string buf_;
    std::int64_t last_mono_ns_ = 0;
    std::int64_t last_wall_ns_ = 0;
};

/// The file header's bytes (magic, version, length, msgpack map, crc).
std::string encode_header(const Header& h);
/// A chunk's framing: `length, crc32c` followed by the payload.
std::string frame_chunk(std::string_view payload);

/// Where and why reading stopped early.
struct ReadError {
    std::uint64_t offset = 0;           ///< byte offset of the bad part
    std::uint64_t records_good = 0;     ///< complete records before it
    std::string message;
    std::string path;                   ///< the file `offset` is in (a segment's, when segmented)
};

/// Reads a trace file (or a set of segment files) as a sequence of records.
/// Treats its input as hostile: every length is bounded, every error is a message.
class Reader {
public:
    /// Opens `path`; when it is a segmented trace (path.0, path.1, ...) reads them in order.
    /// Refuses a directory, and a later segment opened on its own (its times are
    /// deltas from the segment before it).
    static Result<Reader> open(const std::string& path, std::string* error_message);
    Reader(Reader&&) noexcept;
    Reader& operator=(Reader&&) noexcept;
    ~Reader();

    const Header& header() const noexcept { return header_; }
    /// The next record, or nothing at the end (clean or not: see error()).
    bool next(Record& out);
    /// Set when reading stopped at a damaged or truncated part.
    const std::optional<ReadError>& error() const noexcept { return error_; }
    /// Records returned so far.
    std::uint64_t records_read() const noexcept { return records_; }
    /// Byte offset of the chunk being read (for messages).
    std::uint64_t offset() const noexcept { return chunk_offset_; }
    /// Whether the trace ended with an End record.
    bool saw_end() const noexcept { return saw_end_; }
    /// After the End record: checks that no byte follows it (in its chunk, its file
    /// or a further segment); when one does, sets error() and returns false.
    bool check_nothing_after_end();

    /// Path of the file being read (the current segment of a segmented trace).
    const std::string& path() const noexcept { return paths_[segment_]; }
    /// Number of files of the trace (1 unless it is segmented).
    std::size_t segments() const noexcept { return paths_.size(); }
    /// Complete chunks read so far, and the sum of their payload lengths.
    std::uint64_t chunks_read() const noexcept { return chunks_; }
    std::uint64_t chunk_payload_bytes() const noexcept { return chunk_payload_bytes_; }
    /// Byte offset in the current file just past the last complete chunk read.
    std::uint64_t end_offset() const noexcept { return file_offset_; }

private:
    Reader() = default;
    bool load_chunk();
    bool open_segment(std::size_t index, std::string* error_message);
    std::uint64_t bytes_left_in_file() const;
    bool fail(std::uint64_t offset, std::string message, std::size_t segment);
    bool fail(std::uint64_t offset, std::string message) { return fail(offset, std::move(message), segment_); }

    std::vector<std::string> paths_;
    std::size_t segment_ = 0;
    std::FILE* file_ = nullptr;
    Header header_;
    std::string chunk_;
    std::size_t chunk_pos_ = 0;
    std::uint64_t chunk_offset_ = 0;
    std::uint64_t file_offset_ = 0;
    std::uint64_t records_ = 0;
    std::uint64_t chunks_ = 0;
    std::uint64_t chunk_payload_bytes_ = 0;
    std::int64_t last_mono_ns_ = 0;
    std::int64_t last_wall_ns_ = 0;
    std::optional<ReadError> error_;
    bool saw_end_ = false;
    bool done_ = false;
};

/// Decodes a header from the bytes after the magic; a message on failure.
std::optional<std::string> decode_header(std::string_view bytes, Header& out);

/// One line describing a record (for dumps and divergence reports).
std::string describe(const Record& r);
/// The record as a JSON object (one line).
std::string to_json(const Record& r);

} // namespace reprise::trace
