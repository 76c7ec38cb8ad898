// The IOMMUs moat knows, by compatible. Order matters: the most specific string first.
// `implemented` turns true as each driver lands; until then discovery reports the hardware
// but leaves its masters untranslated.
#include "common/registry.hpp"

namespace moat {

namespace {
constexpr DriverEntry kDrivers[] = {
    {"arm,smmu-v3", "smmu_v3", "Arm SMMUv3", true},
    {"arm,mmu-500", "smmu_v2", "Arm MMU-500", true},
    {"arm,smmu-v2", "smmu_v2", "Arm SMMUv2", true},
    {"renesas,ipmmu-r8a7795", "ipmmu_vmsa", "Renesas IPMMU-VMSA (R-Car H3)", true},
    {"renesas,ipmmu-r8a7796", "ipmmu_vmsa", "Renesas IPMMU-VMSA (R-Car M3-W)", true},
    {"renesas,ipmmu-r8a77961", "ipmmu_vmsa", "Renesas IPMMU-VMSA (R-Car M3-W+)", true},
    {"renesas,ipmmu-r8a77965", "ipmmu_vmsa", "Renesas IPMMU-VMSA (R-Car M3-N)", true},
};
}  // namespace

const DriverEntry* find_driver(const dt::Tree& t, int node) {
    for (const DriverEntry& d : kDrivers)
        if (t.compatible(node, d.compatible)) return &d;
    return nullptr;
}

size_t driver_count() { return sizeof kDrivers / sizeof kDrivers[0]; }
const DriverEntry& driver_at(size_t i) { return kDrivers[i]; }

}  // namespace moat
