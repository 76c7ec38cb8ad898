// parse_partial_dt(): Xen's partial device tree of a dom0less guest, checked against its map.
#include "xen-compat/dom0less_partial.hpp"

#include <libfdt.h>
#include <stdarg.h>
#include <string.h>

namespace moat::xen {

namespace {

namespace m = guest_map;
constexpr uint64_t kPage = 4096;

bool is_xen_prop(const char* name) { return strncmp(name, "xen,", 4) == 0; }

struct Reader {
    const Dom0lessGuest& g;
    PartialTree& pt;
    Sink& err;
    Sink* notes;
    unsigned problems = 0;
    unsigned ac = 2, sc = 1;  // /passthrough's cells (xen,reg and its children's reg)
    bool identity = true;     // /passthrough's `ranges` is empty: child addresses are guest-physical

    const dt::Tree& t() const { return pt.tree; }

    __attribute__((format(printf, 3, 4))) void problem(int node, const char* fmt, ...) {
        char path[dt::kPathMax];
        format(err, "dom0less: %s: partial device tree: %s: ", g.path, node >= 0 ? t().path(node, path, sizeof path) : "?");
        va_list ap;
        va_start(ap, fmt);
        vformat(err, fmt, ap);
        va_end(ap);
        format(err, "\n");
        problems++;
    }

    uint64_t cells(const void* v, unsigned at, unsigned n) const {
        uint64_t x = 0;
        for (unsigned i = 0; i < n; i++) x = x << 32 | dt::be32(v, at + i);
        return x;
    }

    // The guest's own devices and RAM, which a passthrough range must not cover.
    void clear_of_guest(int node, const PtRange& r, unsigned k) {
        struct Region { uint64_t base, size; const char* what; };
        const Region own[] = {
            {g.ram_base, g.memory, "the guest's RAM"},
            {m::kGicdBase, m::kGicdSize, "the guest's GIC distributor"},
            {m::kGicrBase, m::kGicrStride * (g.vcpus ? g.vcpus : 1), "the guest's GIC redistributors"},
            {m::kPl011Base, m::kPl011Size, "the guest's vPL011"},
            {m::kPciEcamBase, m::kPciEcamSize, "the guest's PCI ECAM"},
        };
        for (const Region& o : own)
            if (o.size && overlaps(r.guest, r.size, o.base, o.size))
                problem(node, "xen,reg: range %u: guest [0x%lx, 0x%lx) overlaps %s [0x%lx, 0x%lx)", k, r.guest, r.guest + r.size,
                        o.what, o.base, o.base + o.size);
    }

    void xen_reg(int node, PtDevice& d) {
        int len;
        const void* v = t().prop(node, "xen,reg", &len);
        if (!v) return;
        unsigned entry = 4 * (2 * ac + sc);
        if (len <= 0 || static_cast<unsigned>(len) % entry)
            return problem(node, "xen,reg: %d bytes, expected <host-address size guest-address> triples of %u cells "
                                 "(/passthrough: #address-cells = %u, #size-cells = %u)", len, 2 * ac + sc, ac, sc);
        unsigned n = static_cast<unsigned>(len) / entry;
        if (n > kPtMaxRanges) return problem(node, "xen,reg: %u ranges, at most %u", n, kPtMaxRanges);
        for (unsigned k = 0; k < n; k++) {
            unsigned at = k * (2 * ac + sc);
            PtRange r{cells(v, at, ac), cells(v, at + ac, sc), cells(v, at + ac + sc, ac)};
            if (!r.size) { problem(node, "xen,reg: range %u is empty (size 0)", k); continue; }
            if (r.host % kPage || r.size % kPage || r.guest % kPage) {
                problem(node, "xen,reg: range %u <0x%lx 0x%lx 0x%lx> is not 4 KiB-aligned (host address, size and guest "
                              "address must be)", k, r.host, r.size, r.guest);
                continue;
            }
            if (r.host + r.size < r.host || r.guest + r.size < r.guest || r.guest + r.size > m::kGuestRamLimit) {
                problem(node, "xen,reg: range %u <0x%lx 0x%lx 0x%lx> wraps or runs past the guest-physical limit 0x%lx", k,
                        r.host, r.size, r.guest, m::kGuestRamLimit);
                continue;
            }
            clear_of_guest(node, r, k);
            for (unsigned j = 0; j < d.nranges; j++) {
                if (overlaps(r.guest, r.size, d.ranges[j].guest, d.ranges[j].size))
                    problem(node, "xen,reg: range %u: guest [0x%lx, 0x%lx) overlaps its range %u", k, r.guest, r.guest + r.size, j);
                if (overlaps(r.host, r.size, d.ranges[j].host, d.ranges[j].size))
                    problem(node, "xen,reg: range %u: host [0x%lx, 0x%lx) overlaps its range %u", k, r.host, r.host + r.size, j);
            }
            for (unsigned o = 0; o < pt.ndevices; o++)
                for (unsigned j = 0; j < pt.dev[o].nranges; j++) {
                    const PtRange& q = pt.dev[o].ranges[j];
                    if (overlaps(r.guest, r.size, q.guest, q.size))
                        problem(node, "xen,reg: range %u: guest [0x%lx, 0x%lx) overlaps %s's [0x%lx, 0x%lx)", k, r.guest,
                                r.guest + r.size, pt.dev[o].name, q.guest, q.guest + q.size);
                    if (overlaps(r.host, r.size, q.host, q.size))
                        problem(node, "xen,reg: range %u: host [0x%lx, 0x%lx) is also passed through by %s", k, r.host,
                                r.host + r.size, pt.dev[o].name);
                }
            d.ranges[d.nranges++] = r;
        }
    }

    // The node's own `reg` (guest addresses) must lie inside what xen,reg maps for it.
    void reg_inside(int node, const PtDevice& d) {
        int len;
        const void* v = t().prop(node, "reg", &len);
        if (!v || !identity) return;
        unsigned entry = 4 * (ac + sc);
        if (len <= 0 || static_cast<unsigned>(len) % entry)
            return problem(node, "reg: %d bytes, not a multiple of %u (/passthrough: #address-cells = %u, #size-cells = %u)", len,
                           entry, ac, sc);
        for (unsigned k = 0; k < static_cast<unsigned>(len) / entry; k++) {
            uint64_t a = cells(v, k * (ac + sc), ac), s = cells(v, k * (ac + sc) + ac, sc);
            bool in = false;
            for (unsigned j = 0; j < d.nranges; j++)
                in |= a >= d.ranges[j].guest && a + s <= d.ranges[j].guest + d.ranges[j].size && a + s >= a;
            if (!in)
                problem(node, "reg: entry %u [0x%lx, 0x%lx) is not inside a guest range of its xen,reg: the guest's driver would "
                              "find nothing there", k, a, a + s);
        }
    }

    // interrupt-parent: the node's, else its ancestors'.
    uint32_t interrupt_parent(int node) const {
        for (int n = node; n >= 0; n = t().parent(n)) {
            uint32_t ph;
            if (t().u32(n, "interrupt-parent", ph) == Status::ok) return ph;
        }
        return 0;
    }

    void interrupts(int node, PtDevice& d) {
        if (t().has(node, "interrupts-extended"))
            return problem(node, "interrupts-extended: not supported; use interrupt-parent = <0x%x> and interrupts", pt.gic_phandle);
        int len;
        const void* v = t().prop(node, "interrupts", &len);
        if (!v) return;
        uint32_t ip = interrupt_parent(node);
        if (ip != pt.gic_phandle)
            return problem(node, "interrupt-parent: 0x%x, expected the guest GIC's phandle 0x%x (%u)", ip, pt.gic_phandle,
                           pt.gic_phandle);
        if (len <= 0 || len % 12) return problem(node, "interrupts: %d bytes, expected <type number flags> triples of the GIC", len);
        unsigned n = static_cast<unsigned>(len) / 12;
        if (n > kPtMaxIrqs) return problem(node, "interrupts: %u, at most %u", n, kPtMaxIrqs);
        for (unsigned k = 0; k < n; k++) {
            uint32_t type = dt::be32(v, 3 * k), num = dt::be32(v, 3 * k + 1), fl = dt::be32(v, 3 * k + 2);
            if (type != 0 || num > 987) {
                problem(node, "interrupts: entry %u <%u %u 0x%x> is not a GIC SPI (type 0, 0..987); only SPIs are routed", k, type,
                        num, fl);
                continue;
            }
            uint32_t intid = num + 32;
            if (intid == m::kPl011Intid || (g.npci && intid >= m::kPciIntxIntid && intid < m::kPciIntxIntid + 4)) {
                problem(node, "interrupts: SPI %u (INTID %u) is the guest's own %s", num, intid,
                        intid == m::kPl011Intid ? "vPL011's" : "PCI INTx line");
                continue;
            }
            // The same SPI twice is allowed: Linux's trees list one line under two names (ZynqMP's GEMs).
            d.intids[d.nirqs] = intid, d.flags[d.nirqs] = fl;
            d.nirqs++;
        }
    }

    void device(int node) {
        bool path = t().has(node, "xen,path"), reg = t().has(node, "xen,reg"), force = t().has(node, "xen,force-assign-without-iommu");
        if (!path) {
            if (reg || force) problem(node, "xen,path: missing; xen,reg and xen,force-assign-without-iommu need the host node it names");
            for (int p = fdt_first_property_offset(t().blob(), node); p >= 0; p = fdt_next_property_offset(t().blob(), p)) {
                const char* name = nullptr;
                (void)fdt_getprop_by_offset(t().blob(), p, &name, nullptr);
                if (name && is_xen_prop(name) && strcmp(name, "xen,reg") && strcmp(name, "xen,force-assign-without-iommu"))
                    problem(node, "%s: not a property moat knows (xen,reg, xen,path, xen,force-assign-without-iommu)", name);
            }
            return;
        }
        if (pt.ndevices == kPtMaxDevices) return problem(node, "more than %u passthrough devices", kPtMaxDevices);
        PtDevice& d = pt.dev[pt.ndevices];
        d = PtDevice{};
        d.node = node;
        t().path(node, d.name, sizeof d.name);
        int len;
        const char* hp = static_cast<const char*>(t().prop(node, "xen,path", &len));
        if (len <= 1 || hp[len - 1] != 0 || strlen(hp) + 1 != static_cast<size_t>(len) || hp[0] != '/')
            problem(node, "xen,path: expected one string, the host node's full path");
        else if (static_cast<size_t>(len) > sizeof d.host_path) problem(node, "xen,path: longer than %zu characters", sizeof d.host_path - 1);
        else memcpy(d.host_path, hp, static_cast<size_t>(len));
        for (unsigned o = 0; o < pt.ndevices; o++)
            if (d.host_path[0] && strcmp(pt.dev[o].host_path, d.host_path) == 0)
                problem(node, "xen,path: \"%s\" is also named by %s", d.host_path, pt.dev[o].name);
        d.force = force;
        for (int p = fdt_first_property_offset(t().blob(), node); p >= 0; p = fdt_next_property_offset(t().blob(), p)) {
            const char* name = nullptr;
            (void)fdt_getprop_by_offset(t().blob(), p, &name, nullptr);
            if (name && is_xen_prop(name) && strcmp(name, "xen,reg") && strcmp(name, "xen,path") &&
                strcmp(name, "xen,force-assign-without-iommu"))
                problem(node, "%s: not a property moat knows (xen,reg, xen,path, xen,force-assign-without-iommu)", name);
        }
        unsigned before = problems;
        xen_reg(node, d);
        if (problems == before) reg_inside(node, d);  // against ranges it refused, reg would fail for nothing
        interrupts(node, d);
        pt.ndevices++;
    }

    // Below a device: no xen, properties (Xen reads them on /passthrough's children only, here).
    void descendants(int node) {
        int depth = 0;
        for (int n = t().next_node(node, &depth); n >= 0 && depth > 0; n = t().next_node(n, &depth))
            if (t().has(n, "xen,reg") || t().has(n, "xen,path"))
                problem(n, "xen,reg / xen,path: only direct children of /passthrough are passed through");
    }

    // No copied phandle may take the guest GIC's or its clock's.
    void phandles(int top) {
        int depth = 0;
        for (int n = top; n >= 0 && (n == top || depth > 0); n = t().next_node(n, &depth)) {
            uint32_t ph = t().phandle(n);
            if (ph && (ph == pt.gic_phandle || ph == m::kPhandleClock))
                problem(n, "phandle: 0x%x is the guest %s's", ph, ph == pt.gic_phandle ? "GIC" : "vPL011 clock");
        }
    }

    void passthrough() {
        int p = pt.passthrough;
        if (t().address_cells(p, ac) != Status::ok || ac > 2)
            problem(p, "#address-cells: expected 1 or 2 (the address cells of xen,reg and of its children's reg)");
        if (t().size_cells(p, sc) != Status::ok || sc < 1 || sc > 2)
            problem(p, "#size-cells: expected 1 or 2 (the size cells of xen,reg and of its children's reg)");
        if (problems) return;
        int len;
        identity = !t().prop(p, "ranges", &len) || len == 0;
        for (int c = t().first_subnode(p); c >= 0; c = t().next_subnode(c)) {
            device(c);
            descendants(c);
        }
        phandles(p);
    }

    void read(const void* blob, size_t size) {
        if (pt.tree.open(blob, size) != Status::ok) return problem(-1, "not a usable device tree: %s", pt.tree.error());
        for (int n = t().first_subnode(t().root()); n >= 0; n = t().next_subnode(n)) {
            const char* name = t().name(n);
            if (strcmp(name, "passthrough") == 0) pt.passthrough = n;
            else if (strcmp(name, "aliases") == 0) pt.aliases = n;
            else if (strcmp(name, "gic") == 0) {
                if (uint32_t ph = t().phandle(n)) pt.gic_phandle = ph;
            } else if (notes) {
                format(*notes, "dom0less: %s: partial device tree: /%s: ignored (as by Xen: only /passthrough, /aliases and "
                               "/gic's phandle are taken)\n", g.path, name);
            }
        }
        if (pt.gic_phandle == m::kPhandleClock)
            problem(t().find_path("/gic"), "phandle: 0x%x is the guest's vPL011 clock's", pt.gic_phandle);
        if (pt.passthrough >= 0) passthrough();
        if (pt.aliases >= 0) {
            for (int c = t().first_subnode(pt.aliases); c >= 0; c = t().next_subnode(c))
                problem(c, "a node under /aliases (aliases are properties)");
        }
    }
};

}  // namespace

Status parse_partial_dt(const Dom0lessGuest& g, const void* blob, size_t size, PartialTree& out, Sink& err, Sink* notes) {
    out.passthrough = out.aliases = -1;
    out.gic_phandle = m::kPhandleGic;
    out.ndevices = 0;
    Reader r{g, out, err, notes};
    r.read(blob, size);
    if (!r.problems) return Status::ok;
    format(err, "dom0less: %s: not started (%u problem%s in its partial device tree)\n", g.path, r.problems,
           r.problems == 1 ? "" : "s");
    out.ndevices = 0;
    return Status::invalid_argument;
}

}  // namespace moat::xen
