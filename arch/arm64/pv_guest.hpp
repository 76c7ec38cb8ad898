#pragma once
#include "common/fault_log.hpp"
#include "common/fdt.hpp"
#include "common/page_pool.hpp"
#include "common/iommu.hpp"
#include "drivers/pci/ecam.hpp"

namespace moat {

// Boots the PV-IOMMU test guest at EL1 with edu passed through and attached, through `iommu`,
// to the guest's default context; serves its hypercalls and ends the run with its verdict.
// The arm64 hook of the portable flow (hyp/boot.hpp).
// Faults go to `faults` (by interrupt, or found by a poll at each hypercall), which reports them
// as they come, rate-limited: the guest's device cannot flood the console.
[[noreturn]] void run_pv_guest(const dt::Tree& host, PagePool& pool, Iommu& iommu, const pci::Device& edu, StreamId sid,
                               FaultLog& faults);

}  // namespace moat
