#include "tests/models/ipmmu_model.hpp"

#include <algorithm>
#include <cstdio>

#include "tests/models/dma_pages.hpp"

namespace moat::model {

namespace {

// Offsets and fields (docs/hardware.md §1.2, §1.3, §1.9): offsets inside a context, inside the
// uTLB windows and inside the control block.
constexpr uint32_t kCtxRegs = 0x40;
enum : uint32_t {
    IMCTR = 0x00, IMTTBCR = 0x08, IMTTLBR0 = 0x10, IMTTUBR0 = 0x14, IMTTLBR1 = 0x18, IMTTUBR1 = 0x1c, IMSTR = 0x20,
    IMMAIR0 = 0x28, IMMAIR1 = 0x2c, IMELAR = 0x30, IMEUAR = 0x34,
};
constexpr uint32_t kUtlbLow = 0x300, kUtlbHigh = 0x600, IMSCTLR = 0x500, IMSAUXCTLR = 0x504;
constexpr uint32_t kHighContextSkip = 0x600;  // contexts 8 and up

constexpr uint32_t kMmuEn = 1u << 0, kFlush = 1u << 1, kIntEn = 1u << 2, kVa64 = 1u << 29;
// IMCTR bits that exist: MMUEN FLUSH INTEN TREN RTSEL[5:4] AFE TRE VA64 on the root, [2:0] on a cache.
constexpr uint32_t kRootImctr = 0x3f | 1u << 16 | 1u << 17 | kVa64, kCacheImctr = 0x7;
constexpr uint32_t kEae = 1u << 31;
constexpr uint32_t kS2pte = 1u << 3;
// MMUEN FLUSH TTSEL FIXADD[23:16] FIXADDEN.
constexpr uint32_t imuctr_bits(unsigned ttsel_bits) { return 0x1 | 0x2 | ((1u << ttsel_bits) - 1) << 4 | 0xff0000 | 1u << 31; }

std::string hex(uint64_t v) {
    char b[24];
    snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

}  // namespace

const IpmmuModel::Layout IpmmuModel::kGen3{"R-Car Gen3", 8, 48, 0x1000, 0x0, 0x40, 0x0, 0x0, 4};
const IpmmuModel::Layout IpmmuModel::kGen4{"R-Car Gen4", 16, 64, 0x20000, 0x10000, 0x1040, 0x3000, 0x1000, 5};

IpmmuModel::IpmmuModel(PhysMem& mem, const Layout& layout) : mem_(&mem), root_(this), layout_(&layout) {}
IpmmuModel::IpmmuModel(IpmmuModel& root, unsigned main_bit)
    : mem_(root.mem_), root_(&root), layout_(root.layout_), main_bit_(main_bit) {}

uint32_t IpmmuModel::ctx_offset(unsigned n, uint32_t reg) const {
    return layout_->ctx_base + n * layout_->ctx_stride + (n >= 8 ? kHighContextSkip : 0) + reg;
}

uint32_t IpmmuModel::imuctr_offset(unsigned u) const {
    return layout_->utlb_base + (u < 32 ? kUtlbLow + 16 * u : kUtlbHigh + 16 * (u - 32));
}

int IpmmuModel::context_at(uint32_t off, uint32_t& reg) const {
    for (unsigned n = 0; n < layout_->contexts; n++) {
        uint32_t start = ctx_offset(n, 0);
        if (off >= start && off - start < kCtxRegs) {
            reg = off - start;
            return static_cast<int>(n);
        }
    }
    return -1;
}

// uTLB index of an IMUCTR/IMUASID offset, with which of the two it is; -1 if neither.
int IpmmuModel::utlb_at(uint32_t off, bool& asid) const {
    if (off < layout_->utlb_base) return -1;
    uint32_t o = off - layout_->utlb_base, rel;
    int first;
    if (o >= kUtlbLow && o < kUtlbLow + 32 * 16) rel = o - kUtlbLow, first = 0;
    else if (o >= kUtlbHigh && o < kUtlbHigh + (layout_->utlbs - 32) * 16) rel = o - kUtlbHigh, first = 32;
    else return -1;
    if (rel % 16 != 0 && rel % 16 != 8) return -1;
    asid = rel % 16 == 8;
    return first + static_cast<int>(rel / 16);
}

void IpmmuModel::violation(const std::string& what) { violations_.push_back(who() + ": " + what); }
std::string IpmmuModel::who() const { return is_root() ? "root" : "cache (IMSSTR bit " + std::to_string(main_bit_) + ")"; }

void IpmmuModel::connect_irq(arch::host::HostIrqController* c, unsigned intid) {
    if (!is_root()) return violation("connect_irq on a cache: only the root has the fault interrupt");
    if (irqc_ && irq_asserted_) irqc_->lower(intid_);
    irqc_ = c;
    intid_ = intid;
    irq_asserted_ = false;
    update_irq();
}

void IpmmuModel::update_irq() {
    bool on = irq_pending();
    if (!irqc_ || on == irq_asserted_) return;
    irq_asserted_ = on;
    if (on) {
        irqs_raised_++;
        irqc_->raise(intid_);  // the handler may run now, and clear IMSTR (back in here) first
    } else {
        irqc_->lower(intid_);
    }
}

bool IpmmuModel::irq_pending() const {
    for (const Context& c : ctx_)
        if ((c.imstr & (kTf | kPf | kAbort | kMhit)) && (c.imctr & kIntEn)) return true;
    return false;
}

// ---------------------------------------------------------------- registers

uint64_t IpmmuModel::read(uint64_t off, unsigned bytes) {
    reads_++;
    if (bytes != 4 || (off & 3)) {
        violation("read of " + std::to_string(bytes) + " bytes at " + hex(off) + ": every register is 32 bits");
        return 0;
    }
    return read32(static_cast<uint32_t>(off));
}

void IpmmuModel::write(uint64_t off, uint64_t v, unsigned bytes) {
    writes_++;
    if (bytes != 4 || (off & 3)) {
        violation("write of " + std::to_string(bytes) + " bytes at " + hex(off) + ": every register is 32 bits");
        return;
    }
    write32(static_cast<uint32_t>(off), static_cast<uint32_t>(v));
}

uint32_t IpmmuModel::read32(uint32_t off) {
    uint32_t reg = 0;
    if (int n = context_at(off, reg); n >= 0) {
        Context& c = ctx_[n];
        if (reg == IMCTR) {
            uint32_t v = c.imctr;
            if ((v & kFlush) && !flush_hung_) {
                if (c.flush_pending) c.flush_pending--;
                if (!c.flush_pending) c.imctr &= ~kFlush;
            }
            return v;
        }
        if (!is_root()) {
            violation("read of context register " + hex(off) + ": only IMCTR exists on a cache, the root holds the rest");
            return 0;
        }
        switch (reg) {
        case IMTTBCR: return c.ttbcr;
        case IMTTLBR0: return c.ttlbr;
        case IMTTUBR0: return c.ttubr;
        case IMTTLBR1: return c.ttlbr1;
        case IMTTUBR1: return c.ttubr1;
        case IMSTR: return c.imstr;
        case IMMAIR0: return c.mair0;
        case IMMAIR1: return c.mair1;
        case IMELAR: return c.elar;
        case IMEUAR: return c.euar;
        default: break;
        }
    } else if (off == control_offset(IMSCTLR)) {
        return imsctlr_;
    } else if (off == control_offset(IMSAUXCTLR)) {
        return imsauxctlr_;
    } else {
        bool asid;
        int u = utlb_at(off, asid);
        if (u >= 0) return asid ? utlb_[u].imuasid : utlb_[u].imuctr;
    }
    violation("read of unmodelled offset " + hex(off));
    return 0;
}

void IpmmuModel::write32(uint32_t off, uint32_t v) {
    uint32_t reg = 0;
    if (int n = context_at(off, reg); n >= 0) return write_ctx(static_cast<unsigned>(n), reg, v);
    if (off == control_offset(IMSCTLR)) {
        imsctlr_ = v;
        return;
    }
    if (off == control_offset(IMSAUXCTLR)) {
        if (is_root() && ((v ^ imsauxctlr_) & kS2pte))
            for (unsigned n = 0; n < layout_->contexts; n++)
                if (ctx_[n].imctr & kMmuEn) violation("IMSAUXCTLR.S2PTE changed while context " + std::to_string(n) + " is enabled");
        imsauxctlr_ = v;
        return;
    }
    bool asid;
    int u = utlb_at(off, asid);
    if (u < 0) {
        violation("write of " + hex(v) + " to unmodelled offset " + hex(off));
        return;
    }
    UtlbRegs& r = utlb_[u];
    if (asid) {
        r.imuasid = v;
        return;
    }
    if (v & kFlush) {
        drop(-1, u);
        r.flushes++;
    }
    r.imuctr = v & imuctr_bits(layout_->ttsel_bits) & ~kFlush;  // FLUSH self-clears at once
}

void IpmmuModel::write_ctx(unsigned n, uint32_t reg, uint32_t v) {
    Context& c = ctx_[n];
    c.writes++;
    if (reg == IMCTR) {
        if (!is_root()) {
            if (v & kFlush) {
                drop(static_cast<int>(n), -1);
                c.flushes++;
            }
            c.imctr = v & kCacheImctr & ~kFlush;
            return;
        }
        uint32_t keep = c.imctr & kFlush;  // a flush in progress stays in progress
        c.imctr = (v & kRootImctr & ~kFlush) | keep;
        if (v & kFlush) {
            drop(static_cast<int>(n), -1);
            c.flushes++;
            c.flush_pending = flush_latency_;
            if (flush_latency_ || flush_hung_) c.imctr |= kFlush;
        }
        update_irq();
        return;
    }
    if (!is_root()) {
        violation("write of " + hex(v) + " to context " + std::to_string(n) + " register " + hex(reg) +
                  ": only IMCTR exists on a cache, the root holds the rest");
        return;
    }
    uint32_t* table_reg = nullptr;
    switch (reg) {
    case IMTTBCR: table_reg = &c.ttbcr; break;
    case IMTTLBR0: table_reg = &c.ttlbr; break;
    case IMTTUBR0: table_reg = &c.ttubr; break;
    case IMTTLBR1: table_reg = &c.ttlbr1; break;
    case IMTTUBR1: table_reg = &c.ttubr1; break;
    case IMMAIR0: table_reg = &c.mair0; break;
    case IMMAIR1: table_reg = &c.mair1; break;
    case IMSTR:
        // Status bits clear when written 0 and cannot be set; the error code, level and address go
        // with the last of them.
        {
            uint32_t fields = c.imstr & ~(kTf | kPf | kAbort | kMhit);
            c.imstr &= v & (kTf | kPf | kAbort | kMhit);
            if (c.imstr) c.imstr |= fields;
            else c.elar = c.euar = 0;
        }
        update_irq();
        return;
    case IMELAR:
    case IMEUAR: return;  // read-only
    default:
        violation("write of " + hex(v) + " to unmodelled context register " + hex(reg));
        return;
    }
    if (c.imctr & kMmuEn) violation("context " + std::to_string(n) + " register " + hex(reg) + " changed while the context is enabled");
    *table_reg = v;
}

void IpmmuModel::poke(uint32_t off, uint32_t v) {
    uint32_t reg = 0;
    if (int n = context_at(off, reg); n >= 0) {
        Context& c = ctx_[n];
        uint32_t* regs[] = {&c.imctr, nullptr, &c.ttbcr, nullptr, &c.ttlbr, &c.ttubr, &c.ttlbr1, &c.ttubr1, &c.imstr,
                            nullptr, &c.mair0, &c.mair1, &c.elar, &c.euar};
        uint32_t i = reg / 4;
        if (i < sizeof regs / sizeof regs[0] && regs[i]) *regs[i] = v;
        update_irq();
        return;
    }
    if (off == control_offset(IMSCTLR)) imsctlr_ = v;
    else if (off == control_offset(IMSAUXCTLR)) imsauxctlr_ = v;
    bool asid;
    int u = utlb_at(off, asid);
    if (u >= 0) (asid ? utlb_[u].imuasid : utlb_[u].imuctr) = v;
}

void IpmmuModel::inject_fault(unsigned n, uint32_t imstr, uint64_t addr) {
    Context& c = ctx_[n];
    if (!(c.imstr & (kTf | kPf | kAbort | kMhit))) {
        c.elar = static_cast<uint32_t>(addr);
        c.euar = static_cast<uint32_t>(addr >> 32);
        c.imstr = imstr;
    } else {
        c.imstr |= imstr & (kTf | kPf | kAbort | kMhit);
    }
    update_irq();
}

// ---------------------------------------------------------------- translation

void IpmmuModel::drop(int n, int utlb) {
    tlb_.erase(std::remove_if(tlb_.begin(), tlb_.end(),
                              [&](const TlbEntry& e) {
                                  return (n < 0 || e.ctx == static_cast<unsigned>(n)) && (utlb < 0 || e.utlb == utlb);
                              }),
               tlb_.end());
}

const IpmmuModel::TlbEntry* IpmmuModel::lookup(unsigned n, int utlb, uint64_t iova) {
    for (const TlbEntry& e : tlb_)
        if (e.ctx == n && e.utlb == utlb && iova >= e.base && iova - e.base < e.size) {
            tlb_hits_++;
            return &e;
        }
    return nullptr;
}

void IpmmuModel::insert(const TlbEntry& e) {
    if (tlb_.size() == 256) tlb_.pop_front();
    tlb_.push_back(e);
}

IpmmuModel::Regime IpmmuModel::regime(unsigned n) {
    const Context& c = ctx_[n];
    std::string ctx = "context " + std::to_string(n) + ": ";
    Regime out;
    if (!(c.ttbcr & kEae)) {
        violation(ctx + "IMTTBCR.EAE clear: short-descriptor tables are not modelled");
        return out;
    }
    bool va64 = (c.imctr & kVa64) != 0, s2pte = (imsauxctlr_ & kS2pte) != 0;
    unsigned tsz0 = c.ttbcr & 0x1f, sl0 = (c.ttbcr >> 6) & 3;
    vmsa::Regime& r = out.r;
    r.root = ttbr0(n);
    r.oas = kPaBits;
    if (va64 && s2pte) {
        r.stage = vmsa::Stage::s2;
        r.ias = 64 - tsz0;
        r.start_level = vmsa::s2_level_from_sl0(sl0);
    } else if (!va64 && !s2pte) {
        if (tsz0 > 7) {
            violation(ctx + "TSZ0 " + std::to_string(tsz0) + " beyond a 32-bit input");
            return out;
        }
        r.stage = vmsa::Stage::s1;
        r.ias = 32 - tsz0;
        int level = vmsa::start_level(r);
        if (level < 0 || level > 3 || sl0 != 3u - static_cast<unsigned>(level)) {
            violation(ctx + "SL0 " + std::to_string(sl0) + " does not say start level " + std::to_string(level) +
                      " (32-bit tables: SL0 = 3 - level)");
            return out;
        }
    } else if (va64) {
        r.stage = vmsa::Stage::s1;
        r.ias = 64 - tsz0;
    } else {
        violation(ctx + "IMSAUXCTLR.S2PTE set but IMCTR.VA64 clear");
        return out;
    }
    if (const char* why = vmsa::check(r)) {
        violation(ctx + why);
        return out;
    }
    out.ok = true;
    return out;
}

void IpmmuModel::latch(unsigned n, uint32_t bit, unsigned level, uint64_t iova) {
    Context& c = ctx_[n];
    if (!(c.imstr & (kTf | kPf | kAbort | kMhit))) {
        c.elar = static_cast<uint32_t>(iova);
        c.euar = static_cast<uint32_t>(iova >> 32);
        c.imstr = (level & 3) << 12;
    }
    c.imstr |= bit;
    update_irq();
}

IpmmuModel::Xlate IpmmuModel::translate(unsigned utlb, uint64_t iova, bool write) {
    Xlate x;
    const UtlbRegs& u = utlb_[utlb];
    if (!(u.imuctr & kMmuEn)) {
        x.ok = x.bypass = true;
        x.pa = iova;
        return x;
    }
    unsigned n = (u.imuctr >> 4) & ((1u << layout_->ttsel_bits) - 1);
    x.ctx = n;
    if (n >= layout_->contexts) {
        violation("uTLB " + std::to_string(utlb) + " selects context " + std::to_string(n) + ", beyond " +
                  std::to_string(layout_->contexts));
        return x;
    }
    IpmmuModel& root = *root_;
    if (!(ctx_[n].imctr & kMmuEn) || !(root.ctx_[n].imctr & kMmuEn)) {
        violation("DMA through uTLB " + std::to_string(utlb) + " into context " + std::to_string(n) +
                  ", which is disabled " + (!(ctx_[n].imctr & kMmuEn) ? "here" : "in the root"));
        return x;
    }
    // A cache's TLB entries are tagged with the uTLB (standing for the uTLB's own copy); the root's not.
    int key = &root == this ? -1 : static_cast<int>(utlb);
    const TlbEntry* e = lookup(n, key, iova);
    TlbEntry fill;
    if (!e && &root != this && (e = root.lookup(n, -1, iova))) {
        fill = *e;
        fill.utlb = static_cast<int>(utlb);
        insert(fill);
        e = &tlb_.back();
    }
    if (!e) {
        Regime rg = root.regime(n);
        if (!rg.ok) return x;
        root.walks_++;
        vmsa::Walk w = vmsa::walk(*mem_, rg.r, iova);
        if (!w.ok()) {
            x.fault = w.fault == vmsa::Fault::external_abort ? kAbort : kTf;
            root.latch(n, x.fault, w.level, iova);
            return x;
        }
        fill = TlbEntry{n, -1, w.base_in(iova), w.size, w.out - (iova - w.base_in(iova)), w.level,
                        rg.r.stage == vmsa::Stage::s2, w.perms};
        root.insert(fill);
        fill.utlb = static_cast<int>(utlb);
        if (&root != this) insert(fill);
        e = &fill;
    }
    vmsa::Access a{write, false, false};
    if (!vmsa::allows(e->s2 ? vmsa::Stage::s2 : vmsa::Stage::s1, e->perms, a)) {
        x.fault = kPf;
        root.latch(n, kPf, e->level, iova);
        return x;
    }
    x.ok = true;
    x.pa = e->out + (iova - e->base);
    return x;
}

IpmmuModel::Dma IpmmuModel::dma(unsigned utlb, uint64_t iova, uint8_t* buf, size_t len, bool write) {
    Dma d;
    if (utlb >= layout_->utlbs) {
        violation("DMA on uTLB " + std::to_string(utlb) + ", beyond " + std::to_string(layout_->utlbs));
        return d;
    }
    DmaRun<Xlate> r = dma_pages<Xlate>(*mem_, iova, buf, len, write, [&](uint64_t a) { return translate(utlb, a, write); });
    d.done = r.done;
    d.ok = r.complete;
    if (r.first.ok) {
        d.pa = r.first.pa;
        d.bypassed = r.first.bypass;
        d.context = r.first.ctx;
    }
    if (r.faulted) {
        d.fault = r.failed.fault;
        d.context = r.failed.ctx;
    }
    return d;
}

IpmmuModel::Dma IpmmuModel::dma_write(unsigned utlb, uint64_t iova, const void* src, size_t len) {
    return dma(utlb, iova, static_cast<uint8_t*>(const_cast<void*>(src)), len, true);
}

IpmmuModel::Dma IpmmuModel::dma_read(unsigned utlb, uint64_t iova, void* dst, size_t len) {
    return dma(utlb, iova, static_cast<uint8_t*>(dst), len, false);
}

}  // namespace moat::model
