// Finds, by running it, where the Boost.Context this is built with (fcontext, x86_64) leaves a
// suspended context's registers: the slot of the resume pc, of rbp and of rbx, and the frame's size
// (the stack pointer after the resume, from the context pointer). tests/debug/fcontext_layout_test.py
// checks the gdb extension's FCONTEXT_LAYOUTS against it, for the installed Boost and for another.
#include <boost/context/detail/fcontext.hpp>
#include <boost/version.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

namespace fc = boost::context::detail;

std::uintptr_t fiber_rbp = 0, fiber_sp_after = 0;

// Values the callee-saved registers hold across the jump ("REPRISE" and the register's number),
// and the context to jump to, read by the asm below through one pointer.
struct Jump {
    std::uintptr_t rbx = 0x5245505249534503, r12 = 0x524550524953450c, r13 = 0x524550524953450d,
                   r14 = 0x524550524953450e, r15 = 0x524550524953450f;
    fc::fcontext_t to = nullptr;
};
Jump jump;

// The fiber parks here, its callee-saved registers holding the marks (rbp: its frame) at the jump,
// made from asm so that the compiler keeps nothing of its own in those registers.
__attribute__((noinline)) void park(fc::fcontext_t to) {
    asm volatile("mov %%rbp, %0" : "=r"(fiber_rbp));
    jump.to = to;
    void* back = nullptr;
    std::uintptr_t sp = 0;
    asm volatile("push %%rbx\n\tpush %%r12\n\tpush %%r13\n\tpush %%r14\n\tpush %%r15\n\t"
                 "mov 0(%%rax), %%rbx\n\tmov 8(%%rax), %%r12\n\tmov 16(%%rax), %%r13\n\t"
                 "mov 24(%%rax), %%r14\n\tmov 32(%%rax), %%r15\n\tmov 40(%%rax), %%rdi\n\t"
                 "xor %%esi, %%esi\n\tcall jump_fcontext@PLT\n\t"
                 "mov %%rsp, %%rdx\n\t"
                 "pop %%r15\n\tpop %%r14\n\tpop %%r13\n\tpop %%r12\n\tpop %%rbx"
                 : "=a"(back), "=d"(sp)
                 : "a"(&jump)
                 : "rdi", "rsi", "rcx", "r8", "r9", "r10", "r11", "memory", "cc");
    fiber_sp_after = sp;
    fc::jump_fcontext(back, nullptr);
}

// The context's bytes as the jump left them, read without the sanitizers (they do not know the
// fiber's stack switch).
__attribute__((no_sanitize("address", "undefined"))) void copy_context(unsigned char* to, const void* from,
                                                                      std::size_t n) {
    const volatile unsigned char* p = static_cast<const volatile unsigned char*>(from);
    for (std::size_t i = 0; i < n; ++i)
        to[i] = p[i];
}

void entry(fc::transfer_t t) {
    park(t.fctx);
}

// The one slot of the context's frame holding `value` (-1: none, -2: several).
int slot_of(const unsigned char* c, long frame, std::uintptr_t value) {
    int found = -1;
    for (int off = 0; off + 8 <= frame; off += 8) {
        std::uintptr_t v = 0;
        std::memcpy(&v, c + off, 8);
        if (v == value)
            found = found == -1 ? off : -2;
    }
    return found;
}

alignas(16) unsigned char stack[1 << 16];

} // namespace

int main() {
    fc::fcontext_t f = fc::make_fcontext(stack + sizeof stack, sizeof stack, entry);
    fc::transfer_t t = fc::jump_fcontext(f, nullptr);  // the fiber is parked in park()
    // The context's bytes as the jump left them (the resume below reuses that stack).
    unsigned char c[0x100];
    copy_context(c, t.fctx, sizeof c);
    const auto at = reinterpret_cast<std::uintptr_t>(t.fctx);
    fc::jump_fcontext(t.fctx, nullptr);  // resumed: park() notes its stack pointer and comes back
    const long frame = static_cast<long>(fiber_sp_after - at);
    if (frame <= 0 || frame > static_cast<long>(sizeof c)) {
        std::printf("boost=%d frame=%ld: not a frame this probe understands\n", BOOST_VERSION, frame);
        return 1;
    }
    const int rbp = slot_of(c, frame, fiber_rbp), rbx = slot_of(c, frame, jump.rbx), r12 = slot_of(c, frame, jump.r12),
              r13 = slot_of(c, frame, jump.r13), r14 = slot_of(c, frame, jump.r14), r15 = slot_of(c, frame, jump.r15);
    // The resume pc: the one other slot holding an address inside park() (rbp may hold one too).
    const auto park_at = reinterpret_cast<std::uintptr_t>(&park);
    int pc = -1;
    for (int off = 0; off + 8 <= frame; off += 8) {
        std::uintptr_t v = 0;
        std::memcpy(&v, c + off, 8);
        if (off != rbp && v > park_at && v < park_at + 512)
            pc = pc == -1 ? off : -2;
    }
    std::printf("boost=%d pc=%d frame=%ld rbp=%d rbx=%d r12=%d r13=%d r14=%d r15=%d\n", BOOST_VERSION, pc, frame, rbp,
                rbx, r12, r13, r14, r15);
    return pc >= 0 && rbp >= 0 && rbx >= 0 && r12 >= 0 && r13 >= 0 && r14 >= 0 && r15 >= 0 ? 0 : 1;
}
