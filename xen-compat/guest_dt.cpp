// build_guest_dt(): the guest's device tree with libfdt's sequential-write API.
#include <libfdt.h>
#include <string.h>

#include "xen-compat/guest_dt_detail.hpp"

namespace moat::xen {

using namespace guest_detail;

namespace {

// Properties of a host node a guest must not see: phandles into the host tree (which would
// dangle, or worse, name the physical IOMMU), and what the builder rewrites itself.
bool dropped_property(const char* name) {
    static constexpr const char* kDrop[] = {
        "iommus", "iommu-map", "iommu-map-mask", "phandle", "linux,phandle", "interrupt-parent", "interrupts-extended",
        "clocks", "clock-names", "assigned-clocks", "assigned-clock-parents", "assigned-clock-rates", "resets", "reset-names",
        "power-domains", "power-domain-names", "dmas", "dma-names", "phys", "phy-names", "phy-handle", "msi-parent",
        "msi-map", "msi-map-mask", "memory-region", "nvmem-cells", "nvmem-cell-names", "#stream-id-cells",
        "operating-points-v2", "interconnects", "interconnect-names", "status",
    };
    for (const char* d : kDrop)
        if (strcmp(name, d) == 0) return true;
    size_t n = strlen(name);
    auto ends = [&](const char* s) { size_t k = strlen(s); return n >= k && strcmp(name + n - k, s) == 0; };
    return strncmp(name, "pinctrl-", 8) == 0 || ends("-gpios") || ends("-gpio") || ends("-supply") || strcmp(name, "gpios") == 0;
}

void write_passthrough(Writer& w, const GuestDesc& g, const GuestPassthrough& p, const dt::Tree& host, Sink* notes) {
    HostDevice h;
    NullSink null;
    if (!read_host(g, p, &host, h, null)) { w.err = -FDT_ERR_BADVALUE; return; }
    char name[dt::kPathMax], base[dt::kPathMax];
    format_to(base, sizeof base, "%s", host.name(h.node));
    base[strcspn(base, "@")] = 0;
    node_name(name, sizeof name, base, h.nregs ? guest_reg(p, h, 0) : 0);
    w.begin(name);
    char dropped[256];
    BufferSink ds(dropped, sizeof dropped);
    int off;
    fdt_for_each_property_offset(off, host.blob(), h.node) {
        const char* pname;
        int len;
        const void* v = fdt_getprop_by_offset(host.blob(), off, &pname, &len);
        if (!v || strcmp(pname, "reg") == 0 || strcmp(pname, "interrupts") == 0) continue;
        if (dropped_property(pname)) {
            if (strcmp(pname, "phandle") != 0 && strcmp(pname, "status") != 0 && strcmp(pname, "interrupt-parent") != 0)
                format(ds, "%s%s", ds.length() ? ", " : "", pname);
            continue;
        }
        w.raw(pname, v, static_cast<size_t>(len));
    }
    GuestRam regs[kGuestMaxPtRegs];
    for (unsigned k = 0; k < h.nregs; k++) regs[k] = GuestRam{guest_reg(p, h, k), h.regs[k].size};
    if (h.nregs) w.reg(regs, h.nregs);
    uint32_t irqs[3 * kGuestMaxPtIrqs];
    for (unsigned k = 0; k < h.nirqs; k++)
        irqs[3 * k] = kGicSpi, irqs[3 * k + 1] = guest_intid(p, h, k) - 32, irqs[3 * k + 2] = h.irqs[k].flags;
    if (h.nirqs) w.cells("interrupts", irqs, 3 * h.nirqs);
    w.end();
    int sub = host.first_subnode(h.node);
    if (notes && ds.length())
        format(*notes, "passthrough %s: not copied: %s (host phandles; %s)\n", p.host_path, dropped,
               p.unconfined ? "no IOMMU moat drives confines this device: its DMA uses host-physical addresses, unconfined"
                            : "the guest sees DMA as guest-physical");
    if (notes && sub >= 0) format(*notes, "passthrough %s: its subnodes are not copied\n", p.host_path);
}

// `iommu-map` for the virtio-pci bridge. An entry maps a requester-id range linearly onto
// "stream ids" (here: backend domids), so devices cannot share an entry unless the mask folds
// every requester id onto one: with one backend for all devices, `iommu-map-mask = <0>` and a
// single entry of length 1; otherwise one entry per device that uses grants. A requester id in
// no entry gets no IOMMU in Linux (of_map_id "bypasses translation"): that is a device whose
// backend is trusted (grants off).
void write_iommu_map(Writer& w, const GuestPciBridge& b) {
    uint32_t map[4 * kGuestMaxPciDevices];
    unsigned n = 0, granted = 0;
    bool one_backend = true;
    for (unsigned i = 0; i < b.ndevices; i++) {
        const GuestPciDevice& d = b.devices[i];
        if (!d.uses_grants()) continue;
        one_backend &= granted == 0 || d.backend == map[2];
        granted++;
        map[n++] = d.rid, map[n++] = kPhandleGrant, map[n++] = d.backend, map[n++] = 1;
    }
    if (!granted) return;
    if (granted == b.ndevices && one_backend) {
        uint32_t single[4] = {0, kPhandleGrant, map[2], 1};
        w.cells("iommu-map", single, 4);
        w.u32("iommu-map-mask", 0);
        return;
    }
    w.cells("iommu-map", map, n);
}

void write_pci(Writer& w, const GuestPciBridge& b) {
    char name[48];
    node_name(name, sizeof name, "pcie", b.ecam_base);
    w.begin(name);
    w.str("compatible", "pci-host-ecam-generic");
    w.str("device_type", "pci");
    w.u32("#address-cells", 3);
    w.u32("#size-cells", 2);
    w.u32("#interrupt-cells", 1);
    w.reg1(b.ecam_base, b.ecam_size);
    uint32_t bus_range[2] = {0, static_cast<uint32_t>(b.ecam_size / kPciBusEcam - 1)};
    w.cells("bus-range", bus_range, 2);
    auto hi = [](uint64_t v) { return static_cast<uint32_t>(v >> 32); };
    auto lo = [](uint64_t v) { return static_cast<uint32_t>(v); };
    uint32_t ranges[7] = {0x02000000, hi(b.mem_base), lo(b.mem_base), hi(b.mem_base), lo(b.mem_base), hi(b.mem_size), lo(b.mem_size)};
    w.cells("ranges", ranges, 7);
    uint32_t mask[4] = {0, 0, 0, 7};
    w.cells("interrupt-map-mask", mask, 4);
    uint32_t map[4 * 8];  // per pin: child unit address (3), pin, GIC phandle, GIC specifier (3); GIC #address-cells is 0
    unsigned n = 0;
    for (uint32_t pin = 1; pin <= 4; pin++) {
        uint32_t e[8] = {0, 0, 0, pin, kPhandleGic, kGicSpi, b.intid + pin - 1 - 32, kIrqLevelHigh};
        for (uint32_t c : e) map[n++] = c;
    }
    w.cells("interrupt-map", map, n);
    w.empty("dma-coherent");
    write_iommu_map(w, b);
    w.end();
}

}  // namespace

Status build_guest_dt(GuestDesc& g, const dt::Tree* host, void* out, size_t cap, size_t& size, Sink& err, Sink* notes) {
    size = 0;
    Status st = complete_guest(g, host, err);
    if (st != Status::ok) return st;
    if (cap > 0x7fffffff) cap = 0x7fffffff;
    Writer w{out};
    w.err = fdt_create(out, static_cast<int>(cap));
    if (!w.err) w.err = fdt_finish_reservemap(out);
    char buf[96], buf2[32];

    w.begin("");
    format_to(buf, sizeof buf, "xen,xenvm-%u.%u", g.xen_major, g.xen_minor);
    w.strs("compatible", buf, "xen,xenvm");
    format_to(buf, sizeof buf, "XENVM-%u.%u", g.xen_major, g.xen_minor);
    w.str("model", buf);
    w.u32("interrupt-parent", kPhandleGic);
    w.u32("#address-cells", 2);
    w.u32("#size-cells", 2);

    w.begin("chosen");
    if (g.bootargs[0]) w.str("bootargs", g.bootargs);
    if (g.console == Console::pl011) {
        node_name(buf2, sizeof buf2, "/sbsa-uart", kPl011Base);
        w.str("stdout-path", buf2);
    }
    w.end();

    w.begin("cpus");
    w.u32("#address-cells", 1);
    w.u32("#size-cells", 0);
    for (unsigned i = 0; i < g.vcpus; i++) {
        node_name(buf, sizeof buf, "cpu", mpidr(i));
        w.begin(buf);
        w.str("device_type", "cpu");
        w.str("compatible", "arm,armv8");
        w.str("enable-method", "psci");
        w.u32("reg", mpidr(i));
        w.end();
    }
    w.end();

    w.begin("psci");
    w.strs("compatible", "arm,psci-1.0", "arm,psci-0.2", "arm,psci");
    w.str("method", "hvc");
    w.u32("cpu_off", 1);  // PSCI 0.1 function ids as Xen defines them (docs/hardware.md §6.1)
    w.u32("cpu_on", 2);
    w.end();

    for (unsigned i = 0; i < g.nram; i++) {
        node_name(buf, sizeof buf, "memory", g.ram[i].base);
        w.begin(buf);
        w.str("device_type", "memory");
        w.reg(&g.ram[i], 1);
        w.end();
    }

    node_name(buf, sizeof buf, "interrupt-controller", kGicdBase);
    w.begin(buf);
    if (g.gic_version == 3) {
        w.str("compatible", "arm,gic-v3");
        GuestRam r[2] = {{kGicdBase, kGicdSizeV3}, {kGicrBase, kGicrStride * g.vcpus}};
        w.reg(r, 2);
        w.u32("#redistributor-regions", 1);
    } else {
        w.str("compatible", "arm,cortex-a15-gic");
        GuestRam r[2] = {{kGicdBase, kGicdSizeV2}, {kGiccBase, kGiccSize}};
        w.reg(r, 2);
    }
    w.u32("#interrupt-cells", 3);
    w.u32("#address-cells", 0);
    w.empty("interrupt-controller");
    w.u32("phandle", kPhandleGic);
    w.end();

    w.begin("timer");
    w.str("compatible", "arm,armv8-timer");
    {   // secure, non-secure, virtual, hypervisor physical timers: PPIs 13, 14, 11, 10
        uint32_t t[12] = {kGicPpi, 13, kIrqLevelLow, kGicPpi, 14, kIrqLevelLow, kGicPpi, 11, kIrqLevelLow, kGicPpi, 10, kIrqLevelLow};
        w.cells("interrupts", t, 12);
    }
    w.end();

    // Linux finds Xen by this exact node name (no unit address) and its compatible.
    w.begin("hypervisor");
    format_to(buf, sizeof buf, "xen,xen-%u.%u", g.xen_major, g.xen_minor);
    w.strs("compatible", buf, "xen,xen");
    w.reg1(g.gnttab_base, g.gnttab_size);
    w.irq(kGicPpi, g.evtchn_intid - 16, kIrqLevelLow);
    w.end();

    if (g.console == Console::pl011) {
        node_name(buf, sizeof buf, "sbsa-uart", kPl011Base);
        w.begin(buf);
        w.str("compatible", "arm,sbsa-uart");
        w.reg1(kPl011Base, kPl011Size);
        w.irq(kGicSpi, kPl011Intid - 32, kIrqLevelHigh);
        w.u32("current-speed", 115200);
        w.end();
    }

    // The binding allows compatible and #iommu-cells, nothing else (and the phandle).
    if (g.uses_grants()) {
        w.begin("xen_iommu");
        w.str("compatible", "xen,grant-dma");
        w.u32("#iommu-cells", 1);
        w.u32("phandle", kPhandleGrant);
        w.end();
    }

    for (unsigned i = 0; i < g.nvirtio; i++) {
        const GuestVirtioMmio& v = g.virtio[i];
        node_name(buf, sizeof buf, "virtio", v.base);
        w.begin(buf);
        w.str("compatible", "virtio,mmio");
        w.reg1(v.base, kVirtioMmioSize);
        w.irq(kGicSpi, v.intid - 32, kIrqEdgeRising);
        w.empty("dma-coherent");
        if (v.uses_grants()) {
            uint32_t iommus[2] = {kPhandleGrant, v.backend};
            w.cells("iommus", iommus, 2);
        }
        w.end();
    }

    if (g.pci.present) write_pci(w, g.pci);

    if (g.npassthrough) {
        w.begin("passthrough");
        w.str("compatible", "simple-bus");
        w.empty("ranges");
        w.u32("#address-cells", 2);
        w.u32("#size-cells", 2);
        for (unsigned i = 0; i < g.npassthrough && !w.err; i++) write_passthrough(w, g, g.passthrough[i], *host, notes);
        w.end();
    }

    w.end();
    if (!w.err) w.err = fdt_finish(out);
    if (w.err == -FDT_ERR_NOSPACE) {
        where(err, g, 0);
        format(err, "the guest device tree does not fit in %zu bytes\n", cap);
        return Status::no_space;
    }
    if (w.err) {
        where(err, g, 0);
        format(err, "building the guest device tree failed: %s\n", fdt_strerror(w.err));
        return Status::bad_dt;
    }
    size = fdt_totalsize(out);
    return Status::ok;
}

}  // namespace moat::xen
