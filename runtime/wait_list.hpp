// WaitList: the one blocking primitive every fiber-aware object (channel, mutex, timer) is built on.
#pragma once

#include "reprise/runtime/time.hpp"
#include "reprise/runtime/result.hpp"

#include <cstddef>
#include <cstdint>

namespace reprise {

namespace detail {
struct Fiber;
}

/// What a blocked task waits on (Runtime::tasks(), deadlock reports, the debugger).
enum class WaitKind : std::uint8_t {
    none,             ///< not waiting
    sleep,            ///< sleep_for / sleep_until
    timer,            ///< Timer::wait of the timer `handle`
    read,             ///< bytes, eof or an error on the connection `handle`
    write,            ///< output to drain, or a connect to finish, on the connection `handle`
    accept,           ///< a connection on the listener `handle`
    join,             ///< the task `handle` to finish
    offload,          ///< the offloaded job `handle` to finish
    signal,           ///< a signal
    channel_send,     ///< room in a channel
    channel_receive,  ///< an item in a channel
    mutex,
    condition,
    event,
    wait_group,
    other,            ///< a WaitList of the application's own
};
/// The name of a wait kind ("read", "channel_receive", ...).
const char* wait_kind_name(WaitKind kind) noexcept;

/// A FIFO of tasks blocked on something. `wait()` blocks the current task until
/// `notify_one()`/`notify_all()` wakes it, its deadline passes (Errc::timed_out) or
/// the task is cancelled (Errc::cancelled). Waking is FIFO, so it is deterministic.
/// A WaitList belongs to one runtime and must be empty when destroyed.
class WaitList {
public:
    WaitList() = default;
    /// A list whose waiters wait on `kind` of the handle `handle` (0: of no handle).
    explicit WaitList(WaitKind kind, std::uint64_t handle = 0) noexcept : kind_(kind), handle_(handle) {}
    WaitList(const WaitList&) = delete;
    WaitList& operator=(const WaitList&) = delete;
    ~WaitList();

    /// Blocks the current task until notified; errors: timed_out, cancelled.
    Result<void> wait(Deadline deadline = Deadline::never());
    /// Blocks until notified, ignoring cancellation: for primitives that must get a
    /// resource back whatever happens (a condition re-taking its mutex).
    void wait_uncancellable();
    /// Wakes the longest waiting task; false when none waits.
    bool notify_one();
    /// Wakes the longest waiting task and returns its task id (0 when none waits),
    /// for hand-over primitives such as Mutex.
    std::uint64_t notify_one_task();
    /// Wakes every waiting task; returns how many.
    std::size_t notify_all();
    bool empty() const noexcept { return head_ == nullptr; }
    /// What its waiters wait on, as Runtime::tasks() reports it.
    WaitKind kind() const noexcept { return kind_; }
    std::uint64_t handle() const noexcept { return handle_; }
    /// Names what its waiters wait on, for lists made before the handle's id is known.
    void describe(WaitKind kind, std::uint64_t handle) noexcept {
        kind_ = kind;
        handle_ = handle;
    }

    /// Where kind and handle sit in a WaitList, for the debug table (runtime/internal/debug_table.hpp).
    static constexpr std::uint32_t debug_kind_offset() noexcept;
    static constexpr std::uint32_t debug_handle_offset() noexcept;

private:
    friend struct detail::Fiber;
    void push_back(detail::Fiber* fiber) noexcept;
    void remove(detail::Fiber* fiber) noexcept;
    detail::Fiber* head_ = nullptr;
    detail::Fiber* tail_ = nullptr;
    WaitKind kind_ = WaitKind::other;
    std::uint64_t handle_ = 0;
};

constexpr std::uint32_t WaitList::debug_kind_offset() noexcept { return offsetof(WaitList, kind_); }
constexpr std::uint32_t WaitList::debug_handle_offset() noexcept { return offsetof(WaitList, handle_); }

} // namespace reprise
