// The recorder: encodes every input and output on the loop thread; a writer thread writes sealed chunks.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include "reprise/record/chunk.hpp"
#include "reprise/record/trace.hpp"
#include "reprise/record/trace_state.hpp"
#include "reprise/runtime/internal/journal.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace reprise::detail {

/// When the recorder calls fsync(2).
enum class FsyncPolicy : std::uint8_t { never, every_chunk, at_end };

struct RecorderConfig {
    std::string path;
    trace::Header header;
    FsyncPolicy fsync = FsyncPolicy::never;
    /// Memory for sealed chunks not yet written; past it the loop waits (lossless).
    std::size_t buffer_bytes_max = 64 * 1024 * 1024;
    /// Start a new segment file (path.0, path.1, ...) past this size; 0: one file.
    std::uint64_t segment_bytes = 0;
    /// Record written bytes in full, not only their length and digest.
    bool full_outputs = false;
    /// Compress chunks (zstd, on the writer thread).
    bool compress = true;
    /// Seal every chunk with this key (nullopt: stored in the clear).
    std::optional<trace::TraceKey> key;
    /// A chunk is sealed at the first tick this long after its first record, so a
    /// killed process loses at most this much.
    std::int64_t seal_interval_ns = 50'000'000;
    /// Retention of the pattern's earlier runs when this one starts (--record-keep,
    /// --record-keep-bytes; 0: no limit). Runs that crashed, exited non-zero, were cut off or
    /// are still being written are kept whatever the limits.
    std::uint64_t keep_runs = 0;
    std::uint64_t keep_bytes = 0;
    /// This run's budget of stored bytes, all segments (--record-max-bytes; 0: none). Within
    /// keep_bytes, a run also stops at the room its kept predecessors leave.
    std::uint64_t max_bytes = 0;
};

/// A trace path pattern expanded: %p the pid, %t the start time (UTC, 20261130T151000Z), %n the
/// node, %c `counter`, %% a percent sign (Recorder::open refuses any other escape).
std::string expand_trace_path(std::string_view pattern, std::string_view node, std::int64_t start_wall_ns, long pid,
                              std::uint64_t counter);

class Recorder final : public Journal {
public:
    /// Creates the trace file (and its missing folders, 0700), locks it, writes its header and
    /// applies retention to the pattern's earlier runs. Null with a message on failure; null with
    /// `unrecorded` set (and the message) when the runs kept whatever the budget leave no room:
    /// the program then runs unrecorded.
    static std::unique_ptr<Recorder> open(RecorderConfig config, std::string& error, bool& unrecorded);
    ~Recorder() override;

    void tick(std::int64_t mono_ns, std::int64_t wall_ns) override;
    void wakeup(const Wakeup& w, std::string_view data) override;
    void accepted(const Wakeup& w, std::uint64_t connection) override;
    void annotation(const trace::Annotation& a) override;
    std::size_t output_left(std::uint64_t connection, std::size_t left) override;
    void offload_done(const Wakeup& w, std::string_view data, OffloadState& request) override;
    std::string input(trace::InputKind kind, std::string_view name,
                      const std::function<std::string()>& produce) override;
    void output(trace::OutputKind kind, std::uint64_t handle, std::string_view bytes) override;
    void secret(std::string_view name, std::string_view bytes) override;
    /// A secret recorded with the given `input secret` value (a re-recording keeps the salt
    /// of the trace it replays, so that both traces hold the same record).
    void record_secret(std::string_view name, std::string_view bytes, std::string_view value);
    /// An output written in full (`full`) or as length and digest, whatever the config says.
    void output_bytes(trace::OutputKind kind, std::uint64_t handle, std::string_view bytes, bool full);
    /// Whether this recording was asked to keep every written byte (--record-full).
    bool full_outputs() const noexcept { return config_.full_outputs; }
    void spawn(std::uint64_t id, std::string_view name) override;
    void end(int exit_code) override;
    void cut_off() override;
    bool replaying() const noexcept override { return false; }
    void idle(std::int64_t mono_ns) override;
    std::int64_t seal_deadline_ns() const noexcept override {
        return chunk_first_mono_ns_ < 0 ? -1 : chunk_first_mono_ns_ + config_.seal_interval_ns;
    }
    [[noreturn]] void diverge(std::string_view, std::string_view) override;

    std::uint64_t records() const noexcept { return records_; }
    /// Bytes of chunks written so far, as stored (framed, compressed, sealed).
    std::uint64_t stored_bytes() const noexcept { return stored_bytes_.load(); }
    /// Set when a write failed: the trace on disk stops at a chunk boundary and the
    /// recorder writes nothing more.
    bool failed() const noexcept { return failed_.load(); }
    /// The file the run's name expanded to (the trace, or the name of its segments).
    const std::string& path() const noexcept { return config_.path; }

private:
    /// A sealed payload, not yet framed and written, and the number of records in the
    /// trace up to the end of it (the writer reports where a failed trace stops).
    struct Sealed {
        std::string payload;
        std::uint64_t records_through = 0;
    };

    explicit Recorder(RecorderConfig config);
    bool open_file(std::string& error);
    int open_errno_ = 0;                  ///< why the last open_file() failed
    void committed();              ///< after each complete record
    void seal();                   ///< frames the chunk and queues it for the writer
    void finish_writing();         ///< seals the last chunk and waits for the writer to write it all
    /// After the writer stopped: closes the file, writes the outcome file, releases the lock.
    void close_recording(trace::Outcome::Ended ended, int exit_code, int signal) noexcept;
    trace::Outcome::Recording recording_state() const noexcept;
    void writer_main();
    void write_sealed(const Sealed& chunk, bool compress);
    void stop_writing(std::string_view what);
    std::string file_path() const;  ///< the file being written: the trace, or its current segment
    bool write_all(int fd, std::string_view bytes) noexcept;
    static void crash_flush(void* self) noexcept;
    void crash_flush_records() noexcept;  ///< the records encoded since the last chunk, written from a fault

    RecorderConfig config_;
    trace::Encoder encoder_;
    std::size_t committed_bytes_ = 0;     ///< encoder bytes that end on a record boundary
    std::int64_t chunk_first_mono_ns_ = -1;
    std::int64_t now_mono_ns_ = 0;
    std::uint64_t records_ = 0;
    bool ended_ = false;
    std::vector<std::string> secrets_;    ///< read_secret()'s, in order: redacted from every read recorded
    std::string redacted_;                ///< a redacted read's data (reused)

    std::mutex mutex_;
    std::condition_variable work_;        ///< writer: chunks to write, or stop
    std::condition_variable space_;       ///< loop: room in the buffer again
    std::deque<Sealed> chunks_;
    std::size_t queued_bytes_ = 0;
    bool stopping_ = false;
    std::atomic<std::size_t> chunks_unwritten_{0};
    std::atomic<int> fd_{-1};
    /// The first file, open (and flock'ed) for the whole recording: tools tell "being written"
    /// from "cut off" by its lock. -1 for a device.
    int lock_fd_ = -1;
    bool special_ = false;                ///< writing a device or pipe: no lock, no outcome file
    std::string outcome_path_, outcome_tmp_path_;  ///< built at open: the crash path does not allocate
    std::uint64_t budget_bytes_ = 0;      ///< 0: none
    std::string budget_why_;              ///< which flag set it
    std::atomic<bool> budget_hit_{false};
    std::uint64_t header_bytes_ = 0;      ///< of the first file's header (a segment's is as large)
    std::atomic<std::uint64_t> total_bytes_{0};  ///< of every file written (headers included)
    std::atomic<bool> failed_{false};
    /// Set once the crash path wrote its last chunk (or found nothing to write): a second call
    /// writes nothing. Not a failure: the trace is complete up to the crash.
    std::atomic<bool> crash_flushed_{false};
    std::uint64_t file_bytes_ = 0;        ///< writer thread only: bytes of complete chunks in the current file
    std::uint64_t file_header_bytes_ = 0; ///< writer thread only: of the current file's header
    std::uint64_t records_written_ = 0;   ///< writer thread only: records in complete chunks on disk
    std::uint32_t segment_ = 0;           ///< writer thread only
    /// Seals chunks for the file being written (bound to its header). Replaced only by
    /// the writer between chunks; the crash path uses it once the writer is idle.
    std::unique_ptr<trace::ChunkSealer> sealer_;
    std::atomic<std::uint64_t> chunk_index_{0};  ///< the next chunk's index in the whole trace
    std::string framed_;                  ///< writer thread only: the chunk being written
    std::atomic<std::uint64_t> stored_bytes_{0};
    std::thread writer_;
};

} // namespace reprise::detail
