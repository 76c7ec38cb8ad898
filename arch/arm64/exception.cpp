// Unexpected exceptions at EL2: report the syndrome and end the run with a non-zero status.
#include "arch/arm64/esr.hpp"
#include "arch/arm64/gic_v3.hpp"
#include "arch/arm64/trap.hpp"
#include "arch/cpu.hpp"
#include "common/format.hpp"

namespace moat::arch {
bool halting();
[[noreturn]] void power_off();
}

namespace moat::arch {
namespace {
GuestTrapHandler g_guest_handler;
GuestIrqExit g_guest_irq_exit;
}
void set_guest_trap_handler(GuestTrapHandler h) { g_guest_handler = h; }
void set_guest_irq_exit(GuestIrqExit h) { g_guest_irq_exit = h; }
}  // namespace moat::arch

namespace {

using Frame = moat::arch::TrapFrame;

const char* const kVectorNames[16] = {
    "sync (SP_EL0)",      "irq (SP_EL0)",      "fiq (SP_EL0)",      "serror (SP_EL0)",
    "sync",               "irq",               "fiq",               "serror",
    "sync from EL1 (A64)", "irq from EL1 (A64)", "fiq from EL1 (A64)", "serror from EL1 (A64)",
    "sync from EL1 (A32)", "irq from EL1 (A32)", "fiq from EL1 (A32)", "serror from EL1 (A32)",
};

[[noreturn]] void unexpected(Frame* f, uint64_t vector, uint64_t esr) {
    using namespace moat;
    uint64_t far;
    asm volatile("mrs %0, far_el2" : "=r"(far));
    if (arch::halting()) {
        // The semihosting exit trapped (QEMU without -semihosting): power off instead.
        arch::power_off();
    }
    print("\nmoat: unexpected exception at EL2: %s\n", kVectorNames[vector & 15]);
    print("  ESR_EL2 0x%08lx  class 0x%02x: %s\n", esr, arch::esr::ec(esr), arch::esr::class_name(esr));
    if (arch::esr::is_abort(esr))
        print("  %s at level %u, %s\n", arch::esr::fault_status(esr), arch::esr::fault_level(esr),
              arch::esr::is_write(esr) ? "write" : "read");
    print("  ELR_EL2 0x%016lx  FAR_EL2 0x%016lx  SPSR 0x%08lx\n", f->elr, far, f->spsr);
    for (unsigned i = 0; i < 31; i += 4) {
        for (unsigned k = i; k < i + 4 && k < 31; k++) print("  x%-2u 0x%016lx", k, f->x[k]);
        print("\n");
    }
    print("moat: exit 4 (unexpected exception)\n");
    arch::halt(4);
}

}  // namespace

extern "C" void el2_trap(Frame* f, uint64_t vector) {
    // IRQs, taken at EL2 (moat waiting with PSTATE.I clear) or from the guest (HCR_EL2.IMO):
    // one acknowledged and handled, then back to what was interrupted.
    if (vector == 5 || vector == 9 || vector == 13) {
        if (moat::arch::GicV3* g = moat::arch::gic()) {
            (void)g->dispatch();
            if (vector != 5 && moat::arch::g_guest_irq_exit) moat::arch::g_guest_irq_exit(*f);
            return;
        }
    }
    uint64_t esr;
    asm volatile("mrs %0, esr_el2" : "=r"(esr));
    if (vector >= 8 && vector < 16 && moat::arch::g_guest_handler)
        return moat::arch::g_guest_handler(*f, esr, static_cast<unsigned>(vector));
    unexpected(f, vector, esr);
}
