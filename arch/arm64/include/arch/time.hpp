// Time from the generic timer: enough for bounded waits.
#pragma once
#include <stdint.h>

namespace moat::arch {

inline uint64_t now_ns() {
    uint64_t cnt, frq;
    asm volatile("isb; mrs %0, cntpct_el0" : "=r"(cnt) :: "memory");
    asm volatile("mrs %0, cntfrq_el0" : "=r"(frq));
    if (frq == 0) frq = 62500000;  // QEMU virt's rate, should firmware leave CNTFRQ unset
    return static_cast<uint64_t>((static_cast<unsigned __int128>(cnt) * 1000000000u) / frq);
}

inline void relax() { asm volatile("yield" ::: "memory"); }

}  // namespace moat::arch
