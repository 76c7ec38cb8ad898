// Finds the IOMMUs in a device tree and the DMA masters behind them, with their stream ids.
//
// An IOMMU is a node with `#iommu-cells`. A master is a node with `iommus` (phandle +
// #iommu-cells arguments each), a host bridge with `iommu-map` (requester ids -> stream ids), or,
// for an SMMU that no `iommus` names, an entry of its legacy `mmu-masters` list. The tree is
// walked once; each IOMMU's driver entry (common/registry.hpp) is looked up there, and a driver's
// `upstream` link (a cache IPMMU's root) is parsed there, once, for everyone who needs it.
// A master whose wiring is broken is recorded as blocked with the reason; nothing else is
// affected, and discovery only fails when the tree itself is unusable. Only available nodes
// count (dt::Tree::available: the node and every ancestor); a reference to a disabled IOMMU
// is recorded as such (MasterInfo::disabled_iommu), not as broken wiring.
#pragma once
#include "common/fdt.hpp"
#include "common/registry.hpp"

namespace moat {

constexpr unsigned kMaxIommus = 32;
constexpr unsigned kMaxMasters = 128;
constexpr unsigned kMaxStreamsPerMaster = 16;  // R-Car DMACs list 16 uTLBs
constexpr unsigned kMaxIommuRegs = 2;
constexpr unsigned kMaxIommuIrqs = 72;  // an MMU-500: global lines plus one per context bank (64 here)

struct IommuInfo {
    int node;
    const char* compatible;
    const DriverEntry* driver;  // nullptr: no driver knows it
    uint32_t phandle;
    uint32_t iommu_cells;
    unsigned nregs;
    dt::Reg regs[kMaxIommuRegs];
    unsigned nirqs;
    dt::Irq irqs[kMaxIommuIrqs];
    // The driver's upstream link (renesas,ipmmu-main): the node it names (-1: none, or broken),
    // its argument, and why it is broken (empty when it is fine or absent).
    int upstream_node;
    uint32_t upstream_arg;
    char upstream_problem[dt::kErrorMax];
    bool driven() const { return driver && driver->driven(); }
    bool grants() const { return driver && driver->rules.grants; }
};

// One stream reference of a master: either a fixed stream id (from `iommus`, with the extra
// cells as `args`), or a requester-id range mapped through `iommu-map`.
struct StreamRef {
    unsigned iommu;        // index into Topology::iommus
    bool from_map;
    bool legacy;           // from the SMMU's `mmu-masters` list (one id per reference)
    uint32_t sid;          // first stream id
    uint32_t count;        // 1 for `iommus`; the range length for `iommu-map`
    uint32_t rid_base;     // iommu-map only
    uint32_t nargs;        // cells from `iommus`
    uint32_t args[4];
};

struct MasterInfo {
    int node;
    bool blocked;               // wiring broken: left with no translation
    unsigned nstreams;
    StreamRef streams[kMaxStreamsPerMaster];
    uint32_t map_mask;          // iommu-map-mask (0xffffffff if absent)
    // An IOMMU its references name that the tree disables (node, -1: none). Such a reference
    // is no stream: a disabled IOMMU is left at reset, which passes DMA through, and Linux reads
    // it as "no IOMMU". Not a problem of the tree, so not counted.
    int disabled_iommu = -1;
    char reason[dt::kErrorMax]; // why blocked
};

struct Topology {
    unsigned niommus = 0;
    IommuInfo iommus[kMaxIommus];
    unsigned nmasters = 0;
    MasterInfo masters[kMaxMasters];
    unsigned problems = 0;      // masters blocked or IOMMUs skipped, each reported
    int iommu_index(int node) const;
    int master_index(int node) const;
};

// Reports each problem through `report` (one line each, naming the node) as it is found.
Status discover(const dt::Tree& t, Topology& topo, Sink& report);

// The human-readable summary `make run` shows.
void print_topology(const dt::Tree& t, const Topology& topo, Sink& out);

}  // namespace moat
