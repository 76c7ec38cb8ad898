// Unexpected exceptions in long mode: an IDT of 32 gates to the stubs in vectors.S, and the
// report (vector, error code decoded, RIP, CR2, registers) that ends the run with status 4.
#include "arch/cpu.hpp"
#include "arch/x86_64/exception.hpp"
#include "arch/x86_64/exception_decode.hpp"
#include "common/format.hpp"
#include "hyp/boot.hpp"

extern "C" const uint64_t x86_vector_stubs[32];

namespace moat::arch {

namespace {

struct [[gnu::packed]] Gate {
    uint16_t off_lo, selector;
    uint8_t ist, type;
    uint16_t off_mid;
    uint32_t off_hi, zero;
};
static_assert(sizeof(Gate) == 16);

struct [[gnu::packed]] Idtr {
    uint16_t limit;
    uint64_t base;
};

alignas(16) Gate g_idt[32];
constexpr uint16_t kCodeSelector = 0x08;  // head.S's GDT
constexpr uint8_t kInterruptGate = 0x8e;  // present, DPL 0, 64-bit interrupt gate

}  // namespace

void exceptions_init() {
    for (unsigned v = 0; v < 32; v++) {
        uint64_t a = x86_vector_stubs[v];
        g_idt[v] = Gate{static_cast<uint16_t>(a), kCodeSelector, 0, kInterruptGate, static_cast<uint16_t>(a >> 16),
                        static_cast<uint32_t>(a >> 32), 0};
    }
    Idtr r{sizeof g_idt - 1, reinterpret_cast<uintptr_t>(g_idt)};
    asm volatile("lidt %0" : : "m"(r) : "memory");
}

}  // namespace moat::arch

extern "C" void x86_trap(moat::arch::TrapFrame* f) {
    using namespace moat;
    using namespace moat::arch::x86;
    uint64_t cr2;
    asm volatile("mov %%cr2, %0" : "=r"(cr2));
    VectorInfo vi = vector_info(f->vector);
    print("\nmoat: unexpected exception %s (%s, vector %lu)\n", vi.mnemonic, vi.name, f->vector);
    if (f->vector == 14)
        print("  error code 0x%lx: %s, %s in %s mode at 0x%016lx (CR2)\n", f->error, pf_cause(f->error), pf_access(f->error),
              pf_mode(f->error), cr2);
    else if (has_selector_code(f->vector) && f->error)
        print("  error code 0x%lx: selector index %lu in the %s%s\n", f->error, sel_index(f->error), sel_table(f->error),
              sel_external(f->error) ? ", external event" : "");
    else if (vi.has_error_code)
        print("  error code 0x%lx\n", f->error);
    print("  RIP 0x%016lx  CS 0x%04lx  RFLAGS 0x%08lx  RSP 0x%016lx  SS 0x%04lx\n", f->rip, f->cs, f->rflags, f->rsp, f->ss);
    print("  CR2 0x%016lx\n", cr2);
    print("  rax 0x%016lx  rbx 0x%016lx  rcx 0x%016lx  rdx 0x%016lx\n", f->rax, f->rbx, f->rcx, f->rdx);
    print("  rsi 0x%016lx  rdi 0x%016lx  rbp 0x%016lx  r8  0x%016lx\n", f->rsi, f->rdi, f->rbp, f->r8);
    print("  r9  0x%016lx  r10 0x%016lx  r11 0x%016lx  r12 0x%016lx\n", f->r9, f->r10, f->r11, f->r12);
    print("  r13 0x%016lx  r14 0x%016lx  r15 0x%016lx\n", f->r13, f->r14, f->r15);
    print("moat: exit %d (unexpected exception)\n", hyp::kExitException);
    arch::halt(hyp::kExitException);
}
