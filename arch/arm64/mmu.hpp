#pragma once
#include <stdint.h>

namespace moat::arch {

// Identity-maps the first 1 TiB at EL2 with 1 GiB blocks (2 MiB where the window starts or ends
// inside a GiB): [ram_base, ram_end) as Normal write-back memory, everything else as
// Device-nGnRE, and turns the MMU and caches on.
// Normal memory is needed for exclusives (spinlocks) and for unaligned accesses in libc.
void mmu_enable_identity(uint64_t ram_base, uint64_t ram_end);

}  // namespace moat::arch
