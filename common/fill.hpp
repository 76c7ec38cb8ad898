// p[i] = first + i * step for i < n, in plain stores: the bulk of a large map in small pages (a
// fresh leaf table filled before anything points at it). Every target's arch/fill.hpp provides
// arch::fill_step; this portable loop is what the targets without wider stores use.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace moat {

// Two pairs of values per step, so that -O2 makes two independent 16-byte stores of them where
// the target has them (SSE2 movups, arm64 stp of two general registers) and 8-byte stores where
// it has only general registers (x86_64 kernels).
inline void fill_step_portable(uint64_t* p, size_t n, uint64_t first, uint64_t step) {
    uint64_t a = first, b = first + step;
    const uint64_t step2 = 2 * step, step4 = 4 * step;
    size_t i = 0;
#pragma GCC unroll 2
    for (; i + 4 <= n; i += 4) {
        p[i] = a;
        p[i + 1] = b;
        p[i + 2] = a + step2;
        p[i + 3] = b + step2;
        a += step4;
        b += step4;
    }
    for (; i < n; i++, a += step) p[i] = a;
}

}  // namespace moat
