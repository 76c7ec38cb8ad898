// Interrupts on arm64: masking on this CPU (PSTATE.DAIF) and the platform's controller.
#pragma once
#include <stdint.h>

#include "common/irq.hpp"

namespace moat::arch {

// The saved DAIF, to be handed back to irq_restore().
using IrqFlags = uint64_t;

// Masks IRQ and FIQ on this CPU and returns the previous mask state. FIQ too: whichever of the
// two the controller signals moat's handlers on, neither may run inside the section. DAIF writes
// are self-synchronising; the memory clobber keeps the compiler from moving accesses across.
inline IrqFlags irq_save() {
    uint64_t daif;
    asm volatile("mrs %0, daif\n\tmsr daifset, #3" : "=r"(daif) : : "memory");
    return daif;
}
inline void irq_restore(IrqFlags daif) { asm volatile("msr daif, %0" : : "r"(daif) : "memory"); }
inline bool irqs_masked() {
    uint64_t daif;
    asm volatile("mrs %0, daif" : "=r"(daif));
    return (daif & (1u << 7)) != 0;  // PSTATE.I
}

// The interrupt controller this platform drives (the GICv3, once the flow's hook initialised
// it), or nullptr while none is: then drivers poll.
IrqController* irq_controller();

// Sleeps until an interrupt is pending, takes it, and returns with interrupts masked again.
// Called masked: WFI wakes on a pending interrupt whatever PSTATE.I says, so nothing raised
// between the caller's last check and the WFI is missed.
// Whether a wfi is sure to end by time too (the tick runs): a bounded wait may then sleep.
bool wfi_wakes_by_time();
inline void wait_for_interrupt() { asm volatile("dsb sy\n\twfi\n\tmsr daifclr, #2\n\tisb\n\tmsr daifset, #2" ::: "memory"); }

}  // namespace moat::arch
