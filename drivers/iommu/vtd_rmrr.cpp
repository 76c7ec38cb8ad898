#include "drivers/iommu/vtd_rmrr.hpp"

namespace moat {

Status map_rmrrs(const acpi::Dmar& dmar, uint16_t segment, uint16_t bdf, IoDomain& d, unsigned& mapped, Why& why) {
    mapped = 0;
    const uint64_t limit = uint64_t{1} << d.format().ias;
    auto undo = [&](unsigned upto) {
        for (unsigned k = 0; k < upto; k++) {
            const acpi::DmarRmrr& r = dmar.rmrr[k];
            if (r.segment == segment && dmar.rmrr_names(r, bdf)) (void)d.unmap(r.base, r.limit - r.base + 1);
        }
        mapped = 0;
    };
    for (unsigned i = 0; i < dmar.nrmrr; i++) {
        const acpi::DmarRmrr& r = dmar.rmrr[i];
        if (r.segment != segment || !dmar.rmrr_names(r, bdf)) continue;
        const uint64_t size = r.limit - r.base + 1;
        if (r.limit >= limit) {
            undo(i);
            return why.set(Status::out_of_range, "DMAR: offset %u: RMRR [0x%lx, 0x%lx] for %02x:%02x.%x is beyond the domain's %u-bit input",
                           r.offset, r.base, r.limit, bdf >> 8, (bdf >> 3) & 0x1f, bdf & 7, d.format().ias);
        }
        iopt::Prot rw;
        Progress p = d.map(r.base, r.base, size, rw);
        if (!p.ok()) {
            if (p.bytes_done) (void)d.unmap(r.base, p.bytes_done);
            undo(i);
            return why.set(p.status, "DMAR: offset %u: RMRR [0x%lx, 0x%lx] for %02x:%02x.%x could not be mapped (%s)", r.offset,
                           r.base, r.limit, bdf >> 8, (bdf >> 3) & 0x1f, bdf & 7, to_string(p.status));
        }
        mapped++;
    }
    return Status::ok;
}

}  // namespace moat
