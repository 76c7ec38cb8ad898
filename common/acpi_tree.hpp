// The boot tree of an ACPI platform. On x86 the firmware describes the machine in ACPI tables
// and the loader's memory map, not in a device tree; the x86 entry collects what moat needs
// (RAM, the command line, MCFG's ECAM windows, the IOMMU units and their device scopes) into a
// FirmwareDesc, and this writes it as the flattened tree the portable flow reads. So discovery,
// the registry, IommuSet, the wiring check, memory planning and PCI enumeration are the same
// code on both arches, and an IOMMU's PCI scope becomes the `iommu-map` Linux's DT binding
// uses for a host bridge (requester id = VT-d source id = stream id, one to one).
//
// The tree is moat's own, never handed to a guest; its compatibles are moat's names for the
// hardware (see drivers/iommu/registry.cpp). Portable and host-tested.
#pragma once
#include "common/acpi.hpp"
#include "common/acpi_dmar.hpp"

namespace moat::acpi {

constexpr unsigned kMaxRam = 8;
constexpr unsigned kMaxUnits = 8;
constexpr unsigned kMaxScopeIds = 32;
constexpr unsigned kMaxUnitRmrr = 16;  // (RMRR, device) pairs of one unit (the VT-d driver's Config::kMaxRmrr)

struct RamRange {
    uint64_t base, size;
};

// One IOMMU unit (a VT-d DRHD): its registers and the PCI requester ids it translates.
struct IommuUnit {
    uint64_t base, size;
    const char* compatible;
    uint16_t segment;
    bool all_devices;               // every device of its segment no other unit lists (INCLUDE_PCI_ALL)
    uint32_t address_width;         // DMAR host address width, written as moat,host-address-width (0: none)
    unsigned nids;
    uint16_t ids[kMaxScopeIds];     // endpoints its scopes name (bus << 8 | dev << 3 | fn)
    // RMRRs of the devices this unit translates, one per (region, device), written as the node's
    // `moat,rmrr` (5 cells each: base, limit inclusive, requester id).
    struct Rmrr {
        uint64_t base, limit;
        uint16_t bdf;
    };
    unsigned nrmrr;
    Rmrr rmrr[kMaxUnitRmrr];
};

struct FirmwareDesc;

// The DMAR's RMRRs into `d`, whose units (one per DRHD, matched by register base) are already
// there: each range (page-rounded) is kept out of the pool as a reserved range, and each
// (range, one-hop endpoint) pair goes to the unit that translates that endpoint, so its node
// carries it as `moat,rmrr` and every domain the device is attached to maps the range 1:1.
// Scopes through bridges are reported, not followed. Returns the problems printed.
unsigned add_rmrrs(const Dmar& dmar, FirmwareDesc& d);

struct FirmwareDesc {
    const char* model = "";
    const char* bootargs = "";
    unsigned nram = 0;
    RamRange ram[kMaxRam];
    // Ranges inside RAM moat must not take (the ACPI tables: the PVH memory map does not know
    // where the BIOS put them); written as /memreserve/ entries.
    unsigned nreserved = 0;
    RamRange reserved[kMaxTables + 2 + Dmar::kMaxRmrr];  // ... and every RMRR (add_rmrrs)
    unsigned necam = 0;
    McfgEntry ecam[kMaxMcfg];
    // The 32-bit window BARs are assigned from (the same for every host bridge: one segment on q35).
    uint64_t pci_window_base = 0, pci_window_size = 0;
    unsigned nunits = 0;
    IommuUnit units[kMaxUnits];
};

// Writes the tree into buf. no_space (with `why`) when buf is too small, invalid_argument when
// the description itself cannot be written (an empty unit, a scope naming no segment moat has).
Status build_tree(const FirmwareDesc& d, void* buf, size_t cap, Why& why);

}  // namespace moat::acpi
