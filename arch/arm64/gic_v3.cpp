#include "arch/arm64/gic_v3.hpp"

#include "arch/arm64/timer.hpp"
#include "arch/barrier.hpp"
#include "arch/cpu.hpp"
#include "arch/mmio.hpp"
#include "common/format.hpp"
#include "common/wait.hpp"

namespace moat::arch {

namespace {

// Distributor (docs/hardware.md §9).
namespace gicd {
constexpr uint32_t CTLR = 0x0000, TYPER = 0x0004, IGROUPR = 0x0080, ISENABLER = 0x0100, ICENABLER = 0x0180,
                   ICPENDR = 0x0280, ICACTIVER = 0x0380, IPRIORITYR = 0x0400, ICFGR = 0x0c00, IGRPMODR = 0x0d00,
                   IROUTER = 0x6000, PIDR2 = 0xffe8;
constexpr uint32_t kCtlrEnableGrp0 = 1u << 0, kCtlrEnableGrp1 = 1u << 1, kCtlrAre = 1u << 4, kCtlrDs = 1u << 6,
                   kCtlrRwp = 1u << 31;
}  // namespace gicd
// Redistributor: RD_base, then SGI_base 64 KiB above it.
namespace gicr {
constexpr uint32_t CTLR = 0x0000, TYPER = 0x0008, WAKER = 0x0014, PIDR2 = 0xffe8;
constexpr uint32_t kSgiBase = 0x10000;
constexpr uint32_t IGROUPR0 = kSgiBase + 0x80, ISENABLER0 = kSgiBase + 0x100, ICENABLER0 = kSgiBase + 0x180,
                   ICPENDR0 = kSgiBase + 0x280, ICACTIVER0 = kSgiBase + 0x380, IPRIORITYR = kSgiBase + 0x400,
                   ICFGR0 = kSgiBase + 0xc00, IGRPMODR0 = kSgiBase + 0xd00;
constexpr uint32_t kCtlrRwp = 1u << 3;
constexpr uint32_t kWakerProcessorSleep = 1u << 1, kWakerChildrenAsleep = 1u << 2;
constexpr uint64_t kTyperLast = 1u << 4, kTyperVlpis = 1u << 1;
constexpr uint64_t kFrame = 0x20000;  // RD_base + SGI_base; GICv4 adds two more (TYPER.VLPIS)
}  // namespace gicr

constexpr unsigned kSpurious = 1020;
constexpr uint64_t kHcrFmo = 1u << 3, kHcrImo = 1u << 4;

uint32_t rd32(uintptr_t a) { return mmio::read32(a); }
void wr32(uintptr_t a, uint32_t v) { mmio::write32(a, v); }

// The CPU interface, by encoding (older assemblers lack the names).
inline void icc_sre_el2_set(uint64_t v) { asm volatile("msr S3_4_C12_C9_5, %0\n\tisb" : : "r"(v)); }
inline uint64_t icc_sre_el2() { uint64_t v; asm volatile("mrs %0, S3_4_C12_C9_5" : "=r"(v)); return v; }
inline void icc_pmr(uint64_t v) { asm volatile("msr S3_0_C4_C6_0, %0" : : "r"(v)); }
inline void icc_bpr1(uint64_t v) { asm volatile("msr S3_0_C12_C12_3, %0" : : "r"(v)); }
inline void icc_ctlr(uint64_t v) { asm volatile("msr S3_0_C12_C12_4, %0" : : "r"(v)); }
inline void icc_igrpen1(uint64_t v) { asm volatile("msr S3_0_C12_C12_7, %0\n\tisb" : : "r"(v)); }
inline uint64_t icc_iar1() { uint64_t v; asm volatile("mrs %0, S3_0_C12_C12_0" : "=r"(v) : : "memory"); return v; }
inline void icc_eoir1(uint64_t v) { asm volatile("msr S3_0_C12_C12_1, %0\n\tisb" : : "r"(v) : "memory"); }

GicV3 g_gic;
bool g_gic_ready = false;

}  // namespace

Status GicV3::probe(const dt::Tree& t, Why& why) {
    int node = -1, depth = 0;
    for (int n = t.next_node(-1, &depth); n >= 0 && node < 0; n = t.next_node(n, &depth))
        if (t.compatible(n, "arm,gic-v3") && t.available(n)) node = n;
    if (node < 0) return why.set(Status::not_found, "no arm,gic-v3 node");
    char path[dt::kPathMax];
    t.path(node, path, sizeof path);
    dt::Reg d, r;
    if (t.reg(node, 0, d) != Status::ok || t.reg(node, 1, r) != Status::ok)
        return why.set(Status::bad_dt, "%s: reg must give the distributor and a redistributor region (%s)", path, t.error());
    uint32_t regions = 1;
    if (t.has(node, "#redistributor-regions") && t.u32(node, "#redistributor-regions", regions) != Status::ok)
        return why.set(Status::bad_dt, "%s", t.error());
    if (regions != 1)
        return why.set(Status::unsupported, "%s: %u redistributor regions; moat reads one", path, regions);
    uint64_t stride = 0;
    if (t.has(node, "redistributor-stride")) {
        int len;
        const void* p = t.prop(node, "redistributor-stride", &len);
        if (len != 8) return why.set(Status::bad_dt, "%s: redistributor-stride is %d bytes, expected two cells", path, len);
        stride = uint64_t{dt::be32(p, 0)} << 32 | dt::be32(p, 1);
        if (stride == 0 || stride % 0x10000) return why.set(Status::bad_dt, "%s: redistributor-stride 0x%lx is not a multiple of 64 KiB", path, stride);
    }
    if (d.size < 0x10000 || r.size < gicr::kFrame)
        return why.set(Status::bad_dt, "%s: distributor 0x%lx or redistributor 0x%lx bytes is too small", path, d.size, r.size);
    gicd_ = static_cast<uintptr_t>(d.addr);
    gicr_base_ = r.addr;
    gicr_size_ = r.size;
    gicr_stride_ = stride;
    uint32_t arch_rev = (rd32(gicd_ + gicd::PIDR2) >> 4) & 0xf;
    if (arch_rev != 3 && arch_rev != 4)
        return why.set(Status::unsupported, "%s: GICD_PIDR2 says architecture revision %u, not GICv3 or v4", path, arch_rev);
    return Status::ok;
}

Status GicV3::wait_rwp(uintptr_t ctlr) {
    uint32_t bit = ctlr == gicd_ + gicd::CTLR ? gicd::kCtlrRwp : gicr::kCtlrRwp;
    return wait_until(kTimeoutNs, [&] { return (rd32(ctlr) & bit) == 0; });
}

Status GicV3::init(Why& why) {
    // Distributor: off while it is set up, then affinity routing and Group 1 on.
    wr32(gicd_ + gicd::CTLR, 0);
    if (wait_rwp(gicd_ + gicd::CTLR) != Status::ok) return why.set(Status::timeout, "GICD_CTLR.RWP stayed set");
    lines_ = min(32 * ((rd32(gicd_ + gicd::TYPER) & 0x1f) + 1), kMaxIntids);
    for (unsigned i = 32; i < lines_; i += 32) {
        wr32(gicd_ + gicd::ICENABLER + i / 8, 0xffffffffu);
        wr32(gicd_ + gicd::ICPENDR + i / 8, 0xffffffffu);
        wr32(gicd_ + gicd::ICACTIVER + i / 8, 0xffffffffu);
        wr32(gicd_ + gicd::IGROUPR + i / 8, 0xffffffffu);  // Group 1
        wr32(gicd_ + gicd::IGRPMODR + i / 8, 0);
    }
    if (wait_rwp(gicd_ + gicd::CTLR) != Status::ok) return why.set(Status::timeout, "GICD_CTLR.RWP stayed set");
    // Affinity routing first, then the groups. Bit 1 is Group 1 both with one security state (DS)
    // and in the Non-secure view of two; bit 0 is Group 0 or the Non-secure Group 1 alias.
    wr32(gicd_ + gicd::CTLR, gicd::kCtlrAre);
    if (wait_rwp(gicd_ + gicd::CTLR) != Status::ok) return why.set(Status::timeout, "GICD_CTLR.RWP stayed set");
    wr32(gicd_ + gicd::CTLR, gicd::kCtlrAre | gicd::kCtlrEnableGrp1 | gicd::kCtlrEnableGrp0);
    if (wait_rwp(gicd_ + gicd::CTLR) != Status::ok) return why.set(Status::timeout, "GICD_CTLR.RWP stayed set");
    if (!(rd32(gicd_ + gicd::CTLR) & gicd::kCtlrAre))
        return why.set(Status::unsupported, "GICD_CTLR.ARE did not stick: affinity routing is off (GICD_CTLR 0x%x)",
                       rd32(gicd_ + gicd::CTLR));

    ready_ = false;
    return init_cpu(why);
}

Status GicV3::init_cpu(Why& why) {
    // This CPU's redistributor: the frame whose GICR_TYPER affinity is ours.
    uint64_t me = mpidr_affinity();
    uintptr_t rd_here = 0;
    uint32_t want = static_cast<uint32_t>((me & 0xffffff) | ((me >> 32) & 0xff) << 24);
    for (uint64_t off = 0; off + gicr::kFrame <= gicr_size_;) {
        uintptr_t f = static_cast<uintptr_t>(gicr_base_ + off);
        uint32_t pid = (rd32(f + gicr::PIDR2) >> 4) & 0xf;
        if (pid != 3 && pid != 4) break;
        uint64_t typer = mmio::read64(f + gicr::TYPER);
        if (static_cast<uint32_t>(typer >> 32) == want) {
            rd_here = f;
            break;
        }
        if (typer & gicr::kTyperLast) break;
        off += gicr_stride_ ? gicr_stride_ : (typer & gicr::kTyperVlpis) ? 2 * gicr::kFrame : gicr::kFrame;
    }
    if (!rd_here) return why.set(Status::not_found, "no redistributor for this CPU (affinity 0x%x)", want);
    rd_[cpu_id()] = rd_here;
    wr32(rd_here + gicr::WAKER, rd32(rd_here + gicr::WAKER) & ~gicr::kWakerProcessorSleep);
    if (wait_until(kTimeoutNs, [&] { return (rd32(rd_here + gicr::WAKER) & gicr::kWakerChildrenAsleep) == 0; }) != Status::ok)
        return why.set(Status::timeout, "the redistributor did not wake (GICR_WAKER.ChildrenAsleep stayed set)");
    wr32(rd_here + gicr::ICENABLER0, 0xffffffffu);
    wr32(rd_here + gicr::ICPENDR0, 0xffffffffu);
    wr32(rd_here + gicr::ICACTIVER0, 0xffffffffu);
    wr32(rd_here + gicr::IGROUPR0, 0xffffffffu);
    wr32(rd_here + gicr::IGRPMODR0, 0);
    if (wait_rwp(rd_here + gicr::CTLR) != Status::ok) return why.set(Status::timeout, "GICR_CTLR.RWP stayed set");

    // The CPU interface: system registers on, every priority let through, EOI drops and deactivates.
    icc_sre_el2_set(icc_sre_el2() | 0x1 | 0x8);  // SRE, Enable (EL1 may use its own SRE)
    if (!(icc_sre_el2() & 1)) return why.set(Status::unsupported, "ICC_SRE_EL2.SRE does not stick: no system-register CPU interface");
    icc_pmr(0xff);
    icc_bpr1(0);
    icc_ctlr(0);
    icc_igrpen1(1);
    // Physical IRQs target EL1 unless HCR_EL2.IMO routes them here; one aimed at a lower EL is
    // never taken while EL2 runs. The guest's entry keeps IMO set too (arch/arm64/vm.cpp).
    uint64_t hcr;
    asm volatile("mrs %0, hcr_el2" : "=r"(hcr));
    asm volatile("msr hcr_el2, %0\n\tisb" : : "r"(hcr | kHcrImo | kHcrFmo));
    // A later CPU: the PPIs requested so far, configured on its redistributor as on the first.
    if (ready_)
        for (unsigned i = 0; i < 32; i++)
            if (line_[i].fn) configure(i, line_[i].trigger, line_[i].priority);
    ready_ = true;
    return Status::ok;
}

void GicV3::configure(unsigned intid, Trigger trigger, unsigned priority) {
    bool edge = trigger == Trigger::edge_rising;
    uint32_t pri = static_cast<uint32_t>(priority & 0xff);
    if (intid < 32) {
        uintptr_t p = rd() + gicr::IPRIORITYR + (intid & ~3u);
        wr32(p, (rd32(p) & ~(0xffu << 8 * (intid & 3))) | pri << 8 * (intid & 3));
        if (intid >= 16) {  // SGIs are always edge
            uintptr_t c = rd() + gicr::ICFGR0 + 4 * (intid / 16);
            uint32_t bit = 2u << 2 * (intid % 16);
            wr32(c, edge ? rd32(c) | bit : rd32(c) & ~bit);
        }
        return;
    }
    uintptr_t p = gicd_ + gicd::IPRIORITYR + (intid & ~3u);
    wr32(p, (rd32(p) & ~(0xffu << 8 * (intid & 3))) | pri << 8 * (intid & 3));
    uintptr_t c = gicd_ + gicd::ICFGR + 4 * (intid / 16);
    uint32_t bit = 2u << 2 * (intid % 16);
    wr32(c, edge ? rd32(c) | bit : rd32(c) & ~bit);
    uint64_t me = mpidr_affinity();
    mmio::write64(gicd_ + gicd::IROUTER + 8 * intid, me);  // Interrupt_Routing_Mode 0: this CPU
}

Status GicV3::request(unsigned intid, Trigger trigger, unsigned priority, IrqHandler fn, void* ctx) {
    if (!ready_) return Status::not_ready;
    if (intid >= lines_ || intid >= kMaxIntids) return Status::out_of_range;  // beyond GICD_TYPER's lines
    if (!fn || priority > 0xff) return Status::invalid_argument;
    // A GIC's lines are rising-edge or high-level; SGIs are edge only.
    if (trigger != Trigger::edge_rising && trigger != Trigger::level_high) return Status::invalid_argument;
    if (intid < 16 && trigger != Trigger::edge_rising) return Status::invalid_argument;
    if (line_[intid].fn) return Status::in_use;
    configure(intid, trigger, priority);
    line_[intid] = Line{fn, ctx, trigger, priority};
    return Status::ok;
}

Status GicV3::release(unsigned intid) {
    if (intid >= kMaxIntids || !line_[intid].fn) return Status::not_found;
    mask(intid);
    line_[intid] = Line{};
    return Status::ok;
}

void GicV3::enable(unsigned intid) {
    if (!ready_ || intid >= lines_) return;
    barrier::memory_before_mmio();  // the handler's data is in place before the line can fire
    if (intid < 32) wr32(rd() + gicr::ISENABLER0, 1u << intid);
    else wr32(gicd_ + gicd::ISENABLER + 4 * (intid / 32), 1u << (intid % 32));
}

void GicV3::mask(unsigned intid) {
    if (!ready_ || intid >= lines_) return;
    if (intid < 32) {
        wr32(rd() + gicr::ICENABLER0, 1u << intid);
        (void)wait_rwp(rd() + gicr::CTLR);
    } else {
        wr32(gicd_ + gicd::ICENABLER + 4 * (intid / 32), 1u << (intid % 32));
        (void)wait_rwp(gicd_ + gicd::CTLR);
    }
}

void GicV3::eoi(unsigned intid) { icc_eoir1(intid); }

bool GicV3::dispatch() {
    unsigned intid = static_cast<unsigned>(icc_iar1() & 0xffffff);
    if (intid >= kSpurious && intid <= 1023) {
        __atomic_add_fetch(&spurious_, 1, __ATOMIC_RELAXED);  // any CPU may count
        if (!told_spurious_) print("gicv3:    spurious interrupt (INTID %u); counted, reported once\n", intid);
        told_spurious_ = true;
        return false;
    }
    __atomic_add_fetch(&delivered_, 1, __ATOMIC_RELAXED);
    if (intid < kMaxIntids && line_[intid].fn) {
        line_[intid].fn(line_[intid].ctx);  // ends with eoi(intid)
        return true;
    }
    // Nobody asked for it: quiet it for good, and say so once.
    __atomic_add_fetch(&unexpected_, 1, __ATOMIC_RELAXED);
    if (!told_unexpected_) print("gicv3:    interrupt INTID %u that nobody requested; masked, reported once\n", intid);
    told_unexpected_ = true;
    if (intid < lines_) mask(intid);
    icc_eoir1(intid);
    return true;
}

GicV3* gic() { return g_gic_ready ? &g_gic : nullptr; }

IrqController* irq_controller() { return gic(); }

IrqController* interrupts_from_dt(const dt::Tree& t) {
    Why why;
    Status st = g_gic.probe(t, why);
    if (st == Status::ok) st = g_gic.init(why);
    if (st != Status::ok) {
        print("gicv3:    %s; interrupts stay off, every IOMMU polls for faults\n", why.text());
        return nullptr;
    }
    g_gic_ready = true;
    print("gicv3:    distributor 0x%lx (%u lines), redistributor 0x%lx; interrupts on at EL2\n",
          static_cast<uint64_t>(g_gic.dist_base()), g_gic.lines(), static_cast<uint64_t>(g_gic.redist_base()));
    constexpr unsigned kHz = 100;
    if (tick_start(g_gic, t, kHz, why) == Status::ok) {
        print("timer:    CNTHP tick at %u Hz on INTID %u\n", kHz, tick_intid());
    } else
        print("timer:    %s; waits end by polling the counter\n", why.text());
    return &g_gic;
}

}  // namespace moat::arch
