// Which devices of a device tree can master DMA, and whether an IOMMU moat drives stands
// between each of them and memory.
//
// The device tree does not say which devices are bus masters (that is why Xen's 2021 "all DMA
// is IOMMU-protected" flag was rejected), so this is a heuristic, and every listed device says
// which rule listed it. The rules, first match wins (protection.cpp has the tables):
//   1. `iommus` or `iommu-map`: wired to an IOMMU, so a master by the binding's own word.
//      Past this rule a node without `compatible` is not a device and is not listed (pin-control
//      groups named "mmc" or "usb", flash partitions, OPP tables: no driver binds to them).
//   2. Known non-masters are not listed: IOMMUs themselves (`#iommu-cells`: their walkers are
//      the hypervisor's), interrupt/MSI/GPIO/clock/reset/power/PHY/mailbox controllers, CPUs,
//      memory, and compatibles of UARTs, timers, RTCs, watchdogs, flash, PSCI, PMU, `xen,xen`.
//   3. PCI host bridges (`device_type = "pci"`): every device behind them can master.
//   4. DMA engines: `#dma-cells` (the dmaengine provider mark) or a known DMA-engine
//      compatible. A node that only *uses* an engine (`dmas`) is not listed for that: the
//      engine does the memory accesses and is listed in its own right.
//   5. `dma-coherent`: only meaningful on a device that accesses memory.
//   6. Known bus masters by compatible (virtio-mmio, fw-cfg, GEM, AHCI, SDHI/SDHCI, xHCI, ...)
//      or by generic node name (ethernet, usb, sata, mmc, dma-controller, gpu, ...).
//   7. Not listed either: generic names of non-masters (serial, timer, gpio, i2c, spi, ...:
//      the weakest evidence, so it comes after the master rules) and bus containers
//      (simple-bus and other nodes with `ranges` and children).
//   8. Anything else with CPU-addressable `reg` is listed as unknown, with the reason.
// Disabled nodes (or under a disabled bus), children of PCI bridges, /cpus, /reserved-memory,
// /chosen, /aliases, and nodes whose `reg` is not memory-mapped (children of I2C/SPI/MDIO
// buses: #size-cells 0) are never listed.
#pragma once
#include "common/discovery.hpp"

namespace moat::xen {

// Why moat does not drive an IOMMU it was asked to (DrivenSet::refusal).
enum class Refusal : uint8_t {
    none,
    silicon,          // the driver refuses it on this silicon (check_silicon; the probe does the same)
    capacity,         // more instances than the driver's storage holds: the probe refuses it
    root_not_driven,  // an instance whose upstream (a cache IPMMU's root) moat does not drive
};

// The IOMMUs (indices into Topology::iommus) whose translation moat owns.
struct DrivenSet {
    bool driven[kMaxIommus] = {};
    Refusal refusal[kMaxIommus] = {};  // why an IOMMU asked for is not driven after settle()
    bool conditional[kMaxIommus] = {};  // driven only if the silicon passes (it was not stated)
    bool has(unsigned iommu) const { return iommu < kMaxIommus && driven[iommu]; }
};

// Every IOMMU whose compatible a driver in the registry knows: the default for dom0.
DrivenSet registry_driven(const Topology& topo);

// The one decision of what moat drives, for every tool (report, check, dom0, guest) and as the
// image's probe decides it: from `requested`, takes out what the driver would refuse on `si`
// (or marks it conditional when si does not say), what is past the driver's capacity (in tree
// order, as the probe takes its storage), and instances whose upstream is not driven.
// Each one taken out is one line on `notes`, naming the node. Returns how many were past capacity
// (an error: the tree has more units than moat can hold).
unsigned settle(const dt::Tree& t, const Topology& topo, const Silicon& si, DrivenSet& requested, Sink& notes);

enum class Dma : uint8_t {
    protected_dma,  // every stream goes through an IOMMU moat drives (or Xen grants)
    unprotected,    // can reach memory without an IOMMU moat drives
    unknown,        // cannot tell (broken wiring, or registers but no DMA evidence)
};

// The rule that listed the device (see the header comment).
enum class Basis : uint8_t { iommus, iommu_map, pci_host, dma_engine, dma_coherent, known_master, registers };

enum class Cause : uint8_t {
    driven_iommu,      // all streams through driven IOMMUs
    grant_dma,         // behind xen,grant-dma: the backend only reaches pages granted to it
    iommu_not_driven,  // `iommu` names an IOMMU moat does not drive
    iommu_disabled,    // its IOMMU is disabled in the tree: left at reset, DMA passes through
    iommu_refused,     // `iommu` would be driven, but the driver refuses it (DrivenSet::refusal)
    wiring_broken,     // discovery blocked it; the master's reason says why
    map_gap,           // iommu-map leaves requester id `detail` (and maybe more) untranslated
    no_iommu,          // a DMA master with neither `iommus` nor `iommu-map`
    no_heuristic,      // has registers, and no rule says either way
};

struct DeviceEntry {
    int node;
    Dma dma;
    Basis basis;
    Cause why;
    int master;       // index into Topology::masters, -1 when not a wired master
    int iommu;        // the IOMMU the reason names (index into Topology::iommus), -1 if none
    uint32_t detail;  // Cause::map_gap: the first requester id left out
    bool conditional; // protected only if the silicon passes the driver's check (not stated)
    Refusal refusal;  // Cause::iommu_refused: why the driver does not take `iommu`
};

constexpr unsigned kMaxReportDevices = 256;

struct ProtectionReport {
    unsigned count = 0;
    DeviceEntry devices[kMaxReportDevices];
    unsigned totals[3] = {};  // by Dma
    unsigned dropped = 0;     // listed devices past kMaxReportDevices (also counted as unknown)
    const DeviceEntry* find(int node) const;
};

// Walks the whole tree (in document order) and classifies every possible DMA master.
// `topo` must come from discover() on the same tree.
Status classify(const dt::Tree& t, const Topology& topo, const DrivenSet& driven, ProtectionReport& out);

const char* to_string(Dma d);
// The state, named for what it is: "protected (moat drives the IOMMU)", "unprotected: no IOMMU"...
const char* state_name(const DeviceEntry& e);
// The condition a conditional entry's protection holds under ("R-Car H3 ES3.0 or later"), or "".
void describe_condition(const Topology& topo, const DeviceEntry& e, Sink& out);
const char* to_string(Basis b);

// One line, no newline: why the device is in its class ("behind /soc/iommu@... (arm,smmu-v3)").
void describe_reason(const dt::Tree& t, const Topology& topo, const DeviceEntry& e, Sink& out);
// The device's stream ids, compressed into ranges ("0x4c0-0x4c3", "rid 0x0-0xffff -> 0x0-0xffff"),
// or "-" when it has none.
void describe_streams(const Topology& topo, const DeviceEntry& e, Sink& out);

}  // namespace moat::xen
