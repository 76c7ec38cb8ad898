// Time from the TSC, calibrated once at boot against the PIT (arch/x86_64/time.cpp): enough for
// bounded waits.
#pragma once
#include <stdint.h>

namespace moat::arch {

// TSC ticks per microsecond, set by the calibration (a guess until then).
extern uint64_t g_tsc_per_us;

inline uint64_t rdtsc() {
    uint32_t lo, hi;
    asm volatile("lfence\n\trdtsc" : "=a"(lo), "=d"(hi) : : "memory");
    return uint64_t{hi} << 32 | lo;
}

inline uint64_t now_ns() { return static_cast<uint64_t>(static_cast<unsigned __int128>(rdtsc()) * 1000u / g_tsc_per_us); }

inline void relax() { asm volatile("pause" ::: "memory"); }

}  // namespace moat::arch
