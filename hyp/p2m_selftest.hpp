// A guest's default DMA domain, built as moat builds it for a guest, proven with a real DMA master
// (QEMU's edu) through guest-physical addresses. Where the IOMMU has stage 2 (SMMUv3 IDR0.S2P) it
// is the guest's own stage-2 table: the STE's stage-2 fields point at the root VTTBR_EL2 takes,
// the one engine writes it, and removing a page from it is one flush for both walkers (the CPU's
// TLBI IPAS2E1IS and the SMMU's CMD_TLBI_S2_IPA) before the page is unreachable by either. Where it
// has not (QEMU 7.2), a stage-1 table mirrors the P2M and every removal is made in both.
// Portable: an Iommu, edu's registers, the page pool and the arch's stage-2 invalidation.
#pragma once
#include "common/io_domain.hpp"
#include "hyp/dma_selftest.hpp"

namespace moat {

SelftestResult p2m_selftest(PagePool& pool, Iommu& iommu, StreamId sid, Edu& edu, FaultLog& log, Sink& out);

// IoDomain::CpuWalker for a P2M the CPU walks: arch::stage2_invalidate with the domain's tag as VMID.
IoDomain::CpuWalker cpu_stage2_walker();

}  // namespace moat
