// Binds device-tree compatibles to IOMMU drivers. The table itself lives with the drivers
// (drivers/iommu/registry.cpp); discovery only looks entries up.
#pragma once
#include "common/fdt.hpp"

namespace moat {

struct DriverEntry {
    const char* compatible;
    const char* driver;   // short name printed in reports
    const char* kind;     // the hardware family
    bool implemented;     // false: recognised, but no driver in this build yet
};

// The entry whose compatible the node carries (first match in table order), or nullptr.
const DriverEntry* find_driver(const dt::Tree& t, int node);
size_t driver_count();
const DriverEntry& driver_at(size_t i);

}  // namespace moat
