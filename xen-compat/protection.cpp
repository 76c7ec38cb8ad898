#include "xen-compat/protection.hpp"

#include <string.h>

namespace moat::xen {

namespace {

// Compatible prefixes of DMA engines (rule 4).
constexpr const char* kDmaEngines[] = {
    "arm,pl330", "arm,pl080", "arm,pl081", "arm,dma-350", "renesas,rcar-dmac", "renesas,dmac-",
    "xlnx,zynqmp-dma-", "xlnx,zynqmp-dpdma", "xlnx,axi-dma", "snps,axi-dma-", "snps,dma-spear1340",
    "ti,edma3-tpcc", "qcom,bam-v", "brcm,bcm2835-dma", "fsl,imx-sdma",
};

// Compatible prefixes of devices known to master the bus themselves (rule 6).
constexpr const char* kMasters[] = {
    "virtio,mmio", "qemu,fw-cfg-mmio", "cdns,gem", "cdns,macb", "xlnx,zynqmp-gem", "renesas,etheravb-",
    "snps,dwmac", "snps,dwc3", "generic-xhci", "renesas,xhci-", "renesas,rcar-gen3-xhci", "generic-ehci",
    "generic-ohci", "generic-ahci", "ceva,ahci-", "renesas,sdhi-", "renesas,rcar-gen3-sdhi", "arasan,sdhci-",
    "xlnx,zynqmp-8.9a", "arasan,nfc-", "xlnx,zynqmp-nand-controller", "xlnx,zynqmp-qspi-", "arm,mali-",
    "renesas,fcpv", "renesas,vsp2",
};

// Generic node names (DT spec 2.2.2) that denote bus masters (rule 6).
constexpr const char* kMasterNames[] = {
    "ethernet", "usb", "sata", "mmc", "dma-controller", "dma", "gpu", "nvme", "display-controller", "video-codec",
};

// Compatible prefixes of devices that never master the bus (rule 2).
constexpr const char* kNonMasters[] = {
    "arm,pl011", "arm,sbsa-uart", "renesas,scif", "renesas,hscif", "renesas,rcar-gen3-scif", "cdns,uart-",
    "xlnx,xuartps", "xlnx,zynqmp-uart", "ns16550", "ns8250", "snps,dw-apb-uart", "arm,armv8-timer",
    "arm,armv7-timer", "arm,sp804", "arm,pl031", "arm,pl061", "renesas,gpio-", "xlnx,zynqmp-gpio-",
    "cfi-flash", "jedec,spi-nor", "arm,psci", "arm,armv8-pmuv3", "arm,cortex-a", "fixed-clock", "syscon",
    "gpio-keys", "arm,sbsa-gwdt", "renesas,rcar-gen3-wdt", "renesas,wdt-", "regulator-", "xen,xen",
};

// Properties that mark a node as a controller of something other than memory (rule 2).
constexpr const char* kNonMasterProps[] = {
    "#iommu-cells", "interrupt-controller", "msi-controller", "gpio-controller", "#clock-cells",
    "#reset-cells", "#power-domain-cells", "#pwm-cells", "#thermal-sensor-cells", "#mbox-cells",
    "#phy-cells",
};

// Generic node names of non-masters (rule 2, weakest evidence: checked after the master rules).
constexpr const char* kNonMasterNames[] = {
    "serial", "timer", "gpio", "rtc", "watchdog", "pinctrl", "pin-controller", "clock-controller",
    "interrupt-controller", "psci", "firmware", "pmu", "flash", "hypervisor", "power-controller",
    "reset-controller", "system-controller", "syscon", "i2c", "spi", "mailbox", "thermal-sensor",
};

// Subtrees that describe no devices.
constexpr const char* kSkipSubtrees[] = {
    "cpus", "reserved-memory", "chosen", "aliases", "__symbols__", "__fixups__", "__local_fixups__", "thermal-zones",
};

template <size_t N>
bool compatible_in(const dt::Tree& t, int node, const char* const (&table)[N]) {
    for (unsigned i = 0;; i++) {
        const char* c = t.string_at(node, "compatible", i);
        if (!c) return false;
        for (const char* p : table)
            if (strncmp(c, p, strlen(p)) == 0) return true;
    }
}

// The node name without its unit address.
bool name_in(const char* name, const char* const* table, size_t n) {
    size_t len = strcspn(name, "@");
    for (size_t i = 0; i < n; i++)
        if (strlen(table[i]) == len && strncmp(name, table[i], len) == 0) return true;
    return false;
}
template <size_t N>
bool name_in(const dt::Tree& t, int node, const char* const (&table)[N]) {
    return name_in(t.name(node), table, N);
}

bool prop_is(const dt::Tree& t, int node, const char* prop, const char* value) {
    int len;
    const char* v = static_cast<const char*>(t.prop(node, prop, &len));
    return v && len > 0 && v[len - 1] == 0 && strcmp(v, value) == 0;
}

bool is_pci_bridge(const dt::Tree& t, int node) { return prop_is(t, node, "device_type", "pci"); }

// Whether the node is a device we look at at all: enabled along its whole path, not inside a
// PCI bridge or a subtree that describes no devices.
bool in_scope(const dt::Tree& t, int node) {
    if (!t.available(node)) return false;
    for (int p = t.parent(node); p > 0; p = t.parent(p)) {
        if (!t.available(p) || is_pci_bridge(t, p)) return false;
        if (t.parent(p) == 0 && name_in(t, p, kSkipSubtrees)) return false;
    }
    return !(t.parent(node) == 0 && name_in(t, node, kSkipSubtrees));
}

bool has_mmio_reg(const dt::Tree& t, int node) {
    dt::Reg r;
    unsigned sc;
    int bus = t.parent(node);
    if (bus < 0 || !t.has(node, "reg") || t.size_cells(bus, sc) != Status::ok || sc == 0) return false;
    return t.reg(node, 0, r) == Status::ok;
}

bool is_container(const dt::Tree& t, int node) {
    static constexpr const char* kBuses[] = {"simple-bus", "simple-mfd", "qemu,platform", "arm,amba-bus"};
    return compatible_in(t, node, kBuses) || (t.has(node, "ranges") && t.first_subnode(node) >= 0);
}

// Applies rules 1-8 of the header; false when the node is not listed.
bool master_basis(const dt::Tree& t, int node, Basis& basis) {
    if (t.has(node, "iommus")) return basis = Basis::iommus, true;
    if (t.has(node, "iommu-map")) return basis = Basis::iommu_map, true;
    // Past the wiring, only a device counts: a node no driver binds to (a pin-control group
    // named "mmc", a partition, an OPP table) masters nothing, whatever its name says.
    if (!t.first_compatible(node)) return false;
    if (prop_is(t, node, "device_type", "memory") || prop_is(t, node, "device_type", "cpu")) return false;
    for (const char* p : kNonMasterProps)
        if (t.has(node, p)) return false;
    if (compatible_in(t, node, kNonMasters)) return false;
    if (is_pci_bridge(t, node)) return basis = Basis::pci_host, true;
    if (t.has(node, "#dma-cells") || compatible_in(t, node, kDmaEngines)) return basis = Basis::dma_engine, true;
    if (t.has(node, "dma-coherent")) return basis = Basis::dma_coherent, true;
    if (compatible_in(t, node, kMasters) || name_in(t, node, kMasterNames)) return basis = Basis::known_master, true;
    if (name_in(t, node, kNonMasterNames) || is_container(t, node)) return false;
    if (has_mmio_reg(t, node)) return basis = Basis::registers, true;
    return false;
}


int master_index(const Topology& topo, int node) {
    for (unsigned i = 0; i < topo.nmasters; i++)
        if (topo.masters[i].node == node) return static_cast<int>(i);
    return -1;
}

// The first requester id of the bridge's bus range that its iommu-map (after the mask) does
// not translate; false when every one is translated.
bool first_gap(const dt::Tree& t, const MasterInfo& m, uint32_t& rid) {
    uint32_t lo = 0, hi = 0xffff;
    int len;
    const auto* br = static_cast<const uint8_t*>(t.prop(m.node, "bus-range", &len));
    if (br && len == 8 && dt::be32(br, 0) <= dt::be32(br, 1) && dt::be32(br, 1) <= 0xff) {
        lo = dt::be32(br, 0) << 8;
        hi = (dt::be32(br, 1) << 8) | 0xff;
    }
    for (uint32_t r = lo; r <= hi; r++) {
        uint32_t masked = r & m.map_mask;
        bool hit = false;
        for (unsigned s = 0; s < m.nstreams && !hit; s++) {
            const StreamRef& ref = m.streams[s];
            hit = ref.from_map && masked >= ref.rid_base && masked - ref.rid_base < ref.count;
        }
        if (!hit) return rid = r, true;
    }
    return false;
}

DeviceEntry classify_wired(const dt::Tree& t, const Topology& topo, const DrivenSet& driven, int node, Basis basis) {
    DeviceEntry e{node, Dma::unknown, basis, Cause::wiring_broken, master_index(topo, node), -1, 0, false, Refusal::none};
    if (e.master < 0) return e;
    const MasterInfo& m = topo.masters[e.master];
    if (m.blocked) return e;
    if (m.disabled_iommu >= 0) {
        e.dma = Dma::unprotected, e.why = Cause::iommu_disabled;
        return e;
    }
    bool all_grants = true;
    for (unsigned s = 0; s < m.nstreams; s++) {
        unsigned io = m.streams[s].iommu;
        if (e.iommu < 0) e.iommu = static_cast<int>(io);
        if (topo.iommus[io].grants()) continue;
        all_grants = false;
        if (!driven.has(io)) {
            bool refused = io < kMaxIommus && driven.refusal[io] != Refusal::none;
            e.dma = Dma::unprotected, e.why = refused ? Cause::iommu_refused : Cause::iommu_not_driven, e.iommu = static_cast<int>(io);
            if (refused) e.refusal = driven.refusal[io];
            return e;
        }
        if (driven.conditional[io]) e.conditional = true, e.iommu = static_cast<int>(io);
    }
    uint32_t rid;
    if (t.has(node, "iommu-map") && first_gap(t, m, rid)) {
        e.dma = Dma::unprotected, e.why = Cause::map_gap, e.detail = rid;
        return e;
    }
    e.dma = Dma::protected_dma;
    e.why = all_grants && m.nstreams ? Cause::grant_dma : Cause::driven_iommu;
    return e;
}

}  // namespace

DrivenSet registry_driven(const Topology& topo) {
    DrivenSet d;
    for (unsigned i = 0; i < topo.niommus && i < kMaxIommus; i++) d.driven[i] = topo.iommus[i].driven();
    return d;
}

unsigned settle(const dt::Tree& t, const Topology& topo, const Silicon& si, DrivenSet& d, Sink& notes) {
    char p[dt::kPathMax];
    unsigned over = 0;
    for (unsigned i = 0; i < topo.niommus && i < kMaxIommus; i++) {
        d.refusal[i] = Refusal::none, d.conditional[i] = false;
        const IommuInfo& io = topo.iommus[i];
        if (!d.driven[i] || !io.driven()) continue;
        const DriverOps& ops = *io.driver->ops;
        unsigned before = 0;  // instances of this driver ahead of it in the tree, as probe_all takes them
        for (unsigned k = 0; k < i; k++) before += topo.iommus[k].driven() && topo.iommus[k].driver->ops == &ops;
        Why why;
        if (before >= ops.capacity) {
            d.driven[i] = false, d.refusal[i] = Refusal::capacity, over++;
            format(notes, "%s: %s: more than %u instances; moat's storage holds %u, so it is refused and its masters stay untranslated\n",
                   ops.name, t.path(io.node, p, sizeof p), ops.capacity, ops.capacity);
        } else if (ops.check_silicon) {
            Status st = ops.check_silicon(*io.driver, si, why);
            if (st == Status::not_ready) d.conditional[i] = true;
            else if (st != Status::ok) {
                d.driven[i] = false, d.refusal[i] = Refusal::silicon;
                format(notes, "%s: %s: refused on this silicon: %s\n", ops.name, t.path(io.node, p, sizeof p), why.text());
            }
        }
    }
    // An instance cannot probe without its upstream (a cache without its root).
    for (unsigned i = 0; i < topo.niommus && i < kMaxIommus; i++) {
        int up = topo.iommus[i].upstream_node >= 0 ? topo.iommu_index(topo.iommus[i].upstream_node) : -1;
        if (!d.driven[i] || up < 0 || d.driven[up]) continue;
        d.driven[i] = false, d.refusal[i] = Refusal::root_not_driven;
        char rp[dt::kPathMax];
        format(notes, "%s: %s: its root %s is not driven by moat, so neither is it\n", topo.iommus[i].driver->driver(),
               t.path(topo.iommus[i].node, p, sizeof p), t.path(topo.iommus[up].node, rp, sizeof rp));
    }
    return over;
}

const DeviceEntry* ProtectionReport::find(int node) const {
    for (unsigned i = 0; i < count; i++)
        if (devices[i].node == node) return &devices[i];
    return nullptr;
}

Status classify(const dt::Tree& t, const Topology& topo, const DrivenSet& driven, ProtectionReport& out) {
    out.count = out.dropped = 0;
    out.totals[0] = out.totals[1] = out.totals[2] = 0;
    if (!t.blob()) return Status::bad_dt;
    int depth = 0;
    for (int n = t.next_node(0, &depth); n >= 0 && depth > 0; n = t.next_node(n, &depth)) {
        Basis basis;
        if (!in_scope(t, n) || !master_basis(t, n, basis)) continue;
        DeviceEntry e{n, Dma::unprotected, basis, Cause::no_iommu, -1, -1, 0, false, Refusal::none};
        if (basis == Basis::iommus || basis == Basis::iommu_map) e = classify_wired(t, topo, driven, n, basis);
        else if (basis == Basis::registers) e.dma = Dma::unknown, e.why = Cause::no_heuristic;
        if (out.count == kMaxReportDevices) {
            out.dropped++;
            out.totals[static_cast<unsigned>(Dma::unknown)]++;
            continue;
        }
        out.devices[out.count++] = e;
        out.totals[static_cast<unsigned>(e.dma)]++;
    }
    return Status::ok;
}

const char* to_string(Dma d) {
    switch (d) {
    case Dma::protected_dma: return "protected";
    case Dma::unprotected: return "unprotected";
    case Dma::unknown: return "unknown";
    }
    return "?";
}

const char* state_name(const DeviceEntry& e) {
    switch (e.why) {
    case Cause::driven_iommu: return "protected (moat drives the IOMMU)";
    case Cause::grant_dma: return "protected (Xen grant DMA)";
    case Cause::iommu_not_driven: return "unprotected: IOMMU left to its owner";
    case Cause::iommu_disabled: return "unprotected: IOMMU disabled in the tree";
    case Cause::iommu_refused:
        if (e.refusal == Refusal::capacity) return "IOMMU refused: past moat's capacity";
        if (e.refusal == Refusal::root_not_driven) return "unprotected: its root IOMMU is not driven";
        return "IOMMU refused on this silicon";
    case Cause::wiring_broken: return "wiring broken: device left blocked";
    case Cause::map_gap: return "unprotected: iommu-map leaves requester ids out";
    case Cause::no_iommu: return "unprotected: no IOMMU";
    case Cause::no_heuristic: return "unknown";
    }
    return "?";
}

void describe_condition(const Topology& topo, const DeviceEntry& e, Sink& out) {
    if (!e.conditional || e.iommu < 0) return;
    const IommuInfo& io = topo.iommus[e.iommu];
    Why why;
    if (io.driven() && io.driver->ops->check_silicon && io.driver->ops->check_silicon(*io.driver, Silicon{}, why) == Status::not_ready)
        format(out, "%s", why.text());
}

const char* to_string(Basis b) {
    switch (b) {
    case Basis::iommus: return "iommus";
    case Basis::iommu_map: return "iommu-map";
    case Basis::pci_host: return "pci-host-bridge";
    case Basis::dma_engine: return "dma-engine";
    case Basis::dma_coherent: return "dma-coherent";
    case Basis::known_master: return "known-master";
    case Basis::registers: return "registers";
    }
    return "?";
}

void describe_reason(const dt::Tree& t, const Topology& topo, const DeviceEntry& e, Sink& out) {
    char p[dt::kPathMax];
    const char* compat = t.first_compatible(e.node);
    const IommuInfo* io = e.iommu >= 0 ? &topo.iommus[e.iommu] : nullptr;
    switch (e.why) {
    case Cause::driven_iommu: {
        unsigned others = 0;
        const MasterInfo& m = topo.masters[e.master];
        for (unsigned s = 0; s < m.nstreams; s++) {
            bool seen = m.streams[s].iommu == static_cast<unsigned>(e.iommu);
            for (unsigned k = 0; k < s && !seen; k++) seen = m.streams[k].iommu == m.streams[s].iommu;
            others += !seen;
        }
        format(out, "every stream goes through %s, which moat drives (%s)", t.path(io->node, p, sizeof p),
               io->driven() ? io->driver->driver() : "by request");
        if (others) format(out, ", and %u more driven IOMMU%s", others, others > 1 ? "s" : "");
        if (e.conditional) {
            format(out, "; only on ");
            describe_condition(topo, e, out);
            format(out, ": state it with --soc-revision");
        }
        return;
    }
    case Cause::grant_dma:
        format(out, "Xen grant DMA through %s: backend domain %u only reaches pages granted to it",
               t.path(io->node, p, sizeof p), topo.masters[e.master].streams[0].sid);
        return;
    case Cause::iommu_not_driven:
        format(out, "behind %s (%s), which moat does not drive: its DMA is whatever that IOMMU's owner allows",
               t.path(io->node, p, sizeof p), io->compatible ? io->compatible : "no compatible");
        return;
    case Cause::iommu_disabled: {
        const MasterInfo& m = topo.masters[e.master];
        format(out, "its IOMMU %s is disabled in the tree: left at reset, it passes DMA through untranslated",
               t.path(m.disabled_iommu, p, sizeof p));
        return;
    }
    case Cause::iommu_refused:
        t.path(io->node, p, sizeof p);
        if (e.refusal == Refusal::capacity)
            format(out, "behind %s, past the %s driver's %u instances: refused, DMA untranslated", p, io->driver->driver(),
                   io->driver->ops->capacity);
        else if (e.refusal == Refusal::root_not_driven)
            format(out, "behind %s, whose root moat does not drive: the cache cannot translate for moat", p);
        else
            format(out, "behind %s, which the %s driver refuses on this silicon: DMA untranslated", p, io->driver->driver());
        return;
    case Cause::wiring_broken:
        if (e.master >= 0) format(out, "IOMMU wiring broken, left blocked: %s", topo.masters[e.master].reason);
        else format(out, "more than %u wired masters: not examined", kMaxMasters);
        return;
    case Cause::map_gap:
        format(out, "iommu-map does not translate requester id 0x%04x (%02x:%02x.%u): such devices bypass the IOMMU",
               e.detail, e.detail >> 8, (e.detail >> 3) & 0x1f, e.detail & 7);
        return;
    case Cause::no_iommu:
        switch (e.basis) {
        case Basis::pci_host: format(out, "PCI host bridge without iommu-map: every device behind it reaches memory untranslated"); return;
        case Basis::dma_engine: format(out, "DMA engine (%s) without iommus: it reaches memory untranslated",
                                       t.has(e.node, "#dma-cells") ? "#dma-cells" : compat); return;
        case Basis::dma_coherent: format(out, "marked dma-coherent, so it does DMA, and has no iommus: it reaches memory untranslated"); return;
        default: format(out, "known bus master (%s) without iommus: it reaches memory untranslated", compat ? compat : t.name(e.node)); return;
        }
    case Cause::no_heuristic: {
        dt::Reg r{};
        (void)t.reg(e.node, 0, r);
        format(out, "registers at 0x%lx but no evidence either way (compatible %s%s%s)", r.addr, compat ? "'" : "",
               compat ? compat : "none", compat ? "'" : "");
        return;
    }
    }
}

void describe_streams(const Topology& topo, const DeviceEntry& e, Sink& out) {
    if (e.master < 0 || topo.masters[e.master].blocked || topo.masters[e.master].nstreams == 0) {
        format(out, "-");
        return;
    }
    const MasterInfo& m = topo.masters[e.master];
    bool several = false;
    for (unsigned s = 1; s < m.nstreams; s++) several |= m.streams[s].iommu != m.streams[0].iommu;
    for (unsigned s = 0; s < m.nstreams;) {
        const StreamRef& ref = m.streams[s];
        if (s) format(out, ",");
        if (several) format(out, "iommu%u:", ref.iommu);
        if (ref.from_map) {
            if (ref.count == 1) format(out, "rid 0x%x->0x%x", ref.rid_base, ref.sid);
            else format(out, "rid 0x%x-0x%x->0x%x-0x%x", ref.rid_base, ref.rid_base + ref.count - 1, ref.sid, ref.sid + ref.count - 1);
            s++;
            continue;
        }
        // Merge consecutive single ids on the same IOMMU with no mask.
        unsigned end = s + 1;
        while (end < m.nstreams && !m.streams[end].from_map && m.streams[end].iommu == ref.iommu && m.streams[end].nargs < 2 &&
               ref.nargs < 2 && m.streams[end].sid == m.streams[end - 1].sid + 1)
            end++;
        if (end - s > 1) format(out, "0x%x-0x%x", ref.sid, m.streams[end - 1].sid);
        else if (ref.nargs > 1) format(out, "0x%x/0x%x", ref.sid, ref.args[1]);
        else format(out, "0x%x", ref.sid);
        s = end;
    }
}

}  // namespace moat::xen
