// The device-tree side of the SMMUv2 driver: the SMMU node's own properties, and its masters by
// the generic (`iommus` + `#iommu-cells`) or the legacy (`mmu-masters` + `#stream-id-cells`)
// binding. Every refusal names the node it is about.
#include "drivers/iommu/smmu_v2.hpp"

#include "common/lock.hpp"

namespace moat {

namespace {

constexpr unsigned kIrqsCounted = 64;  // enough to tell #global-interrupts from context ones

Status config_from_dt(const dt::Tree& t, int node, SmmuV2::Config& cfg) {
    bool mmu500 = t.compatible(node, "arm,mmu-500");
    const char* compat = mmu500 ? "arm,mmu-500" : "arm,smmu-v2";
    if (!mmu500 && !t.compatible(node, "arm,smmu-v2"))
        return t.fail(node, Status::unsupported, "neither arm,mmu-500 nor arm,smmu-v2");
    dt::Reg reg;
    Status st = t.reg(node, 0, reg);
    if (st != Status::ok) return st;
    cfg.base = static_cast<uintptr_t>(reg.addr);
    cfg.size = reg.size;
    cfg.name = t.name(node);
    cfg.mmu500 = mmu500;
    uint32_t cells = 0;
    if (t.has(node, "#iommu-cells")) {
        if ((st = t.u32(node, "#iommu-cells", cells)) != Status::ok) return st;
        if (cells != 1 && cells != 2)
            return t.fail(node, Status::bad_dt, "#iommu-cells is %u; %s takes 1 (stream id) or 2 (stream id, SMR mask)", cells,
                          compat);
    } else if (!t.has(node, "mmu-masters")) {
        return t.fail(node, Status::bad_dt, "neither #iommu-cells nor mmu-masters: no master can name this SMMU");
    }
    cfg.iommu_cells = cells;
    cfg.stream_match_mask = 0;
    if (t.has(node, "stream-match-mask")) {
        if ((st = t.u32(node, "stream-match-mask", cfg.stream_match_mask)) != Status::ok) return st;
        if (cfg.stream_match_mask > 0x7fff)
            return t.fail(node, Status::bad_dt, "stream-match-mask 0x%x does not fit the 15-bit SMR mask", cfg.stream_match_mask);
    }
    uint32_t global = 0;
    if ((st = t.u32(node, "#global-interrupts", global)) != Status::ok)
        return st == Status::not_found ? t.fail(node, Status::bad_dt, "no #global-interrupts (the %s binding requires it)", compat)
                                       : st;
    dt::Irq irqs[kIrqsCounted];
    unsigned nirqs = 0;
    if ((st = t.interrupts(node, irqs, kIrqsCounted, nirqs)) != Status::ok) return st;
    if (nirqs < global)
        return t.fail(node, Status::bad_dt, "#global-interrupts is %u but only %u interrupts are listed", global, nirqs);
    cfg.global_irqs = global;
    cfg.context_irqs = nirqs - global;
    return Status::ok;
}

}  // namespace

Status SmmuV2::probe_dt(const dt::Tree& t, int node) {
    Config cfg;
    Status st = config_from_dt(t, node, cfg);
    if (st != Status::ok) return st;
    st = probe(cfg);
    if (st != Status::ok) return t.fail(node, st, "%s", error_);
    LockGuard g(lock_);
    t.path(node, path_, sizeof path_);
    return Status::ok;
}

Status SmmuV2::stream_from_dt(const dt::Tree& t, int master, const uint32_t* args, unsigned nargs, StreamId& out) const {
    const char* smmu = path_[0] ? path_ : name_;
    if (!ready_) return t.fail(master, Status::not_ready, "%s is not probed", smmu);
    if (nargs != 1 && nargs != 2)
        return t.fail(master, Status::bad_dt, "%u cells for a stream of %s; it takes 1 (stream id) or 2 (stream id, SMR mask)",
                      nargs, smmu);
    uint32_t id = args[0];
    // A mask in the reference wins; otherwise the SMMU node's stream-match-mask applies.
    uint32_t mask = nargs == 2 ? args[1] : cfg_.stream_match_mask;
    if (id >> numsidb_)
        return t.fail(master, Status::out_of_range, "stream id 0x%x on %s is wider than the %u stream-id bits ID0.NUMSIDB gives",
                      id, smmu, numsidb_);
    if (mask >> numsidb_)
        return t.fail(master, Status::out_of_range, "SMR mask 0x%x on %s is wider than the %u stream-id bits ID0.NUMSIDB gives",
                      mask, smmu, numsidb_);
    out = stream(id, mask);
    return Status::ok;
}

Status SmmuV2::masters(const dt::Tree& t, MasterList& out, Sink& report) const {
    out.count = out.problems = 0;
    out.legacy_ignored = false;
    if (!ready_ || !path_[0]) return Status::not_ready;
    int self = t.find_path(path_);
    if (self < 0) return t.fail(0, Status::not_found, "%s is not in this tree", path_);

    auto entry_for = [&](int node, bool legacy) -> Master* {
        for (unsigned i = 0; i < out.count; i++)
            if (out.masters[i].node == node) return &out.masters[i];
        if (out.count == kMaxMasters) return nullptr;
        Master& m = out.masters[out.count++];
        m = Master{node, legacy, 0, {}};
        return &m;
    };
    auto add = [&](int node, bool legacy, StreamId s) -> Status {
        Master* m = entry_for(node, legacy);
        if (!m) return t.fail(node, Status::no_space, "more than %u masters on %s", kMaxMasters, path_);
        if (m->nstreams == kMaxStreamsPerMaster)
            return t.fail(node, Status::no_space, "more than %u streams on %s", kMaxStreamsPerMaster, path_);
        m->streams[m->nstreams++] = s;
        return Status::ok;
    };
    // A master with a bad reference is left out entirely, whatever its other references say.
    auto drop = [&](int node) {
        for (unsigned i = 0; i < out.count; i++)
            if (out.masters[i].node == node) {
                out.masters[i] = out.masters[--out.count];
                break;
            }
        format(report, "dt: %s; device left blocked\n", t.error());
        out.problems++;
    };

    // Generic binding: every available node whose `iommus` names this SMMU.
    bool generic = false;
    int depth = 0;
    for (int n = t.next_node(-1, &depth); n >= 0; n = t.next_node(n, &depth)) {
        if (!t.has(n, "iommus") || !t.available(n)) continue;
        bool ours = false;
        Status st = Status::ok;
        for (unsigned i = 0;; i++) {
            dt::PhandleArgs a;
            st = t.phandle_args(n, "iommus", "#iommu-cells", i, a);
            if (st == Status::not_found) {
                st = Status::ok;
                break;
            }
            if (st != Status::ok) break;  // a malformed list: discovery reports it; ours if we were in it
            if (a.node != self) continue;
            ours = generic = true;
            StreamId s = 0;
            st = stream_from_dt(t, n, a.args, a.count, s);
            if (st == Status::ok) st = add(n, false, s);
            if (st != Status::ok) break;
        }
        if (st != Status::ok && ours) drop(n);
    }
    if (!t.has(self, "mmu-masters")) return Status::ok;
    if (generic) {
        out.legacy_ignored = true;
        format(report, "dt: %s: mmu-masters ignored: masters name this SMMU through iommus (the generic binding)\n", path_);
        return Status::ok;
    }
    // Legacy binding: mmu-masters = <&master id...>, each master saying how many ids in #stream-id-cells.
    for (unsigned i = 0;; i++) {
        dt::PhandleArgs a;
        Status st = t.phandle_args(self, "mmu-masters", "#stream-id-cells", i, a);
        if (st == Status::not_found) break;
        if (st != Status::ok) {  // the rest of the list cannot be located
            format(report, "dt: %s; the remaining mmu-masters entries are ignored\n", t.error());
            out.problems++;
            break;
        }
        if (!t.available(a.node)) continue;
        for (unsigned k = 0; k < a.count && st == Status::ok; k++) {
            StreamId s = 0;
            st = stream_from_dt(t, a.node, &a.args[k], 1, s);
            if (st == Status::ok) st = add(a.node, true, s);
        }
        if (st != Status::ok) drop(a.node);
    }
    return Status::ok;
}

}  // namespace moat
