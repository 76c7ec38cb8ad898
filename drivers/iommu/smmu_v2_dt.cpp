// The device-tree side of the SMMUv2 driver: the SMMU node's own properties, the registry's
// probe, and the translation of a master's reference into an SMR. Discovery has already read
// `reg`, the interrupts and the masters (by the generic `iommus` binding, or the legacy
// `mmu-masters` one); every refusal here names the property at fault.
#include "drivers/iommu/smmu_v2.hpp"

#include "common/discovery.hpp"
#include "common/instances.hpp"
#include "common/lock.hpp"

namespace moat {

const SmmuV2Model kMmu500{true};
const SmmuV2Model kSmmuV2Generic{false};

Status SmmuV2::config_from_dt(const dt::Tree& t, int node, const dt::Reg& reg, unsigned nirqs, Config& cfg, Why& why) {
    const DriverEntry* e = find_driver(t, node);
    const auto* model = e && e->ops == &kSmmuV2Ops ? static_cast<const SmmuV2Model*>(e->data) : nullptr;
    if (!model) return why.set(Status::unsupported, "neither arm,mmu-500 nor arm,smmu-v2");
    const char* compat = e->compatible;
    cfg.base = static_cast<uintptr_t>(reg.addr);
    cfg.size = reg.size;
    cfg.name = t.name(node);
    cfg.mmu500 = model->mmu500;
    uint32_t cells = 0;
    Status st;
    if (t.has(node, "#iommu-cells")) {
        if ((st = t.u32(node, "#iommu-cells", cells)) != Status::ok) return why.set(st, "%s", t.error());
        if (cells != 1 && cells != 2)
            return why.set(Status::bad_dt, "#iommu-cells is %u; %s takes 1 (stream id) or 2 (stream id, SMR mask)", cells, compat);
    } else if (!t.has(node, "mmu-masters")) {
        return why.set(Status::bad_dt, "neither #iommu-cells nor mmu-masters: no master can name this SMMU");
    }
    cfg.iommu_cells = cells;
    cfg.stream_match_mask = 0;
    if (t.has(node, "stream-match-mask")) {
        if ((st = t.u32(node, "stream-match-mask", cfg.stream_match_mask)) != Status::ok) return why.set(st, "%s", t.error());
        if (cfg.stream_match_mask > 0x7fff)
            return why.set(Status::bad_dt, "stream-match-mask 0x%x does not fit the 15-bit SMR mask", cfg.stream_match_mask);
    }
    uint32_t global = 0;
    if ((st = t.u32(node, "#global-interrupts", global)) != Status::ok)
        return st == Status::not_found ? why.set(Status::bad_dt, "no #global-interrupts (the %s binding requires it)", compat)
                                       : why.set(st, "%s", t.error());
    if (nirqs < global)
        return why.set(Status::bad_dt, "#global-interrupts is %u but only %u interrupts are listed", global, nirqs);
    cfg.global_irqs = global;
    cfg.context_irqs = nirqs - global;
    return Status::ok;
}

Status SmmuV2::xlate(const uint32_t* args, unsigned nargs, StreamId& out, Why& why) const {
    if (!ready_) return why.set(Status::not_ready, "%s is not probed", name_);
    if (nargs != 1 && nargs != 2)
        return why.set(Status::bad_dt, "%u cells for a stream of %s; it takes 1 (stream id) or 2 (stream id, SMR mask)", nargs,
                       name_);
    uint32_t id = args[0];
    // A mask in the reference wins; otherwise the SMMU node's stream-match-mask applies.
    uint32_t mask = nargs == 2 ? args[1] : cfg_.stream_match_mask;
    if (id >> numsidb_)
        return why.set(Status::out_of_range, "stream id 0x%x on %s is wider than the %u stream-id bits ID0.NUMSIDB gives", id,
                       name_, numsidb_);
    if (mask >> numsidb_)
        return why.set(Status::out_of_range, "SMR mask 0x%x on %s is wider than the %u stream-id bits ID0.NUMSIDB gives", mask,
                       name_, numsidb_);
    out = stream(id, mask);
    return Status::ok;
}

void SmmuV2::describe(Sink& out) const {
    char mode[128];
    format(out, "enabled: %s, %u context banks (%u stage-2 only), %u stream match entries, %u-bit stream ids, %s walks, "
                "%s, every stream faults until attached",
           cfg_.mmu500 ? "MMU-500" : "SMMUv2", numcb_, nums2cb_, numsmrg_, numsidb_, coherent_ ? "coherent" : "non-coherent",
           irqs_.mode(mode, sizeof mode));
}

namespace {

constexpr unsigned kMaxSmmuV2 = 4;
Instances<SmmuV2, kMaxSmmuV2> g_smmu_v2;

Iommu* probe_smmu_v2(ProbeEnv& env, unsigned index, Why& why) {
    const IommuInfo& io = env.topo.iommus[index];
    if (io.nregs < 1) return why.set(Status::bad_dt, "no reg"), nullptr;
    SmmuV2::Config cfg;
    if (SmmuV2::config_from_dt(env.tree, io.node, io.regs[0], io.nirqs, cfg, why) != Status::ok) return nullptr;
    cfg.cpu_pa_bits = env.cpu_pa_bits;
    cfg.irq = env.irq;
    cfg.irqs = io.irqs;
    cfg.faults = env.faults;
    return g_smmu_v2.probe(cfg, "SMMUv2 (kMaxSmmuV2)", why);
}

void release_smmu_v2(Iommu* i) {
    auto* s = static_cast<SmmuV2*>(i);
    s->force_shutdown();
    g_smmu_v2.release(s);
}

}  // namespace

const DriverOps kSmmuV2Ops = {"smmu_v2", &probe_smmu_v2, &release_smmu_v2, kMaxSmmuV2};

}  // namespace moat
