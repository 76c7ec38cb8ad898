#pragma once
#include <stddef.h>
#include <stdint.h>

#include "common/status.hpp"

namespace moat::arch {

inline unsigned current_el() { uint64_t v; asm volatile("mrs %0, CurrentEL" : "=r"(v)); return static_cast<unsigned>((v >> 2) & 3); }
inline uint64_t midr() { uint64_t v; asm volatile("mrs %0, midr_el1" : "=r"(v)); return v; }
// Physical address range the CPU supports, in bits (ID_AA64MMFR0_EL1.PARange).
unsigned pa_bits();

// CPUs moat can run on; logical ids are 0..kMaxCpus-1, in the order boot brings them up.
constexpr unsigned kMaxCpus = 8;
// Per-CPU data is spaced by this (the largest line of the supported cores); cache maintenance
// reads the real line size from CTR_EL0 instead.
constexpr size_t kCacheLine = 64;

// MPIDR_EL1's affinity fields (Aff3, Aff2..Aff0): what the GIC and PSCI name a CPU by.
inline uint64_t mpidr_affinity() {
    uint64_t v;
    asm volatile("mrs %0, mpidr_el1" : "=r"(v));
    return v & 0xff00ffffffull;
}

// This CPU's logical id. TPIDR_EL2 holds it: MPIDR affinities are sparse (0x000, 0x100 on a
// two-cluster SoC), so each CPU records its dense index once, in cpu_init(). head.S zeroes the
// register, so the boot CPU reads 0 even before cpu_init(0).
inline unsigned cpu_id() {
    uint64_t v;
    asm volatile("mrs %0, tpidr_el2" : "=r"(v));
    return static_cast<unsigned>(v);
}
// Called once on each CPU as it comes up (the boot CPU with 0), before it touches PerCpu data:
// records the CPU's MPIDR affinity under `id` and makes cpu_id() return `id` here.
// out_of_range: id >= kMaxCpus (nothing changed).
Status cpu_init(unsigned id);
// The MPIDR affinity cpu_init() recorded for logical CPU `id`, or ~0 if it has not run there.
uint64_t cpu_affinity(unsigned id);

// Ends the run: semihosting exit with `code` where available, else a low-power loop.
[[noreturn]] void halt(int code);

}  // namespace moat::arch
