// A dom0less guest's `multiboot,device-tree` module: Xen's partial device tree for platform-device
// passthrough, read (libfdt, through dt::Tree) and checked against the guest's own map. Portable:
// the image reads the module it was handed, the unit tests read trees they compile.
//
// The form (Xen's docs/misc/arm/passthrough.txt; docs/hardware.md "Platform-device passthrough"):
//
//   / {
//       #address-cells = <2>; #size-cells = <2>;
//       passthrough {                       // copied into the guest's tree as /passthrough
//           compatible = "simple-bus";
//           ranges;
//           #address-cells = <2>; #size-cells = <2>;   // the cells of xen,reg below
//           rtc@1c000000 {                  // the guest's copy of a host node
//               compatible = "arm,pl031", "arm,primecell";
//               reg = <0 0x1c000000 0 0x1000>;          // where the guest sees it
//               interrupt-parent = <0xfde8>;            // 65000: the guest GIC's phandle
//               interrupts = <0 2 4>;                   // SPIs, equal to the host node's (1:1)
//               xen,reg = <0 0x9010000 0 0x1000 0 0x1c000000>;  // <host-pa size guest-pa>, repeatable
//               xen,path = "/pl031@9010000";            // the host node
//               xen,force-assign-without-iommu;         // only for a device no IOMMU confines
//           };
//       };
//       aliases { ... };                    // merged into the guest's /aliases
//       gic { phandle = <...>; };           // optional: the phandle the guest's GIC carries
//   };
//
// As Xen does, only /passthrough, /aliases and /gic's phandle are taken; any other top-level node
// is ignored with a note. The `xen,` properties are not copied into the guest's tree. Only direct
// children of /passthrough may carry them.
//
// What is checked here (each failure one line "dom0less: <guest>: partial device tree: <node>:
// <property>: ..."; any failure: that guest does not start): the blob (libfdt's full check, inside
// the module); xen,reg's length in /passthrough's cells, each range non-empty, 4 KiB-aligned (host,
// size and guest), not wrapping, its guest range inside the guest-physical space and clear of the
// guest's RAM, its GIC, its vPL011, its PCI ECAM and every other passthrough range of the guest
// (host ranges too: two nodes cannot share one); xen,path a host path; the node's `reg` inside its
// guest ranges (when /passthrough's `ranges` is empty); `interrupts` GIC SPIs through the guest GIC
// phandle, none that the guest's own devices use; no copied phandle equal to one the guest
// tree gives its GIC or clock. The host side (xen,path exists, the ranges lie inside its `reg`, its
// IOMMU, its SPIs, who else has it) is hyp/platform_passthrough.hpp's.
#pragma once
#include "xen-compat/dom0less.hpp"

namespace moat::xen {

constexpr unsigned kPtMaxDevices = 8;
constexpr unsigned kPtMaxRanges = 4;
constexpr unsigned kPtMaxIrqs = 8;
constexpr unsigned kPtNameMax = 96;

struct PtRange {
    uint64_t host = 0, size = 0, guest = 0;
};

// A /passthrough child with `xen,path`: one host device for the guest.
struct PtDevice {
    int node = -1;                          // offset in the partial tree
    char name[kPtNameMax] = {};             // its path in the partial tree ("/passthrough/rtc@1c000000")
    char host_path[dt::kPathMax] = {};      // xen,path
    bool force = false;                     // xen,force-assign-without-iommu
    unsigned nranges = 0;                   // xen,reg
    PtRange ranges[kPtMaxRanges];
    unsigned nirqs = 0;                     // interrupts: GIC INTIDs (SPI + 32) and trigger flags
    uint32_t intids[kPtMaxIrqs] = {};
    uint32_t flags[kPtMaxIrqs] = {};
};

struct PartialTree {
    dt::Tree tree;                          // the module, checked
    int passthrough = -1, aliases = -1;     // offsets (-1: absent)
    uint32_t gic_phandle = guest_map::kPhandleGic;
    unsigned ndevices = 0;
    PtDevice dev[kPtMaxDevices];
};

// Reads the partial tree at blob[0..size) for guest g (its RAM, vCPUs, vPL011 and PCI decide what
// the passthrough ranges must stay clear of). invalid_argument / bad_dt after reporting every
// problem to err; notes (ignored nodes) to notes when given.
Status parse_partial_dt(const Dom0lessGuest& g, const void* blob, size_t size, PartialTree& out, Sink& err,
                        Sink* notes = nullptr);

}  // namespace moat::xen
