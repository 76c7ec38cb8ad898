// verify_guest_dt(): a built guest tree read back through the typed reader and compared with
// its description, independently of the builder.
#include <libfdt.h>
#include <string.h>

#include "xen-compat/guest_dt_detail.hpp"

namespace moat::xen {

using namespace guest_detail;

namespace {

// Reads the built tree back through the typed reader, independently of the writer above.
struct Verifier {
    const dt::Tree& t;
    const GuestDesc& g;
    const dt::Tree* host;
    Sink& diff;
    unsigned n = 0;

    __attribute__((format(printf, 2, 3))) void bad(const char* fmt, ...) {
        format(diff, "guest dt: ");
        va_list ap;
        va_start(ap, fmt);
        vformat(diff, fmt, ap);
        va_end(ap);
        format(diff, "\n");
        n++;
    }
    int node(const char* path) {
        int x = t.find_path(path);
        if (x < 0) bad("%s is missing", path);
        return x;
    }
    int node_at(const char* base, uint64_t addr) {
        char p[dt::kPathMax];
        node_name(p, sizeof p, base, addr);
        return node(p);
    }
    void str(int nd, const char* prop, unsigned i, const char* want) {
        const char* got = t.string_at(nd, prop, i);
        char p[dt::kPathMax];
        if (!got || strcmp(got, want) != 0)
            bad("%s: %s[%u] is '%s', expected '%s'", t.path(nd, p, sizeof p), prop, i, got ? got : "(none)", want);
    }
    void reg(int nd, unsigned i, uint64_t base, uint64_t size) {
        dt::Reg r{};
        char p[dt::kPathMax];
        if (t.reg(nd, i, r) != Status::ok) bad("%s", t.error());
        else if (r.addr != base || r.size != size)
            bad("%s: reg %u is 0x%lx+0x%lx, expected 0x%lx+0x%lx", t.path(nd, p, sizeof p), i, r.addr, r.size, base, size);
    }
    void reg_count(int nd, unsigned want) {
        unsigned got = 0;
        char p[dt::kPathMax];
        if (t.reg_count(nd, got) != Status::ok || got != want) bad("%s: %u reg entries, expected %u", t.path(nd, p, sizeof p), got, want);
    }
    void irqs(int nd, const dt::Irq* want, unsigned count) {
        dt::Irq got[kGuestMaxPtIrqs + 4];
        unsigned ng = 0;
        char p[dt::kPathMax];
        if (t.interrupts(nd, got, kGuestMaxPtIrqs + 4, ng) != Status::ok) return bad("%s", t.error());
        if (ng != count) return bad("%s: %u interrupts, expected %u", t.path(nd, p, sizeof p), ng, count);
        for (unsigned i = 0; i < count; i++)
            if (got[i].kind != want[i].kind || got[i].intid != want[i].intid || got[i].flags != want[i].flags)
                bad("%s: interrupt %u is INTID %u flags %u, expected INTID %u flags %u", t.path(nd, p, sizeof p), i, got[i].intid,
                    got[i].flags, want[i].intid, want[i].flags);
    }
    void irq(int nd, dt::IrqKind kind, uint32_t intid, uint32_t flags) {
        dt::Irq w{kind, kind == dt::IrqKind::spi ? intid - 32 : intid - 16, intid, flags};
        irqs(nd, &w, 1);
    }
    unsigned count_compatible(const char* compat) {
        unsigned c = 0;
        int depth = 0;
        for (int x = t.next_node(-1, &depth); x >= 0; x = t.next_node(x, &depth)) c += t.compatible(x, compat);
        return c;
    }

    void basics() {
        char buf[48];
        format_to(buf, sizeof buf, "xen,xenvm-%u.%u", g.xen_major, g.xen_minor);
        str(0, "compatible", 0, buf);
        str(0, "compatible", 1, "xen,xenvm");
        int chosen = node("/chosen");
        if (chosen >= 0 && g.bootargs[0]) str(chosen, "bootargs", 0, g.bootargs);
        if (chosen >= 0 && !g.bootargs[0] && t.has(chosen, "bootargs")) bad("/chosen has bootargs, none described");
        int cpus = node("/cpus");
        unsigned ncpus = 0;
        for (int c = cpus >= 0 ? t.first_subnode(cpus) : -1; c >= 0; c = t.next_subnode(c)) ncpus++;
        if (ncpus != g.vcpus) bad("/cpus has %u cpus, expected %u", ncpus, g.vcpus);
        for (unsigned i = 0; i < g.vcpus; i++) {
            format_to(buf, sizeof buf, "/cpus/cpu@%x", mpidr(i));
            uint32_t r = 0;
            int c = node(buf);
            if (c >= 0 && (t.u32(c, "reg", r) != Status::ok || r != mpidr(i))) bad("%s: reg is 0x%x, expected 0x%x", buf, r, mpidr(i));
        }
        unsigned banks = 0;
        int depth = 0;
        for (int x = t.next_node(-1, &depth); x >= 0; x = t.next_node(x, &depth)) {
            int len;
            const char* dtype = static_cast<const char*>(t.prop(x, "device_type", &len));
            banks += dtype && strcmp(dtype, "memory") == 0;
        }
        if (banks != g.nram) bad("%u memory nodes, expected %u", banks, g.nram);
        for (unsigned i = 0; i < g.nram; i++) {
            int m = node_at("/memory", g.ram[i].base);
            if (m >= 0) reg(m, 0, g.ram[i].base, g.ram[i].size);
        }
        int gic = t.node_by_phandle(kPhandleGic);
        if (gic < 0) bad("no node with the GIC phandle %u", kPhandleGic);
        else if (g.gic_version == 3) {
            str(gic, "compatible", 0, "arm,gic-v3");
            reg(gic, 0, kGicdBase, kGicdSizeV3);
            reg(gic, 1, kGicrBase, kGicrStride * g.vcpus);
        } else {
            str(gic, "compatible", 0, "arm,cortex-a15-gic");
            reg(gic, 0, kGicdBase, kGicdSizeV2);
            reg(gic, 1, kGiccBase, kGiccSize);
        }
        int hv = node("/hypervisor");
        if (hv >= 0) {
            format_to(buf, sizeof buf, "xen,xen-%u.%u", g.xen_major, g.xen_minor);
            str(hv, "compatible", 0, buf);
            str(hv, "compatible", 1, "xen,xen");
            reg(hv, 0, g.gnttab_base, g.gnttab_size);
            irq(hv, dt::IrqKind::ppi, g.evtchn_intid, kIrqLevelLow);
        }
        node_name(buf, sizeof buf, "/sbsa-uart", kPl011Base);
        if (g.console == Console::pl011) {
            int u = node(buf);
            if (u >= 0) {
                reg(u, 0, kPl011Base, kPl011Size);
                irq(u, dt::IrqKind::spi, kPl011Intid, kIrqLevelHigh);
            }
        } else if (t.find_path(buf) >= 0) {
            bad("%s is present, but the console is not the vPL011", buf);
        }
    }

    int grant_node() {
        int gn = t.node_by_phandle(kPhandleGrant);
        if (!g.uses_grants()) {
            if (gn >= 0 || t.find_path("/xen_iommu") >= 0) bad("a xen,grant-dma node exists, but no device uses grants");
            return -1;
        }
        if (gn < 0) {
            bad("no xen,grant-dma node with phandle %u, though devices use grants", kPhandleGrant);
            return -1;
        }
        if (strcmp(t.name(gn), "xen_iommu") != 0) bad("the grant node is named %s, expected xen_iommu", t.name(gn));
        str(gn, "compatible", 0, "xen,grant-dma");
        uint32_t cells = 0;
        if (t.u32(gn, "#iommu-cells", cells) != Status::ok || cells != 1) bad("/xen_iommu: #iommu-cells is not 1");
        unsigned props = 0;
        int off;
        fdt_for_each_property_offset(off, t.blob(), gn) props++;
        if (props != 3) bad("/xen_iommu has %u properties; the binding allows compatible, #iommu-cells (and phandle)", props);
        if (count_compatible("xen,grant-dma") != 1) bad("%u xen,grant-dma nodes, expected one", count_compatible("xen,grant-dma"));
        return gn;
    }

    void virtio(int gn) {
        if (count_compatible("virtio,mmio") != g.nvirtio) bad("%u virtio,mmio nodes, expected %u", count_compatible("virtio,mmio"), g.nvirtio);
        for (unsigned i = 0; i < g.nvirtio; i++) {
            const GuestVirtioMmio& v = g.virtio[i];
            int d = node_at("/virtio", v.base);
            if (d < 0) continue;
            reg(d, 0, v.base, kVirtioMmioSize);
            irq(d, dt::IrqKind::spi, v.intid, kIrqEdgeRising);
            if (!t.has(d, "dma-coherent")) bad("virtio-mmio %u: no dma-coherent", i);
            dt::PhandleArgs a;
            Status st = t.phandle_args(d, "iommus", "#iommu-cells", 0, a);
            if (!v.uses_grants()) {
                if (t.has(d, "iommus")) bad("virtio-mmio %u: iommus present, but its backend %u uses no grants", i, v.backend);
            } else if (st != Status::ok) {
                bad("virtio-mmio %u: no usable iommus: %s", i, t.error());
            } else if (a.node != gn || a.count != 1 || a.args[0] != v.backend) {
                bad("virtio-mmio %u: iommus names phandle 0x%x with %u cells (first %u), expected the grant node and backend %u", i,
                    a.phandle, a.count, a.count ? a.args[0] : 0, v.backend);
            } else if (t.phandle_args(d, "iommus", "#iommu-cells", 1, a) != Status::not_found) {
                bad("virtio-mmio %u: more than one iommus entry", i);
            }
        }
    }

    void pci(int gn) {
        const GuestPciBridge& b = g.pci;
        char buf[48];
        node_name(buf, sizeof buf, "/pcie", b.ecam_base);
        if (!b.present) {
            if (count_compatible("pci-host-ecam-generic")) bad("a PCI host bridge exists, none described");
            return;
        }
        int h = node(buf);
        if (h < 0) return;
        reg(h, 0, b.ecam_base, b.ecam_size);
        if (!t.has(h, "dma-coherent")) bad("%s: no dma-coherent", buf);
        for (unsigned i = 0; i < b.ndevices; i++) {
            const GuestPciDevice& d = b.devices[i];
            int iommu = -1;
            uint32_t sid = 0;
            Status st = t.has(h, "iommu-map") ? t.map_rid(h, d.rid, iommu, sid) : Status::not_found;
            if (d.uses_grants() && st != Status::ok)
                bad("pci %02x:%02x.%u: not in iommu-map: %s", d.rid >> 8, (d.rid >> 3) & 0x1f, d.rid & 7, t.error());
            else if (d.uses_grants() && (iommu != gn || sid != d.backend))
                bad("pci %02x:%02x.%u: iommu-map gives backend %u, expected %u", d.rid >> 8, (d.rid >> 3) & 0x1f, d.rid & 7, sid, d.backend);
            else if (!d.uses_grants() && st == Status::ok)
                bad("pci %02x:%02x.%u: in iommu-map (backend %u), but it uses no grants", d.rid >> 8, (d.rid >> 3) & 0x1f, d.rid & 7, sid);
        }
    }

    void passthrough() {
        int bus = g.npassthrough ? node("/passthrough") : t.find_path("/passthrough");
        if (!g.npassthrough) {
            if (bus >= 0) bad("/passthrough exists, no passthrough device described");
            return;
        }
        if (bus < 0) return;
        unsigned children = 0;
        for (int c = t.first_subnode(bus); c >= 0; c = t.next_subnode(c)) children++;
        if (children != g.npassthrough) bad("/passthrough has %u devices, expected %u", children, g.npassthrough);
        NullSink null;
        for (unsigned i = 0; i < g.npassthrough; i++) {
            const GuestPassthrough& p = g.passthrough[i];
            HostDevice h;
            if (!read_host(g, p, host, h, null)) {
                bad("passthrough %s: the host device cannot be read", p.host_path);
                continue;
            }
            char base[dt::kPathMax], path[dt::kPathMax];
            format_to(base, sizeof base, "/passthrough/%s", host->name(h.node));
            base[strcspn(base, "@")] = 0;
            node_name(path, sizeof path, base, h.nregs ? guest_reg(p, h, 0) : 0);
            int d = node(path);
            if (d < 0) continue;
            reg_count(d, h.nregs);
            for (unsigned k = 0; k < h.nregs; k++) reg(d, k, guest_reg(p, h, k), h.regs[k].size);
            dt::Irq want[kGuestMaxPtIrqs];
            for (unsigned k = 0; k < h.nirqs; k++) want[k] = dt::Irq{dt::IrqKind::spi, guest_intid(p, h, k) - 32, guest_intid(p, h, k), h.irqs[k].flags};
            irqs(d, want, h.nirqs);
            int l1, l2;
            const void* c1 = t.prop(d, "compatible", &l1);
            const void* c2 = host->prop(h.node, "compatible", &l2);
            if ((c1 == nullptr) != (c2 == nullptr) || (c1 && (l1 != l2 || memcmp(c1, c2, static_cast<size_t>(l1)) != 0)))
                bad("%s: compatible differs from the host's", path);
        }
    }

    // Nothing in a guest tree may name an IOMMU other than the grant node.
    void no_physical_iommu(int gn) {
        int depth = 0;
        char p[dt::kPathMax];
        for (int x = t.next_node(-1, &depth); x >= 0; x = t.next_node(x, &depth)) {
            if (t.has(x, "#iommu-cells") && x != gn) bad("%s is an IOMMU in a guest tree", t.path(x, p, sizeof p));
            for (unsigned i = 0; t.has(x, "iommus"); i++) {
                dt::PhandleArgs a;
                Status st = t.phandle_args(x, "iommus", "#iommu-cells", i, a);
                if (st == Status::not_found) break;
                if (st != Status::ok || a.node != gn) {
                    bad("%s: iommus entry %u names something other than the grant node", t.path(x, p, sizeof p), i);
                    break;
                }
            }
            unsigned count = 0;
            if (t.has(x, "iommu-map") && t.iommu_map_count(x, count) == Status::ok)
                for (unsigned i = 0; i < count; i++) {
                    dt::IommuMapEntry e;
                    if (t.iommu_map_entry(x, i, e) != Status::ok || e.iommu_node != gn)
                        bad("%s: iommu-map entry %u names something other than the grant node", t.path(x, p, sizeof p), i);
                }
        }
    }
};

}  // namespace

unsigned verify_guest_dt(const dt::Tree& t, const GuestDesc& g, const dt::Tree* host, Sink& diff) {
    if (!t.blob()) return 1;
    Verifier v{t, g, host, diff};
    v.basics();
    int gn = v.grant_node();
    v.virtio(gn);
    v.pci(gn);
    v.passthrough();
    v.no_physical_iommu(gn);
    return v.n;
}

}  // namespace moat::xen
