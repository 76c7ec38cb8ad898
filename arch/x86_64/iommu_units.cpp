#include "arch/x86_64/iommu_units.hpp"

#include "common/acpi_dmar.hpp"
#include "drivers/iommu/vtd.hpp"

namespace moat::arch {

namespace {
acpi::Dmar g_dmar;

const char* scope_kind(uint8_t type) {
    switch (type) {
    case acpi::dmar::kScopeEndpoint: return "endpoint";
    case acpi::dmar::kScopeBridge: return "bridge";
    case acpi::dmar::kScopeIoapic: return "IOAPIC";
    case acpi::dmar::kScopeHpet: return "HPET";
    case acpi::dmar::kScopeAcpi: return "ACPI device";
    default: return "scope";
    }
}
}  // namespace

unsigned iommu_units(const acpi::Tables& tables, acpi::FirmwareDesc& d) {
    const acpi::Table* t = tables.find("DMAR");
    if (!t) {
        print("acpi:     no DMAR: no VT-d unit\n");
        return 0;
    }
    Why why;
    if (acpi::parse_dmar(t->data, t->length, g_dmar, why) != Status::ok) {
        // Without a table moat can trust it cannot tell which unit translates whom: it drives
        // none, and the verdict says so (units at reset leave DMA untranslated).
        print("acpi: DMAR at 0x%lx: %s; no VT-d unit is driven, DMA stays untranslated\n", t->pa, why.text());
        return 1;
    }
    unsigned problems = 0;
    print("acpi:     DMAR at 0x%lx: host address width %u, %u DRHD, %u RMRR", t->pa, g_dmar.haw, g_dmar.ndrhd, g_dmar.nrmrr);
    if (g_dmar.skipped_atsr || g_dmar.skipped_satc || g_dmar.skipped_other)
        print(" (%u ATSR, %u SATC, %u other ignored: moat enables no ATS)", g_dmar.skipped_atsr, g_dmar.skipped_satc,
              g_dmar.skipped_other);
    print("\n");
    for (unsigned i = 0; i < g_dmar.ndrhd; i++) {
        const acpi::DmarDrhd& h = g_dmar.drhd[i];
        print("acpi:       DRHD 0x%lx segment %u%s, %u scope(s)\n", h.base, h.segment, h.include_all ? " INCLUDE_PCI_ALL" : "",
              h.nscopes);
        if (d.nunits == acpi::kMaxUnits) {
            print("acpi: DMAR: offset %u: DRHD 0x%lx is past the %u units moat holds; not driven\n", h.offset, h.base, acpi::kMaxUnits);
            problems++;
            continue;
        }
        acpi::IommuUnit& u = d.units[d.nunits++];
        u = acpi::IommuUnit{};
        u.base = h.base;
        u.size = uint64_t{h.size_pages} * kPageSize;
        u.compatible = kVtdCompatible;
        u.segment = h.segment;
        u.all_devices = h.include_all;
        u.address_width = g_dmar.haw;
        for (unsigned k = 0; k < h.nscopes; k++) {
            const acpi::DmarScope& s = g_dmar.scopes[h.first_scope + k];
            uint16_t bdf;
            if (s.type == acpi::dmar::kScopeIoapic || s.type == acpi::dmar::kScopeHpet) continue;  // interrupt remapping only
            if (s.type != acpi::dmar::kScopeEndpoint || !s.direct_bdf(bdf)) {
                // A bridge's subordinate buses, or a path through bridges, need the buses the
                // firmware gave them: not read yet. Those devices are not described as this
                // unit's, so nothing attaches them through it.
                print("acpi: DMAR: DRHD 0x%lx: %s scope at bus %u with %u hop(s) is not followed; its devices are not attached through it\n",
                      h.base, scope_kind(s.type), s.start_bus, s.npath);
                problems++;
                continue;
            }
            if (u.nids == acpi::kMaxScopeIds) {
                print("acpi: DMAR: DRHD 0x%lx: more than %u endpoints; %02x:%02x.%u is not attached through it\n", h.base,
                      acpi::kMaxScopeIds, bdf >> 8, (bdf >> 3) & 0x1f, bdf & 7);
                problems++;
                continue;
            }
            u.ids[u.nids++] = bdf;
        }
    }
    // RMRRs: memory their devices keep reaching (USB legacy, GPU stolen memory). Kept out of the
    // pool, and written to the node of the unit that translates each device (`moat,rmrr`): the
    // VT-d driver then has every domain that device is attached to map it 1:1.
    for (unsigned i = 0; i < g_dmar.nrmrr; i++) {
        const acpi::DmarRmrr& r = g_dmar.rmrr[i];
        print("acpi:       RMRR 0x%lx-0x%lx segment %u, %u device(s): kept out of the pool, identity-mapped for its devices\n", r.base,
              r.limit, r.segment, r.nscopes);
    }
    problems += acpi::add_rmrrs(g_dmar, d);
    return problems;
}

}  // namespace moat::arch
