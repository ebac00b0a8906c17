// Loop time, precise reads, sleeps and the Timer handle.
#include "reprise/clock/clock.hpp"

#include "reprise/runtime/codec.hpp"
#include "reprise/runtime/internal/core.hpp"

namespace reprise {

using namespace detail;

Deadline Deadline::from_now(Duration after) {
    std::int64_t now_ns = current_runtime("a relative deadline").now_ns;
    std::int64_t d = after.count();
    if (d >= Deadline::never_ns - now_ns)
        return Deadline::never();
    return Deadline(Instant{Duration{now_ns + (d > 0 ? d : 0)}});
}

Instant now() { return Instant{Duration{current_runtime("now()").now_ns}}; }
WallTime wall_now() { return WallTime{Duration{current_runtime("wall_now()").wall_ns}}; }
Instant precise_now() {
    Runtime::Impl& rt = current_runtime("precise_now()");
    std::string v = rt.sync_input(InputKind::precise_clock, "",
                                  [&] { return encode_value(rt.backend->precise_clock_ns()); });
    auto ns = decode_value<std::int64_t>(v);
    if (!ns)
        rt.journal->diverge("a precise clock read that does not decode", "read the precise clock");
    return Instant{Duration{*ns}};
}

Result<void> sleep_until(Instant t) {
    Runtime::Impl& rt = current_runtime("sleep_until()");
    rt.running_fiber("sleep_until()");
    // A sleep is a park that only a timeout ends: nothing else wakes it.
    for (;;) {
        switch (rt.park(Deadline(t))) {
        case WakeReason::timed_out: return {};
        case WakeReason::cancelled: return Errc::cancelled;
        case WakeReason::signaled: break;  // spurious: park again
        }
    }
}

Result<void> sleep_for(Duration d) { return sleep_until(now() + d); }

// --- Timer ----------------------------------------------------------------------

Timer::Timer() {
    Runtime::Impl& rt = current_runtime("Timer");
    state_ = new TimerState(rt, rt.new_id(), TimerState::Role::user);
    rt.add_handle(state_);
}

Timer::~Timer() { release(); }

Timer::Timer(Timer&& other) noexcept : state_(other.state_) { other.state_ = nullptr; }

Timer& Timer::operator=(Timer&& other) noexcept {
    if (this != &other) {
        release();
        state_ = other.state_;
        other.state_ = nullptr;
    }
    return *this;
}

void Timer::release() noexcept {
    if (!state_)
        return;
    Runtime::Impl& rt = *state_->rt;
    REPRISE_ASSERT_MSG(state_->waiters.empty(), "a Timer was destroyed while tasks wait on it");
    rt.disarm_timer(state_);
    rt.remove_handle(state_);
    delete state_;
    state_ = nullptr;
}

void Timer::start(Duration after, Duration period) {
    REPRISE_ASSERT(state_ != nullptr);
    const Instant now_of_its_runtime{Duration{state_->rt->now_ns}};
    start_at(now_of_its_runtime + (after.count() > 0 ? after : Duration::zero()), period);
}

void Timer::start_at(Instant when, Duration period) {
    REPRISE_ASSERT(state_ != nullptr);
    REPRISE_ASSERT_MSG(period.count() >= 0, "a timer's period is not negative");
    Runtime::Impl& rt = *state_->rt;
    state_->period_ns = period.count();
    rt.arm_timer(state_, when.time_since_epoch().count());
}

void Timer::reset(Duration after) { start(after, Duration{state_->period_ns}); }

void Timer::cancel() {
    REPRISE_ASSERT(state_ != nullptr);
    Runtime::Impl& rt = *state_->rt;
    rt.disarm_timer(state_);
    state_->fires_pending = 0;
    ++state_->cancels;
    state_->waiters.notify_all();
}

Result<std::uint64_t> Timer::wait(Deadline deadline) {
    REPRISE_ASSERT(state_ != nullptr);
    check_own_handle(*state_, "Timer::wait");
    while (state_->fires_pending == 0) {
        if (!state_->armed())
            return Errc::closed;
        if (auto r = state_->waiters.wait(deadline); !r.ok())
            return r.error();
    }
    std::uint64_t fires = state_->fires_pending;
    state_->fires_pending = 0;
    return fires;
}

Result<std::uint64_t> Timer::wait_until_fired(Deadline deadline) {
    REPRISE_ASSERT(state_ != nullptr);
    check_own_handle(*state_, "Timer::wait_until_fired");
    while (state_->fires_pending == 0) {
        const std::uint64_t cancels = state_->cancels;
        if (auto r = state_->waiters.wait(deadline); !r.ok())
            return r.error();
        if (state_->fires_pending == 0 && state_->cancels != cancels)
            return Errc::closed;
    }
    std::uint64_t fires = state_->fires_pending;
    state_->fires_pending = 0;
    return fires;
}

bool Timer::armed() const noexcept { return state_ && state_->armed(); }
Instant Timer::deadline() const noexcept { return Instant{Duration{state_ ? state_->deadline_ns : 0}}; }
std::uint64_t Timer::id() const noexcept { return state_ ? state_->id : 0; }

} // namespace reprise
