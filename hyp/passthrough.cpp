// resolve_pci_assignment(): a guest's moat,pci functions against the host's PCI.
// GuestDmaDomain: the guest-physical DMA space of its functions, one domain per IOMMU.
#include "hyp/passthrough.hpp"

#include <new>

namespace moat {

namespace {

void bdf_line(Sink& s, const xen::Dom0lessGuest& g, const xen::PciBdf& f) {
    format(s, "passthrough: %s: %04x:%02x:%02x.%u: ", g.name, f.seg, f.bus, f.dev, f.fn);
}

// Bits an input address space needs to hold [0, end).
unsigned bits_for(uint64_t end) {
    unsigned b = 0;
    while (b < 64 && (uint64_t{1} << b) < end) b++;
    return b;
}

}  // namespace

Status resolve_pci_assignment(const xen::Dom0lessGuest& g, const PciHostView& host, GuestPci& out, Sink& err) {
    out = GuestPci{};
    Status worst = Status::ok;
    for (unsigned i = 0; i < g.npci; i++) {
        const xen::PciBdf& f = g.pci[i];
        if (!host.present(f)) {
            bdf_line(err, g, f);
            format(err, "no such function on the host (moat,pci of %s)\n", g.path);
            worst = Status::invalid_argument;
            continue;
        }
        PciAssignment& a = out.fn[out.n];
        a.bdf = f;
        Why why;
        Status st = host.stream(f, a.iommu, a.sid, why);
        if (st == Status::not_found && g.pci_force_unconfined) {
            a.iommu = nullptr;
            out.unconfined = true;
            bdf_line(err, g, f);
            format(err, "assigned WITHOUT an IOMMU (moat,pci-force-assign-without-iommu): %s; its DMA reaches all memory\n",
                   why.text());
            out.n++;
            continue;
        }
        if (st != Status::ok) {
            bdf_line(err, g, f);
            if (st == Status::not_found)
                format(err, "refused: %s; no IOMMU moat drives would confine its DMA (moat,pci-force-assign-without-iommu "
                            "assigns it anyway)\n", why.text());
            else
                format(err, "refused: %s (%s)\n", why.text(), to_string(st));
            if (worst == Status::ok) worst = Status::denied;
            continue;
        }
        out.n++;
    }
    if (worst != Status::ok) {
        format(err, "passthrough: %s: not started (moat,pci)\n", g.name);
        out = GuestPci{};
    }
    return worst;
}

Status GuestDmaDomain::build(const char* guest, const GuestPci& pci, const GuestPlatform* plat, uint64_t ram_ipa,
                             uint64_t ram_pa, uint64_t ram_size, Sink& report) {
    if (n_) return Status::busy;
    size_t before = pool_.used_pages();
    // Every IOMMU the guest's streams sit behind, in order of first use: one domain each.
    Iommu* iommus[kMaxIommus + 1];
    unsigned n = 0;
    auto add = [&](Iommu* m) {
        if (!m) return;
        for (unsigned j = 0; j < n; j++)
            if (iommus[j] == m) return;
        if (n <= kMaxIommus) iommus[n++] = m;
    };
    for (unsigned i = 0; i < pci.n; i++) add(pci.fn[i].iommu);
    for (unsigned d = 0; plat && d < plat->n; d++)
        for (unsigned s = 0; s < plat->dev[d].nstreams; s++) add(plat->dev[d].iommu[s]);
    Status st = Status::ok;
    for (unsigned i = 0; i < n && st == Status::ok; i++) st = build_one(guest, pci, plat, *iommus[i], ram_ipa, ram_pa, ram_size, report);
    if (st != Status::ok) {
        (void)teardown(nullptr);
        return st;
    }
    pages_ = pool_.used_pages() - before;
    return Status::ok;
}

Status GuestDmaDomain::build_one(const char* guest, const GuestPci& pci, const GuestPlatform* plat, Iommu& iommu,
                                 uint64_t ram_ipa, uint64_t ram_pa, uint64_t ram_size, Sink& report) {
    if (n_ == kMaxIommus) {
        format(report, "passthrough: %s: functions behind more than %u IOMMUs\n", guest, kMaxIommus);
        return Status::no_space;
    }
    unsigned need = bits_for(ram_ipa + ram_size);
    Result<iopt::Format> f = iommu.domain_format(DomainUse::dma, need);
    if (!f.ok() || f.value.ias < need) {
        format(report, "passthrough: %s: %s cannot translate guest-physical addresses up to 0x%lx (%u bits)\n", guest,
               iommu.name(), ram_ipa + ram_size, need);
        return f.ok() ? Status::out_of_range : f.status;
    }
    IoDomain* d = new (storage_[n_]) IoDomain(pool_, f.value, quota_);
    dom_[n_++] = d;
    Status st = d->init();
    if (st != Status::ok) {
        format(report, "passthrough: %s: DMA domain on %s: %s\n", guest, iommu.name(), to_string(st));
        return st;
    }
    Progress p = d->map(ram_ipa, ram_pa, ram_size, iopt::Prot{});
    if (!p.ok()) {
        format(report, "passthrough: %s: DMA domain on %s: mapping guest RAM stopped after 0x%lx of 0x%lx bytes: %s\n", guest,
               iommu.name(), p.bytes_done, ram_size, to_string(p.status));
        return p.status;
    }
    bytes_ += ram_size;
    format(report, "passthrough: %s: DMA domain %lu on %s (%s, %u-bit): IOVA = guest-physical [0x%lx, 0x%lx) -> PA 0x%lx, %lu pages; streams",
           guest, d->id(), iommu.name(), iopt::format_name(f.value.id), f.value.ias, ram_ipa, ram_ipa + ram_size, ram_pa,
           ram_size / kPageSize);
    for (unsigned i = 0; i < pci.n; i++) {
        if (pci.fn[i].iommu != &iommu) continue;
        st = d->attach(iommu, pci.fn[i].sid);
        const xen::PciBdf& b = pci.fn[i].bdf;
        format(report, " 0x%x (%04x:%02x:%02x.%u)", pci.fn[i].sid, b.seg, b.bus, b.dev, b.fn);
        if (st != Status::ok) {
            format(report, " refused: %s\n", to_string(st));
            return st;
        }
    }
    for (unsigned k = 0; plat && k < plat->n; k++)
        for (unsigned s = 0; s < plat->dev[k].nstreams; s++) {
            if (plat->dev[k].iommu[s] != &iommu) continue;
            st = d->attach(iommu, plat->dev[k].sid[s]);
            format(report, " 0x%x (%s)", plat->dev[k].sid[s], plat->dev[k].pt ? plat->dev[k].pt->host_path : "?");
            if (st != Status::ok) {
                format(report, " refused: %s\n", to_string(st));
                return st;
            }
        }
    format(report, "\n");
    return Status::ok;
}

Status GuestDmaDomain::teardown(Sink* report) {
    Status worst = Status::ok;
    for (unsigned i = 0; i < n_; i++) {
        IoDomain* d = dom_[i];
        unsigned streams = d->attached_count();
        Status st = d->destroy();
        if (report)
            format(*report, "passthrough: DMA domain %lu: %u stream%s detached to abort: %s\n", d->id(), streams,
                   streams == 1 ? "" : "s", to_string(st));
        if (st != Status::ok && worst == Status::ok) worst = st;
        d->~IoDomain();
        dom_[i] = nullptr;
    }
    n_ = 0;
    pages_ = bytes_ = 0;
    return worst;
}

}  // namespace moat
