#pragma once
#include <stdint.h>

namespace moat::arch {

inline unsigned current_el() { uint64_t v; asm volatile("mrs %0, CurrentEL" : "=r"(v)); return static_cast<unsigned>((v >> 2) & 3); }
inline uint64_t midr() { uint64_t v; asm volatile("mrs %0, midr_el1" : "=r"(v)); return v; }
// Physical address range the CPU supports, in bits (ID_AA64MMFR0_EL1.PARange).
unsigned pa_bits();

// Ends the run: semihosting exit with `code` where available, else a low-power loop.
[[noreturn]] void halt(int code);

}  // namespace moat::arch
