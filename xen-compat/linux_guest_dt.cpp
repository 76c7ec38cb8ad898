// build_linux_guest_dt(): the device tree a dom0less Linux guest boots with, for the guest map
// of dom0less.hpp. Linux is not told about Xen (no `hypervisor` node): a kernel that saw
// `xen,xen` would make Xen's own hypercalls, which moat does not serve.
#include "xen-compat/dom0less.hpp"
#include "xen-compat/dom0less_partial.hpp"
#include "xen-compat/guest_dt_detail.hpp"

namespace moat::xen {

using guest_detail::node_name;
using guest_detail::Writer;
namespace m = guest_map;

namespace {

constexpr uint32_t kGicSpi = 0, kGicPpi = 1, kLevelHigh = 4;

// A 64-bit value as two cells (linux,initrd-start/end: Linux reads any cell count).
void u64(Writer& w, const char* name, uint64_t v) {
    uint32_t c[2] = {static_cast<uint32_t>(v >> 32), static_cast<uint32_t>(v)};
    w.cells(name, c, 2);
}

// The properties of partial-tree node `n` (not the xen, ones, nor one named `skip`), then its
// subnodes, recursively: what Xen copies of a partial tree.
void copy_props(Writer& w, const dt::Tree& t, int n, const char* skip = nullptr) {
    for (int p = fdt_first_property_offset(t.blob(), n); p >= 0 && !w.err; p = fdt_next_property_offset(t.blob(), p)) {
        const char* name = nullptr;
        int len = 0;
        const void* v = fdt_getprop_by_offset(t.blob(), p, &name, &len);
        if (!v || !name || strncmp(name, "xen,", 4) == 0 || (skip && strcmp(name, skip) == 0)) continue;
        w.raw(name, v, static_cast<size_t>(len));
    }
}

void copy_tree(Writer& w, const dt::Tree& t, int n, unsigned depth) {
    if (depth > 16) {
        w.err = -FDT_ERR_BADSTRUCTURE;
        return;
    }
    copy_props(w, t, n);
    for (int c = t.first_subnode(n); c >= 0 && !w.err; c = t.next_subnode(c)) {
        w.begin(t.name(c));
        copy_tree(w, t, c, depth + 1);
        w.end();
    }
}

}  // namespace

Status build_linux_guest_dt(const Dom0lessGuest& g, const GuestPlacement& place, void* out, size_t cap, size_t& size,
                            Sink& err, const GuestPciDt* pci, const PartialTree* pt) {
    size = 0;
    const uint32_t gic_ph = pt ? pt->gic_phandle : m::kPhandleGic;
    if (pci && pt) {
        for (unsigned d = 0; d < pt->ndevices; d++)
            for (unsigned k = 0; k < pt->dev[d].nranges; k++) {
                const PtRange& r = pt->dev[d].ranges[k];
                if (r.guest < pci->win_base + pci->win_size && pci->win_base < r.guest + r.size) {
                    format(err, "dom0less: %s: partial device tree: %s: xen,reg: guest [0x%lx, 0x%lx) overlaps the guest's PCI "
                                "window [0x%lx, 0x%lx)\n", g.path, pt->dev[d].name, r.guest, r.guest + r.size, pci->win_base,
                           pci->win_base + pci->win_size);
                    return Status::out_of_range;
                }
            }
    }
    if (pci) {
        uint64_t b = pci->win_base, e = pci->win_base + pci->win_size;
        auto clash = [&](uint64_t a, uint64_t n) { return b < a + n && a < e; };
        if (!pci->win_size || e < b || e > m::kGuestRamBase || e > (uint64_t{1} << 32) || clash(m::kGicdBase, m::kGicdSize) ||
            clash(m::kGicrBase, m::kGicrStride * g.vcpus) || clash(m::kPl011Base, m::kPl011Size) ||
            clash(m::kPciEcamBase, m::kPciEcamSize)) {
            format(err, "dom0less: %s: the PCI window [0x%lx, 0x%lx) does not fit the guest's device map\n", g.path, b, e);
            return Status::out_of_range;
        }
    }
    if (g.vcpus == 0 || g.vcpus > kDom0lessMaxVcpus || g.memory == 0) {
        format(err, "dom0less: %s: a guest with %u vCPUs and %lu bytes of RAM has no tree\n", g.path, g.vcpus, g.memory);
        return Status::invalid_argument;
    }
    if (cap > 0x7fffffff) cap = 0x7fffffff;
    Writer w{out};
    w.err = fdt_create(out, static_cast<int>(cap));
    if (!w.err) w.err = fdt_finish_reservemap(out);
    char buf[96], uart[32];
    node_name(uart, sizeof uart, "/pl011", m::kPl011Base);

    w.begin("");
    w.str("compatible", "moat,dom0less-guest");
    format_to(buf, sizeof buf, "moat guest %s", g.name);
    w.str("model", buf);
    w.u32("interrupt-parent", gic_ph);
    w.u32("#address-cells", 2);
    w.u32("#size-cells", 2);

    w.begin("chosen");
    if (g.bootargs[0]) w.str("bootargs", g.bootargs);
    if (g.vpl011) w.str("stdout-path", uart + 0);
    if (pci) w.u32("linux,pci-probe-only", 1);  // keep the BARs moat assigned
    if (place.initrd_size) {
        u64(w, "linux,initrd-start", place.initrd);
        u64(w, "linux,initrd-end", place.initrd + place.initrd_size);
    }
    w.end();

    bool pt_aliases = pt && pt->aliases >= 0;
    if (g.vpl011 || pt_aliases) {
        w.begin("aliases");
        if (g.vpl011) w.str("serial0", uart);
        if (pt_aliases) copy_props(w, pt->tree, pt->aliases, g.vpl011 ? "serial0" : nullptr);
        w.end();
    }

    w.begin("cpus");
    w.u32("#address-cells", 1);
    w.u32("#size-cells", 0);
    for (unsigned i = 0; i < g.vcpus; i++) {
        node_name(buf, sizeof buf, "cpu", m::vcpu_mpidr(i));
        w.begin(buf);
        w.str("device_type", "cpu");
        w.str("compatible", "arm,armv8");
        w.str("enable-method", "psci");
        w.u32("reg", static_cast<uint32_t>(m::vcpu_mpidr(i)));
        w.end();
    }
    w.end();

    // PSCI 1.0 through hvc (the 0.2 compatible too, for kernels that know only that one).
    w.begin("psci");
    w.strs("compatible", "arm,psci-1.0", "arm,psci-0.2");
    w.str("method", "hvc");
    w.end();

    node_name(buf, sizeof buf, "memory", g.ram_base);
    w.begin(buf);
    w.str("device_type", "memory");
    w.reg1(g.ram_base, g.memory);
    w.end();

    if (g.resv_size) {
        // Not System RAM to Linux (no-map: not in its linear map either), so /dev/mem may reach it.
        w.begin("reserved-memory");
        w.u32("#address-cells", 2);
        w.u32("#size-cells", 2);
        w.empty("ranges");
        node_name(buf, sizeof buf, "moat-carveout", g.resv_base);
        w.begin(buf);
        w.reg1(g.resv_base, g.resv_size);
        w.empty("no-map");
        w.end();
        w.end();
    }

    node_name(buf, sizeof buf, "interrupt-controller", m::kGicdBase);
    w.begin(buf);
    w.str("compatible", "arm,gic-v3");
    GuestRam gic[2] = {{m::kGicdBase, m::kGicdSize}, {m::kGicrBase, m::kGicrStride * g.vcpus}};
    w.reg(gic, 2);
    w.u32("#redistributor-regions", 1);
    w.u32("#interrupt-cells", 3);
    w.u32("#address-cells", 0);
    w.empty("interrupt-controller");
    w.u32("phandle", gic_ph);
    w.end();

    w.begin("timer");
    w.str("compatible", "arm,armv8-timer");
    {   // secure, non-secure, virtual, hypervisor physical timers (PPI = INTID - 16)
        uint32_t t[12] = {kGicPpi, m::kTimerSecIntid - 16,  kLevelHigh, kGicPpi, m::kTimerNsIntid - 16,  kLevelHigh,
                          kGicPpi, m::kTimerVirtIntid - 16, kLevelHigh, kGicPpi, m::kTimerHypIntid - 16, kLevelHigh};
        w.cells("interrupts", t, 12);
    }
    w.end();

    if (g.vpl011) {
        // Linux's amba bus wants the apb_pclk clock and the PL011 driver its uartclk: one fixed clock.
        w.begin("apb-pclk");
        w.str("compatible", "fixed-clock");
        w.u32("#clock-cells", 0);
        w.u32("clock-frequency", m::kPl011ClockHz);
        w.str("clock-output-names", "clk24mhz");
        w.u32("phandle", m::kPhandleClock);
        w.end();

        w.begin(uart + 1);
        w.strs("compatible", "arm,pl011", "arm,primecell");
        w.reg1(m::kPl011Base, m::kPl011Size);
        w.irq(kGicSpi, m::kPl011Intid - 32, kLevelHigh);
        uint32_t clocks[2] = {m::kPhandleClock, m::kPhandleClock};
        w.cells("clocks", clocks, 2);
        w.strs("clock-names", "uartclk", "apb_pclk");
        w.u32("arm,primecell-periphid", m::kPl011PeriphId);
        w.end();
    }

    if (pci) {
        node_name(buf, sizeof buf, "pcie", m::kPciEcamBase);
        w.begin(buf);
        w.str("compatible", "pci-host-ecam-generic");
        w.str("device_type", "pci");
        w.u32("#address-cells", 3);
        w.u32("#size-cells", 2);
        w.u32("#interrupt-cells", 1);
        w.reg1(m::kPciEcamBase, m::kPciEcamSize);
        uint32_t bus[2] = {0, 0};
        w.cells("bus-range", bus, 2);
        w.u32("linux,pci-domain", 0);
        w.empty("dma-coherent");
        // One 32-bit non-prefetchable memory range, identity: PCI address = CPU address.
        uint32_t r[7] = {0x02000000, 0, static_cast<uint32_t>(pci->win_base), 0, static_cast<uint32_t>(pci->win_base), 0,
                         static_cast<uint32_t>(pci->win_size)};
        w.cells("ranges", r, 7);
        // INTx: devices 0..3 x pins A..D (device bits of the unit address, pin), the rest by the mask.
        // The GIC's #address-cells is 0: no parent unit address in an entry.
        uint32_t map[16 * 8];
        unsigned k = 0;
        for (uint32_t dev = 0; dev < 4; dev++)
            for (uint32_t pin = 1; pin <= 4; pin++) {
                uint32_t e[8] = {dev << 11, 0, 0, pin, gic_ph, kGicSpi, m::kPciIntxIntid - 32 + (dev + pin - 1) % 4,
                                 kLevelHigh};
                for (uint32_t c : e) map[k++] = c;
            }
        for (unsigned i = 0; i < k; i++) map[i] = cpu_to_fdt32(map[i]);
        w.raw("interrupt-map", map, k * 4);  // more cells than Writer::cells takes
        uint32_t mask[4] = {0x1800, 0, 0, 7};
        w.cells("interrupt-map-mask", mask, 4);
        w.end();
    }

    if (pt && pt->passthrough >= 0) {
        // A simple-bus Linux probes the copies on (Xen's guests write it so; moat adds what is missing).
        const dt::Tree& t = pt->tree;
        w.begin("passthrough");
        copy_props(w, t, pt->passthrough);
        if (!t.has(pt->passthrough, "compatible")) w.str("compatible", "simple-bus");
        if (!t.has(pt->passthrough, "ranges")) w.empty("ranges");
        for (int c = t.first_subnode(pt->passthrough); c >= 0 && !w.err; c = t.next_subnode(c)) {
            w.begin(t.name(c));
            copy_tree(w, t, c, 0);
            w.end();
        }
        w.end();
    }

    w.end();
    if (!w.err) w.err = fdt_finish(out);
    if (w.err == -FDT_ERR_NOSPACE) {
        format(err, "dom0less: %s: the guest device tree does not fit in %zu bytes\n", g.path, cap);
        return Status::no_space;
    }
    if (w.err) {
        format(err, "dom0less: %s: building the guest device tree failed: %s\n", g.path, fdt_strerror(w.err));
        return Status::bad_dt;
    }
    size = fdt_totalsize(out);
    return Status::ok;
}

}  // namespace moat::xen
