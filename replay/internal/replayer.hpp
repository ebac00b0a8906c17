// The replayer: the trace as the backend (no sockets, no real clock, time warped) and the journal that checks the program against it.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include "reprise/io/internal/tcp_state.hpp"
#include "reprise/replay/internal/stdio_marker.hpp"
#include "reprise/record/trace.hpp"
#include "reprise/runtime/internal/core.hpp"
#include "reprise/runtime/internal/journal.hpp"

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace reprise::detail {

struct ReplayConfig {
    /// 0: as fast as the program computes (time warped); N: N times the recorded pace.
    std::uint32_t speed = 0;
    /// Raise SIGTRAP just before record N is delivered (0: never).
    std::uint64_t break_at = 0;
    /// --mark-stdio: the program's output lines marked with node, event and virtual time.
    bool mark_stdio = false;
    /// Progress on stderr (only when it is a terminal).
    bool progress = true;
    /// The trace's key when it is sealed: under a debugger the trace is read once more, to count its events.
    std::shared_ptr<const trace::TraceKey> key;
};

/// Exit codes of a replay.
inline constexpr int replay_exit_diverged = 3;
inline constexpr int replay_exit_damaged = 2;
/// --break-at named an event past the trace's end (a usage error: the replay never stopped).
inline constexpr int replay_exit_break_at_past_end = 2;

class Replayer final : public Backend, public Journal {
public:
    Replayer(Runtime::Impl& rt, trace::Reader reader, ReplayConfig config);
    ~Replayer() override;

    // --- Backend: the world, as the trace tells it -------------------------------
    PollResult poll(std::int64_t deadline_ns, WakeBatch& out) override;
    void begin_run(WakeBatch& out) override {
        count_events_for_debugger();
        debug_replay_starts(rt_.debug);
        poll(-1, out);
    }
    void read_clock(std::int64_t& mono_ns, std::int64_t& wall_ns) override;
    std::int64_t precise_clock_ns() override;
    void collect_due_timers(TimerHeap&, std::int64_t, WakeBatch&) override {}
    Result<void> listen(ListenerState&, const Address&) override { return {}; }
    void set_accepting(ListenerState&, bool) override {}
    void close_listener(ListenerState&) override {}
    void adopt(ConnState&, std::int32_t) override {}
    void drop_accepted(std::int32_t) override {}
    Result<void> connect(ConnState&, const Address&) override { return {}; }
    void set_reading(ConnState&, bool) override {}
    void flush(ConnState& conn) override { conn.output.consume(conn.output.size()); }
    void shutdown_write(ConnState&) override {}
    void close(ConnState& conn) override { conn.output.consume(conn.output.size()); }
    void watch_signal(int signo) override;
    void submit_offload(std::shared_ptr<OffloadState>) override {}
    /// Replay runs no offloaded job, so no file step: their results come from the trace.
    std::shared_ptr<FileWorld> file_world() override;

    // --- Journal: the program checked against the trace --------------------------
    void tick(std::int64_t, std::int64_t) override {}
    void wakeup(const Wakeup& w, std::string_view data) override;
    void accepted(const Wakeup& w, std::uint64_t connection) override;
    void unknown_handle(const Wakeup& w) override;
    void wrong_handle_kind(const Wakeup& w) override;
    void timer_fires(std::uint64_t id, bool armed, std::int64_t deadline_ns, std::int64_t now_ns) override;
    void offload_done(const Wakeup& w, std::string_view data, OffloadState& request) override;
    void undecodable_input(std::string_view name) override;
    std::string input(trace::InputKind kind, std::string_view name,
                      const std::function<std::string()>& produce) override;
    void output(trace::OutputKind kind, std::uint64_t handle, std::string_view bytes) override;
    void secret(std::string_view name, std::string_view bytes) override;
    void spawn(std::uint64_t id, std::string_view name) override;
    void end(int exit_code) override;
    std::size_t output_left(std::uint64_t connection, std::size_t left) override;
    bool replaying() const noexcept override { return true; }
    [[noreturn]] void diverge(std::string_view trace_says, std::string_view program_did) override;

    // --- joint replay: several nodes stepped by one driver (replay/joint.cpp) ----------
    /// How a node's replay stands for the driver of a joint replay.
    enum class JointEnd : std::uint8_t {
        running,
        cut,            ///< the trace ends without an end record (kill -9, power cut)
        damaged,        ///< the trace is damaged: replayed up to the damage
        still_running,  ///< the recording stopped while the program ran (a simulation's end)
    };
    /// Joint mode: the end of a cut, damaged or still-running trace freezes this node (its
    /// tasks never run again) instead of ending the process, and connections are counted.
    /// Takes the trace's chunks from `share` (a joint replay's plan read them first).
    void take_chunks(std::shared_ptr<trace::ChunkShare> share) { reader_.take_chunks(std::move(share)); }
    void set_joint(bool on) noexcept {
        joint_ = on;
        config_.progress = config_.progress && !on;  // the driver shows the progress of all
    }
    /// While held, a poll whose next record is a tick delivers nothing: the node stays just
    /// before that tick until the driver lets it go.
    void set_hold(bool on) noexcept { hold_ = on; }
    JointEnd joint_end() const noexcept { return joint_end_; }
    /// A joint replay's end: a debugger stops here (on this node) before the process exits, so that
    /// the session can still look around and go back.
    void stop_at_joint_end(std::string_view text);
    /// Under a debugger, a single replay counts its trace's events first (a joint replay's plan
    /// counts them; one that follows a run order asks, `joint_too`): the debug table's
    /// events_total, so that a goto past the end is refused at once.
    void count_events_for_debugger(bool joint_too = false);
    const trace::Header& header() const noexcept { return reader_.header(); }
    std::uint64_t events() const noexcept { return consumed_; }
    /// The record handed to the program last (valid once an event was consumed).
    const trace::Record& last_event() const noexcept {
        REPRISE_ASSERT(last_good_ != nullptr);
        return *last_good_;
    }

private:
    /// The next record, read ahead; null at the end of the trace.
    const trace::Record* peek();
    void consume();
    /// Counts the event handed over (consume() and the gate's wake-ups alike).
    void handed_over();
    /// The next of this tick's wake-ups is delivered (`data`: its bytes in the batch),
    /// checked by `check(record)` first.
    template <class Check>
    void deliver_pending(std::string_view data, Check&& check);
    /// The trace ran out: a damaged/truncated trace (exit 2) or a program that
    /// goes on past the recorded end (exit 3).
    [[noreturn]] void trace_ran_out(std::string_view program_did);
    /// --break-at (SIGTRAP, or the debugger's stop) and the debugger's targets, before record
    /// `r` is handed to the program.
    void before_event(const trace::Record& r);
    void debug_targets_at(const trace::Record& r, bool held);
    void debug_output_at(std::uint64_t handle, std::string_view bytes);
    void publish_kind_names();
    static void crash_report(void* arg) noexcept;
    /// The replay's virtual time: the current tick's recorded time since the first.
    std::int64_t virtual_ns() const noexcept;
    void pace(std::int64_t tick_mono_ns);
    void report_progress();
    std::string last_good() const;
    /// Marks `r` (read from the trace, or a pending wake-up) the last good event without
    /// copying its bytes; keep_last_good() copies them before they go (see last_good_).
    void set_last_good(const trace::Record& r, bool from_reader) noexcept;
    void keep_last_good();
    void break_at_past_cut();
    void print_summary(const char* how);

    Runtime::Impl& rt_;
    trace::Reader reader_;
    ReplayConfig config_;
    /// Records are read into these two in turn, so that the one before the current stays
    /// whole while the reader keeps its bytes (see last_good_).
    trace::Record read_[2];
    trace::Record* next_ = &read_[0];
    bool have_next_ = false;
    std::uint64_t consumed_ = 0;
    std::int64_t tick_mono_ns_ = 0;
    std::int64_t tick_wall_ns_ = 0;
    std::int64_t first_mono_ns_ = 0;
    std::int64_t wall_start_ns_ = 0;       ///< real monotonic time when replay started
    std::int64_t last_progress_ns_ = 0;
    bool progress_shown_ = false;
    /// The last record consumed (for reports), copied lazily: most are never described, so
    /// it points where the record is (read_, or pending_ and pending_bytes_) until that
    /// would go: before the reader's second next() after it (the slot is read into again
    /// and Reader::next keeps one chunk back), or before the next tick's wake-ups replace
    /// pending_. Then keep_last_good() copies it into last_good_copy_.
    const trace::Record* last_good_ = nullptr;
    enum class LastGood : std::uint8_t { none, in_reader, in_pending, kept };
    LastGood last_good_at_ = LastGood::none;
    std::uint64_t last_good_read_ = 0;     ///< reads_ when last_good_ was read (LastGood::in_reader)
    std::uint64_t reads_ = 0;              ///< calls to reader_.next()
    trace::RecordCopy last_good_copy_;
    std::vector<trace::Record> pending_;   ///< this tick's wake-ups, read but not yet delivered
    std::string pending_bytes_;            ///< their bytes (as in the gate's batch, which goes first)
    std::size_t pending_bytes_at_ = 0;     ///< those of pending_[pending_next_] on
    std::size_t pending_next_ = 0;         ///< the next of them the gate delivers
    std::vector<trace::RecordCopy> deferred_annotations_;  ///< skipped while read ahead of them
    std::vector<std::string> secrets_;     ///< supplied again and checked: restore redacted reads
    std::string unredacted_;               ///< a redacted read, restored (reused)
    std::unique_ptr<StdioMarker> marker_;  ///< --mark-stdio, or null
    /// Joint mode: this node's trace is over without an end the program reached: its tasks
    /// are frozen (a task asking for more parks for good), the driver is told.
    void freeze(JointEnd why, std::string_view program_did);
    std::string_view node_label() const;
    std::string node_prefix() const;
    void say_break_past_end() const;
    bool joint_ = false;
    bool hold_ = false;
    JointEnd joint_end_ = JointEnd::running;
    /// The debugger's output needle: each connection's last needle-length - 1 bytes written.
    std::unordered_map<std::uint64_t, std::string> needle_tails_;
    std::string needle_aim_;  ///< the needle, handle and node the tails were kept for
};

class Recorder;

/// Replay and record at once (`--replay=A --record=B`): the replayer is the world
/// and checks the program; the recorder writes what the program observed, so B
/// holds A's records again, times and payloads alike, under A's header (node, argv,
/// seed, start times). `reprise diff A B` finding nothing is the determinism
/// self-test; a difference is a record that replay feeds or checks differently from
/// how recording writes it.
class Rerecorder final : public Journal {
public:
    Rerecorder(Replayer& replayer, std::unique_ptr<Recorder> recorder);
    ~Rerecorder() override;

    void tick(std::int64_t mono_ns, std::int64_t wall_ns) override;
    void wakeup(const Wakeup& w, std::string_view data) override;
    void accepted(const Wakeup& w, std::uint64_t connection) override;
    void annotation(const trace::Annotation& a) override;
    void unknown_handle(const Wakeup& w) override;
    void wrong_handle_kind(const Wakeup& w) override { replayer_.wrong_handle_kind(w); }
    void timer_fires(std::uint64_t id, bool armed, std::int64_t deadline_ns, std::int64_t now_ns) override;
    void offload_done(const Wakeup& w, std::string_view data, OffloadState& request) override;
    void undecodable_input(std::string_view name) override { replayer_.undecodable_input(name); }
    std::string input(trace::InputKind kind, std::string_view name,
                      const std::function<std::string()>& produce) override;
    void secret(std::string_view name, std::string_view bytes) override;
    void output(trace::OutputKind kind, std::uint64_t handle, std::string_view bytes) override;
    void spawn(std::uint64_t id, std::string_view name) override;
    void end(int exit_code) override;
    std::size_t output_left(std::uint64_t connection, std::size_t left) override;
    std::int64_t seal_deadline_ns() const noexcept override;
    void idle(std::int64_t mono_ns) override;
    bool replaying() const noexcept override { return true; }
    [[noreturn]] void diverge(std::string_view trace_says, std::string_view program_did) override;

private:
    Replayer& replayer_;
    std::unique_ptr<Recorder> recorder_;
};

} // namespace reprise::detail
