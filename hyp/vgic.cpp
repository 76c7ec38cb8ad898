#include "hyp/vgic.hpp"

namespace moat::hyp {

namespace {

// Distributor (docs/hardware.md §9.2), and the RD_base frame of a redistributor.
namespace gicd {
constexpr uint64_t CTLR = 0x0000, TYPER = 0x0004, IIDR = 0x0008, IROUTER = 0x6000, IROUTER_END = 0x8000, PIDR2 = 0xffe8;
constexpr uint32_t kCtlrGrp1 = 1u << 1, kCtlrGrp0 = 1u << 0, kCtlrAre = 1u << 4, kCtlrDs = 1u << 6;
}  // namespace gicd
namespace gicr {
constexpr uint64_t CTLR = 0x0000, IIDR = 0x0004, TYPER = 0x0008, WAKER = 0x0014, PIDR2 = 0xffe8, kSgiBase = 0x10000;
constexpr uint32_t kWakerSleep = 1u << 1, kWakerChildrenAsleep = 1u << 2;
constexpr uint64_t kTyperLast = 1u << 4;
}  // namespace gicr
// The per-interrupt banks, at the same offsets in the distributor and in a redistributor's SGI frame.
namespace bank {
constexpr uint64_t IGROUPR = 0x080, ISENABLER = 0x100, ICENABLER = 0x180, ISPENDR = 0x200, ICPENDR = 0x280,
                   ISACTIVER = 0x300, ICACTIVER = 0x380, IPRIORITYR = 0x400, IPRIORITYR_END = 0x800,
                   ICFGR = 0xc00, ICFGR_END = 0xd00, IGRPMODR = 0xd00, NSACR_END = 0xf00;
}
constexpr uint32_t kPidr2GicV3 = 0x3b;  // ArchRev 3 in [7:4]
constexpr uint32_t kIidrMoat = 0x0100043b;  // implementer JEP106 0x43b (Arm) as Xen and KVM report, product 1
constexpr uint8_t kPrioMask = 0xf8;        // 5 priority bits, what ICH_VTR_EL2.PRIbits gives on QEMU
constexpr unsigned kIdBits = 10;           // INTIDs below 1024

}  // namespace

void VGic::reset(unsigned nvcpus, const uint64_t* mpidr, unsigned spis) {
    nvcpus_ = min(nvcpus, kMaxVcpus);
    ctlr_ = 0;
    spis = spis < kMinSpis ? kMinSpis : min(spis, kMaxSpis);
    lines_ = min(32 + (spis + 31) / 32 * 32, kMaxLines);
    for (unsigned v = 0; v < kMaxVcpus; v++) {
        mpidr_[v] = v < nvcpus_ && mpidr ? mpidr[v] & 0xffffff : v;
        asleep_[v] = true;
        ready_local_[v] = 0;
        unacked_[v] = 0;
        for (unsigned i = 0; i < 32; i++) {
            local_[v][i] = Irq{};
            local_[v][i].edge = i < 16;  // SGIs are edge; PPIs level until the guest says otherwise
        }
    }
    for (unsigned i = 0; i < kMaxSpis; i++) {
        spi_[i] = Irq{};
        router_[i] = mpidr_[0];
    }
    for (unsigned w = 0; w < kWords; w++) ready_spi_[w] = resample_[w] = 0;
    ready_sum_ = resample_sum_ = 0;
    injected_ = 0;
}

bool VGic::set_forwarded(unsigned intid, bool on) {
    if (intid < 32 || intid >= lines_) return false;
    Irq& q = spi_[intid - 32];
    q.forwarded = on;
    if (!on) {
        q.level = false;
        (void)take_resample(intid);
        update(0, intid);
    }
    return true;
}

bool VGic::take_resample(unsigned intid) {
    if (intid < 32 || intid >= lines_) return false;
    uint32_t& w = resample_[intid / 32];
    uint32_t b = 1u << (intid % 32);
    if (!(w & b)) return false;
    w &= ~b;
    if (!w) resample_sum_ &= ~(1u << (intid / 32));
    return true;
}

void VGic::update(unsigned vcpu, unsigned intid) {
    const Irq& q = ref(vcpu, intid);
    bool ready = q.enabled && q.group1 && !q.in_lr && (q.latched || (q.level_src && q.level));
    uint32_t b = 1u << (intid % 32);
    if (intid < 32) {
        ready_local_[vcpu] = ready ? ready_local_[vcpu] | b : ready_local_[vcpu] & ~b;
        return;
    }
    uint32_t& w = ready_spi_[intid / 32];
    w = ready ? w | b : w & ~b;
    ready_sum_ = w ? ready_sum_ | 1u << (intid / 32) : ready_sum_ & ~(1u << (intid / 32));
}

unsigned VGic::best_ready(unsigned vcpu) const {
    if (!(ctlr_ & gicd::kCtlrGrp1)) return kNone;  // the distributor's Group 1 enable gates everything
    unsigned best = kNone;
    uint8_t best_prio = 0xff;
    auto consider = [&](unsigned id) {
        const Irq& q = ref(vcpu, id);
        if ((best == kNone || q.prio < best_prio) && (id < 32 || spi_target(id) == vcpu)) {
            best = id;
            best_prio = q.prio;
        }
    };
    for (uint32_t m = ready_local_[vcpu]; m; m &= m - 1) consider(static_cast<unsigned>(__builtin_ctz(m)));
    for (uint32_t s = ready_sum_; s; s &= s - 1) {
        unsigned w = static_cast<unsigned>(__builtin_ctz(s));
        for (uint32_t m = ready_spi_[w]; m; m &= m - 1) consider(32 * w + static_cast<unsigned>(__builtin_ctz(m)));
    }
    return best;
}

bool VGic::is_pending(unsigned vcpu, unsigned intid) const {
    if (vcpu >= nvcpus_ || intid >= lines_) return false;
    const Irq& q = ref(vcpu, intid);
    return q.latched || (q.level_src && q.level);
}

unsigned VGic::spi_target(unsigned intid) const {
    if (intid < 32 || intid >= lines_) return 0;
    uint64_t r = router_[intid - 32];
    uint64_t aff = (r & 0xffffff) | ((r >> 8) & 0xff000000);  // Aff3 would sit at [39:32]
    for (unsigned v = 0; v < nvcpus_; v++)
        if (mpidr_[v] == aff) return v;
    return 0;
}

void VGic::pulse(unsigned vcpu, unsigned intid) {
    if (intid >= lines_ || (intid < 32 && vcpu >= nvcpus_)) return;
    if (intid >= 32) vcpu = 0;
    ref(vcpu, intid).latched = true;
    update(vcpu, intid);
}

void VGic::set_level(unsigned vcpu, unsigned intid, bool high) {
    if (intid >= lines_ || (intid < 32 && vcpu >= nvcpus_)) return;
    if (intid >= 32) vcpu = 0;
    Irq& q = ref(vcpu, intid);
    if (q.edge && high && !q.level) q.latched = true;  // configured as edge: the rising edge latches
    q.level = high;
    q.level_src = true;
    update(vcpu, intid);
}

uint32_t VGic::sgi1r(unsigned from, uint64_t v) {
    unsigned intid = static_cast<unsigned>((v >> 24) & 0xf);
    uint32_t targets = 0;
    if (v & bit(40)) {  // IRM: every vCPU but the sender
        for (unsigned t = 0; t < nvcpus_; t++)
            if (t != from) targets |= 1u << t;
    } else {
        uint64_t aff1 = (v >> 16) & 0xff, aff2 = (v >> 32) & 0xff, rs = (v >> 44) & 0xf;
        for (unsigned t = 0; t < nvcpus_; t++) {
            uint64_t m = mpidr_[t];
            if (((m >> 8) & 0xff) != aff1 || ((m >> 16) & 0xff) != aff2) continue;
            uint64_t a0 = m & 0xff;
            if (a0 / 16 == rs && (v & (1u << (a0 % 16)))) targets |= 1u << t;
        }
    }
    for (unsigned t = 0; t < nvcpus_; t++)
        if (targets & (1u << t)) {
            local_[t][intid].latched = true;
            update(t, intid);
        }
    return targets;
}

bool VGic::wants_vcpu(unsigned vcpu) const {
    if (vcpu >= nvcpus_) return false;
    // Already in a list register and not yet acknowledged (as of the last lr_sync), or deliverable.
    return unacked_[vcpu] || best_ready(vcpu) != kNone;
}

bool VGic::lr_sync(unsigned vcpu, uint64_t* lrs, unsigned nlr) {
    if (vcpu >= nvcpus_) return false;
    nlr = min(nlr, kMaxLrs);
    // What the guest did with each interrupt in flight.
    for (unsigned i = 0; i < nlr; i++) {
        uint64_t lr = lrs[i];
        if (!lr) continue;
        unsigned intid = static_cast<unsigned>(kLrVintid.get(lr));
        if (intid >= lines_) {
            lrs[i] = 0;
            continue;
        }
        Irq& q = ref(vcpu, intid);
        uint64_t state = kLrState.get(lr);
        bool level_gone = q.level_src && !q.level && !q.latched;
        if (state == 0 || (state == kStatePending && (level_gone || !q.enabled))) {
            // Deactivated by the guest, or withdrawn before it took it.
            if (state == 0 && q.forwarded && intid >= 32) {
                // The guest is done with it: the physical line, masked since it fired, is
                // resampled; if it is still high it fires again and raises this one anew.
                q.level = false;
                resample_[intid / 32] |= 1u << (intid % 32);
                resample_sum_ |= 1u << (intid / 32);
            }
            q.in_lr = false;
            q.active = false;
            lrs[i] = 0;
            update(vcpu, intid);
            continue;
        }
        q.active = (state & kStateActive) != 0;
        if (state == kStateActive && q.latched) {  // a new edge (or ISPENDR write) while the last is handled
            lrs[i] = kLrState.set(lr, kStatePending | kStateActive);
            q.latched = false;
            update(vcpu, intid);
        }
    }
    // Free registers take the most urgent deliverable interrupts (lowest priority value, then INTID).
    for (unsigned i = 0; i < nlr; i++) {
        if (lrs[i]) continue;
        unsigned best = best_ready(vcpu);
        if (best == kNone) break;
        Irq& q = ref(vcpu, best);
        q.in_lr = true;
        q.latched = false;
        update(vcpu, best);
        // A level interrupt asks for a maintenance interrupt at its deactivation: its line is
        // looked at again then, and it comes back if still high.
        lrs[i] = kLrVintid.make(best) | kLrPrio.make(q.prio) | kLrGroup1 | kLrState.make(kStatePending) |
                 (q.level_src ? kLrEoi : 0);
        injected_++;
    }
    unsigned unacked = 0;
    for (unsigned i = 0; i < nlr; i++) unacked += lrs[i] && kLrState.get(lrs[i]) == kStatePending;
    unacked_[vcpu] = static_cast<uint8_t>(unacked);
    return best_ready(vcpu) != kNone;
}

// ---------------------------------------------------------------- register banks

bool VGic::bank_read(unsigned vcpu, uint64_t off, unsigned bytes, unsigned lo, unsigned hi, uint64_t& val) const {
    val = 0;
    if (off >= bank::IPRIORITYR && off < bank::IPRIORITYR_END) {
        if ((bytes != 1 && bytes != 4) || off % bytes) return false;
        unsigned first = static_cast<unsigned>(off - bank::IPRIORITYR);
        for (unsigned b = 0; b < bytes; b++)
            if (first + b >= lo && first + b < hi) val |= uint64_t{ref(vcpu, first + b).prio} << (8 * b);
        return true;
    }
    if (bytes != 4 || off % 4) return false;
    if (off >= bank::ICFGR && off < bank::ICFGR_END) {
        unsigned first = static_cast<unsigned>(off - bank::ICFGR) * 4;
        for (unsigned k = 0; k < 16; k++)
            if (first + k >= lo && first + k < hi && ref(vcpu, first + k).edge) val |= uint64_t{2} << (2 * k);
        return true;
    }
    if (off < bank::IGROUPR || off >= bank::IPRIORITYR) return true;  // IGRPMODR, NSACR, reserved: RAZ
    uint64_t reg = off & ~uint64_t{0x7f};
    unsigned first = static_cast<unsigned>(off - reg) * 8;
    for (unsigned k = 0; k < 32; k++) {
        unsigned id = first + k;
        if (id < lo || id >= hi) continue;
        const Irq& q = ref(vcpu, id);
        bool b = false;
        switch (reg) {
        case bank::IGROUPR: b = q.group1; break;
        case bank::ISENABLER: case bank::ICENABLER: b = q.enabled; break;
        case bank::ISPENDR: case bank::ICPENDR: b = q.latched || (q.level_src && q.level) || (q.in_lr && !q.active); break;
        case bank::ISACTIVER: case bank::ICACTIVER: b = q.active; break;
        default: break;
        }
        if (b) val |= uint64_t{1} << k;
    }
    return true;
}

bool VGic::bank_write(unsigned vcpu, uint64_t off, unsigned bytes, uint64_t val, unsigned lo, unsigned hi) {
    if (off >= bank::IPRIORITYR && off < bank::IPRIORITYR_END) {
        if ((bytes != 1 && bytes != 4) || off % bytes) return false;
        unsigned first = static_cast<unsigned>(off - bank::IPRIORITYR);
        for (unsigned b = 0; b < bytes; b++)
            if (first + b >= lo && first + b < hi) ref(vcpu, first + b).prio = static_cast<uint8_t>((val >> (8 * b)) & kPrioMask);
        return true;
    }
    if (bytes != 4 || off % 4) return false;
    if (off >= bank::ICFGR && off < bank::ICFGR_END) {
        unsigned first = static_cast<unsigned>(off - bank::ICFGR) * 4;
        for (unsigned k = 0; k < 16; k++) {
            unsigned id = first + k;
            if (id >= lo && id < hi && id >= 16) ref(vcpu, id).edge = (val >> (2 * k + 1)) & 1;  // SGIs stay edge
        }
        return true;
    }
    if (off < bank::IGROUPR || off >= bank::IPRIORITYR) return true;  // WI
    uint64_t reg = off & ~uint64_t{0x7f};
    unsigned first = static_cast<unsigned>(off - reg) * 8;
    for (unsigned k = 0; k < 32; k++) {
        unsigned id = first + k;
        bool b = (val >> k) & 1;
        if (id < lo || id >= hi) continue;
        Irq& q = ref(vcpu, id);
        switch (reg) {
        case bank::IGROUPR: q.group1 = b; break;
        case bank::ISENABLER: if (b) q.enabled = true; break;
        case bank::ICENABLER: if (b) q.enabled = false; break;
        case bank::ISPENDR: if (b) q.latched = true; break;
        case bank::ICPENDR: if (b) q.latched = false; break;
        case bank::ICACTIVER: if (b && !q.in_lr) q.active = false; break;  // active state lives in the LR
        default: break;  // ISACTIVER: the guest cannot make its own interrupts active
        }
        update(vcpu, id);
    }
    return true;
}

// ---------------------------------------------------------------- distributor

bool VGic::dist_read(uint64_t off, unsigned bytes, uint64_t& val) const {
    val = 0;
    if (off >= kDistSize) return false;
    if (off >= gicd::IROUTER && off < gicd::IROUTER_END) {
        if ((bytes != 8 && bytes != 4) || off % bytes) return false;
        unsigned id = static_cast<unsigned>((off - gicd::IROUTER) / 8);
        if (id >= 32 && id < lines_) val = bytes == 8 ? router_[id - 32] : (router_[id - 32] >> ((off & 4) * 8)) & 0xffffffff;
        return true;
    }
    if (off < bank::IGROUPR) {
        if (bytes != 4 || off % 4) return false;
        switch (off) {
        case gicd::CTLR: val = ctlr_ | gicd::kCtlrAre | gicd::kCtlrDs; break;  // RWP never set: writes take effect at once
        case gicd::TYPER: val = ((lines_ + 31) / 32 - 1) | uint64_t{kIdBits - 1} << 19 | uint64_t{(nvcpus_ - 1) & 7} << 5; break;
        case gicd::IIDR: val = kIidrMoat; break;
        default: break;
        }
        return true;
    }
    if (off < bank::NSACR_END) return bank_read(0, off, bytes, 32, lines_, val);
    if (off >= 0xffd0) {
        if (bytes != 4 || off % 4) return false;
        if (off == gicd::PIDR2) val = kPidr2GicV3;
    }
    return true;
}

bool VGic::dist_write(uint64_t off, unsigned bytes, uint64_t val) {
    if (off >= kDistSize) return false;
    if (off >= gicd::IROUTER && off < gicd::IROUTER_END) {
        if ((bytes != 8 && bytes != 4) || off % bytes) return false;
        unsigned id = static_cast<unsigned>((off - gicd::IROUTER) / 8);
        if (id < 32 || id >= lines_) return true;
        constexpr uint64_t kMask = 0xff00ffffffull | bit(31);  // Aff3, IRM, Aff2..Aff0
        uint64_t& r = router_[id - 32];
        if (bytes == 8) r = val & kMask;
        else if (off & 4) r = (r & 0xffffffff) | ((val << 32) & kMask);
        else r = (r & ~uint64_t{0xffffffff}) | (val & 0xffffffff & kMask);
        return true;
    }
    if (off < bank::IGROUPR) {
        if (bytes != 4 || off % 4) return false;
        if (off == gicd::CTLR) ctlr_ = static_cast<uint32_t>(val) & (gicd::kCtlrGrp0 | gicd::kCtlrGrp1);
        return true;
    }
    if (off < bank::NSACR_END) return bank_write(0, off, bytes, val, 32, lines_);
    return bytes <= 4 && off % bytes == 0;
}

// ---------------------------------------------------------------- redistributors

bool VGic::redist_read(uint64_t off, unsigned bytes, uint64_t& val) const {
    val = 0;
    unsigned v = static_cast<unsigned>(off / kRedistStride);
    uint64_t o = off % kRedistStride;
    if (v >= nvcpus_) return false;
    if (o >= gicr::kSgiBase) return bank_read(v, o - gicr::kSgiBase, bytes, 0, 32, val);
    if (o == gicr::TYPER && (bytes == 8 || bytes == 4)) {
        uint64_t typer = (mpidr_[v] & 0xffffff) << 32 | uint64_t{v} << 8 | (v + 1 == nvcpus_ ? gicr::kTyperLast : 0);
        val = bytes == 8 ? typer : typer & 0xffffffff;
        return true;
    }
    if (o == gicr::TYPER + 4 && bytes == 4) {
        val = (mpidr_[v] & 0xffffff);
        return true;
    }
    if (o == 0x70 || o == 0x78) return bytes == 8 || bytes == 4;  // PROPBASER, PENDBASER: no LPIs, RAZ
    if (bytes != 4 || o % 4) return false;
    switch (o) {
    case gicr::CTLR: val = 0; break;  // no LPIs; RWP, UWP never set
    case gicr::IIDR: val = kIidrMoat; break;
    case gicr::WAKER: val = asleep_[v] ? gicr::kWakerSleep | gicr::kWakerChildrenAsleep : 0; break;
    case gicr::PIDR2: val = kPidr2GicV3; break;
    default: break;
    }
    return true;
}

bool VGic::redist_write(uint64_t off, unsigned bytes, uint64_t val) {
    unsigned v = static_cast<unsigned>(off / kRedistStride);
    uint64_t o = off % kRedistStride;
    if (v >= nvcpus_) return false;
    if (o >= gicr::kSgiBase) return bank_write(v, o - gicr::kSgiBase, bytes, val, 0, 32);
    if (o == 0x70 || o == 0x78 || o == gicr::TYPER) return bytes == 8 || bytes == 4;
    if (bytes != 4 || o % 4) return false;
    if (o == gicr::WAKER) asleep_[v] = (val & gicr::kWakerSleep) != 0;
    return true;
}

}  // namespace moat::hyp
