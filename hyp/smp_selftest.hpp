// Several CPUs through one IOMMU: every online CPU, at once, maps two pages into ONE shared
// domain, has an edu copy RAM -> device -> RAM through them, checks every byte, unmaps them, and
// checks that a DMA to the unmapped IOVA faults (the fault recorded for its stream and address)
// and changes nothing, for a bounded number of rounds. Every map/unmap goes through the one
// domain's lock and every invalidation through the IOMMU's one command queue. CPUs that share an
// edu (fewer edus than CPUs) take turns on it; the rest of a round runs concurrently. Per-CPU
// counts and the totals are printed for the QEMU test to assert. Portable: the arch hands the
// work to its CPUs through the flow's run_on_cpu hook.
#pragma once
#include "common/fault_log.hpp"
#include "common/iommu.hpp"
#include "common/page_pool.hpp"
#include "drivers/pci/edu.hpp"

namespace moat {

struct SmpEdu {
    uintptr_t bar0;
    StreamId sid;
};

struct SmpResult {
    unsigned cpus = 0;       // CPUs that took part (boot CPU included)
    unsigned rounds = 0;     // completed, over all CPUs
    unsigned faults = 0;     // DMAs after unmap that faulted as they must
    uint64_t bytes = 0;      // bytes checked
    unsigned failed = 0;     // checks that failed (each printed)
};

constexpr unsigned kSmpRounds = 4;  // per CPU

// edus: at least one. run_on_cpu: the flow's hook (nullptr: the boot CPU alone).
SmpResult smp_selftest(PagePool& pool, Iommu& iommu, const SmpEdu* edus, unsigned nedus, FaultLog& log,
                       bool (*run_on_cpu)(unsigned, void (*)(void*), void*));

}  // namespace moat
