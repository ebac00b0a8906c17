// The trace format: header, chunks and records — one type per record, its encoding and decoding side by side.
#pragma once

#include "reprise/io/address.hpp"
#include "reprise/runtime/events.hpp"
#include "reprise/runtime/result.hpp"

#include <array>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace reprise {
class JsonWriter;
}

namespace reprise::trace {

/// Bumped on every change of the format; a reader refuses any other version.
/// 3: one type per record (accepted, connected, annotation), XXH3-64 digests, program
/// identity in the header, chunk envelope (compressed, encrypted).
/// 4: secrets (input kind 8, `secret`) and redacted reads (a bytes_read value is the size of
/// a redaction trailer).
inline constexpr std::uint32_t format_version = 4;
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

/// Annotations stay small: they are milestones, not logs.
inline constexpr std::size_t annotation_fields_max = 8;
inline constexpr std::size_t annotation_name_bytes_max = 64;
inline constexpr std::size_t annotation_text_bytes_max = 256;

using reprise::InputKind;
using reprise::OutputKind;
using reprise::WakeKind;
using reprise::input_kind_name;
using reprise::output_kind_name;
using reprise::wake_kind_name;

/// What the trace says about the program that wrote it.
struct Header {
    std::string node;
    std::string program;             ///< the program's name (its entry's); "same program" means this
    std::vector<std::string> argv;   ///< argv[0] as given, then the program's own arguments
    std::string executable;          ///< the executable, resolved (/proc/self/exe)
    std::string working_directory;   ///< where it ran (a relative argv[0] or path is relative to it)
    std::uint64_t seed = 0;
    std::int64_t start_mono_ns = 0;
    std::int64_t start_wall_ns = 0;
    std::string runtime_version;
    std::string build_id;            ///< of the recorded binary (GNU build-id, hex)
    std::uint32_t segment = 0;       ///< index of this file in a segmented trace
    bool encrypted = false;          ///< every chunk is sealed (the tools then need the key)
};

/// A record's kind: its first field on disk, and its index + 1 in `Record`.
enum class RecordKind : std::uint8_t {
    tick = 1,        ///< a loop tick's monotonic and wall time
    wake = 2,        ///< a wake-up delivered through the gate (not accepted / connected)
    input = 3,       ///< a synchronous input a task asked for
    output = 4,      ///< bytes the program sent to the world (length + digest, or in full)
    spawn = 5,       ///< a task started (a checkpoint of the program's own order)
    end = 6,         ///< the program ended; the trace is complete
    accepted = 7,    ///< a listener accepted a connection, and the id it got
    connected = 8,   ///< an outbound connect finished
    annotation = 9,  ///< a milestone the program wrote (not checked by replay)
};
inline constexpr std::uint8_t record_kind_last = 9;
const char* record_kind_name(RecordKind k) noexcept;

// --- the records ------------------------------------------------------------------
// Decoded records point into the reader's chunk (no allocation): see Reader::next
// for how long they stay valid, and RecordCopy to keep one longer.

struct Tick {
    std::int64_t mono_ns = 0;  ///< absolute (the encoding is a delta from the previous tick)
    std::int64_t wall_ns = 0;
    friend bool operator==(const Tick&, const Tick&) = default;
};

struct Wake {
    WakeKind wake = WakeKind::timer_fired;  ///< never accepted or connected: those have their own records
    std::uint64_t handle = 0;               ///< 0 for signals
    std::int64_t value = 0;                 ///< errno (io_error), signal number (signal), bytes_read: a redaction trailer's size (else 0)
    std::string_view data;                  ///< bytes_read: the bytes; offload_done: the result
    friend bool operator==(const Wake&, const Wake&) = default;
};

struct Accepted {
    std::uint64_t listener = 0;
    std::uint64_t connection = 0;  ///< the id the gate gave the new connection
    Address peer;
    Address local;
    friend bool operator==(const Accepted&, const Accepted&) = default;
};

struct Connected {
    std::uint64_t connection = 0;
    std::int64_t error = 0;  ///< 0, or the connect's errno
    Address peer;            ///< when error == 0
    Address local;
    friend bool operator==(const Connected&, const Connected&) = default;
};

struct Input {
    InputKind input = InputKind::precise_clock;
    std::string_view name;
    std::string_view value;
    friend bool operator==(const Input&, const Input&) = default;
};

struct Output {
    OutputKind output = OutputKind::conn_write;
    std::uint64_t handle = 0;
    std::uint64_t length = 0;  ///< conn_write: bytes written; exit: the exit code
    std::uint64_t digest = 0;  ///< XXH3-64 of the bytes
    std::string_view bytes;    ///< every byte, when recorded in full (--record-full); else empty
    friend bool operator==(const Output&, const Output&) = default;
};

struct Spawn {
    std::uint64_t task = 0;
    std::string_view name;
    friend bool operator==(const Spawn&, const Spawn&) = default;
};

/// An end record's exit code saying the recording stopped while the program still ran (the
/// recorder was destroyed first: a simulation's time was over). Replay stops there cleanly.
inline constexpr std::int64_t exit_code_still_running = -1;

struct End {
    std::int64_t exit_code = 0;
    friend bool operator==(const End&, const End&) = default;
};

/// One field of an annotation: an integer or a text.
struct AnnotationField {
    std::string_view key;
    bool is_text = false;
    std::int64_t number = 0;
    std::string_view text;
    friend bool operator==(const AnnotationField&, const AnnotationField&) = default;
};

struct Annotation {
    std::string_view name;
    std::uint8_t count = 0;
    std::array<AnnotationField, annotation_fields_max> fields{};
    friend bool operator==(const Annotation&, const Annotation&) = default;
};

/// One record: the alternative's index is the kind - 1.
using Record = std::variant<Tick, Wake, Input, Output, Spawn, End, Accepted, Connected, Annotation>;
static_assert(std::variant_size_v<Record> == record_kind_last);

inline RecordKind kind_of(const Record& r) noexcept { return static_cast<RecordKind>(r.index() + 1); }
template <class T>
bool is(const Record& r) noexcept { return std::holds_alternative<T>(r); }

/// Why a record is not valid (nullopt when it is): checked before encoding (an
/// assertion: the runtime's bug) and after decoding (damage: a message).
std::optional<std::string> check(const Record& r);

/// A record with its own copy of the bytes it points to. Assigning reuses the copy's
/// memory, so keeping the last record of a hot loop does not allocate.
class RecordCopy {
public:
    RecordCopy() = default;
    RecordCopy(const RecordCopy& o) { assign(o.record_); }
    RecordCopy& operator=(const RecordCopy& o) {
        if (this != &o)
            assign(o.record_);
        return *this;
    }
    explicit RecordCopy(const Record& r) { assign(r); }
    void assign(const Record& r);
    const Record& get() const noexcept { return record_; }

private:
    Record record_;
    std::string storage_;
};

// --- secrets (io/secret.hpp): what a trace keeps of them -------------------------------
// A secret is recorded as an `input secret` record whose value is a random salt followed by
// BLAKE2b-256 of the secret keyed with that salt. A bytes_read wake-up whose data held a secret
// (or a piece of one at either end of the read) is recorded redacted: its `value` is the size
// of a trailer at the end of its data; the data before the trailer are the bytes read with each
// redacted byte replaced by '*'; the trailer lists the spans, 16 bytes each (little-endian
// u32s: offset, length, the secret's index in the order the program read its secrets, offset
// in that secret). Replay puts the secret's bytes back, so the program reads what it read.

inline constexpr std::size_t secret_salt_bytes = 16;
inline constexpr std::size_t secret_digest_bytes = 32;
inline constexpr std::size_t secret_value_bytes = secret_salt_bytes + secret_digest_bytes;
inline constexpr std::size_t redaction_bytes = 16;
inline constexpr char redaction_fill = '*';

/// The value of an `input secret` record for `secret`, with a fresh random salt.
std::string secret_value(std::string_view secret);
/// True when `secret` is the one whose `input secret` record's value is `value`.
bool secret_matches(std::string_view value, std::string_view secret) noexcept;
/// True when `bytes` hold one of `secrets` whole (full outputs holding one are not kept).
bool holds_secret(std::string_view bytes, const std::vector<std::string>& secrets) noexcept;
/// The data of a bytes_read record for `bytes`, redacted: false (and `out` untouched) when no
/// secret or piece of one is there; else `out` is the masked bytes plus the trailer, and
/// `trailer_bytes` the record's value.
bool redact_read(std::string_view bytes, const std::vector<std::string>& secrets, std::string& out,
                 std::int64_t& trailer_bytes);
/// The bytes a redacted bytes_read record stands for, into `out`; the reason when it cannot
/// be restored from `secrets` (a damaged trailer, a secret the program did not supply).
std::optional<std::string> unredact_read(std::string_view data, std::int64_t trailer_bytes,
                                         const std::vector<std::string>& secrets, std::string& out);

/// 64-bit digest of output bytes: XXH3-64 with seed 0, so any xxhash package can
/// check a trace (Python: xxhash.xxh3_64_intdigest(b)).
std::uint64_t digest64(std::string_view bytes) noexcept;

/// Encodes records into one chunk payload; keeps the delta-encoding state of ticks.
class Encoder {
public:
    /// Appends the record (asserting that it is valid).
    void put(const Record& r);
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

/// Decodes one record from the front of `in` (advancing it), in place: the record's
/// bytes point into `in`. `last_mono_ns`/`last_wall_ns` carry the tick deltas and
/// change only for a tick. A message when the bytes are not one valid record.
std::optional<std::string> decode_record(std::string_view& in, std::int64_t& last_mono_ns, std::int64_t& last_wall_ns,
                                         Record& out);

/// What a planner reads of a record, in place, without building the record or checking more
/// than its shape (the replay that reads it afterwards checks all of it): its kind, a tick's
/// wall time, a wake's or an output's kind, handle, value and length, a new connection's ends.
struct Skim {
    RecordKind kind{};
    std::int64_t wall_ns = 0;  ///< tick
    std::uint8_t sub = 0;      ///< wake: its WakeKind; output: its OutputKind
    std::uint64_t handle = 0;  ///< wake, output; accepted, connected: the connection
    std::int64_t value = 0;    ///< wake: its value; connected: its error; end: its exit code
    std::uint64_t length = 0;  ///< wake: its data's length; output: its length
    Address local;             ///< accepted, connected (when it succeeded)
    Address peer;
};

/// Whether a skimmed record is an event a replay delivers: every record but an end saying the
/// program still ran (the node freezes before it).
inline bool delivered_event(const Skim& r) noexcept {
    return r.kind != RecordKind::end || r.value != exit_code_still_running;
}

/// Skims one record from the front of `in` (advancing it), as decode_record() would decode it.
std::optional<std::string> skim_record(std::string_view& in, std::int64_t& last_mono_ns, std::int64_t& last_wall_ns,
                                       Skim& out);

/// The header body (a msgpack map), and the whole header as it starts a file
/// (magic, version, length, crc, body).
std::string encode_header_body(const Header& h);
std::string encode_header(const Header& h);
/// Decodes a header from its body; a message on failure.
std::optional<std::string> decode_header(std::string_view body, Header& out);

struct TraceKey;
class ChunkOpener;

/// Where and why reading stopped early.
struct ReadError {
    std::uint64_t offset = 0;           ///< byte offset of the bad part
    std::uint64_t records_good = 0;     ///< complete records before it
    std::string message;
    std::string path;                   ///< the file `offset` is in (a segment's, when segmented)
};

struct ChunkFrame;

/// Chunks one reader opened, kept for a second reader of the same trace that reads it after the
/// first (a joint replay plans from a first reading of each trace): each chunk is read,
/// checked, decompressed and decrypted once. The first reader adds chunks in order while they
/// fit `max_bytes`; the second takes them, then reads on from the file.
struct ChunkShare {
    struct Chunk {
        std::size_t segment = 0;
        std::uint64_t index = 0;         ///< the chunk's position in the trace (0: the first)
        std::uint64_t offset = 0;        ///< of its frame, in its segment's file
        std::uint32_t stored_bytes = 0;  ///< after the frame
        std::uint8_t flags = 0;
        std::string payload;             ///< the records, opened
    };
    explicit ChunkShare(std::size_t max) : max_bytes(max) {}
    std::size_t max_bytes;
    std::size_t bytes = 0;  ///< payload bytes held
    bool full = false;      ///< a chunk did not fit: later ones are not kept either
    std::deque<Chunk> chunks;
};

/// Reads a trace file (or a set of segment files) as a sequence of records.
/// Treats its input as hostile: every length is bounded, every error is a message.
class Reader {
public:
    /// Opens `path`; when it is a segmented trace (path.0, path.1, ...) reads them in order.
    /// Refuses a directory, and a later segment opened on its own (its times are
    /// deltas from the segment before it). An encrypted trace needs its `key`.
    static Result<Reader> open(const std::string& path, std::string* error_message, const TraceKey* key = nullptr);
    /// The name a trace is known by: NAME for NAME.0, the first segment of a segmented trace
    /// (NAME itself absent), so that segment 0 named alone opens the whole trace, with its
    /// lock and outcome file; else `path` as given.
    static std::string trace_name(const std::string& path);
    /// The header alone (of segment 0), even of a sealed trace without its key: who
    /// recorded it, where, when. Its records cannot be read this way.
    static Result<Header> read_header(const std::string& path, std::string* error_message);
    Reader(Reader&&) noexcept;
    Reader& operator=(Reader&&) noexcept;
    ~Reader();

    const Header& header() const noexcept { return header_; }
    /// The next record, or false at the end (clean or not: see error()). The bytes a
    /// record points to stay valid until the second call to next() after it (the
    /// reader keeps the chunk before the current one), so one record of look-ahead
    /// never invalidates the record before it.
    bool next(Record& out);
    /// The next record skimmed (see Skim), or false at the end, as next(): a planner's pass
    /// over a trace that is replayed after.
    bool skim(Skim& out);
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

    /// From the next chunk on, keeps a copy of each chunk opened in `share` (while it fits).
    void keep_chunks(std::shared_ptr<ChunkShare> share) { keep_to_ = std::move(share); }
    /// Takes the chunks `share` holds instead of reading and opening them again (a reader of
    /// the same trace kept them), then reads on from the file.
    void take_chunks(std::shared_ptr<ChunkShare> share) { take_from_ = std::move(share); }

    /// Path of the file being read (the current segment of a segmented trace).
    const std::string& path() const noexcept { return paths_[segment_]; }
    /// Number of files of the trace (1 unless it is segmented).
    std::size_t segments() const noexcept { return paths_.size(); }
    /// Complete chunks read so far; their bytes as stored (framing included) and as
    /// records (after decompression).
    std::uint64_t chunks_read() const noexcept { return chunks_; }
    std::uint64_t chunk_stored_bytes() const noexcept { return chunk_stored_bytes_; }
    std::uint64_t chunk_payload_bytes() const noexcept { return chunk_payload_bytes_; }
    /// Chunks stored compressed / encrypted.
    std::uint64_t chunks_compressed() const noexcept { return chunks_compressed_; }
    std::uint64_t chunks_encrypted() const noexcept { return chunks_encrypted_; }
    /// Byte offset in the current file just past the last complete chunk read.
    std::uint64_t end_offset() const noexcept { return file_offset_; }

private:
    Reader() = default;
    template <class Out, class Decode>
    bool read_next(Out& out, Decode&& decode);
    bool load_chunk();
    bool take_chunk();
    void keep_chunk(const ChunkFrame& frame);
    bool open_segment(std::size_t index, std::string* error_message);
    std::uint64_t bytes_left_in_file() const;
    bool fail(std::uint64_t offset, std::string message, std::size_t segment);
    bool fail(std::uint64_t offset, std::string message) { return fail(offset, std::move(message), segment_); }

    std::vector<std::string> paths_;
    bool segmented_ = false;         ///< read from PATH.0, PATH.1, ... (PATH itself absent)
    std::size_t segment_ = 0;
    std::FILE* file_ = nullptr;
    Header header_;
    std::unique_ptr<TraceKey> key_;
    std::unique_ptr<ChunkOpener> opener_;  ///< of the current file (bound to its header)
    std::string chunk_;                    ///< the current chunk's records
    std::string previous_chunk_;           ///< the one before it (records may still point into it)
    std::string stored_;                   ///< a chunk as stored, before it is opened
    std::size_t chunk_pos_ = 0;
    bool chunk_is_plain_ = true;           ///< stored as is: a record's offset in the file is known
    std::uint64_t chunk_offset_ = 0;
    std::uint64_t file_offset_ = 0;
    std::uint64_t records_ = 0;
    std::uint64_t chunks_ = 0;
    std::uint64_t chunk_stored_bytes_ = 0;
    std::uint64_t chunk_payload_bytes_ = 0;
    std::uint64_t chunks_compressed_ = 0;
    std::uint64_t chunks_encrypted_ = 0;
    std::int64_t last_mono_ns_ = 0;
    std::int64_t last_wall_ns_ = 0;
    std::optional<ReadError> error_;
    bool saw_end_ = false;
    bool done_ = false;
    bool header_only_ = false;  ///< read_header(): a sealed trace's header opens without its key
    bool any_segment_ = false;  ///< with header_only_: a later segment's header is read too
    /// At the end of the last segment: a later segment of the same recording past a missing one
    /// (a segment lost from the middle), as a damage message; nothing when there is none.
    std::optional<std::string> segment_gap() const;
    std::shared_ptr<ChunkShare> keep_to_;
    std::shared_ptr<ChunkShare> take_from_;
    bool reposition_ = false;  ///< chunks were taken from a share: the file is not at file_offset_
};

/// One line describing a record (for dumps and divergence reports).
std::string describe(const Record& r);

/// Bytes from a trace or a program, safe for a terminal: printable ASCII as is, quote and
/// backslash escaped by a backslash, anything else as \xNN (no quotes around it).
std::string escaped(std::string_view bytes);

/// Writes the record's fields (not the braces around them) as JSON members.
void to_json(const Record& r, JsonWriter& out);
/// The record as a JSON object (one line).
std::string to_json(const Record& r);

} // namespace reprise::trace
