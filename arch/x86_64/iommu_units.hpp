// The IOMMU units the ACPI tables describe, added to the firmware description the boot tree is
// written from: each VT-d DRHD of the DMAR table becomes an "intel,vtd" node (probed through the
// registry like every IOMMU), its device scope and INCLUDE_PCI_ALL become the host bridge's
// iommu-map, and each RMRR's range is kept out of the page pool and written on the node of the
// unit that translates its devices (`moat,rmrr`, acpi::add_rmrrs).
#pragma once
#include "common/acpi_tree.hpp"

namespace moat::arch {

// Returns the number of problems found and reported (a DMAR refused, a unit or scope moat has
// no room for or cannot follow).
unsigned iommu_units(const acpi::Tables& tables, acpi::FirmwareDesc& d);

}  // namespace moat::arch
