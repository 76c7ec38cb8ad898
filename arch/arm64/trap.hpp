// The register frame vectors.S saves on every trap into EL2.
#pragma once
#include <stdint.h>

namespace moat::arch {

struct TrapFrame {
    uint64_t x[31];
    uint64_t sp;
    uint64_t elr;
    uint64_t spsr;
};
static_assert(sizeof(TrapFrame) == 34 * 8, "vectors.S lays out 34 words");

// Handler for every trap from the guest (vectors 8..15: sync, irq, fiq, serror, from AArch64 or
// AArch32 EL1); set by whoever runs a guest. A guest's trap never ends moat as an EL2 exception.
using GuestTrapHandler = void (*)(TrapFrame& f, uint64_t esr, unsigned vector);
void set_guest_trap_handler(GuestTrapHandler h);
// Called after a physical IRQ taken from the guest was handled, before the guest resumes: the
// point where whoever runs vCPUs updates their virtual interrupts and may switch to another.
using GuestIrqExit = void (*)(TrapFrame& f);
void set_guest_irq_exit(GuestIrqExit h);

}  // namespace moat::arch
