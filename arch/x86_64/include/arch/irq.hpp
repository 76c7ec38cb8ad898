// Interrupts on x86_64: masking on this CPU (RFLAGS.IF) and the platform's controller. moat drives
// no x86 interrupt controller yet (no LAPIC/IOAPIC or MSI path): irq_controller() is nullptr, so
// every IOMMU polls for faults and says so.
#pragma once
#include <stdint.h>

#include "common/irq.hpp"

namespace moat::arch {

using IrqFlags = uint64_t;  // the saved RFLAGS

inline IrqFlags irq_save() {
    uint64_t f;
    asm volatile("pushfq\n\tpopq %0\n\tcli" : "=r"(f) : : "memory");
    return f;
}
inline void irq_restore(IrqFlags f) {
    if (f & (1u << 9)) asm volatile("sti" ::: "memory");  // RFLAGS.IF
}
inline bool irqs_masked() {
    uint64_t f;
    asm volatile("pushfq\n\tpopq %0" : "=r"(f));
    return (f & (1u << 9)) == 0;
}

inline IrqController* irq_controller() { return nullptr; }

// No interrupt source is enabled, so a hlt would never end: the wait is a pause, and a bounded
// wait must not count on sleeping.
inline bool wfi_wakes_by_time() { return false; }
inline void wait_for_interrupt() { asm volatile("pause" ::: "memory"); }

}  // namespace moat::arch
