#pragma once
#include "common/fdt.hpp"
#include "common/page_pool.hpp"
#include "drivers/iommu/smmu_v3.hpp"
#include "drivers/pci/ecam.hpp"

namespace moat {

// Boots the PV-IOMMU test guest at EL1 with edu passed through and attached, through `smmu`,
// to the guest's default context; serves its hypercalls and ends the run with its verdict.
[[noreturn]] void run_pv_guest(const dt::Tree& host, PagePool& pool, SmmuV3& smmu, const pci::Device& edu, StreamId sid);

}  // namespace moat
