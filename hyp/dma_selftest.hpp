// The DMA story `make run` tells and the QEMU test asserts: a real DMA master (QEMU's edu)
// behind an IOMMU, translated through a domain, faulting where it must, blocked once detached.
// Portable: it only needs an Iommu, the edu's registers and the page pool.
#pragma once
#include "common/fault_log.hpp"
#include "common/iommu.hpp"
#include "common/page_pool.hpp"
#include "drivers/pci/edu.hpp"

namespace moat {

struct SelftestResult {
    unsigned passed = 0;
    unsigned failed = 0;
};

SelftestResult dma_selftest(PagePool& pool, Iommu& iommu, StreamId sid, Edu& edu, FaultLog& log, Sink& out);

}  // namespace moat
