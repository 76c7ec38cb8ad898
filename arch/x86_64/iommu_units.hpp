// The IOMMU units the ACPI tables describe, added to the firmware description the boot tree is
// written from (a VT-d DRHD becomes an IOMMU node and its scope the host bridge's iommu-map).
#pragma once
#include "common/acpi_tree.hpp"

namespace moat::arch {

void iommu_units(const acpi::Tables& tables, acpi::FirmwareDesc& d);

}  // namespace moat::arch
