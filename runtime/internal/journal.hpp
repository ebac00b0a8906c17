// Journal: the interface through which recording writes, and replay checks, every input and output.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include "reprise/runtime/events.hpp"
#include "reprise/runtime/internal/wakeup.hpp"

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace reprise::trace {
struct Annotation;  // record/trace.hpp: the journal only passes it on
}

namespace reprise::detail {

struct Fiber;
struct OffloadState;

/// The recorder and the replayer are twins behind this interface (rr's
/// RecordSession/ReplaySession): each hook is called at the one place where the
/// runtime meets that kind of input or output. The recorder writes what happens;
/// the replayer hands back what was recorded and checks what the program does.
class Journal {
public:
    virtual ~Journal() = default;

    /// A tick's time (recorder: written; replayer: its own backend supplied it).
    virtual void tick(std::int64_t mono_ns, std::int64_t wall_ns) = 0;
    /// A wake-up about to be delivered through the gate (every kind but `accepted`).
    virtual void wakeup(const Wakeup& w, std::string_view data) = 0;
    /// A connection accepted on listener `w.handle`, which the gate named `connection`.
    /// Replay: the trace names the id the recorded run gave it; another is a divergence.
    virtual void accepted(const Wakeup& w, std::uint64_t connection) = 0;
    /// A wake-up for a handle that does not exist (closed earlier in its batch): the
    /// gate drops it unseen. Replay: the trace never holds one, so the program differs.
    virtual void unknown_handle(const Wakeup& /*w*/) {}
    /// A wake-up for a handle of another kind than it concerns (a timer's id where a
    /// connection's is due). Replay: the program drew its ids otherwise (a divergence).
    virtual void wrong_handle_kind(const Wakeup& /*w*/) {}
    /// A timer fires at loop time `now_ns` (armed, due at `deadline_ns`). Replay: a
    /// recorded fire of a timer the program disarmed or set later is a divergence.
    virtual void timer_fires(std::uint64_t /*id*/, bool /*armed*/, std::int64_t /*deadline_ns*/,
                             std::int64_t /*now_ns*/) {}
    /// An offloaded job finished: its result is an input. The recorder writes the
    /// job's result; the replayer hands the recorded bytes (`data`) to the request.
    virtual void offload_done(const Wakeup& w, std::string_view data, OffloadState& request) = 0;
    /// A synchronous input: the recorder calls `produce` and writes its result;
    /// the replayer returns the recorded value without calling it.
    virtual std::string input(InputKind kind, std::string_view name,
                              const std::function<std::string()>& produce) = 0;
    /// A secret the program read (read_secret): the recorder writes a salted digest of it, never
    /// its bytes, and from then on redacts it from every read it records; the replayer checks the
    /// secret supplied again against the recorded digest (a wrong one ends the replay) and puts it
    /// back where the trace redacted it. Live (no journal) nothing happens.
    virtual void secret(std::string_view name, std::string_view bytes) = 0;
    /// An input's value does not decode as the type the program asks for. Replay: the
    /// program asks for another type than was recorded (a divergence); else a bug.
    virtual void undecodable_input(std::string_view /*name*/) {}
    /// After the loop flushed a connection, `left` bytes of its output were not taken by
    /// the kernel. Returns what the program sees as unsent: the recorder writes it (when
    /// not 0) and returns it; the replayer returns the recorded value (0 when none).
    virtual std::size_t output_left(std::uint64_t /*connection*/, std::size_t left) { return left; }
    /// Bytes the program sends to the world.
    virtual void output(OutputKind kind, std::uint64_t handle, std::string_view bytes) = 0;
    /// A milestone the program wrote (reprise::annotate). Recorded; replay checks
    /// nothing and skips recorded ones, so a build with one more annotation replays.
    virtual void annotation(const trace::Annotation& /*a*/) {}
    /// A task was spawned (a checkpoint of the program's own order).
    virtual void spawn(std::uint64_t id, std::string_view name) = 0;
    /// The program ended with `exit_code`.
    virtual void end(int exit_code) = 0;
    /// The process dies here (a simulated crash): what is recorded is written, with no end
    /// record, as a killed process's trace is cut off.
    virtual void cut_off() {}
    /// Recording: the monotonic time by which the loop should wake so that
    /// buffered records reach the disk even while the program idles (-1: none).
    virtual std::int64_t seal_deadline_ns() const noexcept { return -1; }
    /// The loop woke and found nothing to deliver (not a tick: nothing observed it).
    virtual void idle(std::int64_t /*mono_ns*/) {}
    /// True in replay: inputs come from the trace and nothing touches the world.
    virtual bool replaying() const noexcept = 0;
    /// Replay only: reports that the program did something other than the trace
    /// says, and ends the process with exit code 3.
    [[noreturn]] virtual void diverge(std::string_view trace_says, std::string_view program_did) = 0;
};

} // namespace reprise::detail
