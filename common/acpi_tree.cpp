#include "common/acpi_tree.hpp"

#include <libfdt.h>

#include "common/format.hpp"

namespace moat::acpi {

namespace {

constexpr uint32_t kFirstIommuPhandle = 1;
constexpr unsigned kMapCells = 4;                  // rid-base, phandle, sid-base, length
constexpr unsigned kMaxMapEntries = kMaxUnits * (kMaxScopeIds + 1);

// The sequential-write calls with a sticky error, so the builder reads as the tree it writes.
struct Writer {
    void* fdt;
    int err = 0;
    void begin(const char* name) { if (!err) err = fdt_begin_node(fdt, name); }
    void end() { if (!err) err = fdt_end_node(fdt); }
    void raw(const char* name, const void* v, size_t len) { if (!err) err = fdt_property(fdt, name, v, static_cast<int>(len)); }
    void u32(const char* name, uint32_t v) { if (!err) err = fdt_property_u32(fdt, name, v); }
    void str(const char* name, const char* s) { raw(name, s, __builtin_strlen(s) + 1); }
    void cells(const char* name, const uint32_t* c, unsigned n) {
        fdt32_t be[kMaxMapEntries * kMapCells];
        if (n > sizeof be / sizeof be[0]) { err = -FDT_ERR_NOSPACE; return; }
        for (unsigned i = 0; i < n; i++) be[i] = cpu_to_fdt32(c[i]);
        raw(name, be, n * 4);
    }
    // `reg` with two address and two size cells.
    void reg(const uint64_t* pairs, unsigned n) {
        uint32_t c[kMaxRam * 4];
        if (n > kMaxRam) { err = -FDT_ERR_NOSPACE; return; }
        for (unsigned i = 0; i < 2 * n; i++) {
            c[2 * i] = static_cast<uint32_t>(pairs[i] >> 32);
            c[2 * i + 1] = static_cast<uint32_t>(pairs[i]);
        }
        cells("reg", c, 4 * n);
    }
};

}  // namespace

unsigned add_rmrrs(const Dmar& dmar, FirmwareDesc& d) {
    unsigned problems = 0;
    for (unsigned i = 0; i < dmar.nrmrr; i++) {
        const DmarRmrr& r = dmar.rmrr[i];
        if (r.limit < r.base) continue;  // parse_dmar refuses these
        const uint64_t base = align_down(r.base, kPageSize), end = align_up(r.limit + 1, kPageSize);
        if (d.nreserved < sizeof d.reserved / sizeof d.reserved[0]) {
            d.reserved[d.nreserved++] = {base, end - base};
        } else {
            print("acpi: DMAR: offset %u: RMRR 0x%lx-0x%lx: no room to keep it out of the pool\n", r.offset, r.base, r.limit);
            problems++;
        }
        for (unsigned k = 0; k < r.nscopes; k++) {
            const DmarScope& s = dmar.scopes[r.first_scope + k];
            uint16_t bdf;
            if (s.type != dmar::kScopeEndpoint || !s.direct_bdf(bdf)) {
                print("acpi: DMAR: offset %u: RMRR 0x%lx-0x%lx: scope type %u at bus %u with %u hop(s) is not followed; its devices get no identity map\n",
                      r.offset, r.base, r.limit, s.type, s.start_bus, s.npath);
                problems++;
                continue;
            }
            const DmarDrhd* h = dmar.unit_for(r.segment, bdf);
            IommuUnit* u = nullptr;
            for (unsigned k2 = 0; h && k2 < d.nunits && !u; k2++)
                if (d.units[k2].base == h->base && d.units[k2].segment == h->segment) u = &d.units[k2];
            if (!u) continue;  // no unit moat drives translates it: its DMA is not remapped at all
            if (u->nrmrr == kMaxUnitRmrr) {
                print("acpi: DMAR: offset %u: RMRR 0x%lx-0x%lx for %02x:%02x.%u is past the %u a unit holds; not identity-mapped\n",
                      r.offset, r.base, r.limit, bdf >> 8, (bdf >> 3) & 0x1f, bdf & 7, kMaxUnitRmrr);
                problems++;
                continue;
            }
            u->rmrr[u->nrmrr++] = {base, end - 1, bdf};
        }
    }
    return problems;
}

Status build_tree(const FirmwareDesc& d, void* buf, size_t cap, Why& why) {
    if (d.nram == 0 || d.nram > kMaxRam) return why.set(Status::invalid_argument, "firmware tree: %u RAM ranges (1..%u)", d.nram, kMaxRam);
    if (d.nreserved > sizeof d.reserved / sizeof d.reserved[0])
        return why.set(Status::invalid_argument, "firmware tree: %u reserved ranges", d.nreserved);
    if (d.necam > kMaxMcfg || d.nunits > kMaxUnits) return why.set(Status::invalid_argument, "firmware tree: too many ECAM windows or IOMMUs");
    for (unsigned u = 0; u < d.nunits; u++) {
        const IommuUnit& iu = d.units[u];
        if (!iu.size || !iu.compatible || iu.nids > kMaxScopeIds || iu.nrmrr > kMaxUnitRmrr)
            return why.set(Status::invalid_argument, "firmware tree: IOMMU unit %u at 0x%lx is incomplete", u, iu.base);
    }
    Writer w{buf};
    w.err = fdt_create(buf, static_cast<int>(cap));
    for (unsigned i = 0; i < d.nreserved && !w.err; i++) w.err = fdt_add_reservemap_entry(buf, d.reserved[i].base, d.reserved[i].size);
    if (!w.err) w.err = fdt_finish_reservemap(buf);
    w.begin("");
    w.u32("#address-cells", 2);
    w.u32("#size-cells", 2);
    w.str("model", d.model);
    w.str("compatible", "moat,acpi-platform");

    w.begin("chosen");
    w.str("bootargs", d.bootargs);
    w.end();

    char name[48];
    uint64_t ram[2 * kMaxRam];
    for (unsigned i = 0; i < d.nram; i++) {
        ram[2 * i] = d.ram[i].base;
        ram[2 * i + 1] = d.ram[i].size;
    }
    format_to(name, sizeof name, "memory@%lx", d.ram[0].base);
    w.begin(name);
    w.str("device_type", "memory");
    w.reg(ram, d.nram);
    w.end();

    for (unsigned u = 0; u < d.nunits; u++) {
        const IommuUnit& iu = d.units[u];
        format_to(name, sizeof name, "iommu@%lx", iu.base);
        w.begin(name);
        w.str("compatible", iu.compatible);
        uint64_t r[2] = {iu.base, iu.size};
        w.reg(r, 1);
        w.u32("#iommu-cells", 1);
        if (iu.address_width) w.u32("moat,host-address-width", iu.address_width);
        if (iu.nrmrr) {
            uint32_t c[kMaxUnitRmrr * 5];
            for (unsigned i = 0; i < iu.nrmrr; i++) {
                const IommuUnit::Rmrr& rm = iu.rmrr[i];
                uint32_t e5[5] = {static_cast<uint32_t>(rm.base >> 32), static_cast<uint32_t>(rm.base),
                                  static_cast<uint32_t>(rm.limit >> 32), static_cast<uint32_t>(rm.limit), rm.bdf};
                __builtin_memcpy(&c[5 * i], e5, sizeof e5);
            }
            w.cells("moat,rmrr", c, 5 * iu.nrmrr);
        }
        w.u32("phandle", kFirstIommuPhandle + u);
        w.end();
    }

    for (unsigned e = 0; e < d.necam; e++) {
        const McfgEntry& m = d.ecam[e];
        format_to(name, sizeof name, "pcie@%lx", m.window());
        w.begin(name);
        w.str("compatible", "pci-host-ecam-generic");
        w.str("device_type", "pci");
        w.u32("#address-cells", 3);
        w.u32("#size-cells", 2);
        w.u32("linux,pci-domain", m.segment);
        uint64_t r[2] = {m.window(), m.size()};
        w.reg(r, 1);
        uint32_t br[2] = {m.bus_start, m.bus_end};
        w.cells("bus-range", br, 2);
        uint32_t ranges[7] = {0x02000000,
                              static_cast<uint32_t>(d.pci_window_base >> 32), static_cast<uint32_t>(d.pci_window_base),
                              static_cast<uint32_t>(d.pci_window_base >> 32), static_cast<uint32_t>(d.pci_window_base),
                              static_cast<uint32_t>(d.pci_window_size >> 32), static_cast<uint32_t>(d.pci_window_size)};
        w.cells("ranges", ranges, 7);
        // The units of this segment: listed endpoints first (the first matching entry wins, as
        // in Linux's of_map_id), then the catch-all of an INCLUDE_PCI_ALL unit.
        uint32_t map[kMaxMapEntries * kMapCells];
        unsigned n = 0;
        for (unsigned u = 0; u < d.nunits; u++) {
            const IommuUnit& iu = d.units[u];
            if (iu.segment != m.segment) continue;
            for (unsigned i = 0; i < iu.nids; i++) {
                uint32_t e4[kMapCells] = {iu.ids[i], kFirstIommuPhandle + u, iu.ids[i], 1};
                __builtin_memcpy(&map[n], e4, sizeof e4);
                n += kMapCells;
            }
        }
        for (unsigned u = 0; u < d.nunits; u++) {
            const IommuUnit& iu = d.units[u];
            if (iu.segment != m.segment || !iu.all_devices) continue;
            uint32_t e4[kMapCells] = {0, kFirstIommuPhandle + u, 0, 0x10000};
            __builtin_memcpy(&map[n], e4, sizeof e4);
            n += kMapCells;
        }
        if (n) w.cells("iommu-map", map, n);
        w.end();
    }
    w.end();
    if (!w.err) w.err = fdt_finish(buf);
    if (w.err) return why.set(w.err == -FDT_ERR_NOSPACE ? Status::no_space : Status::invalid_argument,
                              "firmware tree: %s (buffer %zu bytes)", fdt_strerror(w.err), cap);
    return Status::ok;
}

}  // namespace moat::acpi
