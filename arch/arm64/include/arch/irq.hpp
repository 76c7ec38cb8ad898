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

// The interrupt controller this platform drives, or nullptr while none is (then drivers poll).
// Returns nullptr until the GICv3 driver exists.
IrqController* irq_controller();

}  // namespace moat::arch
