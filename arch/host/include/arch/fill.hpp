// Filling a private table in host builds. Host code owns its vector registers, so where the CPU
// has AVX2 a table-sized fill stores 32 bytes at a time (decided once, at start-up), as the C
// library's own memset picks its widest stores; short fills (the DMA hot path's few entries) and
// CPUs without AVX2 take the portable loop. Both are exposed so that a test can hold each
// against the other.
#pragma once
#include "common/fill.hpp"

namespace moat::arch {

namespace host {
extern const bool g_fill_avx2;                                              // this CPU has AVX2
void fill_step_avx2(uint64_t* p, size_t n, uint64_t first, uint64_t step);  // only where it has
}  // namespace host

inline void fill_step(uint64_t* p, size_t n, uint64_t first, uint64_t step) {
    if (n >= 16 && host::g_fill_avx2) host::fill_step_avx2(p, n, first, step);
    else fill_step_portable(p, n, first, step);
}

}  // namespace moat::arch
