// The inside of a Runtime: fibers, the scheduler, the handle table, the backend and the gate.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include "reprise/runtime/internal/debug_table.hpp"
#include "reprise/runtime/internal/handle.hpp"
#include "reprise/runtime/internal/handle_table.hpp"
#include "reprise/runtime/internal/journal.hpp"
#include "reprise/runtime/internal/prng.hpp"
#include "reprise/runtime/internal/stack.hpp"
#include "reprise/runtime/internal/timers.hpp"
#include "reprise/runtime/internal/wakeup.hpp"
#include "reprise/runtime/limits.hpp"
#include "reprise/runtime/runtime.hpp"
#include "reprise/runtime/task.hpp"
#include "reprise/runtime/wait_list.hpp"

#include <boost/context/detail/fcontext.hpp>

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace reprise {
class FileWorld;
}

namespace reprise::detail {

namespace ctx = boost::context::detail;

enum class FiberState : std::uint8_t { ready, running, parked, done };

/// Thrown out of a blocking call of a task that ignores its cancellation while the simulator
/// unwinds its crashed node (Runtime::Impl::unwinding): it ends the task.
struct TaskUnwound {};

/// Why a parked fiber runs again.
enum class WakeReason : std::uint8_t { signaled, timed_out, cancelled };

struct Fiber {
    Runtime::Impl* rt = nullptr;
    std::uint64_t id = 0;
    std::string name;
    FiberState state = FiberState::ready;
    ctx::fcontext_t context = nullptr;
    Stack stack;
    RunningFiberInfo running_info;
    UniqueFunction body;
    std::shared_ptr<TaskCore> task;

    Fiber* ready_next = nullptr;     ///< ready queue link
    Fiber* all_prev = nullptr;       ///< the runtime's list of live fibers, in spawn order
    Fiber* all_next = nullptr;
    Fiber* wait_prev = nullptr;      ///< WaitList links
    Fiber* wait_next = nullptr;
    WaitList* waiting_on = nullptr;

    std::uint64_t park_seq = 0;      ///< bumped at each park; stale timeouts are ignored
    std::int64_t park_deadline_ns = -1;  ///< while parked: the loop time the wait ends at (-1: none)
    WakeReason wake_reason = WakeReason::signaled;
    bool cancel_requested = false;
    std::uint32_t cancelled_returns = 0;  ///< blocking calls that returned cancelled (see Impl::unwinding)
    bool park_cancellable = true;    ///< false while parked in wait_uncancellable()
    void* asan_fake_stack = nullptr;
    void* tsan_fiber = nullptr;      ///< TSan's state of this fiber (TSan builds only)

    /// WaitList access for the scheduler (WaitList's links are private to it).
    static void unlink_from_wait_list(Fiber* f) noexcept {
        if (f->waiting_on)
            f->waiting_on->remove(f);
    }
};

/// A FIFO of ready fibers, linked through Fiber::ready_next.
class ReadyQueue {
public:
    void push(Fiber* f) noexcept {
        f->ready_next = nullptr;
        if (tail_)
            tail_->ready_next = f;
        else
            head_ = f;
        tail_ = f;
    }
    Fiber* pop() noexcept {
        Fiber* f = head_;
        if (f) {
            head_ = f->ready_next;
            if (!head_)
                tail_ = nullptr;
            f->ready_next = nullptr;
        }
        return f;
    }
    bool empty() const noexcept { return head_ == nullptr; }

private:
    Fiber* head_ = nullptr;
    Fiber* tail_ = nullptr;
};

// Handles of io/ the core only names (io/internal/tcp_state.hpp, offload_state.hpp).
struct ConnState;
struct ListenerState;
struct OffloadState;
class OffloadPool;

/// What a backend's poll saw besides its wake-ups.
struct PollResult {
    bool could_wake = true;       ///< false: nothing is registered that could ever produce a wake-up
    bool waited_on_clock = false; ///< it blocked waiting for the world (RuntimeStats::clock_waits)
};

/// Where the world comes from. Backends are twins (live and replay; simulation next):
/// the scheduler and the application do not know which one runs. A backend returns
/// what happened as wake-ups in the batch its poll fills; the runtime delivers them
/// through its gate. It keeps what arrives between polls (a live backend on a loop
/// shared with other runtimes sees their events too) until its own next poll.
class Backend {
public:
    virtual ~Backend() = default;

    /// Waits for the world until the monotonic `deadline_ns` (-1: no limit; a past
    /// deadline or wake-ups already held: do not wait) and appends what it saw to
    /// `out` (empty when called).
    virtual PollResult poll(std::int64_t deadline_ns, WakeBatch& out) = 0;
    /// A run starts: its first tick's time is read next. The replay backend takes the
    /// trace's first tick here (and any wake-ups after it, into `out`).
    virtual void begin_run(WakeBatch& /*out*/) {}
    /// The tick's monotonic and wall-clock time, read once per tick.
    virtual void read_clock(std::int64_t& mono_ns, std::int64_t& wall_ns) = 0;
    /// The monotonic clock read now (a synchronous input).
    virtual std::int64_t precise_clock_ns() = 0;
    /// Live: turns timers due at `now_ns` into `timer_fired` wake-ups appended to `out`.
    /// The replay backend takes timer firings from the trace instead.
    virtual void collect_due_timers(TimerHeap& timers, std::int64_t now_ns, WakeBatch& out) = 0;
    /// The monotonic time of an event the backend already holds for its next poll (a
    /// live backend's wake-ups that arrived while another runtime polled the shared
    /// loop: now), or -1.
    virtual std::int64_t next_known_event_ns() const noexcept { return -1; }

    virtual Result<void> listen(ListenerState& listener, const Address& address) = 0;
    virtual void set_accepting(ListenerState& listener, bool accepting) = 0;
    virtual void close_listener(ListenerState& listener) = 0;
    /// Takes over the socket of an `accepted` wake-up (its `value`).
    virtual void adopt(ConnState& conn, std::int32_t accepted_value) = 0;
    /// Releases the socket of an `accepted` wake-up that nobody will take.
    virtual void drop_accepted(std::int32_t accepted_value) = 0;
    /// Starts a connect; its result arrives as a `connected` wake-up.
    virtual Result<void> connect(ConnState& conn, const Address& address) = 0;
    virtual void set_reading(ConnState& conn, bool reading) = 0;
    /// Hands buffered output to the kernel (loop step 2).
    virtual void flush(ConnState& conn) = 0;
    /// Shuts the write side once the output buffered now is sent.
    virtual void shutdown_write(ConnState& conn) = 0;
    /// Takes the socket and the unsent output of a closed connection: the backend
    /// sends what it can (bounded by limits::close_linger_ns) and closes the socket.
    /// Nothing of it is observable by the application any more.
    virtual void close(ConnState& conn) = 0;

    virtual void watch_signal(int signo) = 0;
    /// Runs the request's job off the loop; completion arrives as `offload_done`.
    virtual void submit_offload(std::shared_ptr<OffloadState> request) = 0;
    /// The world file steps act on (offloaded jobs call it on the pool's threads).
    virtual std::shared_ptr<FileWorld> file_world() = 0;

    // Synchronous inputs the world answers (recorded by the journal, taken from the trace in replay).
    /// `n` bytes for secure_random(): the operating system's randomness (live).
    virtual std::string secure_random_bytes(std::size_t n);
    /// The environment variable `name` (live: the process's environment).
    virtual std::optional<std::string> environment(const std::string& name);
};

} // namespace reprise::detail

namespace reprise {
/// Where a simulated runtime's backend comes from (Options::backend_source): sim/'s world.
class BackendSource {
public:
    virtual ~BackendSource() = default;
    /// The backend of `rt`, a node of this world.
    virtual std::unique_ptr<detail::Backend> make_backend(Runtime::Impl& rt) = 0;
};
} // namespace reprise

namespace reprise {
struct ProgramEntry;
}

namespace reprise::detail {

/// Gives a runtime its backend and journal from its Options: live, record, replay, or
/// replay and record again. Defined above the core (replay/modes.cpp), the one place
/// that knows every mode; throws std::runtime_error with a clear message when a trace
/// cannot be read or created.
void wire_modes(Runtime::Impl& rt);

/// Joint replay (replay/joint.cpp): `traces` replayed in one process, one runtime each built
/// from `base`, running `entry` with each trace's recorded arguments, stepped in
/// happens-before order. `break_at` is --break-at's text (NODE:N, or empty). Returns the
/// exit code: 0 when no node diverged, 2 on a bad flag or trace; a divergence exits 3.
int run_joint_replay(const ProgramEntry& entry, const Options& base, const std::vector<std::string>& traces,
                     const std::string& break_at, const std::string& program);

/// A live backend on `world`'s event loop (null: a loop of its own).
std::unique_ptr<Backend> make_live_backend(std::size_t offload_threads, std::shared_ptr<LiveWorld> world,
                                           std::shared_ptr<FileWorld> files);

/// A signal the application waits for.
struct SignalWatch {
    std::uint64_t pending = 0;
    WaitList waiters{WaitKind::signal};
};

} // namespace reprise::detail

namespace reprise {

struct Runtime::Impl {
    explicit Impl(Runtime& owner, Options options);
    ~Impl();

    Runtime& owner;
    Options options;
    std::uint64_t seed;
    detail::Prng prng;

    // --- handles and ids ---------------------------------------------------
    std::uint64_t next_id = 1;
    detail::HandleTable handles;
    std::uint64_t new_id() noexcept { return next_id++; }
    void add_handle(detail::Handle* h);
    void remove_handle(detail::Handle* h) noexcept;
    detail::Handle* find_handle(std::uint64_t id) const noexcept;

    // --- fibers and the scheduler -------------------------------------------
    detail::Fiber* current = nullptr;
    detail::ReadyQueue ready;
    detail::Fiber* all_head = nullptr;   ///< live fibers in spawn order (cancel-all, debugger)
    detail::Fiber* all_tail = nullptr;
    std::uint64_t fibers_alive = 0;
    std::vector<detail::Stack> stack_cache;
    detail::ctx::fcontext_t loop_context = nullptr;
    const void* loop_stack_bottom = nullptr;   ///< the thread's stack, for ASan's fiber annotations
    std::size_t loop_stack_bytes = 0;
    void* loop_asan_fake_stack = nullptr;
    void* loop_tsan_fiber = nullptr;           ///< TSan's state of the thread running the loop
    std::vector<detail::Fiber*> finished;      ///< ended fibers whose stacks the loop frees
    std::shared_ptr<detail::TaskCore> main_task;
    bool running = false;
    bool draining = false;     ///< main returned; every task is being cancelled
    /// The simulator unwinds a crashed node: a task whose blocking calls keep returning
    /// cancelled (a loop that retries on any error) is ended by an exception (TaskUnwound)
    /// once it has had limits::unwind_cancelled_returns_max of them, instead of spinning.
    bool unwinding = false;

    detail::Fiber* spawn(std::shared_ptr<detail::TaskCore> core, UniqueFunction body, std::size_t stack_bytes);
    /// Switches from `from` (null: the loop) to `to` (null: the loop). A finished
    /// `from` is never resumed, so its context is not saved.
    void switch_context(detail::Fiber* from, detail::Fiber* to, bool from_finished);
    /// Leaves the current fiber: straight to the next ready fiber when there is
    /// one (one context switch, not two), else to the loop.
    void suspend();
    /// Runs first after every switch, on the receiving side.
    void finish_switch(detail::ctx::transfer_t back, detail::Fiber* self) noexcept;
    /// Blocks the current fiber until wake(), the deadline or cancellation.
    detail::WakeReason park(Deadline deadline, bool cancellable = true);
    /// Makes a parked fiber ready with `reason`; a no-op for any other fiber.
    void wake(detail::Fiber* f, detail::WakeReason reason) noexcept;
    void cancel(detail::Fiber* f) noexcept;
    void finish_fiber(detail::Fiber* f) noexcept;
    /// The fiber running now; asserts the caller is one (not the loop).
    detail::Fiber* running_fiber(const char* operation) const {
        if (current == nullptr) [[unlikely]]
            not_in_fiber(operation);
        return current;
    }
    [[noreturn]] static void not_in_fiber(const char* operation);

    // --- time ---------------------------------------------------------------
    std::int64_t now_ns = 0;    ///< loop time of the current tick
    std::int64_t wall_ns = 0;   ///< wall time of the current tick
    detail::TimerHeap timers;
    void arm_timer(detail::TimerState* t, std::int64_t deadline_ns);
    void disarm_timer(detail::TimerState* t) noexcept;

    // --- the world ----------------------------------------------------------
    std::unique_ptr<detail::Backend> backend;
    /// Recorder or replayer; null in live mode. The replayer is also the backend.
    detail::Journal* journal = nullptr;
    std::unique_ptr<detail::Journal> recorder;
    std::vector<std::string> recorded_argv;
    /// A synchronous input: through the journal when there is one.
    std::string sync_input(InputKind kind, std::string_view name, const std::function<std::string()>& produce) {
        return journal ? journal->input(kind, name, produce) : produce();
    }
    bool replaying() const noexcept { return journal != nullptr && journal->replaying(); }
    detail::WakeBatch batch;                       ///< this tick's wake-ups
    std::vector<detail::ConnState*> flush_list;    ///< connections with output to flush
    std::map<int, detail::SignalWatch> signals;
    std::size_t offloads_in_flight = 0;
    /// Lets go of the offload requests whose results never reached the loop (io/offload.cpp).
    void drop_unfinished_offloads() noexcept;
    bool stop_requested = false;
    RuntimeStats stats;
    /// This runtime in the debug table (runtime/internal/debug_table.hpp): registered once the
    /// modes are wired, for the runtime's life.
    reprise_debug_runtime debug{};

    // --- the run and its stepping (Runtime::start, step, result) ----------------
    std::function<int()> main_entry;
    std::shared_ptr<detail::TaskState<int>> main_state;
    bool run_ended = false;
    int exit_code = 0;
    int run(std::function<int()> entry);
    void start(std::function<int()> entry);
    bool step(std::int64_t wait_until_ns);
    /// Runs the ready tasks and flushes what they wrote, without polling the world: a joint
    /// replay runs a node's tasks after each tick it lets go. True when the run ended.
    bool run_tasks();
    int result();
    std::int64_t next_event_ns() const noexcept;
    /// One loop iteration: run ready fibers, flush, poll, read the clock, deliver.
    void tick_once(std::int64_t wait_until_ns);
    void run_ready();
    void flush_outputs();  ///< step 2, with the connections it flushes (io/tcp.cpp)
    void poll_world(std::int64_t wait_until_ns);
    /// THE gate: every wake-up from the world reaches fibers through this function,
    /// in order; the recorder journals here and the replayer feeds here.
    void deliver(const detail::Wakeup& w, std::string_view data);
    // One handler per kind of wake-up; each journals the wake-up first. Those of io/'s
    // handles are defined with them (io/tcp.cpp, io/offload.cpp) and take the handle
    // deliver() found, of the kind the wake-up names.
    void deliver_signal(const detail::Wakeup& w, std::string_view data);
    void deliver_timer(const detail::Wakeup& w, std::string_view data, detail::TimerState& t);
    void deliver_accepted(const detail::Wakeup& w, std::string_view data, detail::Handle& listener);
    void deliver_offload(const detail::Wakeup& w, std::string_view data, detail::Handle& request);
    void deliver_connection(const detail::Wakeup& w, std::string_view data, detail::Handle& connection);
    void request_stop();
    [[noreturn]] void report_deadlock();

    void fire_timer(detail::TimerState* t) noexcept;

    // --- connections (io/tcp.cpp, with ConnState) --------------------------
    void queue_flush(detail::ConnState* c);
    /// Closes a connection: wakes its waiters, forgets its id, hands its socket to the backend.
    void close_connection(detail::ConnState* c) noexcept;
    void close_listener(detail::ListenerState* l) noexcept;
};

namespace detail {
/// The runtime running on this thread (the convenience API's "current runtime").
inline thread_local Runtime::Impl* tl_current_runtime = nullptr;
[[noreturn]] void no_current_runtime(const char* operation);
/// The runtime of the calling thread; asserts there is one.
inline Runtime::Impl& current_runtime(const char* operation) {
    if (tl_current_runtime == nullptr) [[unlikely]]
        no_current_runtime(operation);
    return *tl_current_runtime;
}
inline Runtime::Impl* current_runtime_or_null() noexcept { return tl_current_runtime; }
[[noreturn]] void foreign_handle(const Handle& h, const char* operation);
/// Asserts that the calling fiber belongs to the handle's runtime: a task blocks only on
/// handles of its own runtime (another runtime's wake-ups would never reach it).
inline void check_own_handle(const Handle& h, const char* operation) {
    if (h.rt != tl_current_runtime) [[unlikely]]
        foreign_handle(h, operation);
}
inline void set_current_runtime(Runtime::Impl* rt) noexcept { tl_current_runtime = rt; }
} // namespace detail

} // namespace reprise
