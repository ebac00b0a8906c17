// Fiber stacks (mmap + guard page) and the fault handler that names a fiber whose stack overflowed.
#include "reprise/runtime/internal/stack.hpp"

#include "reprise/runtime/assert.hpp"
#include "reprise/runtime/limits.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sanitizer/asan_interface.h>
#include <sys/mman.h>
#include <unistd.h>

namespace reprise::detail {

namespace {

// The actions that were in place before ours, to hand faults that are not ours to.
struct sigaction previous_segv;
struct sigaction previous_bus;

std::size_t round_to_pages(std::size_t n) {
    return (n + limits::page_bytes - 1) / limits::page_bytes * limits::page_bytes;
}

// Crash hooks: a fixed table, so that the fatal path neither allocates nor locks.
struct CrashHookSlot {
    std::atomic<CrashHook> hook{nullptr};
    std::atomic<void*> arg{nullptr};
};
CrashHookSlot crash_hooks[limits::crash_hooks_max];
std::atomic<bool> crash_hooks_ran{false};
std::atomic<int> crash_signo{0};
std::atomic<std::int64_t> crash_wait_left_ns{limits::crash_wait_total_ns};

void run_crash_hooks(int signo) noexcept {
    if (crash_hooks_ran.exchange(true))
        return;
    crash_signo.store(signo);
    for (auto& slot : crash_hooks) {
        CrashHook hook = slot.hook.load();
        if (hook)
            hook(slot.arg.load());
    }
}

// SIGBUS, SIGFPE, SIGILL, SIGABRT: flush, then die the way we would have.
void on_fatal(int signo) {
    run_crash_hooks(signo);
    ::signal(signo, SIG_DFL);
    ::raise(signo);
}

void on_fault(int signo, siginfo_t* info, void* uctx) {
    const RunningFiberInfo* running = tl_running_fiber;
    if (running && running->stack && running->stack->in_guard(info->si_addr)) {
        crash_write("reprise: stack overflow in task '");
        crash_write(running->name);
        crash_write("' (id ");
        crash_write_u64(running->id);
        crash_write("): its stack of ");
        crash_write_u64(running->stack->usable_bytes);
        crash_write(" bytes is exhausted; spawn it with a larger SpawnOptions::stack_bytes\n");
        run_crash_hooks(signo);
        ::signal(signo, SIG_DFL);
        return;  // the faulting instruction runs again and the default action kills us
    }
    run_crash_hooks(signo);
    const struct sigaction& prev = signo == SIGSEGV ? previous_segv : previous_bus;
    if (prev.sa_flags & SA_SIGINFO) {
        prev.sa_sigaction(signo, info, uctx);
    } else if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN) {
        prev.sa_handler(signo);
    } else {
        ::signal(signo, SIG_DFL);
        // Sent by a process (kill, sigqueue, tgkill: si_code <= 0), not raised by a faulting
        // instruction: returning would run on as if nothing happened. Die of it now.
        if (info->si_code <= 0)
            ::raise(signo);
    }
}

} // namespace

// Writes without allocating: this runs on the alternate stack inside a fault.
void crash_write(const char* s) noexcept {
    std::size_t len = std::strlen(s);
    while (len > 0) {
        ssize_t n = ::write(STDERR_FILENO, s, len);  // reprise-allow: io (a crash message from a fault handler)
        if (n <= 0)
            return;
        s += n;
        len -= static_cast<std::size_t>(n);
    }
}

void crash_write_u64(std::uint64_t v) noexcept {
    char buf[24];
    char* p = buf + sizeof buf;
    *--p = '\0';
    do {
        *--p = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    crash_write(p);
}

int crash_signal() noexcept { return crash_signo.load(); }

bool Stack::in_guard(const void* addr) const noexcept {
    auto a = reinterpret_cast<std::uintptr_t>(addr);
    auto lo = reinterpret_cast<std::uintptr_t>(base);
    return a >= lo && a < lo + (mapped_bytes - usable_bytes);
}

Stack map_stack(std::size_t usable_bytes) {
    Stack s;
    s.usable_bytes = round_to_pages(usable_bytes);
    s.mapped_bytes = s.usable_bytes + limits::stack_guard_bytes;
    // MAP_NORESERVE: pages are committed when first touched, so idle fibers cost
    // only the few pages they used.
    void* p = ::mmap(nullptr, s.mapped_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED) {
        std::fprintf(stderr, "reprise: cannot map a fiber stack of %zu bytes: %s\n", s.mapped_bytes,
                     std::strerror(errno));
        std::abort();
    }
    s.base = p;
    REPRISE_ASSERT_MSG(::mprotect(p, limits::stack_guard_bytes, PROT_NONE) == 0, "mprotect of a stack guard page");
    return s;
}

void unmap_stack(Stack& s) noexcept {
    if (s.base) {
        // ASan keeps the poison of frames that never returned (a fiber's last
        // switch); whatever is mapped here later must not inherit it.
        ASAN_UNPOISON_MEMORY_REGION(s.bottom(), s.usable_bytes);
        ::munmap(s.base, s.mapped_bytes);
    }
    s = Stack{};
}

void install_overflow_handler() {
    // Checked at every Runtime's construction, not once per thread: whoever set a
    // SIGSEGV handler since (a test framework, a crash reporter) would silence ours.
    // Each thread that runs fibers needs its own alternate stack: the fault
    // happens with the fiber's stack exhausted. It lives as long as the thread.
    stack_t current{};
    if (::sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE)) {
        stack_t alt{};
        alt.ss_sp = std::malloc(limits::signal_stack_bytes);
        REPRISE_ASSERT(alt.ss_sp != nullptr);
        alt.ss_size = limits::signal_stack_bytes;
        REPRISE_ASSERT(::sigaltstack(&alt, nullptr) == 0);
    }
    struct sigaction ours{};
    ours.sa_sigaction = on_fault;
    ours.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&ours.sa_mask);
    struct sigaction before{};
    ::sigaction(SIGSEGV, nullptr, &before);
    if (before.sa_sigaction != on_fault || !(before.sa_flags & SA_SIGINFO)) {
        ::sigaction(SIGSEGV, &ours, &previous_segv);
        ::sigaction(SIGBUS, &ours, &previous_bus);
    }
}


void add_crash_hook(CrashHook hook, void* arg) {
    bool added = false;
    for (auto& slot : crash_hooks) {
        CrashHook expected = nullptr;
        if (slot.hook.load() == nullptr) {
            slot.arg.store(arg);
            if (slot.hook.compare_exchange_strong(expected, hook)) {
                added = true;
                break;
            }
        }
    }
    REPRISE_ASSERT_MSG(added, "more recording runtimes at once than limits::crash_hooks_max");
    crash_hooks_ran.store(false);
    crash_wait_left_ns.store(limits::crash_wait_total_ns);
    for (int signo : {SIGFPE, SIGILL, SIGABRT}) {
        struct sigaction before{};
        ::sigaction(signo, nullptr, &before);
        if (before.sa_handler == on_fatal)
            continue;
        struct sigaction ours{};
        ours.sa_handler = on_fatal;
        ours.sa_flags = SA_ONSTACK | SA_NODEFER | SA_RESETHAND;
        sigemptyset(&ours.sa_mask);
        ::sigaction(signo, &ours, nullptr);
    }
}

bool crash_wait_step() noexcept {
    if (crash_wait_left_ns.fetch_sub(limits::crash_wait_step_ns) <= 0)
        return false;
    ::usleep(static_cast<useconds_t>(limits::crash_wait_step_ns / 1000));
    return true;
}

void remove_crash_hook(CrashHook hook, void* arg) noexcept {
    for (auto& slot : crash_hooks) {
        if (slot.hook.load() == hook && slot.arg.load() == arg) {
            slot.hook.store(nullptr);
            slot.arg.store(nullptr);
        }
    }
}

} // namespace reprise::detail
