// The debug table's one instance, the runtimes' registration in it, and the stop the debugger breaks on.
#include "reprise/runtime/internal/debug_table.hpp"

#include "reprise/runtime/internal/core.hpp"
#include "reprise/runtime/internal/timers.hpp"

#include <boost/version.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace reprise::detail {
namespace {

// offsetof on a class that is not standard-layout (Fiber holds a std::string) is
// conditionally supported; g++ and clang compute it as for any class without virtual bases.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
constexpr reprise_debug_fiber_layout fiber_layout() {
    return reprise_debug_fiber_layout{
        .size = sizeof(Fiber),
        .id = offsetof(Fiber, id),
        .name = offsetof(Fiber, running_info) + offsetof(RunningFiberInfo, name),
        .state = offsetof(Fiber, state),
        .context = offsetof(Fiber, context),
        .all_next = offsetof(Fiber, all_next),
        .waiting_on = offsetof(Fiber, waiting_on),
        .park_deadline_ns = offsetof(Fiber, park_deadline_ns),
        .stack_base = offsetof(Fiber, stack) + offsetof(Stack, base),
        .stack_mapped_bytes = offsetof(Fiber, stack) + offsetof(Stack, mapped_bytes),
    };
}

constexpr reprise_debug_timer_layout timer_layout() {
    return reprise_debug_timer_layout{
        .waiters = offsetof(TimerState, waiters),
        .deadline_ns = offsetof(TimerState, deadline_ns),
        .heap_index = offsetof(TimerState, heap_index),
        .reserved = 0,
    };
}
#pragma GCC diagnostic pop

// The reads the extension makes have these sizes: a change of type is a change of version.
static_assert(sizeof(Fiber::id) == 8 && sizeof(Fiber::state) == 1 && sizeof(Fiber::context) == sizeof(void*));
static_assert(sizeof(Fiber::park_deadline_ns) == 8 && sizeof(RunningFiberInfo::name) == sizeof(void*));
static_assert(sizeof(WaitKind) == 1);
static_assert(sizeof(TimerState::deadline_ns) == 8 && sizeof(TimerState::heap_index) == 8);
static_assert(TimerState::npos == UINT64_MAX, "the extension reads an unarmed timer's heap_index as UINT64_MAX");

constexpr const char* fiber_state_names[] = {"ready", "running", "parked", "done"};
static_assert(static_cast<int>(FiberState::done) + 1 == std::size(fiber_state_names));

constexpr WaitKind last_wait_kind = WaitKind::other;
const char* const* wait_kind_names() {
    static const char* names[static_cast<int>(last_wait_kind) + 1];
    for (int k = 0; k <= static_cast<int>(last_wait_kind); ++k)
        names[k] = wait_kind_name(static_cast<WaitKind>(k));
    return names;
}

constexpr std::uint32_t arch() {
#if defined(__x86_64__)
    return reprise_arch_x86_64_sysv;
#elif defined(__aarch64__)
    return reprise_arch_aarch64_aapcs;
#else
    return reprise_arch_unknown;
#endif
}

std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
}
std::uint32_t next_index = 0;

} // namespace

void debug_register(reprise_debug_runtime& runtime) noexcept {
    std::lock_guard lock(registry_mutex());
    if (reprise_debug.wait_kind_names == nullptr)
        reprise_debug.wait_kind_names = wait_kind_names();
    runtime.index = next_index++;
    runtime.next = nullptr;
    reprise_debug_runtime** at = &reprise_debug.runtimes;
    while (*at)
        at = &(*at)->next;
    *at = &runtime;
    ++reprise_debug.runtime_count;
}

void debug_unregister(reprise_debug_runtime& runtime) noexcept {
    std::lock_guard lock(registry_mutex());
    for (reprise_debug_runtime** at = &reprise_debug.runtimes; *at; at = &(*at)->next) {
        if (*at == &runtime) {
            *at = runtime.next;
            --reprise_debug.runtime_count;
            return;
        }
    }
}

bool debug_stop(reprise_debug_stop_reason reason, const reprise_debug_runtime& node, std::uint64_t event,
                std::int64_t virtual_ns, std::string_view text, std::uint64_t handle) noexcept {
    reprise_debug.stop_reason = reason;
    reprise_debug.stopped_node = static_cast<std::int32_t>(node.index);
    reprise_debug.stopped_event = event;
    reprise_debug.stopped_virtual_ns = virtual_ns;
    reprise_debug.stopped_handle = handle;
    const std::size_t n = std::min(text.size(), sizeof reprise_debug.stop_text - 1);
    std::memcpy(reprise_debug.stop_text, text.data(), n);
    reprise_debug.stop_text[n] = '\0';
    if (reprise_debug.attached == 0)
        return false;
    reprise_debug_stop();
    return true;
}

bool debugger_expected() noexcept {
    const char* v = std::getenv("REPRISE_DEBUGGER");  // reprise-allow: env (set by the debugger extension, not an input)
    return v != nullptr && *v != '\0';
}

void debug_replay_starts(const reprise_debug_runtime& node) noexcept {
    if (!debugger_expected())
        return;
    // One stop per process: the nodes of a joint replay start one by one as the replay goes.
    static std::atomic<bool> stopped_once{false};
    if (stopped_once.exchange(true))
        return;
    reprise_debug.attached = 1;
    debug_stop(reprise_stop_started, node, 0, 0, "the replay starts");
}

} // namespace reprise::detail

extern "C" {

reprise_debug_table reprise_debug = {
    .magic = {'r', 'e', 'p', 'r', 'i', 's', 'e', '\0'},
    .version = REPRISE_DEBUG_TABLE_VERSION,
    .table_bytes = sizeof(reprise_debug_table),
    .boost_version = BOOST_VERSION,
    .arch = reprise::detail::arch(),
    .runtime_version = REPRISE_VERSION,
    .fiber = reprise::detail::fiber_layout(),
    .wait_list = {.kind = reprise::WaitList::debug_kind_offset(), .handle = reprise::WaitList::debug_handle_offset()},
    .timer = reprise::detail::timer_layout(),
    .fiber_state_names = reprise::detail::fiber_state_names,
    .fiber_state_count = std::size(reprise::detail::fiber_state_names),
    .wait_kind_count = static_cast<std::uint32_t>(reprise::detail::last_wait_kind) + 1,
    .wait_kind_names = nullptr,
    .record_kind_names = nullptr,
    .record_kind_count = 0,
    .wake_kind_count = 0,
    .wake_kind_names = nullptr,
    .runtimes = nullptr,
    .runtime_count = 0,
    .armed = 0,
    .attached = 0,
    .reserved0 = {},
    .stop_node = -1,
    .stop_event = UINT64_MAX,
    .stop_kinds = 0,
    .reserved1 = 0,
    .stop_handle = 0,
    .checkpoint_every = 0,
    .output_needle_bytes = 0,
    .reserved2 = 0,
    .output_needle = {},
    .stop_reason = reprise_stop_none,
    .stopped_node = -1,
    .stopped_event = 0,
    .stopped_virtual_ns = 0,
    .stopped_handle = 0,
    .stop_text = {},
};

// noinline and an empty asm keep the call and the function: the debugger's breakpoint needs both.
__attribute__((noinline, used)) void reprise_debug_stop(void) { asm volatile("" ::: "memory"); }

} // extern "C"
