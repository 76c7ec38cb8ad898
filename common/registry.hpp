// The driver contract: how a device-tree node becomes a running IOMMU instance.
//
// One table (drivers/iommu/registry.cpp) binds every IOMMU compatible moat knows to what its
// binding allows and, when moat drives it, to the driver's operations. Discovery, the probe
// loop, the wiring check, the protection report and the dom0 filter all read that one table,
// so a compatible is named in exactly one place. In the shape of Linux's of_device_id + iommu_ops:
//  - probe builds the instance from the discovered node (registers, interrupts and `#iommu-cells`
//    already read by discovery; the driver reads only its own extra properties), takes it from
//    the driver's own fixed storage, and returns it as an Iommu; a full storage is a refusal that
//    names the node, never a silent drop. not_ready means "probe me again after the others"
//    (a cache IPMMU whose root has not probed yet), the way Linux defers a probe;
//  - Iommu::xlate (common/iommu.hpp) turns one `iommus` entry's cells, or one stream id that
//    `iommu-map` produced, into the instance's StreamId, checked against what the hardware has;
//  - an entry's upstream, for bindings whose instances hang off another one (`renesas,ipmmu-main`),
//    is the one parser of that relation; discovery calls it once per node.
#pragma once
#include "common/fdt.hpp"
#include "common/why.hpp"

namespace moat {

class FaultLog;
class Iommu;
class IommuSet;
class IrqController;
class PagePool;
struct Topology;
struct DriverEntry;

// What a reference to an IOMMU of this binding may say, from the binding alone (no hardware).
struct BindingRules {
    uint32_t min_cells, max_cells;  // #iommu-cells the binding allows
    uint32_t max_id;                // largest stream id / uTLB / backend domid
    uint32_t max_arg1;              // largest second cell (an SMR mask); 0 when there is none
    const char* id_name;            // what the first cell is called: "stream id", "uTLB"
    bool grants = false;            // paravirtual: the cell names a backend domain, whose DMA only
                                    // reaches pages granted to it (Xen's grant DMA), not a stream
    bool no_map = false;            // `iommu-map` onto it is not supported (moat blocks such a
                                    // master and every tool says so alike)
};

// What a probe may use. `probed` finds instances probed before this one (a cache's root).
struct ProbeEnv {
    const dt::Tree& tree;
    const Topology& topo;
    PagePool* pool;          // tables and queues the hardware reads; nullptr: none (the probe refuses)
    unsigned cpu_pa_bits;    // caps every output size
    IrqController* irq;      // nullptr: no interrupt controller is driven yet, faults are polled
    FaultLog* faults;        // where faults an interrupt reports are recorded (with irq)
    Sink& report;            // facts worth a line at probe (not refusals: those go in `why`)
    const IommuSet* probed;
    bool block_unattached = true;  // IPMMU: keep a blocking context (see ipmmu_vmsa.hpp)
};

// What the board, not the tree, tells: an R-Car's product register (SoC and cut). The host
// tool learns it from the user (moat-dt --soc-revision); the image reads the register.
struct Silicon {
    bool known = false;
    uint32_t cut = 0;  // PRR cut: 0x00 ES1.0, 0x10 ES2.0, 0x20 ES3.0
};

struct DriverOps {
    const char* name;  // "smmu_v3": in reports, logs and the protection report
    // Builds and probes the instance of topo.iommus[index]. nullptr with `why` set on refusal.
    Iommu* (*probe)(ProbeEnv& env, unsigned index, Why& why);
    // Shuts the instance down (every stream blocked) and gives its storage back.
    void (*release)(Iommu* iommu);
    unsigned capacity;  // instances its fixed storage holds; the probe refuses one more
    // Whether it accepts this compatible on `si` (nullptr: the silicon does not matter). ok:
    // accepted; not_ready: it depends on what si does not know (`why` says what it needs);
    // anything else: refused, `why` says why. The probe itself applies the same check.
    Status (*check_silicon)(const DriverEntry& entry, const Silicon& si, Why& why) = nullptr;
};

// Optional, per binding: the node this IOMMU forwards to and the argument of that link;
// not_found when it has none; any other status (with `why`) when the link is malformed.
using UpstreamFn = Status (*)(const dt::Tree& t, int node, int& up_node, uint32_t& arg, Why& why);

struct DriverEntry {
    const char* compatible;
    bool prefix;               // matches every compatible that starts with it
    const char* kind;          // the hardware family, for reports
    const DriverOps* ops;      // nullptr: recognised and checked, but not driven by moat
    BindingRules rules;
    UpstreamFn upstream;       // nullptr: instances of this binding stand alone
    const void* data;          // the driver's facts about this compatible (e.g. an SoC's needs)
    constexpr bool driven() const { return ops != nullptr; }
    const char* driver() const { return ops ? ops->name : "none"; }
};

// The entry of the node's first compatible that the table knows (more specific entries first).
const DriverEntry* find_driver(const dt::Tree& t, int node);
// The entry for one compatible string, or nullptr.
const DriverEntry* find_driver(const char* compatible);
size_t driver_count();
const DriverEntry& driver_at(size_t i);

}  // namespace moat
