// The EL2 physical timer (CNTHP): moat's periodic tick. Its line is the fourth interrupt of the
// tree's `arm,armv8-timer` node (secure, non-secure, virtual, hypervisor: docs/hardware.md §9).
// With the tick running, a wait in wfi also ends by time: every bounded wait checks now_ns(),
// and the tick wakes it at least once a period.
#pragma once
#include "common/fdt.hpp"
#include "common/irq.hpp"
#include "common/why.hpp"

namespace moat::arch {

Status tick_start(IrqController& ic, const dt::Tree& t, unsigned hz, Why& why);
// A secondary CPU's own tick (CNTHP is per CPU, its PPI banked), at the rate tick_start() chose;
// false when the boot CPU has no tick.
bool tick_start_cpu();
// Ticks taken on every CPU, and on one.
uint64_t ticks();
uint64_t ticks_on(unsigned cpu);
unsigned tick_intid();
// Called from each tick's interrupt (a vCPU scheduler's time slice); nullptr for none.
void set_tick_hook(void (*fn)());

}  // namespace moat::arch
