// The scheduler and the loop of one Runtime: fibers, park/wake, the tick, and the gate.
#include "reprise/runtime/internal/core.hpp"

#include "reprise/runtime/internal/os_random.hpp"

#include <fmt/core.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#define REPRISE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REPRISE_ASAN 1
#endif
#endif
#ifdef REPRISE_ASAN
#include <pthread.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define REPRISE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define REPRISE_TSAN 1
#endif
#endif
#ifdef REPRISE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace reprise {

using namespace detail;

namespace detail {

namespace {

// ASan must be told when the stack changes under it (Boost.Context's fcontext
// switches stacks behind its back). `fake` is null when the left stack dies.
inline void asan_start_switch([[maybe_unused]] void** fake, [[maybe_unused]] const void* bottom,
                              [[maybe_unused]] std::size_t size) noexcept {
#ifdef REPRISE_ASAN
    __sanitizer_start_switch_fiber(fake, bottom, size);
#endif
}
inline void asan_finish_switch([[maybe_unused]] void* fake, [[maybe_unused]] const void** old_bottom,
                               [[maybe_unused]] std::size_t* old_size) noexcept {
#ifdef REPRISE_ASAN
    __sanitizer_finish_switch_fiber(fake, old_bottom, old_size);
#endif
}

// TSan keeps a shadow state per stack: each fiber gets its own, and every switch
// names the fiber about to run (with synchronization: a fiber switch orders what
// the fibers of one thread do, as on one thread). The loop is the thread's own.
inline void* tsan_create_fiber([[maybe_unused]] const char* name) noexcept {
#ifdef REPRISE_TSAN
    void* fiber = __tsan_create_fiber(0);
    __tsan_set_fiber_name(fiber, name);
    return fiber;
#else
    return nullptr;
#endif
}
inline void* tsan_current_fiber() noexcept {
#ifdef REPRISE_TSAN
    return __tsan_get_current_fiber();
#else
    return nullptr;
#endif
}
inline void tsan_switch_to([[maybe_unused]] void* fiber) noexcept {
#ifdef REPRISE_TSAN
    __tsan_switch_to_fiber(fiber, 0);
#endif
}
inline void tsan_destroy_fiber([[maybe_unused]] void* fiber) noexcept {
#ifdef REPRISE_TSAN
    __tsan_destroy_fiber(fiber);
#endif
}
} // namespace

void foreign_handle(const Handle& h, const char* operation) {
    std::string msg = fmt::format("{} on a handle (id {}) of node '{}' from {}", operation, h.id,
                                  h.rt->options.node_name,
                                  tl_current_runtime ? fmt::format("a task of node '{}'", tl_current_runtime->options.node_name)
                                                     : std::string("outside every runtime"));
    assert_fail("a task blocks only on handles of its own runtime", __FILE__, __LINE__, msg.c_str());
}

TaskInfo describe_task(const Fiber& f) {
    TaskInfo t;
    t.id = f.id;
    t.name = f.name;
    switch (f.state) {
    case FiberState::running: t.state = TaskInfo::State::running; break;
    case FiberState::parked:
        t.state = TaskInfo::State::waiting;
        // A wait on a list says what on; a park without one is a sleep.
        t.waits_on = f.waiting_on ? f.waiting_on->kind() : WaitKind::sleep;
        t.handle = f.waiting_on ? f.waiting_on->handle() : 0;
        t.deadline_ns = f.park_deadline_ns;
        break;
    default: t.state = TaskInfo::State::ready; break;
    }
    return t;
}

std::string describe_wait(const TaskInfo& t) {
    if (t.state != TaskInfo::State::waiting)
        return t.state == TaskInfo::State::running ? "running" : "ready";
    std::string what = wait_kind_name(t.waits_on);
    switch (t.waits_on) {
    case WaitKind::timer: what += fmt::format(" on timer #{}", t.handle); break;
    case WaitKind::read:
    case WaitKind::write: what += fmt::format(" on connection #{}", t.handle); break;
    case WaitKind::accept: what += fmt::format(" on listener #{}", t.handle); break;
    case WaitKind::join: what += fmt::format(" of task #{}", t.handle); break;
    case WaitKind::offload: what += fmt::format(" of job #{}", t.handle); break;
    default: break;
    }
    if (t.deadline_ns >= 0)
        what += fmt::format(" until {} ns", t.deadline_ns);
    return what;
}

void no_current_runtime(const char* operation) {
    std::string msg = fmt::format("{} needs a running reprise runtime", operation);
    assert_fail("current runtime", __FILE__, __LINE__, msg.c_str());
}

// The first switch into a fiber lands here, on the fiber's own stack.
[[noreturn]] static void fiber_main(ctx::transfer_t from) {
    Runtime::Impl* rt = tl_current_runtime;
    Fiber* f = rt->current;
    rt->finish_switch(from, f);
    try {
        f->body();
    } catch (...) {
        f->task->exception = std::current_exception();
    }
    f->body = UniqueFunction{};
    rt->finish_fiber(f);
    rt->finished.push_back(f);
    rt->switch_context(f, rt->ready.pop(), true);
    assert_fail("unreachable", __FILE__, __LINE__, "a finished fiber was resumed");
}

} // namespace detail

const char* wait_kind_name(WaitKind kind) noexcept {
    switch (kind) {
    case WaitKind::none: return "none";
    case WaitKind::sleep: return "sleep";
    case WaitKind::timer: return "timer";
    case WaitKind::read: return "read";
    case WaitKind::write: return "write";
    case WaitKind::accept: return "accept";
    case WaitKind::join: return "join";
    case WaitKind::offload: return "offload";
    case WaitKind::signal: return "signal";
    case WaitKind::channel_send: return "channel_send";
    case WaitKind::channel_receive: return "channel_receive";
    case WaitKind::mutex: return "mutex";
    case WaitKind::condition: return "condition";
    case WaitKind::event: return "event";
    case WaitKind::wait_group: return "wait_group";
    case WaitKind::other: return "other";
    }
    return "unknown";
}

// --- WaitList ---------------------------------------------------------------

WaitList::~WaitList() { REPRISE_ASSERT_MSG(head_ == nullptr, "a WaitList was destroyed while tasks wait on it"); }

void WaitList::push_back(Fiber* f) noexcept {
    REPRISE_ASSERT(f->waiting_on == nullptr);
    f->waiting_on = this;
    f->wait_next = nullptr;
    f->wait_prev = tail_;
    if (tail_)
        tail_->wait_next = f;
    else
        head_ = f;
    tail_ = f;
}

void WaitList::remove(Fiber* f) noexcept {
    REPRISE_ASSERT(f->waiting_on == this);
    (f->wait_prev ? f->wait_prev->wait_next : head_) = f->wait_next;
    (f->wait_next ? f->wait_next->wait_prev : tail_) = f->wait_prev;
    f->wait_prev = f->wait_next = nullptr;
    f->waiting_on = nullptr;
}

Result<void> WaitList::wait(Deadline deadline) {
    Runtime::Impl& rt = current_runtime("WaitList::wait");
    Fiber* f = rt.running_fiber("a blocking operation");
    push_back(f);
    WakeReason why = rt.park(deadline);
    Fiber::unlink_from_wait_list(f);
    switch (why) {
    case WakeReason::signaled: return {};
    case WakeReason::timed_out: return Errc::timed_out;
    case WakeReason::cancelled: return Errc::cancelled;
    }
    return Errc::io;
}

void WaitList::wait_uncancellable() {
    Runtime::Impl& rt = current_runtime("WaitList::wait_uncancellable");
    Fiber* f = rt.running_fiber("a blocking operation");
    push_back(f);
    WakeReason why = rt.park(Deadline::never(), false);
    REPRISE_ASSERT(why == WakeReason::signaled);
    Fiber::unlink_from_wait_list(f);
}

bool WaitList::notify_one() { return notify_one_task() != 0; }

std::uint64_t WaitList::notify_one_task() {
    Fiber* f = head_;
    if (!f)
        return 0;
    remove(f);
    f->rt->wake(f, WakeReason::signaled);
    return f->id;
}

std::size_t WaitList::notify_all() {
    std::size_t n = 0;
    while (notify_one())
        ++n;
    return n;
}

// --- Runtime::Impl: construction --------------------------------------------

Runtime::Impl::Impl(Runtime& owner_, Options options_)
    : owner(owner_), options(std::move(options_)), seed(options.seed ? *options.seed : os_random_u64()),
      prng(seed) {
    REPRISE_ASSERT_MSG(options.stack_bytes >= limits::stack_bytes_min && options.stack_bytes <= limits::stack_bytes_max,
                       "Options::stack_bytes is outside [stack_bytes_min, stack_bytes_max]");
    REPRISE_ASSERT_MSG(options.offload_threads >= 1 && options.offload_threads <= limits::offload_threads_max,
                       "Options::offload_threads is outside [1, offload_threads_max]");
    install_overflow_handler();
#ifdef REPRISE_ASAN
    pthread_attr_t attr;
    REPRISE_ASSERT(pthread_getattr_np(pthread_self(), &attr) == 0);
    void* stack_addr = nullptr;
    REPRISE_ASSERT(pthread_attr_getstack(&attr, &stack_addr, &loop_stack_bytes) == 0);
    pthread_attr_destroy(&attr);
    loop_stack_bottom = stack_addr;
#endif
    // Which backend and journal this runtime gets is decided above the core.
    wire_modes(*this);
    if (options.stop_on_signals) {
        backend->watch_signal(SIGINT);
        backend->watch_signal(SIGTERM);
    }
    // The replayer filled in its part (trace, events, virtual time) while being wired.
    debug.node = options.node_name.c_str();
    debug.fibers_head = reinterpret_cast<void* const*>(&all_head);
    debug.current_fiber = reinterpret_cast<void* const*>(&current);
    debug.now_ns = &now_ns;
    debug.wall_ns = &wall_ns;
    debug_register(debug);
}

Runtime::Impl::~Impl() {
    REPRISE_ASSERT_MSG(!running, "a Runtime was destroyed while it runs");
    REPRISE_ASSERT_MSG(fibers_alive == 0, "a Runtime was destroyed with live fibers");
    debug_unregister(debug);
    recorder.reset();  // writes what is left of the trace
    journal = nullptr;
    backend.reset();   // joins the offload threads
    drop_unfinished_offloads();
    for (Stack& s : stack_cache)
        unmap_stack(s);
}

// --- handles ----------------------------------------------------------------

void Runtime::Impl::add_handle(Handle* h) {
    handles.insert(h->id, h);
    stats.handles_alive = handles.size();
}

void Runtime::Impl::remove_handle(Handle* h) noexcept {
    [[maybe_unused]] Handle* removed = handles.erase(h->id);
    REPRISE_ASSERT(removed == h);
    stats.handles_alive = handles.size();
}

Handle* Runtime::Impl::find_handle(std::uint64_t id) const noexcept { return handles.find(id); }

// --- fibers -----------------------------------------------------------------

void Runtime::Impl::not_in_fiber(const char* operation) {
    std::string msg = fmt::format("{} must be called from a task (a fiber), not from the loop", operation);
    assert_fail("current fiber", __FILE__, __LINE__, msg.c_str());
}

Fiber* Runtime::Impl::spawn(std::shared_ptr<TaskCore> core, UniqueFunction body, std::size_t stack_bytes) {
    REPRISE_ASSERT_MSG(fibers_alive < limits::fibers_max, "too many fibers (limits::fibers_max)");
    if (stack_bytes == 0)
        stack_bytes = options.stack_bytes;
    REPRISE_ASSERT_MSG(stack_bytes >= limits::stack_bytes_min && stack_bytes <= limits::stack_bytes_max,
                       "stack size outside [stack_bytes_min, stack_bytes_max]");
    auto* f = new Fiber;
    f->rt = this;
    f->id = new_id();
    f->name = core->name.substr(0, limits::fiber_name_bytes_max);
    if (!stack_cache.empty() && stack_cache.back().usable_bytes == stack_bytes) {
        f->stack = stack_cache.back();
        stack_cache.pop_back();
    } else {
        f->stack = map_stack(stack_bytes);
    }
    f->running_info = RunningFiberInfo{&f->stack, f->name.c_str(), f->id};
    f->context = ctx::make_fcontext(f->stack.top(), f->stack.usable_bytes, fiber_main);
    f->tsan_fiber = tsan_create_fiber(f->name.c_str());
    f->body = std::move(body);
    f->cancel_requested = draining;
    core->id = f->id;
    core->joiners.describe(WaitKind::join, f->id);
    core->fiber = f;
    f->task = std::move(core);

    f->all_prev = all_tail;
    (all_tail ? all_tail->all_next : all_head) = f;
    all_tail = f;
    ++fibers_alive;
    ++stats.fibers_spawned;
    if (journal)
        journal->spawn(f->id, f->name);
    stats.fibers_alive = fibers_alive;
    ready.push(f);
    return f;
}

void Runtime::Impl::switch_context(Fiber* from, Fiber* to, bool from_finished) {
    ctx::fcontext_t* save = from_finished ? nullptr : from ? &from->context : &loop_context;
    void** fake = from_finished ? nullptr : from ? &from->asan_fake_stack : &loop_asan_fake_stack;
    current = to;
    if (to) {
        REPRISE_ASSERT(to->state == FiberState::ready);
        to->state = FiberState::running;
        ++stats.switches;
        set_running_fiber(&to->running_info);
        asan_start_switch(fake, to->stack.bottom(), to->stack.usable_bytes);
        tsan_switch_to(to->tsan_fiber);
    } else {
        set_running_fiber(nullptr);
        asan_start_switch(fake, loop_stack_bottom, loop_stack_bytes);
        tsan_switch_to(loop_tsan_fiber);
    }
    ctx::transfer_t back = ctx::jump_fcontext(to ? to->context : loop_context, save);
    finish_switch(back, from);
}

void Runtime::Impl::finish_switch(ctx::transfer_t back, Fiber* self) noexcept {
    asan_finish_switch(self ? self->asan_fake_stack : loop_asan_fake_stack, nullptr, nullptr);
    // Whoever switched here left its context to be saved (null when it ended).
    if (back.data)
        *static_cast<ctx::fcontext_t*>(back.data) = back.fctx;
}

void Runtime::Impl::suspend() {
    Fiber* f = current;
    Fiber* next = ready.pop();
    if (next == f) {  // a yield with nobody else ready
        f->state = FiberState::running;
        return;
    }
    switch_context(f, next, false);
}

WakeReason Runtime::Impl::park(Deadline deadline, bool cancellable) {
    Fiber* f = running_fiber("a blocking operation");
    if (cancellable && f->cancel_requested) {
        if (unwinding && ++f->cancelled_returns > limits::unwind_cancelled_returns_max) [[unlikely]]
            throw TaskUnwound{};
        return WakeReason::cancelled;
    }
    if (!deadline.is_never() && deadline.at_ns() <= now_ns)
        return WakeReason::timed_out;
    ++f->park_seq;
    f->park_deadline_ns = deadline.is_never() ? -1 : deadline.at_ns();
    std::optional<TimerState> timeout;
    if (!deadline.is_never()) {
        timeout.emplace(*this, new_id(), TimerState::Role::park_timeout);
        timeout->fiber = f;
        timeout->park_seq = f->park_seq;
        add_handle(&*timeout);
        arm_timer(&*timeout, deadline.at_ns());
    }
    f->state = FiberState::parked;
    f->park_cancellable = cancellable;
    suspend();
    if (timeout) {
        disarm_timer(&*timeout);
        remove_handle(&*timeout);
    }
    return f->wake_reason;
}

void Runtime::Impl::wake(Fiber* f, WakeReason reason) noexcept {
    if (f->state != FiberState::parked)
        return;
    Fiber::unlink_from_wait_list(f);
    f->wake_reason = reason;
    f->state = FiberState::ready;
    ready.push(f);
}

void Runtime::Impl::cancel(Fiber* f) noexcept {
    f->cancel_requested = true;
    if (f->park_cancellable)
        wake(f, WakeReason::cancelled);
}

void Runtime::Impl::finish_fiber(Fiber* f) noexcept {
    f->state = FiberState::done;
    (f->all_prev ? f->all_prev->all_next : all_head) = f->all_next;
    (f->all_next ? f->all_next->all_prev : all_tail) = f->all_prev;
    --fibers_alive;
    stats.fibers_alive = fibers_alive;
    TaskCore& core = *f->task;
    core.finished = true;
    core.fiber = nullptr;
    core.joiners.notify_all();
    if (&core == main_task.get()) {
        // The program is over when main returns: stop the other tasks (and any
        // they spawn while unwinding) at once, before any of them runs again.
        draining = true;
        for (Fiber* other = all_head; other; other = other->all_next)
            cancel(other);
    }
    if (core.detached && core.exception && !unwinding) {  // unwinding: TaskUnwound ends tasks on purpose
        std::string what = "unknown exception";
        try {
            std::rethrow_exception(core.exception);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        std::string msg = fmt::format("exception escaped detached task '{}' (id {}): {}", core.name, core.id, what);
        assert_fail("no exception escapes a detached task", __FILE__, __LINE__, msg.c_str());
    }
}

// --- timers -----------------------------------------------------------------

void Runtime::Impl::arm_timer(TimerState* t, std::int64_t deadline_ns) {
    if (t->armed())
        timers.remove(t);
    t->deadline_ns = deadline_ns;
    timers.push(t);
}

void Runtime::Impl::disarm_timer(TimerState* t) noexcept {
    if (t->armed())
        timers.remove(t);
}

void Runtime::Impl::fire_timer(TimerState* t) noexcept {
    switch (t->role) {
    case TimerState::Role::park_timeout:
        if (t->fiber->park_seq == t->park_seq)
            wake(t->fiber, WakeReason::timed_out);
        break;
    case TimerState::Role::user:
        ++t->fires_pending;
        if (t->period_ns > 0) {
            // A periodic timer that fell behind counts the periods it missed and
            // keeps its phase instead of firing in a burst.
            std::int64_t missed = now_ns > t->deadline_ns ? (now_ns - t->deadline_ns) / t->period_ns : 0;
            t->fires_pending += static_cast<std::uint64_t>(missed);
            arm_timer(t, t->deadline_ns + (missed + 1) * t->period_ns);
        }
        t->waiters.notify_all();
        break;
    case TimerState::Role::action:
        t->action();
        break;
    }
}

// --- the loop ---------------------------------------------------------------

namespace {
// Makes `rt` the thread's current runtime for a scope (start, step), restoring the outer one.
class CurrentRuntime {
public:
    explicit CurrentRuntime(Runtime::Impl* rt, const char* operation) : outer_(current_runtime_or_null()) {
        if (outer_ != nullptr && outer_->current != nullptr) [[unlikely]]
            assert_fail("a runtime is driven from the loop, not from a task", __FILE__, __LINE__,
                        fmt::format("{} called from inside a task of node '{}'", operation, outer_->options.node_name)
                            .c_str());
        set_current_runtime(rt);
    }
    ~CurrentRuntime() { set_current_runtime(outer_); }
    CurrentRuntime(const CurrentRuntime&) = delete;
    CurrentRuntime& operator=(const CurrentRuntime&) = delete;

private:
    Runtime::Impl* outer_;
};
} // namespace

int Runtime::Impl::run(std::function<int()> entry) {
    start(std::move(entry));
    while (!step(-1)) {
    }
    return result();
}

void Runtime::Impl::start(std::function<int()> entry) {
    REPRISE_ASSERT_MSG(!running, "a Runtime is started while it runs (Runtime::run() is not reentrant)");
    CurrentRuntime scope(this, "Runtime::run() or start()");
    loop_tsan_fiber = tsan_current_fiber();
    running = true;
    run_ended = false;
    stop_requested = false;
    main_entry = std::move(entry);
    // The run's first tick: read now (not at construction), recorded as a Tick so
    // that replay starts from the same loop time.
    backend->begin_run(batch);
    backend->read_clock(now_ns, wall_ns);
    if (journal)
        journal->tick(now_ns, wall_ns);
    if (!replaying())
        debug.start_wall_ns = wall_ns;  // a replay's is its trace header's (the replayer sets it)
    debug.state = reprise_node_running;

    auto core = std::make_shared<TaskState<int>>();
    core->name = "main";
    main_task = core;
    main_state = core;
    spawn(core, [this] { main_state->value = main_entry(); }, 0);
}

bool Runtime::Impl::step(std::int64_t wait_until_ns) {
    REPRISE_ASSERT_MSG(running, "Runtime::step() before start(), or after the run ended");
    CurrentRuntime scope(this, "Runtime::step()");
    loop_tsan_fiber = tsan_current_fiber();
    // When main ends, finish_fiber() cancels the others; the run goes on until they end.
    tick_once(wait_until_ns);
    if (fibers_alive > 0)
        return false;
    draining = false;
    running = false;
    run_ended = true;
    // A joint replay's node whose trace ends short freezes instead (journal->end).
    if (debug.state == reprise_node_running)
        debug.state = reprise_node_ended;
    main_task.reset();
    main_entry = nullptr;
    exit_code = main_state->exception ? 1 : main_state->value.value_or(1);
    if (journal)
        journal->end(exit_code);
    return true;
}

bool Runtime::Impl::run_tasks() {
    REPRISE_ASSERT_MSG(running, "run_tasks() before start(), or after the run ended");
    {
        CurrentRuntime scope(this, "run_tasks()");
        loop_tsan_fiber = tsan_current_fiber();
        run_ready();
        if (fibers_alive > 0) {
            flush_outputs();
            return false;
        }
    }
    return step(-1);  // the end: nothing is alive, and step() takes the run down
}

int Runtime::Impl::result() {
    REPRISE_ASSERT_MSG(run_ended && main_state, "Runtime::result() before the run ended");
    std::shared_ptr<TaskState<int>> state = std::move(main_state);
    if (state->exception)
        std::rethrow_exception(state->exception);
    return exit_code;
}

std::int64_t Runtime::Impl::next_event_ns() const noexcept {
    if (!running)
        return -1;
    if (!ready.empty() || !batch.items.empty())
        return now_ns;
    std::int64_t next = backend->next_known_event_ns();
    if (TimerState* t = timers.top(); t && (next < 0 || t->deadline_ns < next))
        next = t->deadline_ns;
    if (journal) {
        std::int64_t seal_ns = journal->seal_deadline_ns();
        if (seal_ns >= 0 && (next < 0 || seal_ns < next))
            next = seal_ns;
    }
    return next;
}

void Runtime::Impl::tick_once(std::int64_t wait_until_ns) {
    run_ready();
    if (fibers_alive == 0)
        return;
    flush_outputs();
    poll_world(wait_until_ns);
}

void Runtime::Impl::run_ready() {
    // Fibers hand over to each other while any is ready; the loop gets control
    // back only when none is.
    if (Fiber* f = ready.pop())
        switch_context(nullptr, f, false);
    REPRISE_ASSERT(ready.empty() && current == nullptr);
    for (Fiber* f : finished) {
        if (stack_cache.size() < limits::stack_cache_max && f->stack.usable_bytes == options.stack_bytes)
            stack_cache.push_back(f->stack);
        else
            unmap_stack(f->stack);
        tsan_destroy_fiber(f->tsan_fiber);
        delete f;
    }
    finished.clear();
}

void Runtime::Impl::poll_world(std::int64_t wait_until_ns) {
    TimerState* next = timers.top();
    std::int64_t deadline_ns = next ? next->deadline_ns : -1;
    if (journal) {
        // A recording wakes the loop in time to seal its buffered records.
        std::int64_t seal_ns = journal->seal_deadline_ns();
        if (seal_ns >= 0 && (deadline_ns < 0 || seal_ns < deadline_ns))
            deadline_ns = seal_ns;
    }
    // A driver of several runtimes bounds the wait by the others' next events.
    if (wait_until_ns >= 0 && (deadline_ns < 0 || wait_until_ns < deadline_ns))
        deadline_ns = wait_until_ns;
    PollResult polled = backend->poll(deadline_ns, batch);
    if (polled.waited_on_clock)
        ++stats.clock_waits;
    if (!polled.could_wake && batch.items.empty() && timers.empty())
        report_deadlock();
    backend->read_clock(now_ns, wall_ns);
    backend->collect_due_timers(timers, now_ns, batch);
    if (batch.items.empty()) {
        // Woken with nothing to deliver (a wait that ended early, or the recorder's
        // seal deadline): no task runs, so nothing observes this time; no tick.
        if (journal)
            journal->idle(now_ns);
        return;
    }
    ++stats.ticks;
    if (journal)
        journal->tick(now_ns, wall_ns);
    for (std::size_t i = 0; i < batch.items.size(); ++i)
        deliver(batch.items[i], batch.data(batch.items[i]));
    batch.clear();
}

void Runtime::Impl::report_deadlock() {
    std::string list;
    for (Fiber* f = all_head; f; f = f->all_next)
        list += fmt::format("\n  task '{}' (id {}) blocked forever: {}", f->name, f->id, describe_wait(describe_task(*f)));
    std::string msg = fmt::format("deadlock in node '{}': {} task(s) blocked with nothing left that could wake them:{}",
                                  options.node_name, fibers_alive, list);
    assert_fail("no deadlock", __FILE__, __LINE__, msg.c_str());
}

void Runtime::Impl::request_stop() {
    stop_requested = true;
    if (main_task && !main_task->finished && main_task->fiber)
        cancel(main_task->fiber);
}

// --- the gate -----------------------------------------------------------------

void Runtime::Impl::deliver(const Wakeup& w, std::string_view data) {
    if (w.kind == WakeKind::signal)
        return deliver_signal(w, data);
    // A handle closed earlier in this batch leaves later wake-ups for it without
    // anyone to observe them: they are dropped before anything could see them.
    Handle* h = find_handle(w.handle);
    if (h == nullptr) {
        if (journal)
            journal->unknown_handle(w);
        if (w.kind == WakeKind::accepted)
            backend->drop_accepted(w.value);
        return;
    }
    // A wake-up for a handle of another kind: live, a bug; in replay, a program that
    // drew its handles differently from the recorded one (a divergence, not a crash).
    const HandleKind expected = w.kind == WakeKind::timer_fired    ? HandleKind::timer
                                : w.kind == WakeKind::accepted     ? HandleKind::listener
                                : w.kind == WakeKind::offload_done ? HandleKind::offload
                                                                   : HandleKind::connection;
    if (h->kind != expected) {
        if (journal)
            journal->wrong_handle_kind(w);
        REPRISE_ASSERT_MSG(false, "a wake-up for a handle of another kind");
    }
    // Counted only once delivered, like the journal's record of it: a dropped
    // wake-up is in neither, so record and replay count alike.
    ++stats.wakeups;
    switch (w.kind) {
    case WakeKind::timer_fired:
        return deliver_timer(w, data, *static_cast<TimerState*>(h));
    case WakeKind::accepted:
        return deliver_accepted(w, data, *h);
    case WakeKind::offload_done:
        return deliver_offload(w, data, *h);
    case WakeKind::bytes_read:
    case WakeKind::eof:
    case WakeKind::io_error:
    case WakeKind::connected:
    case WakeKind::drained:
        return deliver_connection(w, data, *h);
    case WakeKind::signal:
        break;
    }
    REPRISE_ASSERT_MSG(false, "wake-up of an unknown kind");
}

void Runtime::Impl::deliver_signal(const Wakeup& w, std::string_view data) {
    ++stats.wakeups;
    if (journal)
        journal->wakeup(w, data);
    SignalWatch& watch = signals[w.value];
    ++watch.pending;
    watch.waiters.notify_all();
    if (options.stop_on_signals && (w.value == SIGINT || w.value == SIGTERM))
        request_stop();
}

void Runtime::Impl::deliver_timer(const Wakeup& w, std::string_view data, TimerState& t) {
    if (journal) {
        journal->timer_fires(t.id, t.armed(), t.deadline_ns, now_ns);
        journal->wakeup(w, data);
    }
    disarm_timer(&t);
    fire_timer(&t);
}

// --- Runtime ------------------------------------------------------------------

Runtime::Runtime(Options options) : impl_(std::make_unique<Impl>(*this, std::move(options))) {}
Runtime::~Runtime() = default;

int Runtime::run(std::function<int()> entry) { return impl_->run(std::move(entry)); }
void Runtime::start(std::function<int()> entry) { impl_->start(std::move(entry)); }
bool Runtime::step(std::int64_t wait_until_ns) { return impl_->step(wait_until_ns); }
std::int64_t Runtime::next_event_ns() const noexcept { return impl_->next_event_ns(); }
bool Runtime::finished() const noexcept { return impl_->run_ended; }
int Runtime::result() { return impl_->result(); }
void Runtime::request_stop() { impl_->request_stop(); }
bool Runtime::stop_requested() const noexcept { return impl_->stop_requested; }
bool Runtime::replaying() const noexcept { return impl_->replaying(); }
const std::vector<std::string>& Runtime::recorded_argv() const noexcept { return impl_->recorded_argv; }
std::uint64_t Runtime::seed() const noexcept { return impl_->seed; }
const std::string& Runtime::node_name() const noexcept { return impl_->options.node_name; }
RuntimeStats Runtime::stats() const noexcept { return impl_->stats; }

std::vector<TaskInfo> Runtime::tasks() const {
    std::vector<TaskInfo> out;
    for (Fiber* f = impl_->all_head; f; f = f->all_next)
        out.push_back(describe_task(*f));
    return out;
}
Runtime* Runtime::current() noexcept {
    Runtime::Impl* rt = current_runtime_or_null();
    return rt ? &rt->owner : nullptr;
}

// --- tasks --------------------------------------------------------------------

namespace detail {

void spawn_fiber(std::shared_ptr<TaskCore> core, UniqueFunction body, std::size_t stack_bytes) {
    current_runtime("spawn()").spawn(std::move(core), std::move(body), stack_bytes);
}

void cancel_task(TaskCore& core) noexcept {
    if (core.fiber)
        core.fiber->rt->cancel(core.fiber);
}

void detach_task(std::shared_ptr<TaskCore>& core) noexcept {
    core->detached = true;
    if (core->finished && core->exception) {
        std::string msg = fmt::format("exception escaped task '{}' (id {}) and nobody joined it", core->name, core->id);
        assert_fail("no exception escapes a detached task", __FILE__, __LINE__, msg.c_str());
    }
    core.reset();
}

Result<void> join_task(TaskCore& core, Deadline deadline) {
    while (!core.finished) {
        if (auto r = core.joiners.wait(deadline); !r.ok())
            return r;
    }
    return {};
}

} // namespace detail

void yield() {
    Runtime::Impl& rt = current_runtime("yield()");
    Fiber* f = rt.running_fiber("yield()");
    f->state = FiberState::ready;
    rt.ready.push(f);
    rt.suspend();
}

bool cancelled() noexcept {
    Runtime::Impl* rt = current_runtime_or_null();
    return rt && rt->current && rt->current->cancel_requested;
}

std::uint64_t current_task_id() noexcept {
    Runtime::Impl* rt = current_runtime_or_null();
    return rt && rt->current ? rt->current->id : 0;
}

std::string_view current_task_name() noexcept {
    Runtime::Impl* rt = current_runtime_or_null();
    return rt && rt->current ? std::string_view(rt->current->name) : std::string_view("loop");
}

} // namespace reprise
