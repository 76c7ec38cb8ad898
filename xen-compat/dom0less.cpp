// parse_dom0less(): Xen's dom0less `xen,domain` nodes under /chosen, checked, into Dom0lessConfig.
// place_guest_modules(): where the boot modules go in the guest's RAM.
#include "xen-compat/dom0less.hpp"

#include <libfdt.h>
#include <string.h>

namespace moat::xen {

namespace {

constexpr uint64_t kPage = 4096, k2M = 2 * MiB;

// Xen's dom0less properties moat does not act on: they tune Xen's own services.
constexpr const char* kXenIgnored[] = {
    "nr_spis", "max_grant_frames", "max_maptrack_frames", "max_grant_version", "domain-cpupool",
    "llc-colors", "sve", "xen,domain-p2m-mem-mb", "capabilities", "hap", "mpu",
};
// Properties moat reads itself.
constexpr const char* kKnown[] = {
    "compatible", "#address-cells", "#size-cells", "memory", "cpus", "vpl011", "bootargs",
    "passthrough", "xen,enhanced", "moat,ram-base", "moat,pci", "moat,pci-force-assign-without-iommu", "moat,reserved-memory", "name", "phandle", "linux,phandle",
};

bool listed(const char* name, const char* const* list, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0) return true;
    return false;
}

// One guest being read; every problem is one line and marks the guest as skipped.
struct GuestReader {
    const dt::Tree& t;
    const Dom0lessLimits& lim;
    const Dom0lessConfig& accepted;  // the guests before this one (their modules and pool share)
    uint64_t pool_left;
    Sink& err;
    Sink* notes;
    Dom0lessGuest& g;
    unsigned problems = 0;

    __attribute__((format(printf, 3, 4))) void problem(int node, const char* fmt, ...) {
        char path[dt::kPathMax];
        format(err, "dom0less: %s: ", t.path(node, path, sizeof path));
        va_list ap;
        va_start(ap, fmt);
        vformat(err, fmt, ap);
        va_end(ap);
        format(err, "\n");
        problems++;
    }
    __attribute__((format(printf, 3, 4))) void note(int node, const char* fmt, ...) {
        if (!notes) return;
        char path[dt::kPathMax];
        format(*notes, "dom0less: %s: ", t.path(node, path, sizeof path));
        va_list ap;
        va_start(ap, fmt);
        vformat(*notes, fmt, ap);
        va_end(ap);
        format(*notes, "\n");
    }

    // A NUL-terminated string property, or nullptr (with a problem when present but malformed).
    const char* string(int node, const char* name) {
        int len;
        const char* s = static_cast<const char*>(t.prop(node, name, &len));
        if (!s) return nullptr;
        if (len <= 0 || s[len - 1] != 0 || strlen(s) + 1 != static_cast<size_t>(len)) {
            problem(node, "%s: not a single NUL-terminated string", name);
            return nullptr;
        }
        return s;
    }

    // A one- or two-cell number (Xen writes 64-bit values as two cells; one is accepted too).
    bool number(int node, const char* name, uint64_t& out) {
        int len;
        const void* v = t.prop(node, name, &len);
        if (len == 4) out = dt::be32(v, 0);
        else if (len == 8) out = uint64_t{dt::be32(v, 0)} << 32 | dt::be32(v, 1);
        else return problem(node, "%s: %d bytes, expected one or two cells", name, len), false;
        return true;
    }

    void properties() {
        int off;
        fdt_for_each_property_offset(off, t.blob(), g.node) {
            const char* pname;
            int len;
            if (!fdt_getprop_by_offset(t.blob(), off, &pname, &len)) continue;
            if (listed(pname, kKnown, sizeof kKnown / sizeof *kKnown)) continue;
            if (strcmp(pname, "direct-map") == 0)
                problem(g.node, "direct-map: moat gives every guest its own guest-physical map; a 1:1 map is not supported");
            else if (strcmp(pname, "xen,static-mem") == 0)
                problem(g.node, "xen,static-mem: moat takes guest RAM from its pool; static memory is not supported");
            else if (strncmp(pname, "moat,", 5) == 0)
                problem(g.node, "%s: unknown moat property (moat reads moat,ram-base, moat,pci, moat,pci-force-assign-without-iommu, moat,reserved-memory)", pname);
            else if (listed(pname, kXenIgnored, sizeof kXenIgnored / sizeof *kXenIgnored))
                note(g.node, "%s: a Xen setting moat has no use for, ignored", pname);
            else
                note(g.node, "%s: not part of the dom0less binding, ignored", pname);
        }
    }

    void memory() {
        uint64_t kib;
        if (!t.has(g.node, "memory")) return problem(g.node, "memory: missing (the guest's RAM in KiB)");
        if (!number(g.node, "memory", kib)) return;
        if (kib == 0) return problem(g.node, "memory: 0 KiB; a guest needs RAM");
        if (kib % (kPage / KiB)) return problem(g.node, "memory: %lu KiB is not a whole number of 4 KiB pages", kib);
        if (kib > (guest_map::kGuestRamLimit >> 10)) return problem(g.node, "memory: %lu KiB is more than a guest's address space", kib);
        g.memory = kib * KiB;
        if (g.memory > pool_left)
            problem(g.node, "memory: %lu KiB, but the pool has %lu KiB left for guests (%u before this one)", kib,
                    pool_left / KiB, accepted.nguests);
    }

    void cpus() {
        uint32_t n;
        Status st = t.u32(g.node, "cpus", n);
        if (st == Status::not_found) return problem(g.node, "cpus: missing (the number of vCPUs)");
        if (st != Status::ok) return problem(g.node, "cpus: not a single cell");
        unsigned max = min(lim.max_vcpus, kDom0lessMaxVcpus);
        if (n == 0 || n > max) return problem(g.node, "cpus: %u, expected 1..%u", n, max);
        g.vcpus = n;
    }

    void ram_base() {
        if (!t.has(g.node, "moat,ram-base")) return;
        uint64_t b;
        if (!number(g.node, "moat,ram-base", b)) return;
        if (b % k2M) return problem(g.node, "moat,ram-base: 0x%lx is not 2 MiB-aligned", b);
        if (b < guest_map::kGuestRamBase)
            return problem(g.node, "moat,ram-base: 0x%lx is in the guest's device window (below 0x%lx)", b, guest_map::kGuestRamBase);
        g.ram_base = b;
    }

    // moat,pci: <seg bus dev fn> per function; no function twice, none another guest has.
    void pci() {
        g.pci_force_unconfined = t.has(g.node, "moat,pci-force-assign-without-iommu");
        int len;
        const void* v = t.prop(g.node, "moat,pci", &len);
        if (!v) {
            if (g.pci_force_unconfined)
                note(g.node, "moat,pci-force-assign-without-iommu: the guest has no moat,pci functions, nothing to force");
            return;
        }
        if (len <= 0 || len % 16)
            return problem(g.node, "moat,pci: %d bytes, expected <segment bus device function> entries of 4 cells", len);
        unsigned n = static_cast<unsigned>(len) / 16;
        if (n > kDom0lessMaxPci) return problem(g.node, "moat,pci: %u functions, at most %u", n, kDom0lessMaxPci);
        for (unsigned i = 0; i < n; i++) {
            uint32_t seg = dt::be32(v, 4 * i), bus = dt::be32(v, 4 * i + 1), dev = dt::be32(v, 4 * i + 2),
                     fn = dt::be32(v, 4 * i + 3);
            if (seg > 0xffff || bus > 255 || dev > 31 || fn > 7) {
                problem(g.node, "moat,pci: entry %u <0x%x 0x%x 0x%x 0x%x>: segment <= 0xffff, bus <= 255, device <= 31, "
                                "function <= 7", i, seg, bus, dev, fn);
                continue;
            }
            PciBdf b{static_cast<uint16_t>(seg), static_cast<uint8_t>(bus), static_cast<uint8_t>(dev), static_cast<uint8_t>(fn)};
            bool dup = false;
            for (unsigned j = 0; j < g.npci; j++) dup |= g.pci[j] == b;
            if (dup) {
                problem(g.node, "moat,pci: %04x:%02x:%02x.%u is listed twice", seg, bus, dev, fn);
                continue;
            }
            for (unsigned k = 0; k < accepted.nguests; k++)
                for (unsigned j = 0; j < accepted.guests[k].npci; j++)
                    if (accepted.guests[k].pci[j] == b)
                        problem(g.node, "moat,pci: %04x:%02x:%02x.%u is already assigned to %s", seg, bus, dev, fn,
                                accepted.guests[k].name);
            g.pci[g.npci++] = b;
        }
    }

    // moat,reserved-memory: <ipa-hi ipa-lo size-hi size-lo>, page-aligned, inside the guest's RAM.
    void reserved() {
        int len;
        const void* v = t.prop(g.node, "moat,reserved-memory", &len);
        if (!v) return;
        if (len != 16) return problem(g.node, "moat,reserved-memory: %d bytes, expected <ipa-hi ipa-lo size-hi size-lo>", len);
        uint64_t b = uint64_t{dt::be32(v, 0)} << 32 | dt::be32(v, 1), s = uint64_t{dt::be32(v, 2)} << 32 | dt::be32(v, 3);
        if (!s) return problem(g.node, "moat,reserved-memory: the range at 0x%lx is empty (size 0)", b);
        if (b % kPage || s % kPage)
            return problem(g.node, "moat,reserved-memory: [0x%lx, +0x%lx) is not 4 KiB-aligned (address and size)", b, s);
        if (!g.memory) return;  // memory already reported
        uint64_t end = g.ram_base + g.memory;
        if (b + s < b || b < g.ram_base || b + s > end)
            return problem(g.node, "moat,reserved-memory: [0x%lx, 0x%lx) is not inside the guest's RAM [0x%lx, 0x%lx)", b, b + s,
                           g.ram_base, end);
        g.resv_base = b, g.resv_size = s;
    }

    void xen_strings() {
        if (const char* p = string(g.node, "passthrough"))
            if (strcmp(p, "enabled") != 0 && strcmp(p, "disabled") != 0)
                problem(g.node, "passthrough: \"%s\", expected \"enabled\" or \"disabled\"", p);
        if (const char* e = string(g.node, "xen,enhanced"))
            if (strcmp(e, "disabled") != 0)
                problem(g.node, "xen,enhanced: \"%s\": moat does not serve Xen's PV interfaces (xenstore, event channels, "
                                "grant tables); remove it or say \"disabled\"", e);
    }

    // A module's reg: one (address, size) pair in the domain node's cells.
    void module(int m, unsigned ac, unsigned sc) {
        Dom0lessModule* slot;
        const char* kind;
        if (t.compatible(m, "multiboot,kernel")) slot = &g.kernel, kind = "kernel";
        else if (t.compatible(m, "multiboot,ramdisk")) slot = &g.ramdisk, kind = "ramdisk";
        else if (t.compatible(m, "multiboot,device-tree")) slot = &g.dtb, kind = "device-tree";
        else if (t.compatible(m, "multiboot,module"))
            return problem(m, "compatible: \"multiboot,module\" alone names no kind; add \"multiboot,kernel\", "
                              "\"multiboot,ramdisk\" or \"multiboot,device-tree\"");
        else return note(m, "not a multiboot module, ignored");
        if (slot->present) return problem(m, "compatible: a second multiboot,%s module", kind);
        int len;
        const void* r = t.prop(m, "reg", &len);
        if (!r) return problem(m, "reg: missing");
        if (static_cast<unsigned>(len) != 4 * (ac + sc))
            return problem(m, "reg: %d bytes, expected one address and size (#address-cells = %u, #size-cells = %u of %s)", len, ac,
                           sc, g.name);
        uint64_t a = ac == 2 ? uint64_t{dt::be32(r, 0)} << 32 | dt::be32(r, 1) : dt::be32(r, 0);
        uint64_t s = sc == 2 ? uint64_t{dt::be32(r, ac)} << 32 | dt::be32(r, ac + 1) : dt::be32(r, ac);
        slot->present = true;
        slot->addr = a, slot->size = s;
        if (s == 0) return problem(m, "reg: the %s module is empty (size 0)", kind);
        if (a + s < a) return problem(m, "reg: 0x%lx + 0x%lx wraps", a, s);
        bool in_ram = false;
        for (unsigned i = 0; i < lim.nram; i++)
            in_ram |= a >= lim.ram[i].base && a + s <= lim.ram[i].end();
        if (!in_ram) problem(m, "reg: [0x%lx, 0x%lx) is not inside host RAM", a, a + s);
        for (unsigned i = 0; i < lim.nreserved; i++)
            if (overlaps(a, s, lim.reserved[i].base, lim.reserved[i].size))
                problem(m, "reg: [0x%lx, 0x%lx) overlaps %s [0x%lx, 0x%lx)", a, a + s,
                        lim.reserved_why && lim.reserved_why[i] ? lim.reserved_why[i] : "a reserved range", lim.reserved[i].base,
                        lim.reserved[i].end());
        const Dom0lessModule* mine[] = {&g.kernel, &g.ramdisk, &g.dtb};
        for (const Dom0lessModule* o : mine)
            if (o != slot && o->present && overlaps(a, s, o->addr, o->size))
                problem(m, "reg: [0x%lx, 0x%lx) overlaps this guest's other module at 0x%lx", a, a + s, o->addr);
        for (unsigned i = 0; i < accepted.nguests; i++) {
            const Dom0lessGuest& o = accepted.guests[i];
            const Dom0lessModule* theirs[] = {&o.kernel, &o.ramdisk, &o.dtb};
            for (const Dom0lessModule* om : theirs)
                if (om->present && overlaps(a, s, om->addr, om->size))
                    problem(m, "reg: [0x%lx, 0x%lx) overlaps a module of %s at 0x%lx", a, a + s, o.name, om->addr);
        }
    }

    void modules() {
        unsigned ac = 2, sc = 1;
        if (t.address_cells(g.node, ac) != Status::ok || ac > 2)
            return problem(g.node, "#address-cells: expected 1 or 2 (cells of a module's reg address)");
        if (t.size_cells(g.node, sc) != Status::ok || sc < 1 || sc > 2)
            return problem(g.node, "#size-cells: expected 1 or 2 (cells of a module's reg size)");
        for (int m = t.first_subnode(g.node); m >= 0; m = t.next_subnode(m))
            if (t.enabled_itself(m)) module(m, ac, sc);
        if (!g.kernel.present) problem(g.node, "no module with compatible \"multiboot,kernel\": the guest has nothing to boot");
    }

    void bootargs() {
        int k = -1;
        for (int m = t.first_subnode(g.node); m >= 0; m = t.next_subnode(m))
            if (t.compatible(m, "multiboot,kernel")) k = m;
        const char* from_module = k >= 0 ? string(k, "bootargs") : nullptr;
        const char* from_domain = string(g.node, "bootargs");
        if (from_module && from_domain)
            return problem(g.node, "bootargs: given on the domain node and on its kernel module; keep one (Xen reads the module's)");
        const char* b = from_module ? from_module : from_domain;
        if (!b) return;
        if (strlen(b) >= sizeof g.bootargs)
            return problem(from_module ? k : g.node, "bootargs: longer than %zu characters", sizeof g.bootargs - 1);
        format_to(g.bootargs, sizeof g.bootargs, "%s", b);
    }

    // The guest map: RAM inside the guest-physical space, and room for its modules.
    void fits() {
        if (!g.memory || problems) return;
        if (g.ram_base + g.memory > guest_map::kGuestRamLimit || g.ram_base + g.memory < g.ram_base)
            return problem(g.node, "memory: [0x%lx, 0x%lx) of guest RAM runs past the guest-physical limit 0x%lx", g.ram_base,
                           g.ram_base + g.memory, guest_map::kGuestRamLimit);
        // What place_guest_modules() will need at least (the kernel's bss may ask for more).
        uint64_t need = align_up(g.kernel.size, kPage) + align_up(g.ramdisk.present ? g.ramdisk.size : 0, kPage) + 2 * k2M;
        if (g.memory < need)
            problem(g.node, "memory: %lu KiB cannot hold the kernel (%lu KiB), the ramdisk (%lu KiB) and the guest's device tree",
                    g.memory / KiB, g.kernel.size / KiB, g.ramdisk.present ? g.ramdisk.size / KiB : 0);
    }

    bool read() {
        const char* n = t.name(g.node);
        if (!n || strlen(n) >= sizeof g.name) problem(g.node, "the node name is longer than %zu characters", sizeof g.name - 1);
        else format_to(g.name, sizeof g.name, "%s", n);
        t.path(g.node, g.path, sizeof g.path);
        properties();
        memory();
        cpus();
        g.vpl011 = t.has(g.node, "vpl011");
        ram_base();
        pci();
        reserved();
        xen_strings();
        modules();
        bootargs();
        fits();
        return problems == 0;
    }
};

}  // namespace

Dom0lessLimits dom0less_limits(const MemoryPlan& plan, uint64_t pool_bytes, unsigned max_vcpus) {
    Dom0lessLimits l;
    l.ram = plan.ram, l.nram = plan.nram;
    l.reserved = plan.reserved, l.reserved_why = plan.reserved_why, l.nreserved = plan.nreserved;
    l.pool_bytes = pool_bytes;
    l.max_vcpus = max_vcpus;
    return l;
}

Status parse_dom0less(const dt::Tree& t, const Dom0lessLimits& limits, Dom0lessConfig& out, Sink& err, Sink* notes) {
    out.nguests = out.nskipped = 0;
    int chosen = t.find_path("/chosen");
    if (chosen < 0) return Status::ok;
    uint64_t pool_left = limits.pool_bytes;
    bool full = false;
    for (int n = t.first_subnode(chosen); n >= 0; n = t.next_subnode(n)) {
        if (!t.compatible(n, "xen,domain")) continue;
        if (out.nguests == kDom0lessMaxGuests) {
            char path[dt::kPathMax];
            format(err, "dom0less: %s: more than %u guests; not started\n", t.path(n, path, sizeof path), kDom0lessMaxGuests);
            out.nskipped++;
            full = true;
            continue;
        }
        Dom0lessGuest& g = out.guests[out.nguests];
        g = Dom0lessGuest{};
        g.node = n;
        GuestReader r{t, limits, out, pool_left, err, notes, g};
        if (r.read()) {
            pool_left -= g.memory;
            out.nguests++;
        } else {
            format(err, "dom0less: %s: not started (%u problem%s)\n", g.path[0] ? g.path : "?", r.problems, r.problems == 1 ? "" : "s");
            out.nskipped++;
        }
    }
    if (full) return Status::no_space;
    return out.nskipped ? Status::invalid_argument : Status::ok;
}

unsigned dom0less_module_ranges(const Dom0lessConfig& c, MemRange* out, unsigned max) {
    unsigned n = 0;
    for (unsigned i = 0; i < c.nguests; i++) {
        const Dom0lessModule* mods[] = {&c.guests[i].kernel, &c.guests[i].ramdisk, &c.guests[i].dtb};
        for (const Dom0lessModule* m : mods)
            if (m->present && n < max) out[n++] = MemRange{m->addr, m->size};
    }
    return n;
}

Status place_guest_modules(const Dom0lessGuest& g, uint64_t text_offset, uint64_t image_size, GuestPlacement& out, Sink& err) {
    out = GuestPlacement{};
    auto fail = [&](const char* what, uint64_t need) {
        format(err, "dom0less: %s: %s (memory is %lu KiB; about %lu KiB more needed)\n", g.path, what, g.memory / KiB, need / KiB);
        return Status::no_space;
    };
    uint64_t end = g.ram_base + g.memory;
    if (text_offset % kPage || text_offset >= g.memory) return fail("the kernel's text_offset is not a page inside its RAM", 0);
    out.kernel = g.ram_base + text_offset;
    out.kernel_size = image_size > g.kernel.size ? image_size : g.kernel.size;
    uint64_t kernel_end = align_up(out.kernel + out.kernel_size, kPage);
    // The tree gets the last whole 2 MiB block (Linux maps it with one block and takes up to 2 MiB).
    uint64_t dtb = align_down(end, k2M);
    dtb = dtb >= g.ram_base + k2M ? dtb - k2M : 0;
    if (dtb < kernel_end) return fail("no room for the kernel and a 2 MiB block for the device tree", kernel_end + k2M - dtb);
    out.dtb = dtb, out.dtb_max = k2M;
    if (g.ramdisk.present) {
        uint64_t size = g.ramdisk.size;
        if (size > dtb - kernel_end) return fail("no room for the initrd between the kernel and the device tree", size - (dtb - kernel_end));
        out.initrd = align_down(dtb - size, kPage);
        if (out.initrd < kernel_end) return fail("no room for the initrd between the kernel and the device tree", kernel_end - out.initrd);
        out.initrd_size = size;
    }
    if (g.resv_size) {
        const uint64_t r = g.resv_base, rs = g.resv_size;
        auto clash = [&](const char* what, uint64_t a, uint64_t n) {
            format(err, "dom0less: %s: moat,reserved-memory: [0x%lx, 0x%lx) overlaps the %s at [0x%lx, 0x%lx)\n", g.path, r, r + rs,
                   what, a, a + n);
            return Status::invalid_argument;
        };
        if (overlaps(r, rs, out.kernel, kernel_end - out.kernel)) return clash("kernel", out.kernel, kernel_end - out.kernel);
        if (out.initrd_size && overlaps(r, rs, out.initrd, out.initrd_size))
            return clash("initrd", out.initrd, out.initrd_size);
        if (overlaps(r, rs, out.dtb, out.dtb_max)) return clash("device tree block", out.dtb, out.dtb_max);
    }
    return Status::ok;
}

}  // namespace moat::xen
