// PlatformHost: a guest's partial-tree devices against the host tree, its IOMMUs and the other guests.
#include "hyp/platform_passthrough.hpp"

#include <string.h>

namespace moat {

namespace {

// The GIC moat drives: an interrupt controller of Arm's GIC family.
bool is_gic(const dt::Tree& t, int n) {
    if (!t.has(n, "interrupt-controller")) return false;
    const char* c = t.first_compatible(n);
    return c && (strncmp(c, "arm,gic", 7) == 0 || strncmp(c, "arm,cortex-a15-gic", 18) == 0 ||
                 strncmp(c, "arm,cortex-a9-gic", 17) == 0);
}

}  // namespace

PlatformHost::PlatformHost(const dt::Tree& host, const Topology& topo, const IommuSet* set) : t_(host), topo_(topo), set_(set) {
    for (unsigned i = 0; i < topo.niommus; i++) {
        own(topo.iommus[i].node, "an IOMMU");
        for (unsigned r = 0; r < topo.iommus[i].nregs; r++)
            own_range(topo.iommus[i].regs[r].addr, topo.iommus[i].regs[r].size, "an IOMMU's registers");
    }
    int depth = 0;
    for (int n = t_.root(); n >= 0; n = t_.next_node(n, &depth)) {
        if (!is_gic(t_, n)) continue;
        own_with_regs(n, "the GIC", "the GIC's registers");
    }
    // The console: /chosen stdout-path, a path or an alias, with options after ':'.
    int chosen = t_.find_path("/chosen");
    int len;
    const char* sp = chosen >= 0 ? static_cast<const char*>(t_.prop(chosen, "stdout-path", &len)) : nullptr;
    if (sp && len > 1 && sp[len - 1] == 0) {
        char path[dt::kPathMax];
        size_t k = 0;
        while (sp[k] && sp[k] != ':' && k + 1 < sizeof path) path[k] = sp[k], k++;
        path[k] = 0;
        int n = t_.find_path(path);
        if (n >= 0) own_with_regs(n, "moat's console UART", "moat's console UART");
    }
}

// The node and every range of its reg.
void PlatformHost::own_with_regs(int node, const char* what, const char* regs_what) {
    own(node, what);
    unsigned count = 0;
    dt::Reg r;
    if (t_.reg_count(node, count) == Status::ok)
        for (unsigned k = 0; k < count; k++)
            if (t_.reg(node, k, r) == Status::ok) own_range(r.addr, r.size, regs_what);
}

void PlatformHost::own(int node, const char* what) {
    if (nowned_ < kMaxOwned) owned_[nowned_++] = Owned{node, 0, 0, what};
}

void PlatformHost::own_range(uint64_t base, uint64_t size, const char* what) {
    if (size && nowned_ < kMaxOwned) owned_[nowned_++] = Owned{-1, base, size, what};
}

// What moat itself uses at `node` or above it, or nullptr.
const char* PlatformHost::owner_of(int node) const {
    for (int n = node; n >= 0; n = t_.parent(n))
        for (unsigned i = 0; i < nowned_; i++)
            if (owned_[i].node >= 0 && owned_[i].node == n) return owned_[i].what;
    return nullptr;
}

bool PlatformHost::check_device(const xen::Dom0lessGuest& g, const xen::PtDevice& d, PlatformAssignment& a, Sink& err) {
    auto bad = [&](const char* prop) -> Sink& {
        format(err, "passthrough: %s: %s: %s: ", g.name, d.name, prop);
        return err;
    };
    a = PlatformAssignment{};
    a.pt = &d;
    int node = t_.find_path(d.host_path);
    if (node < 0) return format(bad("xen,path"), "\"%s\" is no node of the host device tree\n", d.host_path), false;
    if (!t_.available(node)) return format(bad("xen,path"), "the host node %s is disabled\n", d.host_path), false;
    a.host_node = node;
    if (const char* what = owner_of(node))
        return format(bad("xen,path"), "%s is %s moat uses itself; no guest may have it\n", d.host_path, what), false;
    for (unsigned i = 0; i < nclaims_; i++)
        if (claims_[i].node == node)
            return format(bad("xen,path"), "%s is already assigned to %s\n", d.host_path, claims_[i].guest), false;
    bool ok = true;
    // Each host range inside one reg entry of the host node, and clear of what moat keeps.
    unsigned nreg = 0;
    if (d.nranges && t_.reg_count(node, nreg) != Status::ok) {
        format(bad("xen,reg"), "the host node %s has no usable reg: %s\n", d.host_path, t_.error());
        return false;
    }
    for (unsigned k = 0; k < d.nranges; k++) {
        const xen::PtRange& r = d.ranges[k];
        bool inside = false;
        for (unsigned i = 0; i < nreg; i++) {
            dt::Reg hr;
            if (t_.reg(node, i, hr) == Status::ok) inside |= r.host >= hr.addr && r.host + r.size <= hr.addr + hr.size;
        }
        if (!inside) {
            format(bad("xen,reg"), "range %u: host [0x%lx, 0x%lx) is not inside a reg entry of %s\n", k, r.host, r.host + r.size,
                   d.host_path);
            ok = false;
        }
        for (unsigned i = 0; i < nowned_; i++)
            if (owned_[i].size && overlaps(r.host, r.size, owned_[i].base, owned_[i].size)) {
                format(bad("xen,reg"), "range %u: host [0x%lx, 0x%lx) overlaps %s [0x%lx, 0x%lx)\n", k, r.host, r.host + r.size,
                       owned_[i].what, owned_[i].base, owned_[i].base + owned_[i].size);
                ok = false;
            }
    }
    // Interrupts: exactly the host node's SPIs (routed 1:1).
    dt::Irq irqs[xen::kPtMaxIrqs];
    unsigned nirq = 0;
    int ilen;
    bool host_irqs = t_.prop(node, "interrupts", &ilen) || t_.prop(node, "interrupts-extended", &ilen);
    if (host_irqs && t_.interrupts(node, irqs, xen::kPtMaxIrqs, nirq) != Status::ok) {
        format(bad("interrupts"), "the host node's interrupts are unusable: %s\n", t_.error());
        ok = false;
    } else {
        bool same = nirq == d.nirqs;
        for (unsigned i = 0; i < nirq; i++) {
            bool found = false;
            for (unsigned j = 0; j < d.nirqs; j++) found |= irqs[i].kind == dt::IrqKind::spi && irqs[i].intid == d.intids[j];
            same &= found;
        }
        if (!same) {
            Sink& s = bad("interrupts");
            format(s, "SPIs");
            for (unsigned j = 0; j < d.nirqs; j++) format(s, " %u", d.intids[j] - 32);
            format(s, "%s, but the host node %s has", d.nirqs ? "" : " (none)", d.host_path);
            for (unsigned i = 0; i < nirq; i++)
                if (irqs[i].kind == dt::IrqKind::spi) format(s, " SPI %u", irqs[i].number);
                else format(s, " a non-SPI interrupt");
            format(s, "%s (moat routes a device's SPIs 1:1, as Xen does)\n", nirq ? "" : " none");
            ok = false;
        }
    }
    // DMA: the streams its `iommus` give, through IOMMUs moat drives.
    int mi = topo_.master_index(node);
    const MasterInfo* m = mi >= 0 ? &topo_.masters[mi] : nullptr;
    char why_none[160] = "it has no iommus";
    if (m && m->blocked) {
        format(bad("xen,path"), "%s's IOMMU wiring is broken (%s); it stays blocked\n", d.host_path, m->reason);
        return false;
    }
    if (m && set_ && set_->master_refused(*m)) {
        format(bad("xen,path"), "%s's IOMMU references were refused by its IOMMU's driver; it stays blocked\n", d.host_path);
        return false;
    }
    if (m) {
        for (unsigned s = 0; s < m->nstreams; s++) {
            if (m->streams[s].from_map) {
                format(bad("xen,path"), "%s is a PCI host bridge (iommu-map); its functions are passed through with moat,pci\n",
                       d.host_path);
                return false;
            }
            if (a.nstreams == kPlatformMaxStreams) {
                format(bad("xen,path"), "%s has more than %u streams\n", d.host_path, kPlatformMaxStreams);
                return false;
            }
            Iommu* via = nullptr;
            StreamId sid = 0;
            Why why;
            Status st = set_ ? set_->stream(*m, s, 0, via, sid, why) : why.set(Status::not_ready, "no IOMMU is probed");
            if (st == Status::ok) {
                a.iommu[a.nstreams] = via, a.sid[a.nstreams] = sid;
                a.nstreams++;
                continue;
            }
            if (st != Status::not_ready) {
                format(bad("xen,path"), "%s: stream reference %u: %s\n", d.host_path, s, why.text());
                return false;
            }
            char ipath[dt::kPathMax];
            format_to(why_none, sizeof why_none, "its IOMMU %s is not one moat drives",
                      t_.path(topo_.iommus[m->streams[s].iommu].node, ipath, sizeof ipath));
        }
        if (m->disabled_iommu >= 0 && !m->nstreams) {
            char ipath[dt::kPathMax];
            format_to(why_none, sizeof why_none, "its IOMMU %s is disabled in the tree", t_.path(m->disabled_iommu, ipath, sizeof ipath));
        }
    }
    bool confined = a.nstreams && (!m || a.nstreams == m->nstreams);
    if (!confined) {
        if (!d.force) {
            format(bad("xen,path"), "%s: %s, so no IOMMU moat drives would confine its DMA; refused "
                                    "(xen,force-assign-without-iommu assigns it anyway)\n", d.host_path, why_none);
            return false;
        }
        a.nstreams = 0;
        a.unconfined = true;
    } else if (d.force) {
        format(err, "passthrough: %s: %s: xen,force-assign-without-iommu: %s is behind an IOMMU moat drives; its DMA is confined "
                    "all the same\n", g.name, d.name, d.host_path);
    }
    if (ok && a.unconfined)
        format(err, "passthrough: %s: %s (%s) assigned WITHOUT an IOMMU (xen,force-assign-without-iommu): %s; its DMA is "
                    "unconfined, reaching all memory\n", g.name, d.name, d.host_path, why_none);
    return ok;
}

Status PlatformHost::resolve(const xen::Dom0lessGuest& g, const xen::PartialTree& pt, GuestPlatform& out, Sink& err) {
    out = GuestPlatform{};
    bool ok = true;
    for (unsigned i = 0; i < pt.ndevices; i++) {
        ok &= check_device(g, pt.dev[i], out.dev[i], err);
        for (unsigned j = 0; j < i; j++)
            if (out.dev[j].host_node >= 0 && out.dev[j].host_node == out.dev[i].host_node) {
                format(err, "passthrough: %s: %s: xen,path: %s is already named by %s\n", g.name, pt.dev[i].name,
                       pt.dev[i].host_path, pt.dev[j].name);
                ok = false;
            }
    }
    if (ok && nclaims_ + pt.ndevices > kMaxClaims) {
        format(err, "passthrough: %s: more than %u platform devices assigned in all\n", g.name, kMaxClaims);
        ok = false;
    }
    if (!ok) {
        format(err, "passthrough: %s: not started (its partial device tree)\n", g.name);
        out = GuestPlatform{};
        return Status::denied;
    }
    out.n = pt.ndevices;
    for (unsigned i = 0; i < out.n; i++) {
        out.unconfined |= out.dev[i].unconfined;
        Claim& c = claims_[nclaims_++];
        c.node = out.dev[i].host_node;
        format_to(c.guest, sizeof c.guest, "%s", g.name);
    }
    return Status::ok;
}

void PlatformHost::release(const char* name) {
    unsigned k = 0;
    for (unsigned i = 0; i < nclaims_; i++)
        if (strcmp(claims_[i].guest, name) != 0) claims_[k++] = claims_[i];
    nclaims_ = k;
}

}  // namespace moat
