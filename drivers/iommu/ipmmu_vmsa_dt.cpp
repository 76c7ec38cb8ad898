#include "drivers/iommu/ipmmu_vmsa_dt.hpp"

#include "arch/mmio.hpp"
#include "common/instances.hpp"
#include "common/iommu_set.hpp"

namespace moat {

namespace {

constexpr const char* kMain = "renesas,ipmmu-main";

bool is_ipmmu(const IommuInfo& io) { return io.driver && io.driver->ops == &kIpmmuOps; }

// The SoC facts of a driven entry (every entry with kIpmmuOps has them).
const ipmmu::Soc* soc_of(const DriverEntry* entry) {
    return entry && entry->ops == &kIpmmuOps ? static_cast<const ipmmu::Soc*>(entry->data) : nullptr;
}

Instances<IpmmuVmsa, kMaxIpmmus> g_ipmmu;

// The binding (docs/hardware.md §7.3): one cell, the uTLB; caches name the root and their IMSSTR
// bit in renesas,ipmmu-main; the root has interrupts. Fills what the tree says into `cfg`.
Status check_binding(ProbeEnv& env, unsigned index, IpmmuVmsa::Config& cfg, Why& why) {
    const dt::Tree& t = env.tree;
    const Topology& topo = env.topo;
    const IommuInfo& io = topo.iommus[index];
    char tp[dt::kPathMax];
    const ipmmu::Soc* soc = soc_of(io.driver);
    if (!soc) return why.set(Status::unsupported, "%s is not an R-Car IPMMU this driver supports", io.driver->compatible);
    const ipmmu::Generation& gen = *soc->gen;
    if (io.iommu_cells != 1)
        return why.set(Status::bad_dt, "#iommu-cells is %u; the IPMMU binding has exactly one cell (the uTLB)", io.iommu_cells);
    if (io.nregs < 1 || io.regs[0].size < gen.reg_size)
        return why.set(Status::bad_dt, "reg must give the 0x%lx-byte register window of an %s IPMMU", gen.reg_size, gen.name);
    if (io.upstream_problem[0]) return why.set(Status::bad_dt, "%s", io.upstream_problem);
    if (io.upstream_node < 0) {
        if (io.nirqs == 0) return why.set(Status::bad_dt, "root IPMMU without interrupts: its faults could never be reported");
        return Status::ok;
    }
    int target = io.upstream_node;
    int ti = topo.iommu_index(target);
    if (ti < 0 || !is_ipmmu(topo.iommus[ti]))
        return why.set(Status::bad_dt, "%s names %s, which is not an IPMMU", kMain, t.path(target, tp, sizeof tp));
    if (target == io.node || t.has(target, kMain))
        return why.set(Status::bad_dt, "%s names %s, which is not a root IPMMU (it has %s itself)", kMain,
                       t.path(target, tp, sizeof tp), kMain);
    const ipmmu::Soc* root_soc = soc_of(topo.iommus[ti].driver);
    if (!root_soc || root_soc->gen != soc->gen)
        return why.set(Status::bad_dt, "%s names %s, which is not an %s IPMMU like this one", kMain, t.path(target, tp, sizeof tp),
                       gen.name);
    Iommu* root = env.probed ? env.probed->at(static_cast<unsigned>(ti)) : nullptr;
    if (!root) return why.set(Status::not_ready, "waits for its root %s, which has not probed", t.name(target));
    cfg.root = static_cast<IpmmuVmsa*>(root);
    cfg.main_bit = io.upstream_arg;
    return Status::ok;
}

Iommu* probe_ipmmu(ProbeEnv& env, unsigned index, Why& why) {
    const dt::Tree& t = env.tree;
    const IommuInfo& io = env.topo.iommus[index];
    IpmmuVmsa::Config cfg;
    if (check_binding(env, index, cfg, why) != Status::ok) return nullptr;
    const ipmmu::Soc* socp = soc_of(io.driver);  // check_binding refused an entry without one
    if (!socp) return why.set(Status::unsupported, "no SoC facts for %s", io.driver->compatible), nullptr;
    const ipmmu::Soc& soc = *socp;
    cfg.gen = soc.gen;
    cfg.base = static_cast<uintptr_t>(io.regs[0].addr);
    cfg.size = io.regs[0].size;
    cfg.name = t.name(io.node);
    cfg.nirqs = io.nirqs;
    cfg.irq = env.irq;
    cfg.irqs = io.irqs;
    cfg.faults = env.faults;
    cfg.compatible = io.driver->compatible;
    // Stage-2 tables where a public driver shares the P2M on the SoC, else Linux's LPAE stage 1.
    cfg.format = soc.stage2 ? IpmmuVmsa::Format::stage2 : IpmmuVmsa::Format::stage1;
    cfg.cpu_pa_bits = env.cpu_pa_bits;
    cfg.block_unattached = env.block_unattached;
    cfg.pool = env.pool;
    // uTLBs the tree's masters sit on; a reference beyond them is refused by xlate, not here.
    for (unsigned m = 0; m < env.topo.nmasters; m++)
        for (unsigned s = 0; s < env.topo.masters[m].nstreams; s++) {
            const StreamRef& ref = env.topo.masters[m].streams[s];
            if (ref.iommu == index && !ref.from_map && ref.sid < soc.gen->utlbs) cfg.masters |= uint64_t{1} << ref.sid;
        }
    if (!cfg.root) {
        bool from_dt = false;
        Status st = read_prr(t, *soc.gen, cfg.prr, &from_dt);
        if (st == Status::not_found)
            return why.set(Status::bad_dt, "no renesas,prr node: %s has no product register at a fixed address moat may assume",
                           soc.gen->name), nullptr;
        if (st != Status::ok) return why.set(t.why().status(), "%s", t.error()), nullptr;
        format(env.report, "ipmmu_vmsa: product register 0x%08x (%s, %s)\n", cfg.prr, IpmmuVmsa::soc_name(cfg.prr),
               from_dt ? "renesas,prr" : "Gen3 fixed address");
    }
    IpmmuVmsa* u = g_ipmmu.probe(cfg, "IPMMU (kMaxIpmmus)", why);
    if (!u) return nullptr;
    char path[dt::kPathMax];
    if (u->is_root() && u->blocking_context() == IpmmuVmsa::kNoContext)
        format(env.report, "ipmmu_vmsa: %s: block_unattached is off: uTLBs of unattached masters pass DMA untranslated\n",
               t.path(io.node, path, sizeof path));
    return u;
}

// The product register's cut decides on H3 and M3-W (IpmmuVmsa::check_soc, which the root's
// probe runs on the register itself).
Status check_ipmmu_silicon(const DriverEntry& entry, const Silicon& si, Why& why) {
    const auto* soc = static_cast<const ipmmu::Soc*>(entry.data);
    if (!soc) return why.set(Status::unsupported, "%s is not an R-Car IPMMU this driver supports", entry.compatible);
    if (!si.known)
        return soc->needs_es3 && !soc->only_es3 ? why.set(Status::not_ready, "%s ES3.0 or later (the tree cannot say which cut the SoC is)", soc->name)
                              : Status::ok;
    char text[dt::kErrorMax];
    Status st = IpmmuVmsa::check_soc(entry.compatible, (soc->product << 8) | (si.cut & 0xff), text, sizeof text);
    return st == Status::ok ? Status::ok : why.set(st, "%s", text);
}

void release_ipmmu(Iommu* i) {
    auto* u = static_cast<IpmmuVmsa*>(i);
    u->shutdown();
    g_ipmmu.release(u);
}

}  // namespace

Status read_prr(const dt::Tree& t, const ipmmu::Generation& gen, uint32_t& prr_value, bool* from_dt) {
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
    if (!found && !gen.fixed_prr) return Status::not_found;  // nothing read
    prr_value = mmio::read32(at);
    return Status::ok;
}

Status ipmmu_main(const dt::Tree& t, int node, int& root, uint32_t& bit, Why& why) {
    root = -1;
    int len;
    const void* p = t.prop(node, kMain, &len);
    if (!p) return Status::not_found;
    if (len != 8) return why.set(Status::bad_dt, "%s is %d bytes, expected <&root bit> (8)", kMain, len);
    uint32_t ph = dt::be32(p, 0);
    bit = dt::be32(p, 1);
    int target = t.node_by_phandle(ph);
    if (target < 0) return why.set(Status::bad_dt, "%s phandle 0x%x points to no node", kMain, ph);
    if (bit >= 32) return why.set(Status::bad_dt, "%s bit %u is beyond IMSSTR's 32 bits", kMain, bit);
    root = target;
    return Status::ok;
}

// ---------------------------------------------------------------- the driver contract

void IpmmuVmsa::describe(Sink& out) const {
    if (is_root()) {
        char blocking[48] = "", mode[128];
        if (blocking_context() != kNoContext)
            format_to(blocking, sizeof blocking, ", context %u blocks unattached masters", blocking_context());
        moat::format(out, "root: %s; %u contexts, context 0 reserved%s, %u free; %s; %s", soc(), cfg_.gen->contexts, blocking,
                     contexts_free(), format() == Format::stage2 ? "stage-2 tables (IMSAUXCTLR.S2PTE, VA64)" : "32-bit LPAE stage-1 tables",
                     irqs_.mode(mode, sizeof mode));
        return;
    }
    moat::format(out, "cache -> root %s bit %u; masters on uTLBs", root()->name(), main_bit());
    unsigned n = 0;
    for (unsigned u = 0; u < cfg_.gen->utlbs; u++)
        if ((cfg_.masters >> u) & 1) moat::format(out, "%s %u", n++ ? "," : "", u);
    if (!n) moat::format(out, " none");
}

Status IpmmuVmsa::xlate(const uint32_t* args, unsigned nargs, StreamId& out, Why& why) const {
    if (nargs != 1) return why.set(Status::bad_dt, "%u cells for a uTLB of %s; the IPMMU binding has exactly one", nargs, name());
    if (args[0] >= cfg_.gen->utlbs)
        return why.set(Status::out_of_range, "uTLB %u on %s is out of range (%s has %u)", args[0], name(), cfg_.gen->name,
                       cfg_.gen->utlbs);
    out = args[0];
    return Status::ok;
}

const DriverOps kIpmmuOps = {"ipmmu_vmsa", &probe_ipmmu, &release_ipmmu, kMaxIpmmus, &check_ipmmu_silicon};

}  // namespace moat
