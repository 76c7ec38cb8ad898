#include "drivers/iommu/ipmmu_vmsa_dt.hpp"

#include <string.h>

#include "arch/mmio.hpp"

namespace moat {

namespace {

constexpr const char* kMain = "renesas,ipmmu-main";

bool is_ipmmu(const IommuInfo& io) { return io.driver && strcmp(io.driver->driver, "ipmmu_vmsa") == 0; }

uint32_t be32(const void* p, unsigned i) {
    const uint8_t* b = static_cast<const uint8_t*>(p) + 4 * i;
    return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
}

}  // namespace

Status read_prr(const dt::Tree& t, uint32_t& prr_value, bool* from_dt) {
    uintptr_t at = ipmmu::prr::kGen3Address;
    bool found = false;
    int depth = 0;
    for (int n = t.next_node(-1, &depth); n >= 0 && !found; n = t.next_node(n, &depth)) {
        if (!t.compatible(n, "renesas,prr") || !t.available(n)) continue;
        dt::Reg r;
        Status st = t.reg(n, 0, r);
        if (st != Status::ok) return st;
        if (r.size < 4) return t.fail(n, Status::bad_dt, "product register window is %lu bytes", r.size);
        at = static_cast<uintptr_t>(r.addr);
        found = true;
    }
    if (from_dt) *from_dt = found;
    prr_value = mmio::read32(at);
    return Status::ok;
}

IpmmuSet::Unit* IpmmuSet::find(int node) {
    for (unsigned i = 0; i < nunits_; i++)
        if (units_[i].node == node) return &units_[i];
    return nullptr;
}

IpmmuSet::Unit* IpmmuSet::add(const dt::Tree&, const Topology& topo, unsigned topo_index) {
    if (Unit* u = find(topo.iommus[topo_index].node)) return u;
    if (nunits_ == kMaxUnits) return nullptr;
    Unit& u = units_[nunits_++];
    u.node = topo.iommus[topo_index].node;
    u.topo_index = topo_index;
    return &u;
}

Status IpmmuSet::refuse(const dt::Tree& t, const Unit& u, Sink& report, Status st, const char* what) {
    char path[dt::kPathMax];
    format(report, "ipmmu: %s: %s; refused, its masters are left untranslated\n", t.path(u.node, path, sizeof path), what);
    problems_++;
    return st;
}

// The binding (Documentation/devicetree/bindings/iommu/renesas,ipmmu-vmsa.yaml): one cell, the
// uTLB; caches name the root and their IMSSTR bit in renesas,ipmmu-main; the root has interrupts.
Status IpmmuSet::check_binding(const dt::Tree& t, const Topology& topo, Unit& u, Sink& report) {
    const IommuInfo& io = topo.iommus[u.topo_index];
    char msg[dt::kErrorMax], tp[dt::kPathMax];
    if (io.iommu_cells != 1) {
        format_to(msg, sizeof msg, "#iommu-cells is %u; the IPMMU binding has exactly one cell (the uTLB)", io.iommu_cells);
        return refuse(t, u, report, Status::bad_dt, msg);
    }
    if (io.nregs < 1 || io.regs[0].size < ipmmu::kRegSize) {
        format_to(msg, sizeof msg, "reg must give the 0x%lx-byte register window", ipmmu::kRegSize);
        return refuse(t, u, report, Status::bad_dt, msg);
    }
    int len;
    const void* p = t.prop(u.node, kMain, &len);
    if (!p) {
        u.root = static_cast<int>(&u - units_);
        if (io.nirqs == 0) return refuse(t, u, report, Status::bad_dt, "root IPMMU without interrupts: its faults could never be reported");
        return Status::ok;
    }
    if (len != 8) {
        format_to(msg, sizeof msg, "%s is %d bytes, expected <&root bit>", kMain, len);
        return refuse(t, u, report, Status::bad_dt, msg);
    }
    uint32_t ph = be32(p, 0);
    u.main_bit = be32(p, 1);
    int target = t.node_by_phandle(ph);
    if (target < 0) {
        format_to(msg, sizeof msg, "%s phandle 0x%x points nowhere", kMain, ph);
        return refuse(t, u, report, Status::bad_dt, msg);
    }
    int ti = topo.iommu_index(target);
    if (ti < 0 || !is_ipmmu(topo.iommus[ti])) {
        format_to(msg, sizeof msg, "%s names %s, which is not an IPMMU", kMain, t.path(target, tp, sizeof tp));
        return refuse(t, u, report, Status::bad_dt, msg);
    }
    if (target == u.node || t.has(target, kMain)) {
        format_to(msg, sizeof msg, "%s names %s, which is not a root IPMMU (it has %s itself)", kMain,
                  t.path(target, tp, sizeof tp), kMain);
        return refuse(t, u, report, Status::bad_dt, msg);
    }
    if (u.main_bit >= 32) {
        format_to(msg, sizeof msg, "%s bit %u is beyond IMSSTR's 32 bits", kMain, u.main_bit);
        return refuse(t, u, report, Status::bad_dt, msg);
    }
    return Status::ok;
}

// Every `iommus` entry that names this IPMMU: its one cell is a uTLB number.
void IpmmuSet::collect_masters(const dt::Tree& t, const Topology& topo, Unit& u, Sink& report) {
    char mp[dt::kPathMax], ip[dt::kPathMax];
    u.nmasters = 0;
    for (unsigned m = 0; m < topo.nmasters; m++) {
        const MasterInfo& mi = topo.masters[m];
        for (unsigned s = 0; s < mi.nstreams; s++) {
            const StreamRef& ref = mi.streams[s];
            if (ref.iommu != u.topo_index) continue;
            t.path(mi.node, mp, sizeof mp);
            t.path(u.node, ip, sizeof ip);
            if (ref.from_map) {
                format(report, "ipmmu: %s: iommu-map onto %s: IPMMU masters are named by uTLB in iommus; entry ignored\n", mp, ip);
                problems_++;
            } else if (ref.sid >= ipmmu::kUtlbs) {
                format(report, "ipmmu: %s: iommus entry %u: uTLB %u on %s is out of range (R-Car Gen3 has %u); entry ignored\n",
                       mp, s, ref.sid, ip, ipmmu::kUtlbs);
                problems_++;
            } else if (u.nmasters < kMaxMasters) {
                u.masters[u.nmasters++] = Master{mi.node, static_cast<uint8_t>(ref.sid)};
            }
        }
    }
}

Status IpmmuSet::probe_node(const dt::Tree& t, const Topology& topo, unsigned topo_index, uint32_t prr, Sink& report) {
    char path[dt::kPathMax];
    Unit* u = add(t, topo, topo_index);
    if (!u) {
        format(report, "ipmmu: %s: more than %u IPMMUs; ignored\n", t.path(topo.iommus[topo_index].node, path, sizeof path), kMaxUnits);
        problems_++;
        return Status::no_space;
    }
    if (u->status == Status::ok) return Status::ok;
    Status st = check_binding(t, topo, *u, report);
    if (st != Status::ok) return u->status = st;
    collect_masters(t, topo, *u, report);

    const IommuInfo& io = topo.iommus[topo_index];
    IpmmuVmsa::Config cfg;
    cfg.base = static_cast<uintptr_t>(io.regs[0].addr);
    cfg.size = io.regs[0].size;
    cfg.name = t.name(u->node);
    cfg.main_bit = u->main_bit;
    cfg.nirqs = io.nirqs;
    cfg.compatible = io.driver ? io.driver->compatible : io.compatible;
    cfg.prr = prr;
    cfg.format = format_;
    cfg.cpu_pa_bits = cpu_pa_bits_;
    cfg.block_unattached = block_unattached_;
    cfg.pool = pool_;
    for (unsigned m = 0; m < u->nmasters; m++) cfg.masters |= uint64_t{1} << u->masters[m].utlb;
    if (u->root < 0) {
        int len;
        int target = t.node_by_phandle(be32(t.prop(u->node, kMain, &len), 0));
        Unit* r = find(target);
        if (!r || r->status != Status::ok) {
            // Not an error yet: the root may simply come later in the tree.
            format(report, "ipmmu: %s: waits for its root %s, which has not probed\n", t.path(u->node, path, sizeof path),
                   t.name(target));
            return u->status = Status::not_ready;
        }
        u->root = static_cast<int>(r - units_);
        cfg.root = &r->iommu;
    }
    st = u->iommu.probe(cfg);
    if (st != Status::ok) {
        if (st == Status::not_ready) u->root = -1;
        return u->status = refuse(t, *u, report, st, u->iommu.why());
    }
    if (u->iommu.is_root() && u->iommu.blocking_context() == IpmmuVmsa::kNoContext)
        format(report, "ipmmu: %s: block_unattached is off: uTLBs of unattached masters pass DMA untranslated\n",
               t.path(u->node, path, sizeof path));
    return u->status = Status::ok;
}

Status IpmmuSet::probe_all(const dt::Tree& t, const Topology& topo, uint32_t prr, Sink& report, IpmmuVmsa::Format f,
                           unsigned pa_bits) {
    format_ = f;
    cpu_pa_bits_ = pa_bits;
    // Roots, then caches: a cache only waits when its root is missing or was refused.
    for (int pass = 0; pass < 2; pass++)
        for (unsigned i = 0; i < topo.niommus; i++) {
            if (!is_ipmmu(topo.iommus[i])) continue;
            bool cache = t.has(topo.iommus[i].node, kMain);
            if (cache != (pass == 1)) continue;
            Status st = probe_node(t, topo, i, prr, report);
            if (st == Status::not_ready) problems_++;
        }
    return Status::ok;
}

IpmmuVmsa* IpmmuSet::iommu_of(int master_node, unsigned index, uint32_t& utlb) {
    unsigned seen = 0;
    for (unsigned i = 0; i < nunits_; i++)
        for (unsigned m = 0; m < units_[i].nmasters; m++)
            if (units_[i].masters[m].node == master_node && seen++ == index) {
                utlb = units_[i].masters[m].utlb;
                return units_[i].status == Status::ok ? &units_[i].iommu : nullptr;
            }
    return nullptr;
}

void IpmmuSet::print(const dt::Tree& t, Sink& out) const {
    char path[dt::kPathMax];
    for (unsigned i = 0; i < nunits_; i++) {
        const Unit& u = units_[i];
        const IpmmuVmsa& mmu = u.iommu;
        if (u.status != Status::ok) {
            format(out, "ipmmu: %s %s: %s (%s)\n", t.has(u.node, kMain) ? "cache" : "root", t.name(u.node),
                   u.status == Status::not_ready ? "waiting for its root" : "refused", to_string(u.status));
            continue;
        }
        if (mmu.is_root()) {
            char blocking[48] = "";
            if (mmu.blocking_context() != IpmmuVmsa::kNoContext)
                format_to(blocking, sizeof blocking, ", context %u blocks unattached masters", mmu.blocking_context());
            format(out, "ipmmu: root %s: %s; %u contexts, context 0 reserved%s, %u free; %s\n", t.name(u.node), mmu.why(),
                   ipmmu::kContexts, blocking, mmu.contexts_free(),
                   mmu.format() == IpmmuVmsa::Format::stage2 ? "stage-2 tables (IMSAUXCTLR.S2PTE, VA64)"
                                                             : "32-bit LPAE stage-1 tables");
            continue;
        }
        format(out, "ipmmu: cache %s -> root %s bit %u; masters:", t.name(u.node), mmu.root()->name(), u.main_bit);
        for (unsigned m = 0; m < u.nmasters; m++)
            format(out, "%s %s uTLB %u", m ? "," : "", t.path(u.masters[m].node, path, sizeof path), u.masters[m].utlb);
        format(out, "%s\n", u.nmasters ? "" : " none");
    }
}

void IpmmuSet::shutdown() {
    for (unsigned pass = 0; pass < 2; pass++)
        for (unsigned i = 0; i < nunits_; i++)
            if (units_[i].iommu.ready() && units_[i].iommu.is_root() == (pass == 1)) units_[i].iommu.shutdown();
}

unsigned probe_ipmmus(const dt::Tree& t, const Topology& topo, IpmmuSet& set, unsigned cpu_pa_bits, Sink& out) {
    bool any = false;
    for (unsigned i = 0; i < topo.niommus; i++) any = any || is_ipmmu(topo.iommus[i]);
    if (!any) return 0;
    uint32_t prr = 0;
    bool from_dt = false;
    if (read_prr(t, prr, &from_dt) != Status::ok) {
        format(out, "ipmmu: %s; IPMMUs left alone\n", t.error());
        return 1;
    }
    format(out, "ipmmu: product register 0x%08x (%s, %s)\n", prr, IpmmuVmsa::soc_name(prr),
           from_dt ? "renesas,prr" : "Gen3 fixed address");
    (void)set.probe_all(t, topo, prr, out, IpmmuVmsa::Format::stage2, cpu_pa_bits);
    set.print(t, out);
    return set.problems();
}

}  // namespace moat
