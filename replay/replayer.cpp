// The replayer: feeds the trace to the runtime as its world and stops at the first divergence.
#include "reprise/replay/internal/replayer.hpp"

#include "reprise/record/trace_state.hpp"

#include "reprise/clock/internal/system_clock.hpp"
#include "reprise/io/file_world.hpp"
#include "reprise/io/internal/offload_state.hpp"
#include "reprise/record/codec.hpp"
#include "reprise/record/internal/recorder.hpp"
#include "reprise/runtime/internal/stack.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>

namespace reprise::detail {

Replayer::Replayer(Runtime::Impl& rt, trace::Reader reader, ReplayConfig config)
    : rt_(rt), reader_(std::move(reader)), config_(config) {
    tick_mono_ns_ = first_mono_ns_ = reader_.header().start_mono_ns;
    tick_wall_ns_ = reader_.header().start_wall_ns;
    wall_start_ns_ = last_progress_ns_ = read_monotonic_ns();
    config_.progress = config_.progress && ::isatty(STDERR_FILENO) && !config_.mark_stdio;
    if (config_.mark_stdio)
        marker_ = std::make_unique<StdioMarker>(reader_.header().node);
    // The debugger's view of this replay (the runtime registers it once wired).
    rt_.debug.trace_path = rt_.options.replay_path.c_str();
    rt_.debug.events = &consumed_;
    rt_.debug.tick_mono_ns = &tick_mono_ns_;
    rt_.debug.first_mono_ns = &first_mono_ns_;
    rt_.debug.replaying = 1;
    rt_.debug.start_wall_ns = reader_.header().start_wall_ns;
    publish_kind_names();
    add_crash_hook(&Replayer::crash_report, this);
}

Replayer::~Replayer() { remove_crash_hook(&Replayer::crash_report, this); }

// The program dies of a signal during the replay (a recorded crash replays to the same
// event): say where, in the trace's terms, without allocating.
void Replayer::crash_report(void* arg) noexcept {
    auto* self = static_cast<Replayer*>(arg);
    const std::int64_t vt_ms = std::max<std::int64_t>(0, (self->tick_mono_ns_ - self->first_mono_ns_) / 1'000'000);
    if (current_runtime_or_null() == &self->rt_) {
        crash_write("reprise: replay: the program dies of signal ");
        crash_write_u64(static_cast<std::uint64_t>(crash_signal()));
        crash_write(" at event ");
    } else {
        // Another node of a joint replay: where this one stood.
        crash_write("reprise: replay: (the process dies of signal ");
        crash_write_u64(static_cast<std::uint64_t>(crash_signal()));
        crash_write(") this node was after event ");
    }
    crash_write_u64(self->consumed_ == 0 ? 0 : self->consumed_ - 1);
    crash_write(" of node '");
    crash_write(self->rt_.debug.node != nullptr ? self->rt_.debug.node : "?");
    crash_write("', virtual time ");
    crash_write_u64(static_cast<std::uint64_t>(vt_ms / 1000));
    crash_write(".");
    const auto ms = static_cast<std::uint64_t>(vt_ms % 1000);
    crash_write(ms < 10 ? "00" : ms < 100 ? "0" : "");
    crash_write_u64(ms);
    crash_write(" s (the last event delivered; --break-at=N stops before event N)\n");
}

// Annotations are skipped (and counted, so event numbers match the trace's): replay
// checks none, so a build that writes one more or one less still replays.
const trace::Record* Replayer::peek() {
    while (!have_next_) {
        // This read may drop the chunk the last good event points into.
        if (last_good_at_ == LastGood::in_reader && reads_ != last_good_read_) [[unlikely]]
            keep_last_good();
        next_ = &read_[++reads_ % 2];
        if (!reader_.next(*next_))
            return nullptr;
        if (!trace::is<trace::Annotation>(*next_)) {
            have_next_ = true;
            break;
        }
        // Read ahead of this tick's undelivered wake-ups, it is numbered after them (a task
        // wrote it, so it came after their delivery); --break-at may name it.
        if (pending_next_ < pending_.size()) {
            deferred_annotations_.emplace_back(*next_);
        } else {
            before_event(*next_);
            ++consumed_;
        }
    }
    return next_;
}

void Replayer::freeze(JointEnd why, std::string_view program_did) {
    if (joint_end_ == JointEnd::running) {
        joint_end_ = why;
        rt_.debug.state = reprise_node_frozen;
        const char* what = why == JointEnd::cut       ? "the trace ends without an end record (the process was killed "
                                                        "or lost power)"
                           : why == JointEnd::damaged ? "the trace is damaged"
                                                      : "the recording stopped while the program still ran";
        print_summary("stopped");
        const std::string_view node = node_label();
        fmt::print(stderr, "reprise: node '{}': {} at event {}, while the program {}: this node is replayed to what "
                           "exists and stops there\n",
                   node, what, consumed_, program_did);
        std::fflush(stderr);
        // A debugger aiming at this node (a goto, a --break-at past its end) stops here: the
        // others would otherwise run on to their ends.
        const bool break_past = config_.break_at != 0 && config_.break_at >= consumed_;
        if (break_past)
            say_break_past_end();
        if ((reprise_debug.stop_node >= 0 && debug_targets(rt_.debug)) || break_past)
            debug_stop(reprise_stop_end, rt_.debug, consumed_, virtual_ns(),
                       fmt::format("node '{}' ends here, after its last event #{}: {}{}", node,
                                   consumed_ == 0 ? 0 : consumed_ - 1, what,
                                   break_past ? " (the --break-at was past it)" : ""));
    }
    // A task asking for more than the trace holds waits for good: the node is frozen.
    if (rt_.current != nullptr)
        for (;;)
            rt_.park(Deadline::never(), false);
}

void Replayer::consume() {
    REPRISE_ASSERT(have_next_);
    set_last_good(*next_, true);
    have_next_ = false;
    handed_over();
    if (config_.progress)
        report_progress();
}

// The next event is handed to the program (or checked against it): --mark-stdio's lines
// printed since the last one belong to that one.
void Replayer::handed_over() {
    if (marker_)
        marker_->begin_event(consumed_, tick_mono_ns_ - first_mono_ns_);
    ++consumed_;
}

// The names the debug table gives the debugger for the record and wake-up kinds.
void Replayer::publish_kind_names() {
    static const auto names = [] {
        struct Names {
            std::array<const char*, trace::record_kind_last + 1> records{};
            std::array<const char*, wake_kind_last + 1> wakes{};
        } n;
        n.records[0] = n.wakes[0] = "";
        for (std::uint8_t k = 1; k <= trace::record_kind_last; ++k)
            n.records[k] = trace::record_kind_name(static_cast<trace::RecordKind>(k));
        for (std::uint8_t k = 1; k <= wake_kind_last; ++k)
            n.wakes[k] = trace::wake_kind_name(static_cast<WakeKind>(k));
        return n;
    }();
    reprise_debug.record_kind_names = names.records.data();
    reprise_debug.record_kind_count = static_cast<std::uint32_t>(names.records.size());
    reprise_debug.wake_kind_names = names.wakes.data();
    reprise_debug.wake_kind_count = static_cast<std::uint32_t>(names.wakes.size());
}

std::int64_t Replayer::virtual_ns() const noexcept { return tick_mono_ns_ - first_mono_ns_; }

// Called before each record is handed to the program: --break-at and the debugger's
// targets stop here, one byte tested per event when none is armed.
void Replayer::before_event(const trace::Record& r) {
    bool held = false;  // a debugger stopped here for --break-at already
    if (config_.break_at != 0 && consumed_ == config_.break_at) [[unlikely]] {
        const std::string what = trace::describe(r);
        held = debug_stop(reprise_stop_break_at, rt_.debug, consumed_, virtual_ns(), what);
        if (!held) {
            const std::string says =
                fmt::format("reprise: {}break at event {} ({}): raising SIGTRAP\n", node_prefix(), consumed_, what);
            if (marker_) {
                marker_->say(says);
            } else {
                fmt::print(stderr, "{}", says);
                std::fflush(stderr);
            }
            ::raise(SIGTRAP);
        }
    }
    if (debug_armed()) [[unlikely]]
        debug_targets_at(r, held);
}

// The debugger's targets for this record: an event number, a kind (and handle), a checkpoint.
// `held`: the debugger stopped at this record already (--break-at); only a target of this very
// event still stops, so that a `next KIND` from that stop finds the next such event, not this one.
void Replayer::debug_targets_at(const trace::Record& r, bool held) {
    if (!debug_targets(rt_.debug))
        return;
    if (reprise_debug.stop_event == consumed_) {
        debug_stop(reprise_stop_event, rt_.debug, consumed_, virtual_ns(), trace::describe(r));
        return;
    }
    if (held)
        return;
    if (const std::uint32_t kinds = reprise_debug.stop_kinds; kinds != 0) {
        const auto kind = static_cast<std::uint32_t>(r.index() + 1);
        std::uint32_t bit = 1u << kind;
        std::uint64_t handle = 0;
        if (const auto* w = std::get_if<trace::Wake>(&r)) {
            bit |= 1u << (16 + static_cast<std::uint32_t>(w->wake));
            handle = w->handle;
        } else if (const auto* a = std::get_if<trace::Accepted>(&r)) {
            bit |= 1u << (16 + static_cast<std::uint32_t>(WakeKind::accepted));
            handle = a->listener;
        } else if (const auto* c = std::get_if<trace::Connected>(&r)) {
            bit |= 1u << (16 + static_cast<std::uint32_t>(WakeKind::connected));
            handle = c->connection;
        } else if (const auto* o = std::get_if<trace::Output>(&r)) {
            handle = o->handle;
        }
        const std::uint64_t want = reprise_debug.stop_handle;
        if ((kinds & bit) != 0 && (want == 0 || want == handle)) {
            debug_stop(reprise_stop_kind, rt_.debug, consumed_, virtual_ns(), trace::describe(r), handle);
            return;
        }
    }
    if (const std::uint64_t every = reprise_debug.checkpoint_every; every != 0 && consumed_ != 0 && consumed_ % every == 0)
        debug_stop(reprise_stop_checkpoint, rt_.debug, consumed_, virtual_ns(), trace::describe(r));
}

// A write about to be checked: does the debugger's needle end in it? The needle may start in
// an earlier write of the connection (the last needle-length bytes of each are kept).
void Replayer::debug_output_at(std::uint64_t handle, std::string_view bytes) {
    const std::uint32_t asked = reprise_debug.output_needle_bytes;
    const std::uint32_t n = std::min<std::uint32_t>(asked, sizeof reprise_debug.output_needle);
    const std::uint64_t want = reprise_debug.stop_handle;
    if (n == 0 || (want != 0 && want != handle) || !debug_targets(rt_.debug))
        return;
    const std::string_view needle(const_cast<const char*>(reprise_debug.output_needle), n);
    // Tails kept for another needle, handle or node (or before a disarm) could join with this one.
    std::string aim(needle);
    aim += fmt::format("|{}|{}", want, reprise_debug.stop_node);
    if (aim != needle_aim_) {
        needle_tails_.clear();
        needle_aim_ = std::move(aim);
    }
    std::string& tail = needle_tails_[handle];
    std::string window = tail;
    window.append(bytes);
    const bool found = window.find(needle) != std::string::npos;
    tail = window.size() >= n ? window.substr(window.size() - (n - 1)) : window;
    if (found)
        debug_stop(reprise_stop_output, rt_.debug, consumed_, virtual_ns(),
                   fmt::format("connection {} wrote \"{}\" (event {})", handle, trace::escaped(needle), consumed_), handle);
}

void Replayer::trace_ran_out(std::string_view program_did) {
    if (joint_ && rt_.current != nullptr && !(reader_.saw_end() && !reader_.error())) {
        freeze(reader_.error() ? JointEnd::damaged : JointEnd::cut, program_did);
        __builtin_unreachable();  // freeze() parks this task for good
    }
    if (reader_.error()) {
        const trace::ReadError& e = *reader_.error();
        print_summary("stopped");
        fmt::print(stderr,
                   "reprise: replay stops: the trace is damaged at byte offset {}: {}\n"
                   "  last good event: #{} {}\n",
                   e.offset, e.message, consumed_ == 0 ? 0 : consumed_ - 1, last_good());
        std::fflush(stderr);
        // Under the debugger the process stops here first: the last events can still be looked at.
        break_at_past_cut();
        debug_stop(reprise_stop_end, rt_.debug, consumed_, virtual_ns(),
                   fmt::format("the trace is damaged here, after its last good event #{}: {}",
                               consumed_ == 0 ? 0 : consumed_ - 1, e.message));
        std::_Exit(replay_exit_damaged);
    }
    if (!reader_.saw_end()) {
        print_summary("stopped");
        fmt::print(stderr,
                   "reprise: replay stops: the trace ends at event {} without an end record ({}), while the "
                   "program {}\n  last good event: #{} {}\n",
                   consumed_, trace::describe_cut(rt_.options.replay_path), program_did, consumed_ == 0 ? 0 : consumed_ - 1, last_good());
        std::fflush(stderr);
        // Under the debugger the process stops here first (a node killed with kill -9 is the one to look at).
        break_at_past_cut();
        debug_stop(reprise_stop_end, rt_.debug, consumed_, virtual_ns(),
                   fmt::format("the trace ends here, after its last event #{}, without an end record (cut off), while "
                               "the program {}",
                               consumed_ == 0 ? 0 : consumed_ - 1, program_did));
        std::_Exit(replay_exit_damaged);
    }
    diverge("the trace has ended (the recorded program exited)", program_did);
}

// --break-at past a cut or damaged trace's end: said, beside the exit code the damage gives (2).
void Replayer::break_at_past_cut() {
    if (config_.break_at == 0 || config_.break_at < consumed_)
        return;
    fmt::print(stderr, "reprise: error: --break-at {} is past what the trace holds: it has {} events, #0 to #{}\n",
               config_.break_at, consumed_, consumed_ == 0 ? 0 : consumed_ - 1);
    std::fflush(stderr);
}

std::string Replayer::last_good() const {
    return last_good_ != nullptr ? trace::describe(*last_good_) : "(none)";
}

void Replayer::set_last_good(const trace::Record& r, bool from_reader) noexcept {
    last_good_ = &r;
    last_good_at_ = from_reader ? LastGood::in_reader : LastGood::in_pending;
    last_good_read_ = reads_;
}

void Replayer::keep_last_good() {
    REPRISE_ASSERT(last_good_at_ == LastGood::in_reader || last_good_at_ == LastGood::in_pending);
    last_good_copy_.assign(*last_good_);
    last_good_ = &last_good_copy_.get();
    last_good_at_ = LastGood::kept;
}

void Replayer::diverge(std::string_view trace_says, std::string_view program_did) {
    std::fflush(stdout);  // _Exit flushes nothing: what the program printed must not be lost
    if (marker_)
        marker_->finish();  // the report is the replay's, not the program's
    Fiber* f = rt_.current;
    double vt = static_cast<double>(tick_mono_ns_ - first_mono_ns_) / 1e9;
    const std::string report = fmt::format(
        "reprise: DIVERGENCE at event {} (node '{}', virtual time {:.6f} s)\n"
        "  trace says:  {}\n"
        "  program did: {}\n"
        "  task:        {}\n",
        consumed_, reader_.header().node, vt, trace_says, program_did,
        f ? fmt::format("'{}' (id {})", f->name, f->id) : std::string("the loop (delivering wake-ups)"));
    fmt::print(stderr, "{}", report);
    std::fflush(stderr);
    // Under the debugger, the process stops here, in the task that differs, before it exits.
    debug_stop(reprise_stop_divergence, rt_.debug, consumed_, virtual_ns(), report);
    // A driver of several runtimes learns which node diverged and stops the others.
    if (rt_.options.on_divergence)
        rt_.options.on_divergence(report);
    std::_Exit(replay_exit_diverged);
}

// --- Backend -------------------------------------------------------------------------

PollResult Replayer::poll(std::int64_t, WakeBatch& batch) {
    const trace::Record* r = peek();
    if (joint_) {
        // A frozen node, or one held before its next tick, delivers nothing.
        if (joint_end_ != JointEnd::running || (hold_ && r != nullptr && trace::is<trace::Tick>(*r)))
            return {};
        if (r == nullptr && !(reader_.saw_end() && !reader_.error())) {
            freeze(reader_.error() ? JointEnd::damaged : JointEnd::cut, "waits for the world (for a tick)");
            return {};
        }
        if (const auto* end = r ? std::get_if<trace::End>(r) : nullptr; end && end->exit_code == trace::exit_code_still_running) {
            freeze(JointEnd::still_running, "waits for the world");
            return {};
        }
    }
    if (r == nullptr)
        trace_ran_out("waits for the world (for a tick)");
    if (const auto* end = std::get_if<trace::End>(r)) {
        if (end->exit_code == trace::exit_code_still_running) {
            // The recording stopped while the program ran (a simulation's time was over):
            // everything recorded was replayed, and the program waits for more, as it did.
            print_summary("done");
            fmt::print(stderr,
                       "reprise: the recording stops at event {} while the program still ran (not an exit): "
                       "everything recorded was replayed\n",
                       consumed_);
            std::fflush(stderr);
            debug_stop(reprise_stop_end, rt_.debug, consumed_, virtual_ns(),
                       fmt::format("the trace's end, after its last event #{}: the recording stopped while the "
                                   "program still ran",
                                   consumed_ == 0 ? 0 : consumed_ - 1));
            if (config_.break_at >= consumed_) {
                fmt::print(stderr, "reprise: error: --break-at {} is past the trace's end: it has {} events, #0 to #{}\n",
                           config_.break_at, consumed_, consumed_ == 0 ? 0 : consumed_ - 1);
                std::fflush(stderr);
                std::_Exit(replay_exit_break_at_past_end);
            }
            std::_Exit(0);
        }
        diverge(trace::describe(*r), "goes on: it waits for the world where the recorded program ended");
    }
    const auto* tick = std::get_if<trace::Tick>(r);
    if (tick == nullptr)
        diverge(trace::describe(*r), "waits for the world: it did less than was recorded before the next tick");
    before_event(*next_);
    tick_mono_ns_ = tick->mono_ns;
    tick_wall_ns_ = tick->wall_ns;
    consume();
    if (config_.speed != 0)
        pace(tick_mono_ns_);
    // The tick's wake-ups follow it. Each is consumed when the gate delivers it (see
    // wakeup()), so that event numbers and --break-at match delivery; its bytes are
    // copied to the batch and to pending_bytes_, which outlives the batch until the next
    // tick, so that the last good event can point there.
    if (last_good_at_ == LastGood::in_pending) [[unlikely]]
        keep_last_good();
    pending_.clear();
    pending_bytes_.clear();
    pending_bytes_at_ = 0;
    pending_next_ = 0;
    while ((r = peek()) != nullptr) {
        Wakeup w{};
        if (const auto* wake = std::get_if<trace::Wake>(r)) {
            w = Wakeup{.kind = wake->wake, .handle = wake->handle, .value = static_cast<std::int32_t>(wake->value)};
            std::string_view data = wake->data;
            trace::Wake kept = *wake;
            if (wake->wake == WakeKind::bytes_read && wake->value != 0) {
                // A read the recorder redacted: the secrets supplied again put it back.
                if (auto why = trace::unredact_read(data, wake->value, secrets_, unredacted_))
                    diverge(trace::describe(*r), fmt::format("cannot restore the bytes read: {}", *why));
                data = unredacted_;
                kept.value = 0;
                w.value = 0;
            }
            w.data_offset = static_cast<std::uint32_t>(batch.bytes.size());
            w.data_bytes = static_cast<std::uint32_t>(data.size());
            batch.bytes += data;
            kept.data = {};  // in pending_bytes_, pointed to when delivered
            pending_bytes_ += data;
            pending_.push_back(kept);
        } else if (const auto* acc = std::get_if<trace::Accepted>(r)) {
            w = Wakeup{.kind = WakeKind::accepted, .handle = acc->listener, .peer = acc->peer, .local = acc->local};
            pending_.push_back(*acc);
        } else if (const auto* con = std::get_if<trace::Connected>(r)) {
            w = Wakeup{.kind = WakeKind::connected, .handle = con->connection, .value = static_cast<std::int32_t>(con->error),
                       .peer = con->peer, .local = con->local};
            pending_.push_back(*con);
        } else {
            break;
        }
        batch.items.push_back(w);
        have_next_ = false;
    }
    return {};
}

// A signal the program waits for arrives from the trace; one really sent to the
// replaying process (the program raising it itself, as it did when recorded) must not
// end it, so it is ignored. SIGINT and SIGTERM keep their default: they stop a replay.
void Replayer::watch_signal(int signo) {
    if (signo == SIGINT || signo == SIGTERM)
        return;
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(signo, &ignore, nullptr);
}

std::shared_ptr<FileWorld> Replayer::file_world() {
    // Jobs are never run in replay; a world that refuses every step proves it.
    class NoFiles final : public FileWorld {
        [[noreturn]] static void refuse() {
            assert_fail("no file step in replay", __FILE__, __LINE__, "a file step ran during a replay");
        }
        Result<FileToken> open(const std::string&, OpenMode) override { refuse(); }
        void close(FileToken) noexcept override {}
        Result<std::string> read(FileToken, std::uint64_t, std::size_t) override { refuse(); }
        Result<void> write(FileToken, std::uint64_t, std::string_view) override { refuse(); }
        Result<void> append(FileToken, std::string_view) override { refuse(); }
        Result<void> sync(FileToken) override { refuse(); }
        Result<std::uint64_t> size(FileToken) override { refuse(); }
        Result<void> truncate(FileToken, std::uint64_t) override { refuse(); }
        Result<void> rename(const std::string&, const std::string&) override { refuse(); }
        Result<void> unlink(const std::string&) override { refuse(); }
        Result<void> sync_directory(const std::string&) override { refuse(); }
        Result<bool> exists(const std::string&) override { refuse(); }
        Result<void> make_directories(const std::string&) override { refuse(); }
    };
    static const std::shared_ptr<FileWorld> none = std::make_shared<NoFiles>();
    return none;
}

void Replayer::read_clock(std::int64_t& mono_ns, std::int64_t& wall_ns) {
    mono_ns = tick_mono_ns_;
    wall_ns = tick_wall_ns_;
}

std::int64_t Replayer::precise_clock_ns() {
    // precise_now() is an input: replay answers it from the trace, never from here.
    return tick_mono_ns_;
}

void Replayer::pace(std::int64_t tick_mono_ns) {
    std::int64_t due = wall_start_ns_ + (tick_mono_ns - first_mono_ns_) / static_cast<std::int64_t>(config_.speed);
    if (due > read_monotonic_ns()) {
        ++rt_.stats.clock_waits;
        sleep_until_monotonic_ns(due);
    }
}

// --- Journal ---------------------------------------------------------------------------

void Replayer::unknown_handle(const Wakeup& w) {
    diverge(fmt::format("wake {} for handle {}", wake_kind_name(w.kind), w.handle),
            "has no such handle (never created, or already closed)");
}

void Replayer::wrong_handle_kind(const Wakeup& w) {
    diverge(fmt::format("wake {} for handle {}", wake_kind_name(w.kind), w.handle),
            fmt::format("has handle {} as another kind of handle (it drew its ids otherwise)", w.handle));
}

void Replayer::timer_fires(std::uint64_t id, bool armed, std::int64_t deadline_ns, std::int64_t now_ns) {
    if (!armed || deadline_ns > now_ns)
        diverge(fmt::format("wake timer_fired: timer {} fires at this tick", id),
                armed ? fmt::format("armed timer {} to fire {} ns later than that", id, deadline_ns - now_ns)
                      : fmt::format("has timer {} disarmed", id));
}

void Replayer::undecodable_input(std::string_view name) {
    diverge(fmt::format("input \"{}\" with a value of another type", name),
            fmt::format("asked for input \"{}\" as a different type", name));
}

void Replayer::offload_done(const Wakeup& w, std::string_view data, OffloadState& request) {
    if (!request.set_result(data))
        diverge(fmt::format("offload {} result of {} bytes", request.id, data.size()),
                "expects a result of another type (the recorded bytes do not decode)");
    wakeup(w, data);
}

// The gate delivers the next of this tick's wake-ups: it is the next event. `check`
// runs after --break-at's stop and before the event counts as consumed, so that a
// divergence it reports names this event.
template <class Check>
void Replayer::deliver_pending(std::string_view data, Check&& check) {
    REPRISE_ASSERT(pending_next_ < pending_.size());
    trace::Record& r = pending_[pending_next_++];
    if (auto* wake = std::get_if<trace::Wake>(&r)) {
        // The batch's bytes, as pending_bytes_ holds them in the same order; those outlive
        // the batch, so that the last good event can point to them.
        REPRISE_ASSERT(pending_bytes_at_ + data.size() <= pending_bytes_.size());
        wake->data = std::string_view(pending_bytes_).substr(pending_bytes_at_, data.size());
        pending_bytes_at_ += data.size();
    }
    before_event(r);
    check(r);
    set_last_good(r, false);
    handed_over();
    if (pending_next_ == pending_.size()) {
        for (const trace::RecordCopy& a : deferred_annotations_) {
            before_event(a.get());
            ++consumed_;
        }
        deferred_annotations_.clear();
    }
}

void Replayer::wakeup(const Wakeup&, std::string_view data) {
    deliver_pending(data, [](const trace::Record&) {});
}

void Replayer::accepted(const Wakeup&, std::uint64_t connection) {
    deliver_pending({}, [&](const trace::Record& r) {
        const auto& a = std::get<trace::Accepted>(r);
        if (a.connection != connection)
            diverge(trace::describe(r), fmt::format("accepted a connection it named {}", connection));
    });
}

std::string Replayer::input(trace::InputKind kind, std::string_view name, const std::function<std::string()>&) {
    const trace::Record* r = peek();
    std::string asked = fmt::format("input {} name=\"{}\"", trace::input_kind_name(kind), name);
    if (r == nullptr)
        trace_ran_out(fmt::format("asks for an {}", asked));
    const auto* in = std::get_if<trace::Input>(r);
    if (in == nullptr || in->input != kind || in->name != name)
        diverge(trace::describe(*r), fmt::format("asked for an {}", asked));
    before_event(*next_);
    std::string value(in->value);
    consume();
    return value;
}

// The secret supplied again must be the one recorded: a wrong one would put other bytes where
// the trace redacted it, so the replay refuses it here, naming the secret, never showing it.
void Replayer::secret(std::string_view name, std::string_view bytes) {
    const trace::Record* r = peek();
    const std::string asked = fmt::format("input secret name=\"{}\"", name);
    if (r == nullptr)
        trace_ran_out(fmt::format("reads the {}", asked));
    const auto* in = std::get_if<trace::Input>(r);
    if (in == nullptr || in->input != trace::InputKind::secret || in->name != name)
        diverge(trace::describe(*r), fmt::format("asked for an {}", asked));
    if (!trace::secret_matches(in->value, bytes))
        diverge(trace::describe(*r),
                fmt::format("supplied a secret \"{}\" that does not match the recorded digest: replay needs the secret "
                            "the recording ran with (the file the program names, or REPRISE_SECRET_FILE_<NAME>)",
                            name));
    before_event(*next_);
    consume();
    secrets_.emplace_back(bytes);
}

namespace {

constexpr std::size_t report_bytes_max = 64;  ///< of the program's bytes in a divergence report
constexpr std::size_t report_context_bytes = 16;  ///< each side of a first difference

// Bytes for a report: printable ASCII as is, the rest escaped; every secret the replay holds masked.
std::string report_bytes(std::string_view bytes, const std::vector<std::string>& secrets) {
    std::string masked(bytes);
    for (const std::string& secret : secrets)
        for (std::size_t at = masked.find(secret); !secret.empty() && at != std::string::npos;
             at = masked.find(secret, at + secret.size()))
            masked.replace(at, secret.size(), secret.size(), trace::redaction_fill);
    return fmt::format("\"{}\"", trace::escaped(masked));
}

} // namespace

void Replayer::output(trace::OutputKind kind, std::uint64_t handle, std::string_view bytes) {
    const trace::Record* r = peek();
    std::uint64_t digest = trace::digest64(bytes);
    // What the program sent, for a report: its first bytes (secrets masked) and, when the trace
    // holds the recorded bytes (--record-full), where they first differ, with both sides.
    auto did = [&] {
        std::string s = fmt::format("output {} handle={} length={} digest={:016x} {}", trace::output_kind_name(kind),
                                    handle, bytes.size(), digest,
                                    report_bytes(bytes.substr(0, report_bytes_max), secrets_));
        if (bytes.size() > report_bytes_max)
            s += fmt::format("[{} more bytes]", bytes.size() - report_bytes_max);
        const auto* rec = r ? std::get_if<trace::Output>(r) : nullptr;
        if (rec != nullptr && rec->output == kind && rec->handle == handle && !rec->bytes.empty()) {
            const std::string_view was = rec->bytes;
            std::size_t at = 0;
            while (at < was.size() && at < bytes.size() && was[at] == bytes[at])
                ++at;
            const std::size_t from = at > report_context_bytes ? at - report_context_bytes : 0;
            s += fmt::format("\n  first difference at byte {} of the write:\n    recorded: {}\n    program:  {}", at,
                             report_bytes(was.substr(from, at - from + report_context_bytes), secrets_),
                             report_bytes(bytes.substr(from, at - from + report_context_bytes), secrets_));
        }
        return s;
    };
    if (r == nullptr)
        trace_ran_out(fmt::format("sends {}", did()));
    const auto* out = std::get_if<trace::Output>(r);
    if (out == nullptr || out->output != kind || out->handle != handle || out->length != bytes.size() ||
        out->digest != digest)
        diverge(trace::describe(*r), did());
    before_event(*next_);
    if (debug_armed() && kind == trace::OutputKind::conn_write) [[unlikely]]
        debug_output_at(handle, bytes);
    consume();
}

// The flush of a connection left what the recording's kernel left: the next record says
// so when it was not 0 (a flush comes after the tick's tasks ran, before the next tick).
std::size_t Replayer::output_left(std::uint64_t connection, std::size_t) {
    const trace::Record* r = peek();
    const auto* in = r ? std::get_if<trace::Input>(r) : nullptr;
    if (in == nullptr || in->input != trace::InputKind::output_left || in->name != std::to_string(connection))
        return 0;
    auto left = decode_value<std::uint64_t>(in->value);
    if (!left)
        diverge(trace::describe(*r), "expects the bytes a flush left as a number");
    before_event(*next_);
    consume();
    return static_cast<std::size_t>(*left);
}

void Replayer::spawn(std::uint64_t id, std::string_view name) {
    const trace::Record* r = peek();
    auto did = [&] { return fmt::format("spawn task={} name=\"{}\"", id, name); };
    if (r == nullptr) {
        if (joint_ && rt_.current == nullptr) {
            // Joint mode, from the loop (main's spawn at start): the node freezes; main parks at once.
            freeze(reader_.error() ? JointEnd::damaged : JointEnd::cut, did());
            return;
        }
        trace_ran_out(did());
    }
    const auto* sp = std::get_if<trace::Spawn>(r);
    if (sp == nullptr || sp->task != id || sp->name != name)
        diverge(trace::describe(*r), did());
    before_event(*next_);
    consume();
}

void Replayer::end(int exit_code) {
    const trace::Record* r = peek();
    auto did = fmt::format("ended with exit code {}", exit_code);
    if (r == nullptr) {
        if (joint_) {
            // Called from the loop: the node freezes at its trace's end; the others go on.
            freeze(reader_.error() ? JointEnd::damaged : JointEnd::cut, did);
            return;
        }
        trace_ran_out(did);
    }
    const auto* end = std::get_if<trace::End>(r);
    if (end == nullptr || end->exit_code != exit_code)
        diverge(trace::describe(*r), did);
    before_event(*next_);
    consume();
    print_summary("done");
    fmt::print(stderr, "reprise: {}no divergence: every input was fed and every output matched the trace\n",
               node_prefix());
    if (config_.break_at >= consumed_ && !joint_) {
        // Asked to stop where the trace has no event: an error, not a run that looks fine (a joint
        // replay says so in its report, once every node is done).
        fmt::print(stderr,
                   "reprise: error: --break-at {} is past the trace's end: it has {} events, #0 to #{}; the replay "
                   "ran to the end without stopping\n",
                   config_.break_at, consumed_, consumed_ - 1);
        std::fflush(stderr);
        debug_stop(reprise_stop_end, rt_.debug, consumed_, virtual_ns(),
                   fmt::format("the trace's end, after its last event #{} (the --break-at was past it)", consumed_ - 1));
        std::_Exit(replay_exit_break_at_past_end);
    }
    std::fflush(stderr);
    if (joint_ && config_.break_at != 0 && config_.break_at >= consumed_) {
        say_break_past_end();
        debug_stop(reprise_stop_end, rt_.debug, consumed_, virtual_ns(),
                   fmt::format("the trace's end, after its last event #{} (the --break-at was past it)", consumed_ - 1));
        return;
    }
    // In a joint replay a node's end is no place to stop at unless the debugger aims at that node.
    if (!joint_ || (reprise_debug.stop_node >= 0 && debug_targets(rt_.debug)))
        debug_stop(reprise_stop_end, rt_.debug, consumed_, virtual_ns(),
                   fmt::format("the trace's end, after its last event #{}: the program ended with exit code {}, as "
                               "recorded",
                               consumed_ - 1, exit_code));
}

void Replayer::count_events_for_debugger(bool joint_too) {
    if ((joint_ && !joint_too) || rt_.debug.events_total != 0 || !debugger_expected())
        return;
    std::string error;
    auto reader = trace::Reader::open(rt_.options.replay_path, &error, config_.key.get());
    if (!reader.ok())
        return;  // the replay reads it and reports; the count stays unknown (0)
    std::uint64_t events = 0;
    trace::Skim r;
    while (reader->skim(r))
        if (trace::delivered_event(r))
            ++events;
    rt_.debug.events_total = events;
}

void Replayer::stop_at_joint_end(std::string_view text) {
    debug_stop(reprise_stop_end, rt_.debug, consumed_, virtual_ns(), text);
}

void Replayer::report_progress() {
    if ((consumed_ & 1023) != 0)
        return;
    std::int64_t t = read_monotonic_ns();
    if (t - last_progress_ns_ < 500'000'000)
        return;
    last_progress_ns_ = t;
    progress_shown_ = true;
    fmt::print(stderr, "\rreplay: {} events, virtual time {:.3f} s   ", consumed_,
               static_cast<double>(tick_mono_ns_ - first_mono_ns_) / 1e9);
}

// The node's label in a joint replay (NAME/K for a node recorded several times).
std::string_view Replayer::node_label() const {
    return rt_.debug.node != nullptr ? std::string_view(rt_.debug.node) : std::string_view(reader_.header().node);
}

// In a joint replay, what a line says of one node names it: `node 'n2': `.
std::string Replayer::node_prefix() const { return joint_ ? fmt::format("node '{}': ", node_label()) : std::string(); }

// A joint node's --break-at past its end, said where the node ends (under a debugger the session
// stops there); the joint replay's report says it again once every node is done, with its exit code.
void Replayer::say_break_past_end() const {
    fmt::print(stderr, "reprise: error: --break-at {}:{} is past that node's end: it has {} events, #0 to #{}\n",
               node_label(), config_.break_at, consumed_, consumed_ == 0 ? 0 : consumed_ - 1);
    std::fflush(stderr);
}

void Replayer::print_summary(const char* how) {
    std::fflush(stdout);  // some ends _Exit, which flushes nothing: the program's lines go out first
    if (marker_)
        marker_->finish();  // every end of a replay passes here
    double wall = static_cast<double>(read_monotonic_ns() - wall_start_ns_) / 1e9;
    double virt = static_cast<double>(tick_mono_ns_ - first_mono_ns_) / 1e9;
    if (progress_shown_)
        fmt::print(stderr, "\n");
    fmt::print(stderr, "reprise: {}replay {}: {} events, virtual time {:.3f} s, wall time {:.3f} s, speed-up {:.1f}x\n",
               node_prefix(), how, consumed_, virt, wall, wall > 0 ? virt / wall : 0.0);
    std::fflush(stderr);
}

// --- Rerecorder: replay checks, the recorder writes ---------------------------------------
// Each hook lets the replayer check (and feed) first: on a divergence it ends the
// process before the recorder writes the record the program got wrong.

Rerecorder::Rerecorder(Replayer& replayer, std::unique_ptr<Recorder> recorder)
    : replayer_(replayer), recorder_(std::move(recorder)) {
    REPRISE_ASSERT(recorder_ != nullptr);
}

Rerecorder::~Rerecorder() = default;

void Rerecorder::tick(std::int64_t mono_ns, std::int64_t wall_ns) {
    replayer_.tick(mono_ns, wall_ns);
    recorder_->tick(mono_ns, wall_ns);
}

void Rerecorder::wakeup(const Wakeup& w, std::string_view data) {
    replayer_.wakeup(w, data);
    recorder_->wakeup(w, data);
}

void Rerecorder::accepted(const Wakeup& w, std::uint64_t connection) {
    replayer_.accepted(w, connection);
    recorder_->accepted(w, connection);
}

void Rerecorder::annotation(const trace::Annotation& a) { recorder_->annotation(a); }

void Rerecorder::unknown_handle(const Wakeup& w) { replayer_.unknown_handle(w); }

void Rerecorder::timer_fires(std::uint64_t id, bool armed, std::int64_t deadline_ns, std::int64_t now_ns) {
    replayer_.timer_fires(id, armed, deadline_ns, now_ns);
}

void Rerecorder::offload_done(const Wakeup& w, std::string_view data, OffloadState& request) {
    replayer_.offload_done(w, data, request);
    recorder_->wakeup(w, data);
}

std::string Rerecorder::input(trace::InputKind kind, std::string_view name, const std::function<std::string()>& produce) {
    std::string value = replayer_.input(kind, name, produce);
    return recorder_->input(kind, name, [&] { return value; });
}

void Rerecorder::secret(std::string_view name, std::string_view bytes) {
    replayer_.secret(name, bytes);
    recorder_->record_secret(name, bytes, std::get<trace::Input>(replayer_.last_event()).value);
}

void Rerecorder::output(trace::OutputKind kind, std::uint64_t handle, std::string_view bytes) {
    replayer_.output(kind, handle, bytes);
    // Written in full when the replayed trace has it in full (--record-full at recording), or
    // when this re-recording asks for it: digests in production, every byte on the laptop.
    const auto& replayed = std::get<trace::Output>(replayer_.last_event());
    recorder_->output_bytes(kind, handle, bytes, recorder_->full_outputs() || !replayed.bytes.empty());
}

std::size_t Rerecorder::output_left(std::uint64_t connection, std::size_t left) {
    return recorder_->output_left(connection, replayer_.output_left(connection, left));
}

void Rerecorder::spawn(std::uint64_t id, std::string_view name) {
    replayer_.spawn(id, name);
    recorder_->spawn(id, name);
}

void Rerecorder::end(int exit_code) {
    replayer_.end(exit_code);
    recorder_->end(exit_code);
}

std::int64_t Rerecorder::seal_deadline_ns() const noexcept { return recorder_->seal_deadline_ns(); }

void Rerecorder::idle(std::int64_t mono_ns) { recorder_->idle(mono_ns); }

void Rerecorder::diverge(std::string_view trace_says, std::string_view program_did) {
    replayer_.diverge(trace_says, program_did);
}

} // namespace reprise::detail
