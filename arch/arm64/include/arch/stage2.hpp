// The CPU's stage-2 TLB: invalidation of what a guest's P2M change removed. Same header for
// every arch; the portable code reaches it through IoDomain::CpuWalker when the P2M is shared.
#pragma once
#include "common/iopt/gather.hpp"
#include "common/status.hpp"

namespace moat::arch {

// Invalidates, on every CPU of the inner-shareable domain, the stage-2 (and the combined stage-1)
// entries of guest `vmid` for the ranges `g` gathered (all of the guest's when it overflowed or
// is large), and waits for completion. VTTBR_EL2 is restored to what it was.
Status stage2_invalidate(uint16_t vmid, const iopt::Gather& g);

}  // namespace moat::arch
