// Several CPUs on arm64 (smp.cpp): the boot CPU starts the others the tree names, then hands
// them work one piece at a time. These back the flow's start_cpus/run_on_cpu hooks (hyp/boot.hpp).
#pragma once
#include "common/fdt.hpp"

namespace moat::arch {

// Starts every CPU the tree's /cpus names (enable-method psci) through PSCI CPU_ON, each as the
// next logical id, waiting a bounded time for each; one that does not come up is reported and
// left out (its id is not reused). Returns the CPUs online, the boot CPU included.
unsigned start_cpus(const dt::Tree& t);
// Hands fn(arg) to idle CPU `cpu` (not the boot CPU); false if it is not online or still busy.
bool run_on_cpu(unsigned cpu, void (*fn)(void*), void* arg);
// Online and without work.
bool cpu_idle(unsigned cpu);

}  // namespace moat::arch
