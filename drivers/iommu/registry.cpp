// Every IOMMU compatible moat knows, in one table: what its binding allows, and the driver that
// runs it. Order matters: the most specific entry first (a prefix entry catches the rest of a
// family). An entry without operations is recognised and its wiring checked, but not driven:
// its masters stay as firmware left them, and reports say so.
#include "common/registry.hpp"

#include <string.h>

#include "drivers/iommu/ipmmu_vmsa_dt.hpp"
#include "drivers/iommu/smmu_v2.hpp"
#include "drivers/iommu/smmu_v3.hpp"

namespace moat {

namespace {

// R-Car Gen3 IPMMUs name 48 uTLBs; Gen4 has 64 (docs/hardware.md §1.1, §1.9). Linux's binding lets a
// PCIe host bridge reach an IPMMU through iommu-map (requester id -> uTLB); moat does not yet.
constexpr BindingRules kIpmmuGen3{1, 1, 47, 0, "uTLB", false, true};
constexpr BindingRules kIpmmuGen4{1, 1, 63, 0, "uTLB", false, true};
constexpr BindingRules kSmmuV3{1, 1, 0xffffffffu, 0, "stream id"};
constexpr BindingRules kSmmuV2{1, 2, 0xffff, 0xffff, "stream id"};
// Xen's grant DMA: the cell is the backend's domid, below DOMID_FIRST_RESERVED (0x7ff0).
constexpr BindingRules kGrantDma{1, 1, 0x7fef, 0, "backend domid", true};

constexpr DriverEntry kDrivers[] = {
    {"arm,smmu-v3", false, "Arm SMMUv3", &kSmmuV3Ops, kSmmuV3, nullptr, nullptr},
    {"arm,mmu-500", false, "Arm MMU-500", &kSmmuV2Ops, kSmmuV2, nullptr, &kMmu500},
    {"arm,smmu-v2", false, "Arm SMMUv2", &kSmmuV2Ops, kSmmuV2, nullptr, &kSmmuV2Generic},
    {"renesas,ipmmu-r8a7795", false, "Renesas IPMMU-VMSA (R-Car H3)", &kIpmmuOps, kIpmmuGen3, &ipmmu_main, &ipmmu::kSocH3},
    {"renesas,ipmmu-r8a7796", false, "Renesas IPMMU-VMSA (R-Car M3-W)", &kIpmmuOps, kIpmmuGen3, &ipmmu_main, &ipmmu::kSocM3W},
    {"renesas,ipmmu-r8a77961", false, "Renesas IPMMU-VMSA (R-Car M3-W+)", &kIpmmuOps, kIpmmuGen3, &ipmmu_main, &ipmmu::kSocM3WPlus},
    {"renesas,ipmmu-r8a77965", false, "Renesas IPMMU-VMSA (R-Car M3-N)", &kIpmmuOps, kIpmmuGen3, &ipmmu_main, &ipmmu::kSocM3N},
    {"renesas,ipmmu-r8a77970", false, "Renesas IPMMU-VMSA (R-Car V3M)", nullptr, kIpmmuGen3, &ipmmu_main, nullptr},
    {"renesas,ipmmu-r8a77980", false, "Renesas IPMMU-VMSA (R-Car V3H)", nullptr, kIpmmuGen3, &ipmmu_main, nullptr},
    {"renesas,ipmmu-r8a77990", false, "Renesas IPMMU-VMSA (R-Car E3)", nullptr, kIpmmuGen3, &ipmmu_main, nullptr},
    {"renesas,ipmmu-r8a77995", false, "Renesas IPMMU-VMSA (R-Car D3)", nullptr, kIpmmuGen3, &ipmmu_main, nullptr},
    {"renesas,ipmmu-r8a779f0", false, "Renesas IPMMU-VMSA (R-Car S4)", &kIpmmuOps, kIpmmuGen4, &ipmmu_main, &ipmmu::kSocS4},
    {"renesas,ipmmu-r8a779a0", false, "Renesas IPMMU-VMSA (R-Car V3U)", &kIpmmuOps, kIpmmuGen4, &ipmmu_main, &ipmmu::kSocV3U},
    {"renesas,ipmmu-", true, "Renesas IPMMU-VMSA", nullptr, kIpmmuGen4, &ipmmu_main, nullptr},
    {"xen,grant-dma", false, "Xen grant DMA (paravirtual)", nullptr, kGrantDma, nullptr, nullptr},
};

bool matches(const DriverEntry& d, const char* c) {
    return d.prefix ? strncmp(c, d.compatible, strlen(d.compatible)) == 0 : strcmp(c, d.compatible) == 0;
}

}  // namespace

const DriverEntry* find_driver(const char* compatible) {
    if (!compatible) return nullptr;
    for (const DriverEntry& d : kDrivers)
        if (matches(d, compatible)) return &d;
    return nullptr;
}

const DriverEntry* find_driver(const dt::Tree& t, int node) {
    for (unsigned i = 0;; i++) {
        const char* c = t.string_at(node, "compatible", i);
        if (!c) return nullptr;
        if (const DriverEntry* d = find_driver(c)) return d;
    }
}

size_t driver_count() { return sizeof kDrivers / sizeof kDrivers[0]; }
const DriverEntry& driver_at(size_t i) { return kDrivers[i]; }

}  // namespace moat
