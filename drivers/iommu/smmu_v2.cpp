#include "drivers/iommu/smmu_v2.hpp"

#include "arch/barrier.hpp"
#include "arch/cpu.hpp"
#include "arch/mmio.hpp"
#include "common/lock.hpp"
#include "common/wait.hpp"

namespace moat {

using namespace smmuv2;

namespace {

constexpr uint64_t kMinWindow = 0x1000;  // the ID registers are in the first 4 KiB
constexpr unsigned kMaxTag = 0xff;       // 8-bit VMIDs (CBAR) and ASIDs (TCR2.AS clear)

// Two SMRs can match one stream id when they agree on every bit neither of them masks.
bool overlap(uint32_t id_a, uint32_t mask_a, uint32_t id_b, uint32_t mask_b) {
    return ((id_a ^ id_b) & ~(mask_a | mask_b) & 0xffff) == 0;
}

struct FaultName {
    uint32_t bit;
    FaultKind kind;
    const char* name;
};

// In the order a record names them when several bits are set.
constexpr FaultName kGlobalFaults[] = {
    {gfsr::kUsf, FaultKind::bad_stream, "USF: unidentified stream"},
    {gfsr::kSmcf, FaultKind::bad_config, "SMCF: stream match conflict"},
    {gfsr::kIcf, FaultKind::bad_config, "ICF: invalid context"},
    {gfsr::kUcbf, FaultKind::bad_config, "UCBF: unimplemented context bank"},
    {gfsr::kUcif, FaultKind::bad_config, "UCIF: unimplemented context interrupt"},
    {gfsr::kCaf, FaultKind::bad_config, "CAF: configuration access"},
    {gfsr::kPf, FaultKind::permission, "PF: permission"},
    {gfsr::kEf, FaultKind::walk_abort, "EF: external fault"},
    {gfsr::kUut, FaultKind::other, "UUT: unsupported upstream transaction"},
};
constexpr FaultName kContextFaults[] = {
    {fsr::kTf, FaultKind::translation, "TF: translation"},
    {fsr::kPf, FaultKind::permission, "PF: permission"},
    {fsr::kAff, FaultKind::access_flag, "AFF: access flag"},
    {fsr::kAsf, FaultKind::address_size, "ASF: address size"},
    {fsr::kEf, FaultKind::walk_abort, "EF: external abort on the walk"},
    {fsr::kTlbmcf, FaultKind::tlb_conflict, "TLBMCF: TLB match conflict"},
    {fsr::kTlblkf, FaultKind::other, "TLBLKF: TLB lock"},
    {fsr::kUut, FaultKind::other, "UUT: unsupported upstream transaction"},
    {fsr::kSs, FaultKind::other, "SS: stalled"},
};

template <size_t N>
const FaultName* first_fault(const FaultName (&table)[N], uint32_t status) {
    for (const FaultName& f : table)
        if (status & f.bit) return &f;
    return nullptr;
}

}  // namespace

// ---------------------------------------------------------------- registers

uint32_t SmmuV2::rd(Gr0 r) const { return mmio::read32(cfg_.base + static_cast<uint32_t>(r)); }
void SmmuV2::wr(Gr0 r, uint32_t v) const { mmio::write32(cfg_.base + static_cast<uint32_t>(r), v); }
uint64_t SmmuV2::rd(Gr0_64 r) const { return mmio::read64(cfg_.base + static_cast<uint32_t>(r)); }
void SmmuV2::wr(Gr0Array r, unsigned i, uint32_t v) const { mmio::write32(cfg_.base + static_cast<uint32_t>(r) + 4 * i, v); }
uint32_t SmmuV2::rd(Gr1Array r, unsigned n) const {
    return mmio::read32(cfg_.base + (uintptr_t{1} << page_shift_) + static_cast<uint32_t>(r) + 4 * n);
}
void SmmuV2::wr(Gr1Array r, unsigned n, uint32_t v) const {
    mmio::write32(cfg_.base + (uintptr_t{1} << page_shift_) + static_cast<uint32_t>(r) + 4 * n, v);
}
uint32_t SmmuV2::rd(unsigned bank, Cb r) const { return mmio::read32(bank_base(bank) + static_cast<uint32_t>(r)); }
void SmmuV2::wr(unsigned bank, Cb r, uint32_t v) const { mmio::write32(bank_base(bank) + static_cast<uint32_t>(r), v); }
uint64_t SmmuV2::rd(unsigned bank, Cb64 r) const { return mmio::read64(bank_base(bank) + static_cast<uint32_t>(r)); }
void SmmuV2::wr(unsigned bank, Cb64 r, uint64_t v) const { mmio::write64(bank_base(bank) + static_cast<uint32_t>(r), v); }

// ---------------------------------------------------------------- probe

// ID1 gives the layout, which the DT's reg must cover; ID0 and ID2 what the SMMU can do.
Status SmmuV2::check_ids(uint32_t id0, uint32_t id1, uint32_t id2) {
    page_shift_ = (id1 & id1::kPageSize) ? 16 : 12;
    numpage_ = 1u << (id1::kNumPageNdxb.get(id1) + 1);
    uint64_t span = uint64_t{2} * numpage_ << page_shift_;
    if (cfg_.size < span)
        return why_.set(Status::bad_dt, "reg size 0x%lx is smaller than the 0x%lx ID1 describes (2 x %u register pages of %u KiB)",
                    cfg_.size, span, numpage_, (1u << page_shift_) / 1024);
    numcb_ = static_cast<unsigned>(id1::kNumCb.get(id1));
    nums2cb_ = static_cast<unsigned>(id1::kNumS2Cb.get(id1));
    if (numcb_ == 0 || numcb_ > numpage_ || nums2cb_ > numcb_)
        return why_.set(Status::hw_error, "ID1 is inconsistent: %u context banks (%u stage-2 only) in %u pages", numcb_, nums2cb_,
                    numpage_);
    if (!(id0 & id0::kSms))
        return why_.set(Status::unsupported, "stream indexing (ID0.SMS clear) is not supported, only stream matching");
    numsmrg_ = static_cast<unsigned>(id0::kNumSmrg.get(id0));
    if (numsmrg_ == 0) return why_.set(Status::hw_error, "ID0 reports no stream match register groups");
    numsidb_ = static_cast<unsigned>(id0::kNumSidb.get(id0));
    s2_ = (id0 & id0::kS2ts) != 0;
    s1_ = (id0 & id0::kS1ts) != 0 && nums2cb_ < numcb_;  // some bank must be able to do stage 1
    if (!s1_ && !s2_) return why_.set(Status::unsupported, "no translation stage (ID0.S1TS and S2TS clear)");
    if (!(id2 & id2::kPtfs4k)) return why_.set(Status::unsupported, "no AArch64 4 KiB granule (ID2.PTFS_4K clear)");
    coherent_ = (id0 & id0::kCttw) != 0;

    // Input sizes: stage 2 takes IPAs up to ID2.IAS, stage 1 VAs up to the upstream bus size;
    // both capped at the 48 bits of a 4 KiB-granule walk. The output is capped by the CPU's
    // PARange too: a table may never point beyond what the CPU can address.
    s2_ias_ = min(address_bits(id2::kIas.get(id2)), 48u);
    s1_ias_ = min(ubs_bits(id2::kUbs.get(id2)), 48u);
    hw_oas_ = address_bits(id2::kOas.get(id2));
    unsigned cpu_pa = min(cfg_.cpu_pa_bits ? cfg_.cpu_pa_bits : arch::pa_bits(), 48u);
    unsigned oas = min(hw_oas_, cpu_pa);
    while (oas > 32 && iopt::ps_encoding(oas) < 0) oas--;  // an architected size
    caps_ = IommuCaps{};
    caps_.stage1 = s1_;
    caps_.stage2 = s2_;
    caps_.ias = max(s1_ ? s1_ias_ : 0u, s2_ ? s2_ias_ : 0u);
    caps_.oas = oas;
    caps_.coherent_walk = coherent_;
    caps_.range_invalidation = false;
    caps_.max_stream = numsidb_ ? (1u << numsidb_) - 1 : 0;
    walker_ = VmsaWalker{s1_, s2_, iopt::kMinIas, s1_ias_, iopt::kMinIas, s2_ias_, oas, coherent_};
    if (cfg_.stream_match_mask >> numsidb_)
        return why_.set(Status::bad_dt, "stream-match-mask 0x%x is wider than the %u stream-id bits ID0.NUMSIDB gives",
                    cfg_.stream_match_mask, numsidb_);
    return Status::ok;
}

// Everything to fault, then TLBs empty, then enable. Unmatched streams fault from the first
// register write on when firmware left the SMMU enabled: there is never a bypass window.
Status SmmuV2::reset() {
    uint32_t scr0 = rd(Gr0::sCR0);
    was_enabled_ = !(scr0 & scr0::kClientPd);
    if (was_enabled_) wr(Gr0::sCR0, scr0 | scr0::kUsfcfg);
    wr(Gr0::sGFSR, rd(Gr0::sGFSR));
    // S2CRs before SMRs: a still-valid SMR must never lead to a stale bank.
    for (unsigned i = 0; i < numsmrg_; i++) wr(Gr0Array::S2CR, i, static_cast<uint32_t>(s2cr::kType.make(s2cr::kTypeFault)));
    for (unsigned i = 0; i < numsmrg_; i++) wr(Gr0Array::SMR, i, 0);
    for (unsigned n = 0; n < numcb_; n++) {
        wr(n, Cb::SCTLR, 0);
        wr(n, Cb::FSR, fsr::kAll);
    }
    prefetch_off_ = false;
    if (cfg_.mmu500) {
        // MMU-500 errata 841119 and 826419: the next-page prefetcher goes. From r2p0 on, ACTLR
        // writes only stick once sACR.CACHE_LOCK is clear.
        if (id7::kMajor.get(rd(Gr0::ID7)) >= 2) wr(Gr0::sACR, rd(Gr0::sACR) & ~sacr::kCacheLock);
        prefetch_off_ = true;
        for (unsigned n = 0; n < numcb_; n++) {
            wr(n, Cb::ACTLR, rd(n, Cb::ACTLR) & ~actlr::kCpre);
            if (rd(n, Cb::ACTLR) & actlr::kCpre) prefetch_off_ = false;  // locked by the secure side
        }
    }
    wr(Gr0::TLBIALLH, 0);
    wr(Gr0::TLBIALLNSNH, 0);
    commands_ += 2;
    if (sync_global() != Status::ok)
        return why_.set(Status::timeout, "the TLB sync after reset did not complete within %lu ms", kSyncTimeoutNs / 1000000);
    // Only now: client port on, unmatched streams fault, global faults reported, our own VMID
    // namespace and TLB maintenance (the CPU's broadcast TLBIs are for its VMIDs, not ours).
    scr0 = rd(Gr0::sCR0);
    scr0 |= scr0::kGfre | scr0::kGfie | scr0::kGcfgfre | scr0::kGcfgfie | scr0::kUsfcfg | scr0::kVmidpne | scr0::kPtm;
    scr0 &= ~(scr0::kClientPd | scr0::kFb | scr0::kBsu | scr0::kVmid16En);
    wr(Gr0::sCR0, scr0);
    return Status::ok;
}

Status SmmuV2::probe(const Config& cfg) {
    Status st;
    {
        IrqLockGuard g(lock_);
        st = probe_locked(cfg);
    }
    // Global and context fault reporting (sCR0.GFIE, SCTLR.CFIE) is on already; the lines only
    // need a handler, bound outside the lock the handler takes.
    if (st != Status::ok || !cfg.irq || !cfg.faults || !cfg.irqs) return st;
    // A refused line leaves the SMMU polling (describe() says why): it still translates.
    Why refused;
    if (irqs_.request(cfg.irq, cfg.irqs, cfg.global_irqs + cfg.context_irqs, &SmmuV2::on_irq, this, refused) == Status::ok)
        irqs_.enable();
    return Status::ok;
}

Status SmmuV2::probe_locked(const Config& cfg) {
    why_.clear();
    if (ready_) return why_.set(Status::in_use, "already probed");
    cfg_ = cfg;
    format_to(name_, sizeof name_, "%s", cfg.name ? cfg.name : "smmu-v2");
    if (cfg.iommu_cells > 2) return why_.set(Status::bad_dt, "#iommu-cells is %u, the binding takes 1 or 2", cfg.iommu_cells);
    if (!cfg.base || cfg.size < kMinWindow)
        return why_.set(Status::bad_dt, "reg 0x%lx size 0x%lx cannot hold the global register page", uint64_t{cfg.base}, cfg.size);
    Status st = check_ids(rd(Gr0::ID0), rd(Gr0::ID1), rd(Gr0::ID2));
    if (st == Status::ok) st = reset();
    if (st != Status::ok) return st;
    for (Entry& e : entries_) e = Entry{};
    for (Bank& b : banks_) b = Bank{};
    ready_ = true;
    return Status::ok;
}

void SmmuV2::on_irq(void* self) {
    auto* s = static_cast<SmmuV2*>(self);
    (void)s->poll_faults(*s->cfg_.faults);
}

void SmmuV2::force_shutdown() {
    irqs_.release();  // outside the lock its handler takes
    IrqLockGuard g(lock_);
    if (!ready_) return;
    // reset() puts every stream map entry back to fault, disables every bank and empties the
    // TLBs; whatever was attached is blocked from here on.
    (void)reset();
    for (Entry& e : entries_) e = Entry{};
    for (Bank& b : banks_) b = Bank{};
    ready_ = false;
}

Status SmmuV2::shutdown() {
    {
        IrqLockGuard g(lock_);
        for (const Entry& e : entries_)
            if (e.used) return Status::busy;
    }
    irqs_.release();  // outside the lock its handler takes
    IrqLockGuard g(lock_);
    if (!ready_) return Status::ok;
    for (const Entry& e : entries_)
        if (e.used) return Status::busy;
    ready_ = false;  // every stream already faults and every bank is off
    return Status::ok;
}

// ---------------------------------------------------------------- TLB syncs

Status SmmuV2::wait_idle(uintptr_t status_reg) {
    syncs_++;
    commands_++;  // the sync register write
    Status st = wait_until(kSyncTimeoutNs, [&] { return !(mmio::read32(status_reg) & tlbstatus::kActive); });
    if (st != Status::ok) sync_timeouts_++;
    return st;
}

Status SmmuV2::sync_global() {
    barrier::before_invalidate();  // invalidations after the table stores they are for
    wr(Gr0::sTLBGSYNC, 0);
    return wait_idle(cfg_.base + static_cast<uint32_t>(Gr0::sTLBGSTATUS));
}

Status SmmuV2::sync_bank(unsigned bank) {
    barrier::before_invalidate();
    wr(bank, Cb::TLBSYNC, 0);
    return wait_idle(bank_base(bank) + static_cast<uint32_t>(Cb::TLBSTATUS));
}

// ---------------------------------------------------------------- streams and banks

Result<iopt::Format> SmmuV2::domain_format(DomainUse use, unsigned ias) const {
    IrqLockGuard g(lock_);
    if (!ready_) return Status::invalid_argument;
    return walker_.format_for(use, ias);
}

unsigned SmmuV2::smrs_in_use() const {
    IrqLockGuard g(lock_);
    unsigned n = 0;
    for (const Entry& e : entries_) n += e.used;
    return n;
}

unsigned SmmuV2::banks_in_use() const {
    IrqLockGuard g(lock_);
    unsigned n = 0;
    for (const Bank& b : banks_) n += b.domain != nullptr;
    return n;
}

int SmmuV2::find_bank(const IoDomain& d) const {
    for (unsigned n = 0; n < min(numcb_, kMaxBanks); n++)
        if (banks_[n].domain && banks_[n].domain_id == d.id()) return static_cast<int>(n);
    return -1;
}

int SmmuV2::bank_of(const IoDomain& d) const {
    IrqLockGuard g(lock_);
    return find_bank(d);
}

// What the hardware and the domain must agree on before anything is written.
Status SmmuV2::check_domain(const IoDomain& d, uint32_t id, uint32_t mask) {
    if (id >> numsidb_ || mask >> numsidb_)
        return why_.set(Status::out_of_range, "stream 0x%x mask 0x%x is wider than the %u stream-id bits ID0.NUMSIDB gives", id,
                    mask, numsidb_);
    const iopt::Format& f = d.format();
    bool s1 = f.id == iopt::FormatId::vmsa_s1;
    unsigned stage = s1 ? 1 : 2, ias = s1 ? s1_ias_ : s2_ias_;
    switch (walker_.check(f)) {
    case Status::ok: break;
    case Status::unsupported:
        if (!iopt::is_vmsa(f.id))
            return why_.set(Status::unsupported, "format %u is not a VMSAv8-64 table, the only kind walked here",
                        static_cast<unsigned>(f.id));
        return why_.set(Status::unsupported, "no stage-%u translation here", stage);
    case Status::out_of_range:
        return why_.set(Status::out_of_range, "a stage-%u domain of %u input and %u output bits exceeds the %u and %u bits here",
                    stage, f.ias, f.oas, ias, caps_.oas);
    default:
        return why_.set(Status::invalid_argument, "the domain's tables are not cleaned, and this SMMU's walks are not coherent");
    }
    if (d.tag() == 0 || d.tag() > kMaxTag)
        return why_.set(Status::no_space, "domain tag %u does not fit an 8-bit VMID / ASID", d.tag());
    return Status::ok;
}

// Stage-2-only banks come first in the bank space: stage 2 takes from the bottom, stage 1 from
// above them, so stage-2 domains use up the banks stage 1 cannot use before the others.
int SmmuV2::alloc_bank(IoDomain& d) {
    unsigned first = d.format().id == iopt::FormatId::vmsa_s1 ? nums2cb_ : 0;
    for (unsigned n = first; n < min(numcb_, kMaxBanks); n++)
        if (!banks_[n].domain) {
            banks_[n] = Bank{&d, 0, d.id()};
            return static_cast<int>(n);
        }
    return -1;
}

// The bank is off (SCTLR.M clear) and nothing routes to it while it is written; M comes last.
void SmmuV2::program_bank(unsigned n, const IoDomain& d) {
    const iopt::Geometry g = iopt::vmsa_geometry(d.format());
    const iopt::VmsaWalkCodes w = iopt::vmsa_walk_codes(d.format());
    uint32_t enable = sctlr::kM | sctlr::kTre | sctlr::kAfe | sctlr::kCfre | sctlr::kCfie;  // CFCFG clear
    barrier::memory_before_mmio();  // the tables are complete (and cleaned) before the SMMU may walk them
    wr(n, Cb::SCTLR, 0);
    wr(Gr1Array::CBA2R, n, cba2r::kVa64);
    if (d.format().id == iopt::FormatId::vmsa_s1) {
        wr(Gr1Array::CBAR, n, static_cast<uint32_t>(cbar::kType.make(cbar::kTypeS1BypassS2) | cbar::kVmid.make(d.tag()) |
                                                    cbar::kBpshcfg.make(cbar::kBpshcfgNsh) | cbar::kMemAttr.make(cbar::kMemAttrWb)));
        wr(n, Cb::TCR2, static_cast<uint32_t>(tcr2::kPaSize.make(g.ps()) | tcr2::kSep.make(tcr2::kSepUpstream)));
        wr(n, Cb::TCR, static_cast<uint32_t>(tcr::kT0sz.make(g.t0sz()) | tcr::kTg0.make(tcr::kTg4k) | tcr::kIrgn0.make(w.irgn) |
                                             tcr::kOrgn0.make(w.orgn) | tcr::kSh0.make(w.sh) | tcr::kEpd1));
        wr(n, Cb::MAIR0, static_cast<uint32_t>(iopt::Stage1::kMair));
        wr(n, Cb::MAIR1, static_cast<uint32_t>(iopt::Stage1::kMair >> 32));
        wr(n, Cb64::TTBR0, ttbr::kBase.make(d.root_pa() >> 4) | ttbr::kAsid.make(d.tag()));
        enable |= sctlr::kAsidpne;
    } else {
        wr(Gr1Array::CBAR, n, static_cast<uint32_t>(cbar::kType.make(cbar::kTypeS2) | cbar::kVmid.make(d.tag())));
        wr(n, Cb::TCR, static_cast<uint32_t>(vtcr::kRes1 | vtcr::kT0sz.make(g.t0sz()) | vtcr::kSl0.make(g.sl0()) |
                                             vtcr::kIrgn0.make(w.irgn) | vtcr::kOrgn0.make(w.orgn) | vtcr::kSh0.make(w.sh) |
                                             vtcr::kTg0.make(tcr::kTg4k) | vtcr::kPs.make(g.ps())));
        wr(n, Cb64::TTBR0, ttbr::kBase.make(d.root_pa() >> 4));
    }
    wr(n, Cb::FSR, fsr::kAll);
    wr(n, Cb::SCTLR, enable);
}

// Nothing routes to the bank any more: turn it off and drop every TLB entry of its VMID (which
// covers the stage-1 entries of the ASID too), so the next domain with this tag starts clean.
Status SmmuV2::release_bank(unsigned n) {
    const IoDomain* d = banks_[n].domain;
    wr(n, Cb::SCTLR, 0);
    wr(Gr0::TLBIVMID, d->tag());
    commands_++;
    banks_[n] = Bank{};
    return sync_global();
}

Status SmmuV2::attach(IoDomain& d, StreamId sid) {
    IrqLockGuard g(lock_);
    if (!ready_) return why_.set(Status::invalid_argument, "not probed");
    if (sid >> 31) return why_.set(Status::invalid_argument, "0x%x is not a stream id and SMR mask", sid);
    uint32_t id = stream_id(sid), mask = stream_mask(sid);
    Status st = check_domain(d, id, mask);
    if (st != Status::ok) return st;
    Entry* slot = nullptr;
    for (unsigned i = 0; i < min(numsmrg_, kMaxSmrs); i++) {
        Entry& e = entries_[i];
        if (e.used && overlap(id, mask, e.id, e.mask))  // a match conflict, whoever owns it
            return why_.set(Status::in_use, "stream 0x%x mask 0x%x overlaps stream 0x%x mask 0x%x of %s", id, mask, e.id, e.mask,
                        e.domain_id == d.id() ? "the same domain" : "another domain");
        if (!e.used && !slot) slot = &e;
    }
    if (!slot) return why_.set(Status::no_space, "all %u stream match entries are in use", min(numsmrg_, kMaxSmrs));
    int bank = find_bank(d);
    bool fresh = bank < 0;
    if (fresh && (bank = alloc_bank(d)) < 0)
        return why_.set(Status::no_space, "no free context bank for a stage-%u domain (%u banks, %u of them stage-2 only)",
                    d.format().id == iopt::FormatId::vmsa_s1 ? 1u : 2u, numcb_, nums2cb_);
    unsigned n = static_cast<unsigned>(bank);
    if (fresh) program_bank(n, d);
    unsigned idx = static_cast<unsigned>(slot - entries_);
    *slot = Entry{true, static_cast<uint16_t>(id), static_cast<uint16_t>(mask), static_cast<uint8_t>(n), &d, d.id()};
    banks_[n].entries++;
    // S2CR before SMR: the entry matches only once it says where to go.
    wr(Gr0Array::S2CR, idx, static_cast<uint32_t>(s2cr::kType.make(s2cr::kTypeTranslate) | s2cr::kCbndx.make(n)));
    wr(Gr0Array::SMR, idx, static_cast<uint32_t>(smr::kValid | smr::kId.make(id) | smr::kMask.make(mask)));
    return Status::ok;
}

Status SmmuV2::detach(IoDomain& d, StreamId sid) {
    IrqLockGuard g(lock_);
    if (!ready_) return Status::invalid_argument;
    uint32_t id = stream_id(sid), mask = stream_mask(sid);
    for (unsigned i = 0; i < min(numsmrg_, kMaxSmrs); i++) {
        Entry& e = entries_[i];
        if (!e.used || e.domain_id != d.id() || e.id != id || e.mask != mask) continue;
        // SMR first: from here on the stream is unmatched and faults (USFCFG), never bypasses.
        wr(Gr0Array::SMR, i, 0);
        wr(Gr0Array::S2CR, i, static_cast<uint32_t>(s2cr::kType.make(s2cr::kTypeFault)));
        unsigned n = e.bank;
        e = Entry{};
        if (--banks_[n].entries) return Status::ok;
        return release_bank(n);
    }
    return Status::not_found;
}

// ---------------------------------------------------------------- invalidation

Status SmmuV2::invalidate_context(unsigned bank, const IoDomain& d) {
    if (d.format().id == iopt::FormatId::vmsa_s1) {
        wr(bank, Cb::TLBIASID, d.tag());
        commands_++;
        return sync_bank(bank);
    }
    wr(Gr0::TLBIVMID, d.tag());
    commands_++;
    return sync_global();
}

// One register write per leaf of 2^granule_shift bytes; the caller syncs the bank once.
void SmmuV2::invalidate_by_address(unsigned bank, const IoDomain& d, uint64_t iova, uint64_t size, unsigned granule_shift,
                                   bool leaf) {
    bool s1 = d.format().id == iopt::FormatId::vmsa_s1;
    Cb64 reg = s1 ? (leaf ? Cb64::TLBIVAL : Cb64::TLBIVA) : (leaf ? Cb64::TLBIIPAS2L : Cb64::TLBIIPAS2);
    uint64_t step = uint64_t{1} << granule_shift;
    for (uint64_t a = align_down(iova, step); a < iova + size; a += step) {
        wr(bank, reg, tlbi::kAddr.make(a >> 12) | (s1 ? tlbi::kAsid.make(d.tag()) : 0));
        commands_++;
    }
}

Status SmmuV2::flush(IoDomain& d, const iopt::Gather& g) {
    IrqLockGuard lk(lock_);
    if (!ready_) return Status::invalid_argument;
    if (g.empty()) return Status::ok;
    int bank = find_bank(d);
    if (bank < 0) return Status::not_found;
    unsigned n = static_cast<unsigned>(bank);
    unsigned shift = g.granule_shift() < 63 ? g.granule_shift() : kPageShift;
    uint64_t leaves = 0;
    for (unsigned i = 0; i < g.range_count(); i++) leaves += (g.range(i).size + (uint64_t{1} << shift) - 1) >> shift;
    if (g.overflowed() || leaves > kMaxByAddress) return invalidate_context(n, d);
    bool leaf = !g.tables_freed();  // freed tables: walk caches must go too
    for (unsigned i = 0; i < g.range_count(); i++) invalidate_by_address(n, d, g.range(i).iova, g.range(i).size, shift, leaf);
    return sync_bank(n);
}

// ---------------------------------------------------------------- faults

void SmmuV2::record_global(FaultLog& log, uint32_t gfsr_value) {
    const FaultName* f = first_fault(kGlobalFaults, gfsr_value);
    FaultRecord r{};
    r.iommu = name_;
    r.stream = static_cast<uint32_t>(gfsynr1::kStreamId.get(rd(Gr0::sGFSYNR1)));
    r.address = rd(Gr0_64::sGFAR);
    r.write = (rd(Gr0::sGFSYNR0) & gfsynr0::kWnr) != 0;
    r.kind = f ? f->kind : FaultKind::other;
    r.raw = gfsr_value;
    r.detail = f ? f->name : "MULTI: lost faults";
    log.record(r);
}

void SmmuV2::record_context(FaultLog& log, unsigned bank, uint32_t fsr_value) {
    const FaultName* f = first_fault(kContextFaults, fsr_value);
    FaultRecord r{};
    r.iommu = name_;
    r.stream = static_cast<uint32_t>(cbfrsynra::kStreamId.get(rd(Gr1Array::CBFRSYNRA, bank)));
    r.address = rd(bank, Cb64::FAR);
    r.write = (rd(bank, Cb::FSYNR0) & fsynr0::kWnr) != 0;
    r.kind = f ? f->kind : FaultKind::other;
    r.raw = fsr_value;
    r.detail = f ? f->name : "MULTI: lost faults";
    log.record(r);
}

// Syndrome first, then write 1 to clear exactly what was read: a fault arriving in between
// stays recorded for the next poll.
unsigned SmmuV2::poll_faults(FaultLog& log) {
    IrqLockGuard g(lock_);
    if (!ready_) return 0;
    unsigned n = 0;
    uint32_t gf = rd(Gr0::sGFSR) & gfsr::kAll;
    if (gf) {
        record_global(log, gf);
        if (gf & gfsr::kMulti) faults_lost_++;
        wr(Gr0::sGFSR, gf);
        n++;
    }
    for (unsigned b = 0; b < numcb_; b++) {
        uint32_t f = rd(b, Cb::FSR) & fsr::kAll;
        if (!f) continue;
        record_context(log, b, f);
        if (f & fsr::kMulti) faults_lost_++;
        wr(b, Cb::FSR, f);
        n++;
    }
    return n;
}

}  // namespace moat
