#include "arch/x86_64/iommu_units.hpp"

namespace moat::arch {

// Until the DMAR reader is in this build, a DMAR table is named and its units are not driven.
void iommu_units(const acpi::Tables& tables, acpi::FirmwareDesc&) {
    if (tables.find("DMAR")) print("acpi:     DMAR present; this build has no VT-d reader, so its units are not driven\n");
}

}  // namespace moat::arch
