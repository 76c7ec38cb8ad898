#include "common/discovery.hpp"

namespace moat {

int Topology::iommu_index(int node) const {
    for (unsigned i = 0; i < niommus; i++)
        if (iommus[i].node == node) return static_cast<int>(i);
    return -1;
}

int Topology::master_index(int node) const {
    for (unsigned i = 0; i < nmasters; i++)
        if (masters[i].node == node) return static_cast<int>(i);
    return -1;
}

namespace {

const char* trigger_name(uint32_t flags) {
    switch (flags) {
    case 1: return "edge-rising";
    case 2: return "edge-falling";
    case 4: return "level-high";
    case 8: return "level-low";
    default: return "trigger?";
    }
}

void add_iommu(const dt::Tree& t, int node, Topology& topo, Sink& report) {
    char path[dt::kPathMax];
    if (topo.niommus == kMaxIommus) {
        format(report, "dt: %s: more than %u IOMMUs, ignored\n", t.path(node, path, sizeof path), kMaxIommus);
        topo.problems++;
        return;
    }
    IommuInfo info{};
    info.node = node;
    info.compatible = t.first_compatible(node);
    info.driver = find_driver(t, node);
    info.phandle = t.phandle(node);
    // A legacy SMMU (`mmu-masters`, no `#iommu-cells`) has references of one id each.
    Status st = !t.has(node, "#iommu-cells") && t.has(node, "mmu-masters") ? Status::ok
                                                                             : t.u32(node, "#iommu-cells", info.iommu_cells);
    unsigned nregs = 0;
    if (st == Status::ok) st = t.reg_count(node, nregs);
    if (st == Status::ok && nregs > kMaxIommuRegs)
        st = t.fail(node, Status::no_space, "%u reg entries; at most %u are read", nregs, kMaxIommuRegs);
    for (unsigned i = 0; st == Status::ok && i < nregs; i++) st = t.reg(node, i, info.regs[info.nregs++]);
    // Interrupts the tree gets wrong cost the IOMMU its lines, not its masters: it polls.
    if (st == Status::ok && t.interrupts(node, info.irqs, kMaxIommuIrqs, info.nirqs) != Status::ok) {
        format(report, "dt: %s; its interrupts are ignored: it will poll for faults\n", t.error());
        topo.problems++;
        info.nirqs = 0;
    }
    // An IOMMU without registers is legal only for paravirtual ones (xen,grant-dma).
    if (st == Status::not_found && !t.has(node, "reg")) st = Status::ok, info.nregs = 0;
    if (st != Status::ok) {
        format(report, "dt: %s; IOMMU ignored, its masters stay blocked\n", t.error());
        topo.problems++;
        return;
    }
    info.upstream_node = -1;
    if (info.driver && info.driver->upstream) {
        Why why;
        int up = -1;
        Status ust = info.driver->upstream(t, node, up, info.upstream_arg, why);
        if (ust == Status::ok) info.upstream_node = up;
        else if (ust != Status::not_found) format_to(info.upstream_problem, sizeof info.upstream_problem, "%s", why.text());
    }
    topo.iommus[topo.niommus++] = info;
}

// An IOMMU node (by its `#iommu-cells`) that the tree disables, itself or through an ancestor.
bool disabled_iommu(const dt::Tree& t, int node) { return node >= 0 && t.has(node, "#iommu-cells") && !t.available(node); }

Status add_iommus_refs(const dt::Tree& t, int node, Topology& topo, MasterInfo& m) {
    for (unsigned i = 0;; i++) {
        dt::PhandleArgs a;
        Status st = t.phandle_args(node, "iommus", "#iommu-cells", i, a);
        if (st == Status::not_found && i > 0) return Status::ok;
        if (st != Status::ok) return st;
        int idx = topo.iommu_index(a.node);
        char tp[dt::kPathMax];
        if (idx < 0 && disabled_iommu(t, a.node)) {
            m.disabled_iommu = a.node;
            continue;
        }
        if (idx < 0)
            return t.fail(node, Status::bad_dt, "iommus entry %u: %s is not a usable IOMMU", i, t.path(a.node, tp, sizeof tp));
        if (a.count == 0)
            return t.fail(node, Status::bad_dt, "iommus entry %u: %s has #iommu-cells = 0, no stream id", i, t.path(a.node, tp, sizeof tp));
        if (m.nstreams == kMaxStreamsPerMaster)
            return t.fail(node, Status::no_space, "more than %u iommus entries", kMaxStreamsPerMaster);
        StreamRef& s = m.streams[m.nstreams++];
        s = StreamRef{static_cast<unsigned>(idx), false, false, a.args[0], 1, 0, min(a.count, 4u), {}};
        for (unsigned k = 0; k < s.nargs; k++) s.args[k] = a.args[k];
    }
}

Status add_map_refs(const dt::Tree& t, int node, Topology& topo, MasterInfo& m) {
    unsigned count;
    Status st = t.iommu_map_mask(node, m.map_mask);
    if (st == Status::ok) st = t.iommu_map_count(node, count);
    if (st != Status::ok) return st;
    for (unsigned i = 0; i < count; i++) {
        dt::IommuMapEntry e;
        if ((st = t.iommu_map_entry(node, i, e)) != Status::ok) return st;
        int idx = topo.iommu_index(e.iommu_node);
        char tp[dt::kPathMax];
        if (idx < 0 && disabled_iommu(t, e.iommu_node)) {
            m.disabled_iommu = e.iommu_node;
            continue;
        }
        if (idx < 0)
            return t.fail(node, Status::bad_dt, "iommu-map entry %u: %s is not a usable IOMMU", i, t.path(e.iommu_node, tp, sizeof tp));
        const IommuInfo& io = topo.iommus[idx];
        if (io.driver && io.driver->rules.no_map)
            return t.fail(node, Status::unsupported, "iommu-map entry %u: iommu-map onto %s (%s) is not supported", i,
                          t.path(e.iommu_node, tp, sizeof tp), io.driver->kind);
        if (m.nstreams == kMaxStreamsPerMaster)
            return t.fail(node, Status::no_space, "more than %u iommu-map entries", kMaxStreamsPerMaster);
        m.streams[m.nstreams++] = StreamRef{static_cast<unsigned>(idx), true, false, e.sid_base, e.length, e.rid_base, 0, {}};
    }
    return Status::ok;
}

MasterInfo* new_master(const dt::Tree& t, int node, Topology& topo, Sink& report) {
    char path[dt::kPathMax];
    if (topo.nmasters == kMaxMasters) {
        format(report, "dt: %s: more than %u DMA masters, left blocked\n", t.path(node, path, sizeof path), kMaxMasters);
        topo.problems++;
        return nullptr;
    }
    MasterInfo& m = topo.masters[topo.nmasters++];
    m = MasterInfo{};
    m.node = node;
    m.map_mask = 0xffffffffu;
    return &m;
}

void block(const dt::Tree& t, MasterInfo& m, Topology& topo, Sink& report) {
    m.blocked = true;
    m.nstreams = 0;
    format_to(m.reason, sizeof m.reason, "%s", t.error());
    format(report, "dt: %s; device left blocked\n", m.reason);
    topo.problems++;
}

void add_master(const dt::Tree& t, int node, Topology& topo, Sink& report) {
    MasterInfo* mp = new_master(t, node, topo, report);
    if (!mp) return;
    MasterInfo& m = *mp;
    Status st = Status::ok;
    if (t.has(node, "iommus")) st = add_iommus_refs(t, node, topo, m);
    if (st == Status::ok && t.has(node, "iommu-map")) st = add_map_refs(t, node, topo, m);
    if (st != Status::ok) block(t, m, topo, report);
}

// The legacy SMMU binding: `mmu-masters = <&master id...>` on the SMMU, each master saying in
// `#stream-id-cells` how many ids follow it. Used only for an SMMU that no `iommus` names: a tree
// that gained `iommus` often kept the old list for old kernels, and taking both could claim a
// stream twice (said once, not counted as a problem).
void add_legacy_masters(const dt::Tree& t, unsigned idx, Topology& topo, Sink& report) {
    const IommuInfo& io = topo.iommus[idx];
    if (!t.has(io.node, "mmu-masters")) return;
    for (unsigned k = 0; k < topo.nmasters; k++)
        for (unsigned s = 0; s < topo.masters[k].nstreams; s++)
            if (topo.masters[k].streams[s].iommu == idx) {
                t.report(report, io.node, "mmu-masters ignored: masters name this SMMU through iommus (the generic binding)");
                return;
            }
    for (unsigned i = 0;; i++) {
        dt::PhandleArgs a;
        Status st = t.phandle_args(io.node, "mmu-masters", "#stream-id-cells", i, a);
        if (st == Status::not_found) return;
        if (st != Status::ok) {  // the rest of the list cannot be located
            format(report, "dt: %s; the remaining mmu-masters entries are ignored\n", t.error());
            topo.problems++;
            return;
        }
        if (!t.available(a.node)) continue;
        int mi = topo.master_index(a.node);
        MasterInfo* m = mi >= 0 ? &topo.masters[mi] : new_master(t, a.node, topo, report);
        if (!m || m->blocked) continue;
        for (unsigned c = 0; c < a.count; c++) {
            if (m->nstreams == kMaxStreamsPerMaster) {
                (void)t.fail(a.node, Status::no_space, "more than %u streams", kMaxStreamsPerMaster);
                block(t, *m, topo, report);
                break;
            }
            m->streams[m->nstreams++] = StreamRef{idx, false, true, a.args[c], 1, 0, 1, {a.args[c]}};
        }
    }
}

}  // namespace

Status discover(const dt::Tree& t, Topology& topo, Sink& report) {
    topo.niommus = topo.nmasters = topo.problems = 0;
    if (!t.blob()) return Status::bad_dt;
    // One walk: IOMMUs are taken as met, masters kept for after it (a master may name an IOMMU
    // that comes later in the tree).
    static int pending[4 * kMaxMasters];  // past the table's capacity each extra master is reported
    unsigned npending = 0;
    int depth = 0;
    for (int n = t.next_node(-1, &depth); n >= 0; n = t.next_node(n, &depth)) {
        if (!t.available(n)) continue;
        if (t.has(n, "#iommu-cells") || (t.has(n, "mmu-masters") && find_driver(t, n))) add_iommu(t, n, topo, report);
        if (!t.has(n, "iommus") && !t.has(n, "iommu-map")) continue;
        if (npending < 4 * kMaxMasters) {
            pending[npending++] = n;
        } else {  // certainly past the table's capacity: refused here, as new_master() would
            char path[dt::kPathMax];
            format(report, "dt: %s: more than %u DMA masters, left blocked\n", t.path(n, path, sizeof path), kMaxMasters);
            topo.problems++;
        }
    }
    for (unsigned i = 0; i < npending; i++) add_master(t, pending[i], topo, report);
    for (unsigned i = 0; i < topo.niommus; i++) add_legacy_masters(t, i, topo, report);
    return Status::ok;
}

void print_topology(const dt::Tree& t, const Topology& topo, Sink& out) {
    char path[dt::kPathMax];
    format(out, "iommus: %u found\n", topo.niommus);
    for (unsigned i = 0; i < topo.niommus; i++) {
        const IommuInfo& io = topo.iommus[i];
        format(out, "  iommu%u %s\n", i, t.path(io.node, path, sizeof path));
        format(out, "    compatible %s, #iommu-cells %u, driver %s%s%s%s\n", io.compatible ? io.compatible : "(none)",
               io.iommu_cells, io.driver ? io.driver->driver() : "none", io.driver && !io.driven() ? " (" : "",
               io.driver && !io.driven() ? io.driver->kind : "", io.driver && !io.driven() ? ": not driven by moat)" : "");
        for (unsigned r = 0; r < io.nregs; r++)
            format(out, "    reg   0x%010lx size 0x%lx\n", io.regs[r].addr, io.regs[r].size);
        for (unsigned q = 0; q < io.nirqs; q++) {
            const dt::Irq& irq = io.irqs[q];
            const char* kind = irq.kind == dt::IrqKind::spi ? "SPI" : irq.kind == dt::IrqKind::ppi ? "PPI" : "irq";
            const char* irq_name = t.string_at(io.node, "interrupt-names", q);
            format(out, "    irq   %s %u (INTID %u) %s%s%s\n", kind, irq.number, irq.intid, trigger_name(irq.flags),
                   irq_name ? ", " : "", irq_name ? irq_name : "");
        }
        unsigned nm = 0;
        for (unsigned k = 0; k < topo.nmasters; k++) {
            const MasterInfo& m = topo.masters[k];
            for (unsigned s = 0; s < m.nstreams; s++) {
                const StreamRef& ref = m.streams[s];
                if (ref.iommu != i) continue;
                nm++;
                t.path(m.node, path, sizeof path);
                if (ref.from_map)
                    format(out, "    master %s: requester ids 0x%04x-0x%04x -> stream ids 0x%04x-0x%04x (iommu-map, mask 0x%x)\n",
                           path, ref.rid_base, ref.rid_base + ref.count - 1, ref.sid, ref.sid + ref.count - 1, m.map_mask);
                else if (ref.nargs > 1)
                    format(out, "    master %s: stream id 0x%x, mask 0x%x (iommus)\n", path, ref.sid, ref.args[1]);
                else
                    format(out, "    master %s: stream id 0x%x (iommus)\n", path, ref.sid);
            }
        }
        if (nm == 0) format(out, "    no masters\n");
    }
    for (unsigned k = 0; k < topo.nmasters; k++) {
        const MasterInfo& m = topo.masters[k];
        if (m.blocked) format(out, "  blocked: %s\n", m.reason);
        char ip[dt::kPathMax];
        if (m.disabled_iommu >= 0)
            format(out, "  untranslated: %s: its IOMMU %s is disabled in the tree (left at reset, DMA passes through)\n",
                   t.path(m.node, path, sizeof path), t.path(m.disabled_iommu, ip, sizeof ip));
    }
}

}  // namespace moat
