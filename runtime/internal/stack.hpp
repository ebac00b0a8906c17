// Fiber stacks: mmap'ed, lazily committed, with a guard page that turns an overflow into a named crash.
#pragma once

#include "reprise/runtime/internal/private.hpp"

#include <cstddef>
#include <cstdint>

namespace reprise::detail {

struct Stack {
    void* base = nullptr;        ///< start of the mapping (the guard page)
    std::size_t mapped_bytes = 0;
    std::size_t usable_bytes = 0;

    void* top() const noexcept { return static_cast<char*>(base) + mapped_bytes; }
    void* bottom() const noexcept { return static_cast<char*>(base) + (mapped_bytes - usable_bytes); }
    bool in_guard(const void* addr) const noexcept;
};

/// Maps a stack of `usable_bytes` (rounded up to pages) plus its guard page.
/// Running out of address space or memory is fatal.
Stack map_stack(std::size_t usable_bytes);
void unmap_stack(Stack& stack) noexcept;

/// Who runs on the thread now, for the fault handler: the current fiber's stack and name.
struct RunningFiberInfo {
    const Stack* stack = nullptr;
    const char* name = nullptr;
    std::uint64_t id = 0;
};

/// Installs an alternate signal stack (once per thread) and a SIGSEGV/SIGBUS handler
/// (again whenever another handler replaced it) that names the fiber whose guard
/// page was hit, then dies by the signal.
void install_overflow_handler();
/// A function run (async-signal-safe) when the process dies of SIGSEGV, SIGBUS,
/// SIGFPE, SIGILL or SIGABRT, before it dies: the recorder flushes its buffer here.
using CrashHook = void (*)(void* arg) noexcept;
/// At most limits::crash_hooks_max at once: one more asserts.
void add_crash_hook(CrashHook hook, void* arg);
void remove_crash_hook(CrashHook hook, void* arg) noexcept;
/// Writes to stderr without allocating or locking (for crash hooks and fault handlers).
void crash_write(const char* s) noexcept;
void crash_write_u64(std::uint64_t v) noexcept;
/// Inside a crash hook: the fatal signal the process dies of (0 outside a crash).
int crash_signal() noexcept;
/// For a crash hook that waits: sleeps one step (limits::crash_wait_step_ns) of the budget
/// all hooks share (limits::crash_wait_total_ns); false, without sleeping, once it is spent.
bool crash_wait_step() noexcept;

/// The fiber running on this thread, for the fault handler; set on every switch
/// (null while the loop runs).
inline thread_local const RunningFiberInfo* tl_running_fiber = nullptr;
inline void set_running_fiber(const RunningFiberInfo* info) noexcept { tl_running_fiber = info; }

} // namespace reprise::detail
