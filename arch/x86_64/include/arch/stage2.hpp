// The CPU's stage-2 TLB, as x86_64 has it today: moat runs no guests on x86 (no VMX/EPT yet),
// so there is no CPU second stage to invalidate, and a P2M shared with the CPU cannot exist.
// Same header as every arch; the portable code reaches it through IoDomain::CpuWalker.
#pragma once
#include "common/iopt/gather.hpp"
#include "common/status.hpp"

namespace moat::arch {

// Always Status::unsupported: there is no guest stage 2 on this arch.
inline Status stage2_invalidate(uint16_t, const iopt::Gather&) { return Status::unsupported; }

}  // namespace moat::arch
