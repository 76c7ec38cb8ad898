// The CPU's stage-2 TLB, as the host build has it: nothing to invalidate, but each call is
// recorded so a test can prove a P2M removal reached the CPU as well as the IOMMUs.
#pragma once
#include "common/iopt/gather.hpp"
#include "common/status.hpp"

namespace moat::arch {

// Records the call (vmid, ranges) for arch::host::stage2_calls().
Status stage2_invalidate(uint16_t vmid, const iopt::Gather& g);

}  // namespace moat::arch

namespace moat::arch::host {
struct Stage2Calls {
    uint64_t calls = 0;       // stage2_invalidate() calls
    uint64_t pages = 0;       // 4 KiB pages they named (an overflowed gather counts as 0: all)
    uint16_t last_vmid = 0;
};
Stage2Calls stage2_calls();
}  // namespace moat::arch::host
