// Filling a private table (arm64): general registers only in moat's own code (no FP/SIMD state to
// save around it), so the portable loop is the fill.
#pragma once
#include "common/fill.hpp"

namespace moat::arch {

inline void fill_step(uint64_t* p, size_t n, uint64_t first, uint64_t step) { fill_step_portable(p, n, first, step); }

}  // namespace moat::arch
