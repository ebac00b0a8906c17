// Tasks: fibers spawned with a name, joined for their result, cancelled, yielded.
#pragma once

#include "reprise/runtime/time.hpp"
#include "reprise/runtime/result.hpp"
#include "reprise/runtime/unique_function.hpp"
#include "reprise/runtime/wait_list.hpp"

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace reprise {

namespace detail {

/// What a task leaves behind for its joiners; shared by the Task handle and its fiber.
struct TaskCore {
    std::uint64_t id = 0;
    std::string name;
    Fiber* fiber = nullptr;         ///< null once the task finished
    bool finished = false;
    bool detached = false;          ///< no Task handle left: nobody can join
    std::exception_ptr exception;   ///< what escaped the task's function
    WaitList joiners;
    virtual ~TaskCore() = default;
};

template <class T>
struct TaskState final : TaskCore {
    std::optional<T> value;
};
template <>
struct TaskState<void> final : TaskCore {};

/// Starts a fiber running `body` in the current runtime; returns once it is queued.
void spawn_fiber(std::shared_ptr<TaskCore> core, UniqueFunction body, std::size_t stack_bytes);
void cancel_task(TaskCore& core) noexcept;
void detach_task(std::shared_ptr<TaskCore>& core) noexcept;
Result<void> join_task(TaskCore& core, Deadline deadline);

} // namespace detail

/// Spawn options beyond the name.
struct SpawnOptions {
    /// 0 means the runtime's default (Options::stack_bytes).
    std::size_t stack_bytes = 0;
};

/// Handle of a spawned task. Dropping it detaches the task (it keeps running);
/// an exception escaping a detached task is fatal, with the task's name in the message.
template <class T>
class Task {
public:
    Task() = default;
    explicit Task(std::shared_ptr<detail::TaskState<T>> state) : state_(std::move(state)) {}
    Task(Task&&) noexcept = default;
    Task& operator=(Task&& other) noexcept {
        if (this != &other) {
            detach();
            state_ = std::move(other.state_);
        }
        return *this;
    }
    ~Task() { detach(); }

    /// Waits for the task to finish and returns its result; rethrows what escaped it.
    /// Errors: timed_out (deadline), cancelled (the joiner itself was cancelled).
    Result<T> join(Deadline deadline = Deadline::never()) {
        REPRISE_ASSERT_MSG(state_ != nullptr, "join() of an empty Task");
        if (auto r = detail::join_task(*state_, deadline); !r.ok())
            return r.error();
        if (state_->exception)
            std::rethrow_exception(std::exchange(state_->exception, nullptr));  // joined: no longer unobserved
        if constexpr (std::is_void_v<T>) {
            return {};
        } else {
            REPRISE_ASSERT_MSG(state_->value.has_value(), "a task's value is joined only once");
            T v = std::move(*state_->value);
            state_->value.reset();
            return v;
        }
    }

    /// Asks the task to stop: its current and future blocking operations return
    /// Errc::cancelled. A task that never blocks is not interrupted.
    void cancel() noexcept {
        if (state_)
            detail::cancel_task(*state_);
    }
    bool done() const noexcept { return state_ && state_->finished; }
    std::uint64_t id() const noexcept { return state_ ? state_->id : 0; }
    const std::string& name() const {
        REPRISE_ASSERT(state_ != nullptr);
        return state_->name;
    }
    explicit operator bool() const noexcept { return state_ != nullptr; }

private:
    void detach() noexcept {
        if (state_) {
            std::shared_ptr<detail::TaskCore> core = std::move(state_);
            detail::detach_task(core);
        }
    }
    std::shared_ptr<detail::TaskState<T>> state_;
};

/// Spawns `fn` as a new task named `name` in the current runtime. It runs after
/// the tasks already ready (FIFO).
template <class F>
auto spawn(std::string name, F&& fn, SpawnOptions options = {}) -> Task<std::invoke_result_t<std::decay_t<F>>> {
    using T = std::invoke_result_t<std::decay_t<F>>;
    auto state = std::make_shared<detail::TaskState<T>>();
    state->name = std::move(name);
    detail::TaskState<T>* raw = state.get();
    detail::spawn_fiber(
        state,
        [raw, fn = std::forward<F>(fn)]() mutable {
            if constexpr (std::is_void_v<T>) {
                (void)raw;  // unused for void tasks (clang's -Wunused-lambda-capture)
                fn();
            } else {
                raw->value.emplace(fn());
            }
        },
        options.stack_bytes);
    return Task<T>(std::move(state));
}

/// Lets the other ready tasks run; the current task runs again after them.
void yield();
/// True once the current task was asked to cancel.
bool cancelled() noexcept;
/// Id and name of the task running now.
std::uint64_t current_task_id() noexcept;
std::string_view current_task_name() noexcept;

} // namespace reprise
