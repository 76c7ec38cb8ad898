#include "drivers/iommu/smmu_v3.hpp"

#include <string.h>

#include "arch/barrier.hpp"
#include "arch/cache.hpp"
#include "arch/mmio.hpp"
#include "common/discovery.hpp"
#include "common/instances.hpp"
#include "common/lock.hpp"
#include "common/wait.hpp"

namespace moat {

using namespace smmuv3;

namespace {

constexpr uint64_t kRegPages = 0x20000;  // page 0 and page 1
constexpr unsigned kCmdDwords = 2, kEvtDwords = 4;

unsigned oas_bits(uint64_t enc) {
    static constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48, 52};
    return enc < 7 ? kBits[enc] : 48;
}

FaultKind kind_of(uint64_t type) {
    switch (type) {
    case evt::F_TRANSLATION: return FaultKind::translation;
    case evt::F_PERMISSION: return FaultKind::permission;
    case evt::F_ACCESS: return FaultKind::access_flag;
    case evt::F_ADDR_SIZE: return FaultKind::address_size;
    case evt::F_WALK_EABT:
    case evt::F_STE_FETCH:
    case evt::F_CD_FETCH: return FaultKind::walk_abort;
    case evt::C_BAD_STREAMID: return FaultKind::bad_stream;
    case evt::C_BAD_STE:
    case evt::C_BAD_CD:
    case evt::C_BAD_SUBSTREAMID: return FaultKind::bad_config;
    case evt::F_STREAM_DISABLED:
    case evt::F_TRANSL_FORBIDDEN: return FaultKind::stream_disabled;
    case evt::F_TLB_CONFLICT: return FaultKind::tlb_conflict;
    default: return FaultKind::other;
    }
}

const char* event_name(uint64_t type) {
    switch (type) {
    case evt::F_UUT: return "F_UUT";
    case evt::C_BAD_STREAMID: return "C_BAD_STREAMID";
    case evt::F_STE_FETCH: return "F_STE_FETCH";
    case evt::C_BAD_STE: return "C_BAD_STE";
    case evt::F_BAD_ATS_TREQ: return "F_BAD_ATS_TREQ";
    case evt::F_STREAM_DISABLED: return "F_STREAM_DISABLED";
    case evt::F_TRANSL_FORBIDDEN: return "F_TRANSL_FORBIDDEN";
    case evt::C_BAD_SUBSTREAMID: return "C_BAD_SUBSTREAMID";
    case evt::F_CD_FETCH: return "F_CD_FETCH";
    case evt::C_BAD_CD: return "C_BAD_CD";
    case evt::F_WALK_EABT: return "F_WALK_EABT";
    case evt::F_TRANSLATION: return "F_TRANSLATION";
    case evt::F_ADDR_SIZE: return "F_ADDR_SIZE";
    case evt::F_ACCESS: return "F_ACCESS";
    case evt::F_PERMISSION: return "F_PERMISSION";
    case evt::F_TLB_CONFLICT: return "F_TLB_CONFLICT";
    case evt::F_CFG_CONFLICT: return "F_CFG_CONFLICT";
    default: return "unknown event";
    }
}

// Queue pointers: index in the low log2 bits, wrap flag just above.
uint32_t q_idx(uint32_t p, unsigned log2) { return p & ((1u << log2) - 1); }
uint32_t q_wrap(uint32_t p, unsigned log2) { return p & (1u << log2); }
uint32_t q_inc(uint32_t p, unsigned log2) { return (p + 1) & ((2u << log2) - 1); }
bool q_full(uint32_t prod, uint32_t cons, unsigned log2) {
    return q_idx(prod, log2) == q_idx(cons, log2) && q_wrap(prod, log2) != q_wrap(cons, log2);
}

}  // namespace

uint32_t SmmuV3::rd32(Reg32 r) const { return mmio::read32(cfg_.base + static_cast<uint32_t>(r)); }
void SmmuV3::wr32(Reg32 r, uint32_t v) const { mmio::write32(cfg_.base + static_cast<uint32_t>(r), v); }
void SmmuV3::wr64(Reg64 r, uint64_t v) const { mmio::write64(cfg_.base + static_cast<uint32_t>(r), v); }

void SmmuV3::clean(const void* p, size_t n) const {
    if (!coherent_) cache::sync_for_device(p, n);
}

Result<uint64_t> SmmuV3::alloc(size_t pages) {
    if (nallocs_ == sizeof allocs_ / sizeof allocs_[0]) return Status::no_space;
    // Queues and tables must be aligned to their size.
    size_t align = 1;
    while (align < pages) align <<= 1;
    Result<uint64_t> r = pool_.alloc(pages, align);
    if (!r.ok()) return r;
    allocs_[nallocs_++] = Alloc{r.value, pages};
    pages_ += pages;
    clean(pool_.virt(r.value), pages * kPageSize);  // the pool's zeroes must reach memory
    return r;
}

void SmmuV3::free_all() {
    for (unsigned i = 0; i < nallocs_; i++) (void)pool_.free(allocs_[i].pa, allocs_[i].pages);
    nallocs_ = 0;
    pages_ = 0;
    strtab_pa_ = cmdq_pa_ = evtq_pa_ = 0;
    memset(l2_pa_, 0, sizeof l2_pa_);
    memset(ctx_, 0, sizeof ctx_);
}

Status SmmuV3::write_cr0(uint32_t v) {
    wr32(Reg32::CR0, v);
    return wait_until(kTimeoutNs, [&] { return rd32(Reg32::CR0ACK) == v; });
}

Status SmmuV3::probe(const Config& cfg) {
    if (ready_) return why_.set(Status::in_use, "already probed");
    why_.clear();
    cfg_ = cfg;
    // Page 1 holds the event queue pointers.
    if (cfg.size < kRegPages)
        return why_.set(Status::invalid_argument, "reg size 0x%lx does not cover register pages 0 and 1 (0x%lx)", cfg.size, kRegPages);
    uint32_t idr0 = rd32(Reg32::IDR0), idr1 = rd32(Reg32::IDR1), idr3 = rd32(Reg32::IDR3), idr5 = rd32(Reg32::IDR5);
    if (!(idr0 & (idr0::kS1P | idr0::kS2P)))
        return why_.set(Status::unsupported, "no translation stage (IDR0 0x%x: S1P and S2P clear)", idr0);
    if (!(idr0::kTtf.get(idr0) & 2)) return why_.set(Status::unsupported, "no AArch64 tables (IDR0 0x%x: TTF)", idr0);
    if (!(idr5 & idr5::kGran4k)) return why_.set(Status::unsupported, "no 4 KiB granule (IDR5 0x%x: GRAN4K clear)", idr5);
    coherent_ = (idr0 & idr0::kCohacc) != 0;
    ril_ = (idr3 & idr3::kRil) != 0;
    sid_bits_ = static_cast<unsigned>(idr1::kSidSize.get(idr1));
    caps_ = IommuCaps{};
    caps_.stage1 = (idr0 & idr0::kS1P) != 0;
    caps_.stage2 = (idr0 & idr0::kS2P) != 0;
    caps_.oas = min(oas_bits(idr5::kOas.get(idr5)), cfg.cpu_pa_bits);
    caps_.ias = 48;
    caps_.coherent_walk = coherent_;
    caps_.range_invalidation = ril_;
    if (cfg.max_sid >> sid_bits_)
        return why_.set(Status::out_of_range, "stream id 0x%x is wider than the %u bits IDR1.SIDSIZE gives", cfg.max_sid, sid_bits_);
    caps_.max_stream = cfg.max_sid;
    walker_ = VmsaWalker{caps_.stage1, caps_.stage2, iopt::kMinIas, caps_.ias, iopt::kMinIas, caps_.ias, caps_.oas, coherent_};

    // Off while we build: tables and queues are only read once enabled.
    if (write_cr0(0) != Status::ok) return why_.set(Status::timeout, "CR0ACK did not follow CR0 = 0 within %lu ms", kTimeoutNs / 1000000);

    // Stream table: linear when small, two-level when the ids are many (and the SMMU has it).
    unsigned need = 1;
    while ((1u << need) <= cfg.max_sid) need++;
    bool can_2l = idr1::kSidSize.get(idr1) > kSplit && idr0::kStLevel.get(idr0) == 1;
    two_level_ = can_2l && (cfg.force_two_level || need > 10);
    st_log2_ = two_level_ ? max(need, kSplit + 1) : need;
    if (st_log2_ > 16 && two_level_)  // l2_pa_ covers 16 stream-id bits
        return why_.set(Status::unsupported, "%u stream-id bits; this driver's 2-level table covers 16", st_log2_);
    Result<uint64_t> r = Status::no_memory;
    if (two_level_) {
        size_t l1_bytes = (size_t{1} << (st_log2_ - kSplit)) * 8;
        r = alloc((l1_bytes + kPageSize - 1) / kPageSize);  // every L1 descriptor invalid: streams abort
    } else {
        size_t bytes = (size_t{1} << st_log2_) * ste::kDwords * 8;
        r = alloc((bytes + kPageSize - 1) / kPageSize);
        if (r.ok()) {
            auto* st = static_cast<uint64_t*>(pool_.virt(r.value));
            for (size_t i = 0; i < (size_t{1} << st_log2_); i++) st[i * ste::kDwords] = ste::kValid;  // abort
            clean(st, bytes);
        }
    }
    if (!r.ok()) return free_all(), why_.set(r.status, "no pages for the stream table (%s)", to_string(r.status));
    strtab_pa_ = r.value;

    cmdq_log2_ = min(static_cast<unsigned>(idr1::kCmdqs.get(idr1)), 8u);  // 256 commands: one page
    evtq_log2_ = min(static_cast<unsigned>(idr1::kEventqs.get(idr1)), 7u); // 128 events: one page
    Result<uint64_t> cq = alloc(1), eq = alloc(1);
    if (!cq.ok() || !eq.ok()) return free_all(), why_.set(Status::no_memory, "no pages for the command and event queues");
    cmdq_pa_ = cq.value;
    evtq_pa_ = eq.value;

    wr32(Reg32::CR1, cr1::kWbInnerShareable);
    wr32(Reg32::CR2, cr2::kRecInvSid);
    wr64(Reg64::STRTAB_BASE, strtab::kRa | strtab::kAddr.make(strtab_pa_ >> 6));
    wr32(Reg32::STRTAB_BASE_CFG, static_cast<uint32_t>(strtab::kLog2Size.make(st_log2_) |
                                                       strtab::kSplit.make(two_level_ ? kSplit : 0) |
                                                       strtab::kFmt.make(two_level_ ? strtab::kFmt2Level : strtab::kFmtLinear)));
    wr64(Reg64::CMDQ_BASE, queue::kRwa | queue::kAddr.make(cmdq_pa_ >> 5) | queue::kLog2Size.make(cmdq_log2_));
    wr32(Reg32::CMDQ_PROD, 0);
    wr32(Reg32::CMDQ_CONS, 0);
    cmdq_prod_ = 0;
    cmdq_issued_ = 0;
    nerr_ = 0;
    for (uint64_t& b : batch_start1_) b = 0;
    wr64(Reg64::EVENTQ_BASE, queue::kRwa | queue::kAddr.make(evtq_pa_ >> 5) | queue::kLog2Size.make(evtq_log2_));
    wr32(Reg32::EVENTQ_PROD, 0);
    wr32(Reg32::EVENTQ_CONS, 0);
    evtq_ack_ = 0;
    wr32(Reg32::IRQ_CTRL, 0);  // until the queues run; request_irqs() turns the lines on
    // Acknowledge whatever global error an earlier user left behind.
    wr32(Reg32::GERRORN, rd32(Reg32::GERROR));

    ready_ = true;
    Status st = write_cr0(cr0::kCmdqEn);
    // Forget every cached configuration and translation from before us.
    if (st == Status::ok) st = queue_cmd(cmd::kOpcode.make(cmd::kCfgiSteRange), cmd::kRange.make(31));
    if (st == Status::ok) st = queue_cmd(cmd::kOpcode.make(cmd::kTlbiNsnhAll), 0);
    // EL2 entries only exist (and the command is only legal) on an SMMU with IDR0.HYP; sent
    // unconditionally it stopped the queue with CERROR_ILL and failed every probe on such an SMMU
    // (QEMU 7.2 ignores the command, so only the register model showed it).
    if (st == Status::ok && (idr0 & idr0::kHyp)) st = queue_cmd(cmd::kOpcode.make(cmd::kTlbiEl2All), 0);
    if (st == Status::ok) st = sync();
    if (st == Status::ok) st = write_cr0(cr0::kCmdqEn | cr0::kEventqEn);
    if (st == Status::ok) st = write_cr0(cr0::kCmdqEn | cr0::kEventqEn | cr0::kSmmuEn);
    if (st != Status::ok) why_.set(st, "enabling failed: %s (%lu command errors)", to_string(st), cmd_errors_);
    if (st == Status::ok) st = request_irqs();  // a refused line means polling, not failure
    if (st != Status::ok) {
        release_irqs();
        (void)write_cr0(0);
        ready_ = false;
        free_all();
    }
    return st;
}

void SmmuV3::shutdown() {
    if (!ready_) return;
    release_irqs();
    (void)write_cr0(0);
    ready_ = false;
    free_all();
}

// ---------------------------------------------------------------- command queue

Status SmmuV3::queue_cmd(uint64_t dw0, uint64_t dw1) {
    if (!ready_) return Status::invalid_argument;
    LockGuard g(cmdq_lock_);
    return queue_locked(dw0, dw1);
}

// Commands the SMMU has consumed, ever: PROD - CONS is what is outstanding (at most the queue).
uint64_t SmmuV3::consumed_locked() const {
    uint32_t mask = (2u << cmdq_log2_) - 1;
    return cmdq_issued_ - ((cmdq_prod_ - (rd32(Reg32::CMDQ_CONS) & mask)) & mask);
}

Status SmmuV3::queue_locked(uint64_t dw0, uint64_t dw1) {
    // A full queue behind a command error never drains: the waiter acknowledges it (it holds the
    // producer lock, so no sync can), and that command's own sync still finds it in err_at_.
    Status st = wait_until(kTimeoutNs, [&] {
        if ((rd32(Reg32::GERROR) ^ rd32(Reg32::GERRORN)) & gerror::kCmdqErr) (void)handle_cmdq_error();
        return !q_full(cmdq_prod_, rd32(Reg32::CMDQ_CONS), cmdq_log2_);
    });
    if (st != Status::ok) return st;
    auto* q = static_cast<uint64_t*>(pool_.virt(cmdq_pa_));
    uint64_t* e = q + q_idx(cmdq_prod_, cmdq_log2_) * kCmdDwords;
    e[0] = dw0;
    e[1] = dw1;
    clean(e, kCmdDwords * 8);
    barrier::memory_before_mmio();  // the command in memory before the SMMU sees the new PROD
    uint64_t& batch = batch_start1_[arch::cpu_id()];
    if (!batch) batch = cmdq_issued_ + 1;
    cmdq_prod_ = q_inc(cmdq_prod_, cmdq_log2_);
    cmdq_issued_++;
    wr32(Reg32::CMDQ_PROD, cmdq_prod_);
    commands_++;
    return Status::ok;
}

// A command the SMMU refused sits at CONS: replace it with a CMD_SYNC (harmless), then
// acknowledge the error so that the SMMU resumes from there. Where it stood is kept, so that the
// sync of the batch it belongs to fails, on whichever CPU. Called with cmdq_lock_ held.
Status SmmuV3::handle_cmdq_error() {
    uint32_t cons = rd32(Reg32::CMDQ_CONS);
    cmd_errors_++;
    err_at_[nerr_++ % kErrHistory] = consumed_locked();
    auto* q = static_cast<uint64_t*>(pool_.virt(cmdq_pa_));
    uint64_t* e = q + q_idx(cons, cmdq_log2_) * kCmdDwords;
    e[0] = cmd::kOpcode.make(cmd::kSync);
    e[1] = 0;
    clean(e, kCmdDwords * 8);
    barrier::memory_before_mmio();  // the replacement in memory before the SMMU resumes on GERRORN
    uint32_t gerr = rd32(Reg32::GERROR), gerrn = rd32(Reg32::GERRORN);
    wr32(Reg32::GERRORN, (gerrn & ~gerror::kCmdqErr) | (gerr & gerror::kCmdqErr));
    return Status::hw_error;
}

// Waits for this CPU's own CMD_SYNC: position `mine` among all commands ever issued. Other CPUs'
// commands may sit before or after it; the SMMU consumes in order, so when CONS has passed it,
// every command this CPU queued before it has completed. The lock is held per poll, not across.
Status SmmuV3::sync() {
    // With the cmdq-sync line bound, completion also signals it: the wait below still ends on
    // CONS, so a lost interrupt costs nothing, and the line proves the SMMU saw the sync.
    uint64_t first, mine;
    {
        LockGuard g(cmdq_lock_);
        Status st = queue_locked(cmd::kOpcode.make(cmd::kSync) | (sync_irq_ ? cmd::kSyncCs.make(cmd::kSyncCsIrq) : 0), 0);
        uint64_t& batch = batch_start1_[arch::cpu_id()];
        first = batch ? batch - 1 : cmdq_issued_;
        batch = 0;
        if (st != Status::ok) return st;
        mine = cmdq_issued_;  // consumed >= mine: our SYNC (index mine - 1) is done
        syncs_++;
    }
    bool failed = false;
    auto ours = [&](uint64_t at) { return at >= first && at < mine; };
    Status st = wait_until(kTimeoutNs, [&] {
        LockGuard g(cmdq_lock_);
        if ((rd32(Reg32::GERROR) ^ rd32(Reg32::GERRORN)) & gerror::kCmdqErr) (void)handle_cmdq_error();
        return consumed_locked() >= mine;
    });
    {
        LockGuard g(cmdq_lock_);
        unsigned held = nerr_ < kErrHistory ? nerr_ : kErrHistory;
        for (unsigned i = 0; i < held; i++) failed = failed || ours(err_at_[i]);
    }
    if (st != Status::ok) return st;
    return failed ? Status::hw_error : Status::ok;
}

Status SmmuV3::submit_raw(uint64_t dw0, uint64_t dw1, bool wait) {
    Status st = queue_cmd(dw0, dw1);
    return st == Status::ok && wait ? sync() : st;
}

// ---------------------------------------------------------------- stream table

uint64_t* SmmuV3::ste(StreamId sid, bool allocate, Status& st) {
    st = Status::ok;
    if (sid > cfg_.max_sid || (sid >> st_log2_)) {
        st = Status::out_of_range;
        return nullptr;
    }
    if (!two_level_) return static_cast<uint64_t*>(pool_.virt(strtab_pa_)) + size_t{sid} * ste::kDwords;
    unsigned l1 = sid >> kSplit;
    auto* l1t = static_cast<uint64_t*>(pool_.virt(strtab_pa_));
    if (!l2_pa_[l1]) {
        if (!allocate) {
            st = Status::not_found;
            return nullptr;
        }
        size_t bytes = (size_t{1} << kSplit) * ste::kDwords * 8;
        Result<uint64_t> r = alloc(bytes / kPageSize);
        if (!r.ok()) {
            st = r.status;
            return nullptr;
        }
        auto* l2 = static_cast<uint64_t*>(pool_.virt(r.value));
        for (size_t i = 0; i < (size_t{1} << kSplit); i++) l2[i * ste::kDwords] = ste::kValid;  // abort
        clean(l2, bytes);
        barrier::publish_table();  // the level-2 table before the descriptor that links it
        l2_pa_[l1] = r.value;
        __atomic_store_n(&l1t[l1], strtab::kL1Span.make(kSplit + 1) | strtab::kL1L2Ptr.make(r.value >> 6), __ATOMIC_RELAXED);
        clean(&l1t[l1], 8);
        // The SMMU may cache the invalid level-1 descriptor: make it read the new one.
        Status s = queue_cmd(cmd::kOpcode.make(cmd::kCfgiSte) | cmd::kSid.make(sid), 0);
        if (s == Status::ok) s = sync();
        if (s != Status::ok) {
            st = s;
            return nullptr;
        }
    }
    return static_cast<uint64_t*>(pool_.virt(l2_pa_[l1])) + size_t{sid & ((1u << kSplit) - 1)} * ste::kDwords;
}

// The SMMU may read an STE's doublewords in any order and at any time it holds no copy. So:
// dword 0 to abort and make the SMMU drop what it cached; then dwords 1..7, made visible the
// same way; then dword 0 (valid + config) in one store. The caller's CFGI makes that last step
// visible. At no point can a half-written STE translate.
Status SmmuV3::write_ste(StreamId sid, uint64_t* e, const uint64_t (&v)[ste::kDwords]) {
    auto cfgi = [&] {
        Status st = queue_cmd(cmd::kOpcode.make(cmd::kCfgiSte) | cmd::kSid.make(sid), cmd::kLeaf);
        return st == Status::ok ? sync() : st;
    };
    bool was_abort = e[0] == ste::kValid;
    __atomic_store_n(&e[0], ste::kValid, __ATOMIC_RELAXED);
    clean(e, 8);
    Status st = was_abort ? Status::ok : cfgi();
    for (unsigned i = 1; i < ste::kDwords; i++) e[i] = v[i];
    clean(e, ste::kDwords * 8);
    barrier::publish_table();  // dwords 1..7 before the dword 0 that makes them valid
    if (st == Status::ok && v[0] != ste::kValid) st = cfgi();
    __atomic_store_n(&e[0], v[0], __ATOMIC_RELAXED);
    clean(e, 8);
    return st;
}

SmmuV3::Context* SmmuV3::context(IoDomain& d, bool create, Status& st) {
    st = Status::ok;
    Context* free_slot = nullptr;
    for (Context& c : ctx_) {
        if (c.domain_id && c.domain_id == d.id()) return &c;
        if (!c.domain_id && !free_slot) free_slot = &c;
    }
    if (!create) {
        st = Status::not_found;
        return nullptr;
    }
    if (!free_slot) {
        st = Status::no_space;
        return nullptr;
    }
    *free_slot = Context{d.id(), 0, 0};
    return free_slot;
}

Result<iopt::Format> SmmuV3::domain_format(DomainUse use, unsigned ias) const {
    if (!ready_) return Status::invalid_argument;
    return walker_.format_for(use, ias);
}

Status SmmuV3::attach(IoDomain& d, StreamId sid) {
    if (!ready_) return Status::invalid_argument;
    LockGuard cl(cfg_lock_);
    Status st = walker_.check(d.format());  // VMSA only, a stage it has, sizes it takes, cleaned if need be
    if (st != Status::ok) return st;
    const iopt::Geometry g = iopt::vmsa_geometry(d.format());
    const iopt::VmsaWalkCodes w = iopt::vmsa_walk_codes(d.format());
    bool s1 = d.format().id == iopt::FormatId::vmsa_s1;
    uint64_t* e = ste(sid, true, st);
    if (!e) return st;
    Context* c = context(d, true, st);
    if (!c) return st;

    uint64_t v[ste::kDwords] = {};
    if (s1) {
        if (!c->cd_pa) {
            // The CD page is the domain's: charged to its guest's quota like its tables.
            PageQuota* q = d.quota();
            bool charged = !q || q->charge(1);
            Result<uint64_t> r = charged ? alloc(1) : Result<uint64_t>(Status::no_memory);
            if (!r.ok()) {
                if (q && charged) q->uncharge(1);
                if (!c->refs) *c = Context{};
                return r.status;
            }
            c->cd_pa = r.value;
            auto* cdp = static_cast<uint64_t*>(pool_.virt(c->cd_pa));
            cdp[1] = cd::kTtb0.make(d.root_pa() >> 4);
            cdp[3] = iopt::Stage1::kMair;
            cdp[0] = cd::kT0sz.make(g.t0sz()) | cd::kTg0.make(0) | cd::kIr0.make(w.irgn) | cd::kOr0.make(w.orgn) | cd::kSh0.make(w.sh) |
                     cd::kEpd1 | cd::kValid | cd::kIps.make(g.ps()) | cd::kAa64 | cd::kR | cd::kA | cd::kAsid.make(d.tag());
            clean(cdp, cd::kDwords * 8);
        }
        v[0] = ste::kValid | ste::kConfig.make(ste::kCfgS1) | ste::kS1Fmt.make(0) | ste::kS1ContextPtr.make(c->cd_pa >> 6) |
               ste::kS1CDMax.make(0);
        v[1] = ste::kS1Cir.make(1) | ste::kS1Cor.make(1) | ste::kS1Csh.make(3) | ste::kShcfg.make(ste::kShcfgIncoming);
    } else {
        v[0] = ste::kValid | ste::kConfig.make(ste::kCfgS2);
        v[1] = ste::kShcfg.make(ste::kShcfgIncoming);
        v[2] = ste::kS2Vmid.make(d.tag()) | ste::kS2T0sz.make(g.t0sz()) | ste::kS2Sl0.make(g.sl0()) | ste::kS2Ir0.make(w.irgn) |
               ste::kS2Or0.make(w.orgn) | ste::kS2Sh0.make(w.sh) | ste::kS2Tg.make(0) | ste::kS2Ps.make(g.ps()) | ste::kS2Aa64 |
               ste::kS2Ptw | ste::kS2R;
        v[3] = ste::kS2Ttb.make(d.root_pa() >> 4);
    }
    c->refs++;
    st = write_ste(sid, e, v);
    if (st == Status::ok) st = queue_cmd(cmd::kOpcode.make(cmd::kCfgiSte) | cmd::kSid.make(sid), cmd::kLeaf);
    if (st == Status::ok) st = sync();
    if (st != Status::ok) {
        // Unconfirmed (a queue that timed out or reported an error): the caller now treats the
        // stream as unattached and may free the domain's tables, but the SMMU fetches an STE from
        // memory whenever it holds no copy, so it must not keep pointing at them. Back to abort,
        // best effort, and let go of the context (the model test showed DMA going through).
        uint64_t abort[ste::kDwords] = {ste::kValid};
        (void)write_ste(sid, e, abort);
        if (queue_cmd(cmd::kOpcode.make(cmd::kCfgiSte) | cmd::kSid.make(sid), cmd::kLeaf) == Status::ok) (void)sync();
        (void)put_context(d, *c);
    }
    return st;
}

// Drops a stream's reference to its domain's context. The last one leaves: nothing can walk the
// domain through us any more, so its TLB entries go (a later domain with the same tag starts
// clean) and so does its CD.
Status SmmuV3::put_context(IoDomain& d, Context& c) {
    if (--c.refs != 0) return Status::ok;
    Status st = invalidate_domain(d);
    if (c.cd_pa) {
        for (unsigned i = 0; i < nallocs_; i++)
            if (allocs_[i].pa == c.cd_pa) {
                (void)pool_.free(c.cd_pa, 1);
                if (d.quota()) d.quota()->uncharge(1);
                pages_--;
                allocs_[i] = allocs_[--nallocs_];
                break;
            }
    }
    c = Context{};
    return st;
}

Status SmmuV3::detach(IoDomain& d, StreamId sid) {
    LockGuard cl(cfg_lock_);
    Status st;
    uint64_t* e = ste(sid, false, st);
    if (!e) return st;
    Context* c = context(d, false, st);
    if (!c) return st;
    uint64_t v[ste::kDwords] = {ste::kValid};  // abort
    st = write_ste(sid, e, v);
    if (st == Status::ok) st = queue_cmd(cmd::kOpcode.make(cmd::kCfgiSte) | cmd::kSid.make(sid), cmd::kLeaf);
    if (st == Status::ok) st = sync();
    if (st != Status::ok) return st;
    return put_context(d, *c);
}

// Read back from memory, as the SMMU would fetch it: what a stream's DMA walks now.
Status SmmuV3::stream_config(StreamId sid, StreamConfig& out) const {
    out = StreamConfig{};
    if (!ready_) return Status::invalid_argument;
    Status st;
    const uint64_t* e = const_cast<SmmuV3*>(this)->ste(sid, false, st);  // never allocates with false
    if (!e) return st == Status::not_found ? Status::ok : st;              // no level-2 table: aborts
    if (!(e[0] & ste::kValid)) return Status::ok;
    uint64_t config = ste::kConfig.get(e[0]);
    if (config == ste::kCfgS1) {
        const auto* cdp = static_cast<const uint64_t*>(pool_.virt(ste::kS1ContextPtr.get(e[0]) << 6));
        out.translating = true;
        out.tag = static_cast<uint16_t>(cd::kAsid.get(cdp[0]));
        out.root = cd::kTtb0.get(cdp[1]) << 4;
    } else if (config == ste::kCfgS2) {
        out.translating = out.stage2 = true;
        out.tag = static_cast<uint16_t>(ste::kS2Vmid.get(e[2]));
        out.root = ste::kS2Ttb.get(e[3]) << 4;
    }
    return Status::ok;
}

// ---------------------------------------------------------------- invalidation

Status SmmuV3::invalidate_domain(IoDomain& d) {
    Status st = d.format().id == iopt::FormatId::vmsa_s1
                    ? queue_cmd(cmd::kOpcode.make(cmd::kTlbiNhAsid) | cmd::kAsid.make(d.tag()), 0)
                    : queue_cmd(cmd::kOpcode.make(cmd::kTlbiS12Vmall) | cmd::kVmid.make(d.tag()), 0);
    return st == Status::ok ? sync() : st;
}

// Queues the invalidation of [iova, iova + size) without the sync: with range invalidation,
// one command per power-of-two-aligned run (usually one); without, one per leaf.
Status SmmuV3::inval_range_cmds(IoDomain& d, uint64_t iova, uint64_t size, unsigned granule_shift, bool leaf) {
    bool s1 = d.format().id == iopt::FormatId::vmsa_s1;
    uint64_t dw0 = s1 ? cmd::kOpcode.make(cmd::kTlbiNhVa) | cmd::kAsid.make(d.tag())
                      : cmd::kOpcode.make(cmd::kTlbiS2Ipa) | cmd::kVmid.make(d.tag());
    uint64_t leaf_bit = leaf ? cmd::kLeaf : 0;
    if (ril_) {
        uint64_t pages = size >> kPageShift;
        while (pages) {
            unsigned scale = static_cast<unsigned>(__builtin_ctzll(pages));
            if (scale > 31) scale = 31;
            uint64_t num = (pages >> scale) & 31;
            if (num == 0) num = 1;  // only when scale was capped
            Status st = queue_cmd(dw0 | cmd::kNum.make(num - 1) | cmd::kScale.make(scale),
                                  leaf_bit | cmd::kTg.make(cmd::kTg4k) | cmd::kAddr.make(iova >> 12));
            if (st != Status::ok) return st;
            pages -= num << scale;
            iova += (num << scale) << kPageShift;
        }
        return Status::ok;
    }
    uint64_t step = uint64_t{1} << (granule_shift < 63 ? granule_shift : kPageShift);
    for (uint64_t a = iova; a < iova + size; a += step) {
        Status st = queue_cmd(dw0, leaf_bit | cmd::kAddr.make(a >> 12));
        if (st != Status::ok) return st;
    }
    return Status::ok;
}

Status SmmuV3::flush(IoDomain& d, const iopt::Gather& g) {
    if (!ready_) return Status::invalid_argument;
    if (g.empty()) return Status::ok;
    if (g.overflowed()) return invalidate_domain(d);
    bool leaf = !g.tables_freed();  // freed tables: walk caches must go too
    for (unsigned i = 0; i < g.range_count(); i++) {
        Status st = inval_range_cmds(d, g.range(i).iova, g.range(i).size, g.granule_shift(), leaf);
        if (st != Status::ok) return st;
    }
    return sync();
}

// ---------------------------------------------------------------- events and global errors

unsigned SmmuV3::poll_faults(FaultLog& log) { return drain(log, false); }

// Events and global errors. The interrupt handler leaves a command error to the sync() that
// waits for the command: that sync must see it and fail, not find it already acknowledged.
unsigned SmmuV3::drain(FaultLog& log, bool from_irq) {
    if (!ready_) return 0;
    IrqLockGuard g(evt_lock_);
    unsigned n = 0;
    uint32_t gerr = rd32(Reg32::GERROR) ^ rd32(Reg32::GERRORN);
    if ((gerr & gerror::kCmdqErr) && !from_irq) {
        LockGuard cg(cmdq_lock_);
        if ((rd32(Reg32::GERROR) ^ rd32(Reg32::GERRORN)) & gerror::kCmdqErr) (void)handle_cmdq_error();
    }
    if (gerr & ~gerror::kCmdqErr) {
        gerrors_++;
        // Acknowledge: GERRORN takes GERROR's value for the bits we handled.
        wr32(Reg32::GERRORN, rd32(Reg32::GERRORN) ^ (gerr & ~gerror::kCmdqErr));
    }
    uint32_t prod = rd32(Reg32::EVENTQ_PROD), cons = rd32(Reg32::EVENTQ_CONS);
    uint32_t mask = (2u << evtq_log2_) - 1;
    if ((prod & queue::kOvflg) != evtq_ack_) {
        // Events were lost while the queue was full: count it and acknowledge.
        evt_overflows_++;
        evtq_ack_ = prod & queue::kOvflg;
    }
    auto* q = static_cast<uint64_t*>(pool_.virt(evtq_pa_));
    cons &= mask;
    for (unsigned guard = 0; (cons & mask) != (prod & mask) && guard < (2u << evtq_log2_); guard++) {
        const uint64_t* e = q + q_idx(cons, evtq_log2_) * kEvtDwords;
        if (!coherent_) cache::sync_for_cpu(e, kEvtDwords * 8);  // the SMMU wrote it: no stale line may hide it
        uint64_t type = evt::kType.get(e[0]);
        FaultRecord r{};
        r.iommu = cfg_.name;
        r.stream = static_cast<uint32_t>(evt::kSid.get(e[0]));
        r.address = e[2];
        r.kind = kind_of(type);
        r.write = !(e[1] & evt::kRnW);
        r.raw = static_cast<uint32_t>(type);
        r.detail = event_name(type);
        r.stage2 = (e[1] & evt::kS2) != 0;
        r.ipa = r.stage2 ? e[3] & evt::kIpa.mask : 0;
        log.record(r);
        n++;
        cons = q_inc(cons, evtq_log2_);
    }
    wr32(Reg32::EVENTQ_CONS, cons | evtq_ack_);
    return n;
}

// ---------------------------------------------------------------- interrupts

// The event queue and global-error lines, when there is a controller and the tree names them.
// A line the controller refuses fails the probe (said in why()): half-wired interrupts would hide
// faults that polling would have found.
Status SmmuV3::request_irqs() {
    if (!cfg_.irq || !cfg_.faults) return Status::ok;
    dt::Irq lines[3];
    unsigned n = 0;
    uint32_t en = 0;
    if (cfg_.eventq.intid) lines[n++] = cfg_.eventq, en |= irq_ctrl::kEventqIrqen;
    if (cfg_.gerror.intid) lines[n++] = cfg_.gerror, en |= irq_ctrl::kGerrorIrqen;
    if (cfg_.cmdq_sync.intid) lines[n++] = cfg_.cmdq_sync;  // no IRQ_CTRL bit: each CMD_SYNC asks for it
    if (n == 0) return Status::ok;
    // A line the controller refuses leaves this SMMU polling, and describe() says why: the unit
    // still translates, and its faults are still found.
    Why refused;
    if (irqs_on_.request(cfg_.irq, lines, n, &SmmuV3::on_irq, this, refused) != Status::ok) return Status::ok;
    wr32(Reg32::IRQ_CTRL, en);
    if (wait_until(kTimeoutNs, [&] { return rd32(Reg32::IRQ_CTRLACK) == en; }) != Status::ok) {
        wr32(Reg32::IRQ_CTRL, 0);
        irqs_on_.refuse("IRQ_CTRLACK did not follow IRQ_CTRL");
        return Status::ok;
    }
    sync_irq_ = cfg_.cmdq_sync.intid != 0;
    irqs_on_.enable();
    return Status::ok;
}

void SmmuV3::release_irqs() {
    sync_irq_ = false;
    if (!irqs_on_.active()) return;
    wr32(Reg32::IRQ_CTRL, 0);
    (void)wait_until(kTimeoutNs, [&] { return rd32(Reg32::IRQ_CTRLACK) == 0; });
    irqs_on_.release();
}

// Both lines share one handler: it does what a poll does, into the log probe was given.
void SmmuV3::on_irq(void* self) {
    auto* s = static_cast<SmmuV3*>(self);
    (void)s->drain(*s->cfg_.faults, true);
}

// ---------------------------------------------------------------- the driver contract

void SmmuV3::describe(Sink& out) const {
    char mode[128];
    format(out, "enabled: stage 1 %s, stage 2 %s, OAS %u bits, %s walks, %s invalidation, %s stream table (%u ids), "
                "%s, every stream aborts until attached",
           caps_.stage1 ? "yes" : "no", caps_.stage2 ? "yes" : "no", caps_.oas, caps_.coherent_walk ? "coherent" : "non-coherent",
           caps_.range_invalidation ? "range" : "per-page", two_level_ ? "2-level" : "linear", 1u << st_log2_,
           irqs_on_.mode(mode, sizeof mode));
}

// One cell: the stream id, which must fit the stream table probe sized.
Status SmmuV3::xlate(const uint32_t* args, unsigned nargs, StreamId& out, Why& why) const {
    if (nargs != 1) return why.set(Status::bad_dt, "%u cells for a stream of %s; it takes 1 (the stream id)", nargs, cfg_.name);
    if (!ready_) return why.set(Status::not_ready, "%s is not probed", cfg_.name);
    if (args[0] >> st_log2_)
        return why.set(Status::out_of_range, "stream id 0x%x on %s is beyond its stream table (%u ids)", args[0], cfg_.name,
                       1u << st_log2_);
    out = args[0];
    return Status::ok;
}

namespace {

constexpr unsigned kMaxSmmuV3 = 4;
Instances<SmmuV3, kMaxSmmuV3> g_smmu_v3;

// The largest stream id any master's reference to this instance can produce: sizes the stream
// table before PCI is enumerated (an iommu-map range counts whole).
uint32_t max_stream(const Topology& topo, unsigned index) {
    uint32_t m = 0;
    for (unsigned k = 0; k < topo.nmasters; k++)
        for (unsigned r = 0; r < topo.masters[k].nstreams; r++) {
            const StreamRef& ref = topo.masters[k].streams[r];
            if (ref.iommu == index) m = max(m, ref.sid + (ref.count ? ref.count - 1 : 0));
        }
    return m;
}

// The line `interrupt-names` calls `name`, or one with intid 0.
dt::Irq named_irq(const dt::Tree& t, const IommuInfo& io, const char* name) {
    for (unsigned q = 0; q < io.nirqs; q++) {
        const char* n = t.string_at(io.node, "interrupt-names", q);
        if (n && __builtin_strcmp(n, name) == 0) return io.irqs[q];
    }
    return dt::Irq{};
}

Iommu* probe_smmu_v3(ProbeEnv& env, unsigned index, Why& why) {
    const IommuInfo& io = env.topo.iommus[index];
    if (!env.pool) return why.set(Status::no_memory, "no page pool for its stream table and queues"), nullptr;
    if (io.nregs < 1) return why.set(Status::bad_dt, "no reg"), nullptr;
    SmmuV3::Config cfg;
    cfg.base = static_cast<uintptr_t>(io.regs[0].addr);
    cfg.size = io.regs[0].size;
    cfg.name = env.tree.name(io.node);
    // The stream table covers every id a master names, up to what the SMMU has: a reference
    // beyond IDR1.SIDSIZE is that master's problem (xlate refuses it), not the SMMU's.
    unsigned sid_bits = cfg.size >= 0x20000 ? static_cast<unsigned>(idr1::kSidSize.get(mmio::read32(cfg.base + static_cast<uint32_t>(Reg32::IDR1)))) : 0;
    uint32_t hw_max = sid_bits >= 32 ? 0xffffffffu : (uint32_t{1} << sid_bits) - 1;
    cfg.max_sid = min(max_stream(env.topo, index), hw_max);
    cfg.cpu_pa_bits = env.cpu_pa_bits;
    cfg.irq = env.irq;
    cfg.faults = env.faults;
    cfg.eventq = named_irq(env.tree, io, "eventq");
    cfg.gerror = named_irq(env.tree, io, "gerror");
    cfg.cmdq_sync = named_irq(env.tree, io, "cmdq-sync");
    return g_smmu_v3.probe(cfg, "SMMUv3 (kMaxSmmuV3)", why, *env.pool);
}

void release_smmu_v3(Iommu* i) {
    auto* s = static_cast<SmmuV3*>(i);
    s->shutdown();
    g_smmu_v3.release(s);
}

}  // namespace

const DriverOps kSmmuV3Ops = {"smmu_v3", &probe_smmu_v3, &release_smmu_v3, kMaxSmmuV3};

}  // namespace moat
