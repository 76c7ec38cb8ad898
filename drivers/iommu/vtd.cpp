#include "drivers/iommu/vtd.hpp"

#include <string.h>

#include "arch/barrier.hpp"
#include "arch/cache.hpp"
#include "arch/mmio.hpp"
#include "common/discovery.hpp"
#include "common/instances.hpp"
#include "common/iopt/vtd_sl.hpp"
#include "common/wait.hpp"

namespace moat {

using namespace vtd;

namespace {

// The largest output size the engine's geometry names that does not exceed `bits`.
unsigned architected_oas(unsigned bits) {
    static constexpr unsigned kSizes[] = {48, 44, 42, 40, 36, 32};
    for (unsigned s : kSizes)
        if (s <= bits) return s;
    return 0;
}

const char* reason_name(unsigned r) {
    switch (r) {
    case reason::kRootNotPresent: return "root entry not present";
    case reason::kContextNotPresent: return "context entry not present";
    case reason::kContextInvalid: return "invalid context entry";
    case reason::kBeyondMgaw: return "address beyond MGAW";
    case reason::kWrite: return "write not permitted";
    case reason::kRead: return "read not permitted";
    case reason::kPagingEntry: return "paging entry access failed";
    case reason::kRootTable: return "root table access failed";
    case reason::kContextTable: return "context table access failed";
    case reason::kRootReserved: return "root entry reserved bits";
    case reason::kContextReserved: return "context entry reserved bits";
    case reason::kPagingReserved: return "paging entry reserved bits";
    case reason::kTranslationType: return "translation type blocked";
    default: return "other fault reason";
    }
}

}  // namespace

uint32_t Vtd::rd32(Reg32 r) const { return mmio::read32(cfg_.base + static_cast<uint32_t>(r)); }
uint64_t Vtd::rd64(Reg64 r) const { return mmio::read64(cfg_.base + static_cast<uint32_t>(r)); }
void Vtd::wr32(Reg32 r, uint32_t v) const { mmio::write32(cfg_.base + static_cast<uint32_t>(r), v); }
void Vtd::wr64(Reg64 r, uint64_t v) const { mmio::write64(cfg_.base + static_cast<uint32_t>(r), v); }

// ECAP.C clear: the unit reads root, context and PASID tables and the queue from memory, past
// the CPU caches, so each write is flushed (clflush on x86) before the unit may look.
void Vtd::clean(const void* p, size_t n) const {
    if (!coherent_) cache::sync_for_device(p, n);
}

Result<uint64_t> Vtd::alloc(size_t pages) {
    Result<uint64_t> r = pool_.alloc(pages, 1);
    if (!r.ok()) return r;
    pages_ += pages;
    clean(pool_.virt(r.value), pages * kPageSize);  // the pool's zeroes must reach memory
    return r;
}

void Vtd::free_one(uint64_t pa, size_t pages) {
    if (!pa) return;
    if (pool_.free(pa, pages) == Status::ok) pages_ -= pages;
}

void Vtd::free_all() {
    free_one(root_pa_, 1);
    free_one(queue_pa_, 1);
    free_one(status_pa_, 1);
    for (auto& bus : ctx_pa_)
        for (uint64_t& pa : bus) free_one(pa, 1), pa = 0;
    for (Dev& d : devs_)
        if (d.used) free_one(d.pasid_pa, 2);
    root_pa_ = queue_pa_ = status_pa_ = 0;
    memset(devs_, 0, sizeof devs_);
    memset(slots_, 0, sizeof slots_);
}

// ---------------------------------------------------------------- global command

// GCMD takes the enables that are on (read back from GSTS) with one of them changed: writing a
// one-shot bit back, or an enable off by omission, would be a second command.
Status Vtd::set_enable(uint32_t bit, bool on) {
    const uint32_t cur = rd32(Reg32::GSTS) & gcmd::kPersistent;
    wr32(Reg32::GCMD, on ? cur | bit : cur & ~bit);
    return wait_until(kTimeoutNs, [&] { return ((rd32(Reg32::GSTS) & bit) != 0) == on; });
}

// SRTP: done when GSTS.RTPS is set; WBF: done when GSTS.WBFS is clear again.
Status Vtd::one_shot(uint32_t cmd, bool done_when_set) {
    const uint32_t cur = rd32(Reg32::GSTS) & gcmd::kPersistent;
    wr32(Reg32::GCMD, cur | cmd);
    return wait_until(kTimeoutNs, [&] { return ((rd32(Reg32::GSTS) & cmd) != 0) == done_when_set; });
}

Status Vtd::flush_write_buffer() {
    if (!rwbf_) return Status::ok;
    return one_shot(gcmd::kWbf, false);
}

// ---------------------------------------------------------------- probe

Status Vtd::probe(const Config& cfg) {
    if (ready_) return why_.set(Status::in_use, "already probed");
    why_.clear();
    if (cfg.nrmrr > Config::kMaxRmrr) return why_.set(Status::invalid_argument, "%u RMRR entries; moat holds %u", cfg.nrmrr, Config::kMaxRmrr);
    for (unsigned i = 0; i < cfg.nrmrr; i++)
        if (cfg.rmrr[i].limit < cfg.rmrr[i].base)
            return why_.set(Status::invalid_argument, "RMRR %u [0x%lx, 0x%lx] ends before it starts", i, cfg.rmrr[i].base, cfg.rmrr[i].limit);
    cfg_ = cfg;
    ver_ = rd32(Reg32::VER);
    cap_ = rd64(Reg64::CAP);
    ecap_ = rd64(Reg64::ECAP);
    if (ver_ == 0xffffffffu || (cap_ == 0 && ecap_ == 0))
        return why_.set(Status::unsupported, "no remapping unit answers (VER 0x%x, CAP 0x%lx)", ver_, cap_);

    const unsigned sagaw = static_cast<unsigned>(cap::kSagaw.get(cap_));
    has39_ = (sagaw & cap::kSagaw39) != 0;
    has48_ = (sagaw & cap::kSagaw48) != 0;
    mgaw_ = static_cast<unsigned>(cap::kMgaw.get(cap_)) + 1;
    if (!has39_ && !has48_)
        return why_.set(Status::unsupported, "CAP.SAGAW 0x%x offers neither a 3- nor a 4-level table (moat's engine builds those)", sagaw);
    lo_ = has39_ ? iopt::kMinIas : 40;
    hi_ = min(mgaw_, has48_ ? 48u : 39u);
    if (hi_ < lo_) return why_.set(Status::unsupported, "CAP.MGAW %u bits is below the %u bits its SAGAW 0x%x walks", mgaw_, lo_, sagaw);
    const unsigned nd = static_cast<unsigned>(cap::kNd.get(cap_));
    if (nd > 6) return why_.set(Status::unsupported, "CAP.ND %u is reserved", nd);
    ndomains_ = 1u << (4 + 2 * nd);
    oas_ = architected_oas(min(cfg.haw, cfg.cpu_pa_bits));
    if (oas_ == 0) return why_.set(Status::unsupported, "host address width %u bits is below 32", min(cfg.haw, cfg.cpu_pa_bits));
    fro_ = static_cast<uint32_t>(cap::kFro.get(cap_)) * 16;
    nfr_ = static_cast<unsigned>(cap::kNfr.get(cap_)) + 1;
    iro_ = static_cast<uint32_t>(ecap::kIro.get(ecap_)) * 16;
    if (fro_ == 0 || iro_ == 0) return why_.set(Status::unsupported, "CAP.FRO 0x%x or ECAP.IRO 0x%x puts registers over the first page", fro_, iro_);
    coherent_ = (ecap_ & ecap::kC) != 0;
    qi_ = cfg.queued && (ecap_ & ecap::kQi);
    cm_ = (cap_ & cap::kCm) != 0;
    psi_ = (cap_ & cap::kPsi) != 0;
    rwbf_ = (cap_ & cap::kRwbf) != 0;
    mamv_ = static_cast<unsigned>(cap::kMamv.get(cap_));
    const unsigned sllps = static_cast<unsigned>(cap::kSllps.get(cap_));
    opts_ = 0;
    if (sllps & 1) opts_ |= iopt::vtd_opt::k2M;
    if ((sllps & 1) && (sllps & 2)) opts_ |= iopt::vtd_opt::k1G;
    if (ecap_ & ecap::kSc) opts_ |= iopt::vtd_opt::kSnoop;
    // Scalable mode needs the queue (its PASID-cache has no register interface) and second-stage tables.
    scalable_ = cfg.scalable && qi_ && (ecap_ & ecap::kSmts) && (ecap_ & ecap::kSlts);
    walk_coherent_ = scalable_ ? (ecap_ & ecap::kSmpwc) != 0 : coherent_;

    caps_ = IommuCaps{};
    caps_.stage1 = false;
    caps_.stage2 = false;
    caps_.ias = hi_;
    caps_.oas = oas_;
    caps_.coherent_walk = walk_coherent_;
    caps_.range_invalidation = psi_;
    caps_.max_stream = 0xffff;
    caps_.caches_invalid = cm_;

    // Whatever firmware or an earlier user left on goes off first: nothing is cached from before us.
    if ((rd32(Reg32::GSTS) & gcmd::kTe) && set_enable(gcmd::kTe, false) != Status::ok)
        return why_.set(Status::timeout, "GSTS.TES stayed set after clearing GCMD.TE");
    if ((rd32(Reg32::GSTS) & gcmd::kQie) && set_enable(gcmd::kQie, false) != Status::ok)
        return why_.set(Status::timeout, "GSTS.QIES stayed set after clearing GCMD.QIE");
    wr32(Reg32::FECTL, fectl::kIm);  // polled: no fault interrupt
    for (unsigned i = 0; i < nfr_; i++) mmio::write32(cfg_.base + fro_ + i * frcd::kBytes + 12, 1u << 31);  // F is W1C
    wr32(Reg32::FSTS, fsts::kW1c);

    Result<uint64_t> r = alloc(1);
    if (!r.ok()) return why_.set(Status::no_memory, "no page for the root table");
    root_pa_ = r.value;
    if (qi_) {
        Result<uint64_t> q = alloc(1), s = alloc(1);
        if (!q.ok() || !s.ok()) {
            if (q.ok()) queue_pa_ = q.value;
            if (s.ok()) status_pa_ = s.value;
            free_all();
            return why_.set(Status::no_memory, "no pages for the invalidation queue");
        }
        queue_pa_ = q.value;
        status_pa_ = s.value;
        q_shift_ = scalable_ ? 5 : 4;  // 256-bit descriptors in scalable mode
        q_entries_ = static_cast<unsigned>(kPageSize >> q_shift_);
        q_tail_ = 0;
        q_pending_ = 0;
    }

    Status st = Status::ok;
    const char* step = "";
    wr64(Reg64::RTADDR, root_pa_ | rtaddr::kTtm.make(scalable_ ? rtaddr::kScalable : rtaddr::kLegacy));
    st = one_shot(gcmd::kSrtp, true);
    step = "GSTS.RTPS did not follow GCMD.SRTP";
    if (st == Status::ok && qi_) {
        wr64(Reg64::IQT, 0);
        wr64(Reg64::IQA, queue_pa_ | (scalable_ ? qi::kIqaDw : 0) | qi::kIqaQs.make(0));
        st = set_enable(gcmd::kQie, true);
        step = "GSTS.QIES did not follow GCMD.QIE";
    }
    ready_ = st == Status::ok;
    if (st == Status::ok) {
        st = inv_context(ccmd::kGlobal, 0, 0);
        if (st == Status::ok && scalable_) st = inv_pasid(0);
        if (st == Status::ok) st = inv_iotlb(iotlb::kGlobal, 0);
        if (st == Status::ok) st = commit();
        if (st == Status::ok) st = flush_write_buffer();
        step = "the global invalidations did not complete";
    }
    if (st == Status::ok) {
        st = set_enable(gcmd::kTe, true);
        step = "GSTS.TES did not follow GCMD.TE";
    }
    if (st != Status::ok) {
        why_.set(st, "enabling failed: %s (%s)", step, to_string(st));
        ready_ = false;
        (void)set_enable(gcmd::kTe, false);
        if (qi_) (void)set_enable(gcmd::kQie, false);
        free_all();
        return st;
    }
    return Status::ok;
}

void Vtd::shutdown() {
    if (!ready_) return;
    (void)set_enable(gcmd::kTe, false);
    if (qi_) (void)set_enable(gcmd::kQie, false);
    ready_ = false;
    free_all();
}

// ---------------------------------------------------------------- invalidation

Status Vtd::qi_recover() {
    // The unit stopped at the descriptor it refused (IQH points at it): drop what is pending
    // behind it, then acknowledge, so that the next batch starts on an empty queue.
    queue_errors_++;
    const uint64_t head = rd64(Reg64::IQH) & bits(18, 4);
    q_tail_ = static_cast<unsigned>(head >> q_shift_);
    wr64(Reg64::IQT, uint64_t{q_tail_} << q_shift_);
    wr32(Reg32::FSTS, fsts::kIqe | fsts::kIce | fsts::kIte);
    q_pending_ = 0;
    return Status::hw_error;
}

Status Vtd::qi_push(uint64_t lo, uint64_t hi) {
    if (!ready_ || !qi_) return Status::invalid_argument;
    const unsigned next = (q_tail_ + 1) % q_entries_;
    auto head = [&] { return static_cast<unsigned>((rd64(Reg64::IQH) & bits(18, 4)) >> q_shift_); };
    if (next == head()) {
        // Full: let the unit work through what is there, then wait for room (bounded).
        wr64(Reg64::IQT, uint64_t{q_tail_} << q_shift_);
        if (wait_until(kTimeoutNs, [&] { return next != head() || (rd32(Reg32::FSTS) & fsts::kIqe); }) != Status::ok)
            return Status::timeout;
        if (rd32(Reg32::FSTS) & fsts::kIqe) return qi_recover();
    }
    uint64_t* e = table(queue_pa_) + (size_t{q_tail_} << q_shift_) / 8;
    e[0] = lo;
    e[1] = hi;
    if (q_shift_ == 5) e[2] = e[3] = 0;
    clean(e, size_t{1} << q_shift_);
    q_tail_ = next;
    q_pending_++;
    commands_++;
    return Status::ok;
}

// Queued: nothing happens before commit(). Registers: done now, and waited for.
Status Vtd::inv_context(uint64_t gran, uint16_t did, uint16_t sid) {
    ctx_invs_++;
    if (qi_) return qi_push(qi::kType.make(qi::kContext) | qi::kGran.make(gran) | qi::kDid.make(did) | qi::kCtxSid.make(sid), 0);
    barrier::memory_before_mmio();
    wr64(Reg64::CCMD, ccmd::kIcc | ccmd::kCirg.make(gran) | ccmd::kSid.make(sid) | ccmd::kDid.make(did));
    commands_++;
    syncs_++;
    if (wait_until(kTimeoutNs, [&] { return !(rd64(Reg64::CCMD) & ccmd::kIcc); }) != Status::ok) return Status::timeout;
    return ccmd::kCaig.get(rd64(Reg64::CCMD)) ? Status::ok : Status::hw_error;
}

Status Vtd::inv_iotlb(uint64_t gran, uint16_t did, uint64_t addr, unsigned am, bool ih) {
    iotlb_invs_++;
    if (gran == iotlb::kPage) page_invs_++;
    const bool dr = (cap_ & cap::kDrd) != 0, dw = (cap_ & cap::kDwd) != 0;
    if (qi_) {
        uint64_t lo = qi::kType.make(qi::kIotlb) | qi::kGran.make(gran) | qi::kDid.make(did) | (dr ? qi::kIotlbDr : 0) |
                      (dw ? qi::kIotlbDw : 0);
        uint64_t hi = gran == iotlb::kPage ? (addr & qi::kAddr) | (ih ? qi::kIh : 0) | qi::kAm.make(am) : 0;
        return qi_push(lo, hi);
    }
    barrier::memory_before_mmio();
    if (gran == iotlb::kPage) mmio::write64(cfg_.base + iro_, (addr & iotlb::kIvaAddr) | (ih ? iotlb::kIvaIh : 0) | iotlb::kIvaAm.make(am));
    mmio::write64(cfg_.base + iro_ + 8, iotlb::kIvt | iotlb::kIirg.make(gran) | iotlb::kDid.make(did) | (dr ? iotlb::kDr : 0) |
                                           (dw ? iotlb::kDw : 0));
    commands_++;
    syncs_++;
    if (wait_until(kTimeoutNs, [&] { return !(mmio::read64(cfg_.base + iro_ + 8) & iotlb::kIvt); }) != Status::ok) return Status::timeout;
    return iotlb::kIaig.get(mmio::read64(cfg_.base + iro_ + 8)) ? Status::ok : Status::hw_error;
}

// Scalable mode only (queued): the PASID entry of RID_PASID 0 in domain `did` (0 with the global bit: all).
Status Vtd::inv_pasid(uint16_t did) {
    ctx_invs_++;
    const uint64_t gran = did ? qi::kPcPasidSelective : 3;
    return qi_push(qi::kType.make(qi::kPasidCache) | qi::kGran.make(gran) | qi::kDid.make(did) | qi::kPcPasid.make(0), 0);
}

// Ends a batch of queued invalidations with a wait descriptor and polls its status write.
Status Vtd::commit() {
    if (!qi_ || q_pending_ == 0) return Status::ok;
    auto* status = reinterpret_cast<volatile uint32_t*>(table(status_pa_));
    *status = 0;
    clean(table(status_pa_), 4);
    const uint32_t seq = ++q_seq_ ? q_seq_ : ++q_seq_;  // never 0, the value before the write
    Status st = qi_push(qi::kType.make(qi::kWait) | qi::kWaitSw | qi::kWaitFn | qi::kWaitData.make(seq), status_pa_ & qi::kWaitAddr);
    if (st != Status::ok) return st;
    barrier::memory_before_mmio();  // descriptors in memory before the unit sees the new tail
    wr64(Reg64::IQT, uint64_t{q_tail_} << q_shift_);
    syncs_++;
    q_pending_ = 0;
    bool error = false;
    st = wait_until(kTimeoutNs, [&] {
        if (rd32(Reg32::FSTS) & (fsts::kIqe | fsts::kIte | fsts::kIce)) return error = true;
        if (!coherent_) cache::sync_for_cpu(table(status_pa_), 4);
        return *status == seq;
    });
    if (error) return qi_recover();
    return st;
}

// ---------------------------------------------------------------- tables

Vtd::Dev* Vtd::dev_for(uint16_t bdf) {
    for (Dev& d : devs_)
        if (d.used && d.bdf == bdf) return &d;
    return nullptr;
}

Vtd::Slot* Vtd::slot_for(IoDomain& d, bool create, Status& st) {
    st = Status::ok;
    Slot* free_slot = nullptr;
    for (Slot& s : slots_) {
        if (s.domain_id && s.domain_id == d.id()) return &s;
        if (!s.domain_id && !free_slot) free_slot = &s;
    }
    if (!create) return st = Status::not_found, nullptr;
    if (!free_slot) return st = Status::no_space, nullptr;
    // The lowest domain id no slot holds; 0 is never handed out (caching mode tags not-present
    // entries with it).
    for (unsigned did = 1; did < ndomains_; did++) {
        bool taken = false;
        for (const Slot& s : slots_) taken = taken || (s.domain_id && s.did == did);
        if (!taken) {
            *free_slot = Slot{d.id(), static_cast<uint16_t>(did), 0};
            return free_slot;
        }
    }
    st = Status::no_space;
    return nullptr;
}

// The context entry of `bdf`, allocating its bus's context table (and linking it in the root
// table) when asked. Legacy: 16-byte entries, 256 per bus; scalable: 32-byte ones, 128 per half.
Result<uint64_t*> Vtd::context_entry(uint16_t bdf, bool allocate) {
    const unsigned bus = bdf >> 8, devfn = bdf & 0xff;
    const unsigned half = scalable_ ? devfn >> 7 : 0;
    uint64_t& pa = ctx_pa_[bus][half];
    if (!pa) {
        if (!allocate) return Status::not_found;
        Result<uint64_t> r = alloc(1);
        if (!r.ok()) return r.status;
        pa = r.value;
        uint64_t* re = table(root_pa_) + 2 * bus + half;  // scalable: the high qword holds UP/UCTP
        barrier::publish_table();
        __atomic_store_n(re, pa | root::kPresent, __ATOMIC_RELAXED);
        clean(re, 8);
    }
    const size_t index = scalable_ ? (devfn & 0x7f) * (smctx::kBytes / 8) : devfn * 2u;
    return table(pa) + index;
}

Status Vtd::check_format(const iopt::Format& f) const {
    if (f.id != iopt::FormatId::vtd_sl) return Status::unsupported;
    if (f.ias < lo_ || f.ias > hi_ || f.oas > oas_) return Status::out_of_range;
    const unsigned levels = iopt::vtd_levels(f);
    if ((levels == 3 && !has39_) || (levels == 4 && !has48_) || levels < 3 || levels > 4) return Status::unsupported;
    if (f.options & ~opts_) return Status::unsupported;  // superpages or SNP this unit treats as reserved
    if (f.coherent_walk && !walk_coherent_) return Status::invalid_argument;  // its tables would not be flushed
    return Status::ok;
}

Result<iopt::Format> Vtd::domain_format(DomainUse use, unsigned ias) const {
    if (!ready_) return Status::invalid_argument;
    if (use == DomainUse::guest_p2m) return Status::unsupported;  // an x86 guest's P2M is EPT: not here
    Result<unsigned> bits = fit_ias(use, ias, lo_, hi_);
    if (!bits.ok()) return bits.status;
    return iopt::vtd_sl(bits.value, oas_, walk_coherent_, opts_);
}

Status Vtd::attach(IoDomain& d, StreamId sid) {
    if (!ready_) return Status::invalid_argument;
    if (sid > 0xffff) return Status::out_of_range;
    Status st = check_format(d.format());
    if (st != Status::ok) return st;
    const uint16_t bdf = static_cast<uint16_t>(sid);
    if (dev_for(bdf)) return Status::in_use;
    Dev* dev = nullptr;
    for (Dev& x : devs_)
        if (!x.used) {
            dev = &x;
            break;
        }
    if (!dev) return Status::no_space;
    Slot* s = slot_for(d, true, st);
    if (!s) return st;
    auto drop_slot = [&] {
        if (s->refs == 0) *s = Slot{};
    };
    Result<uint64_t*> ce = context_entry(bdf, true);
    if (!ce.ok()) return drop_slot(), ce.status;
    uint64_t* e = ce.value;
    const uint64_t aw = iopt::vtd_aw(d.format());
    *dev = Dev{true, false, bdf, static_cast<unsigned>(s - slots_), &d, 0};
    if (scalable_) {
        Result<uint64_t> r = alloc(2);
        if (!r.ok()) return *dev = Dev{}, drop_slot(), r.status;
        dev->pasid_pa = r.value;
        uint64_t* dir = table(r.value);
        uint64_t* pe = table(r.value + kPageSize);  // PASID 0: the table's first 64-byte entry
        pe[1] = pasid::kDid.make(s->did) | (walk_coherent_ ? pasid::kPwsnp : 0);
        pe[0] = (d.root_pa() & pasid::kSsptptr) | pasid::kPgtt.make(pasid::kPgttSecond) | pasid::kAw.make(aw) | pasid::kPresent;
        clean(pe, pasid::kBytes);
        dir[0] = (r.value + kPageSize) | pasid_dir::kPresent;
        clean(dir, 8);
        e[1] = smctx::kRidPasid.make(0);
        e[2] = e[3] = 0;
        clean(e, smctx::kBytes);
        barrier::publish_table();  // everything below before the entry that makes it reachable
        __atomic_store_n(&e[0], r.value | smctx::kPdts.make(0) | smctx::kPresent, __ATOMIC_RELAXED);
        clean(e, 8);
    } else {
        e[1] = ctx::kAw.make(aw) | ctx::kDid.make(s->did);
        clean(&e[1], 8);
        barrier::publish_table();
        __atomic_store_n(&e[0], (d.root_pa() & ctx::kSlptptr) | ctx::kTt.make(0) | ctx::kPresent, __ATOMIC_RELAXED);
        clean(e, 8);
    }
    s->refs++;
    // Not present -> present: only a unit in caching mode may hold the old (not-present) entry,
    // tagged with domain id 0; the new domain's id may hold nothing yet either.
    if (cm_) {
        st = inv_context(ccmd::kDevice, 0, bdf);
        if (st == Status::ok && scalable_) st = inv_pasid(s->did);
        if (st == Status::ok) st = inv_iotlb(iotlb::kDomain, s->did);
        if (st == Status::ok) st = commit();
    } else {
        st = flush_write_buffer();
    }
    if (st != Status::ok) {
        // The caller treats the stream as unattached and may free the tables: the unit must not
        // keep reaching them. Back to not present, best effort, and let go.
        (void)detach(d, sid);
        return st;
    }
    return Status::ok;
}

Status Vtd::detach(IoDomain& d, StreamId sid) {
    if (!ready_) return Status::invalid_argument;
    if (sid > 0xffff) return Status::out_of_range;
    Dev* dev = dev_for(static_cast<uint16_t>(sid));
    if (!dev || dev->stuck) return Status::not_found;
    Slot& s = slots_[dev->slot];
    if (s.domain_id != d.id()) return Status::not_found;
    Result<uint64_t*> ce = context_entry(dev->bdf, false);
    if (!ce.ok()) return ce.status;
    uint64_t* e = ce.value;
    __atomic_store_n(&e[0], uint64_t{0}, __ATOMIC_RELAXED);  // not present: the device is blocked again
    clean(e, 8);
    barrier::publish_table();
    e[1] = 0;
    clean(&e[1], 8);
    Status st = inv_context(ccmd::kDevice, s.did, dev->bdf);
    if (st == Status::ok && scalable_) st = inv_pasid(s.did);
    if (st == Status::ok) st = inv_iotlb(iotlb::kDomain, s.did);
    if (st == Status::ok) st = commit();
    dev->domain = nullptr;
    if (st != Status::ok) {
        // Unconfirmed: the unit may still walk the old configuration. Its PASID pages and the
        // domain id stay taken for good (IoDomain quarantines the domain and the stream).
        dev->stuck = true;
        return st;
    }
    if (dev->pasid_pa) free_one(dev->pasid_pa, 2);
    *dev = Dev{};
    if (--s.refs == 0) s = Slot{};  // its IOTLB entries went with the domain-selective invalidation
    return Status::ok;
}

// One IOTLB invalidation per gathered range: page-selective with the smallest naturally aligned
// power-of-two block that covers it (AM), when the unit has PSI and that block is within MAMV;
// otherwise (and after a Gather overflow) one domain-selective invalidation. IH says whether
// paging-structure caches may be kept (nothing but leaves changed).
Status Vtd::flush(IoDomain& d, const iopt::Gather& g) {
    if (!ready_) return Status::invalid_argument;
    if (g.empty()) return Status::ok;
    Status st;
    Slot* s = slot_for(d, false, st);
    if (!s) return Status::ok;  // not attached here: nothing of it can be cached
    Status r = flush_write_buffer();
    if (r != Status::ok) return r;
    const bool ih = !g.tables_freed();
    bool domain = !psi_ || g.overflowed();
    for (unsigned i = 0; !domain && i < g.range_count(); i++) {
        const uint64_t first = g.range(i).iova >> kPageShift, last = (g.range(i).end() - 1) >> kPageShift;
        const uint64_t diff = first ^ last;
        const unsigned am = diff ? 64u - static_cast<unsigned>(__builtin_clzll(diff)) : 0u;
        if (am > mamv_) {
            domain = true;
            break;
        }
    }
    if (domain) {
        r = inv_iotlb(iotlb::kDomain, s->did);
    } else {
        for (unsigned i = 0; r == Status::ok && i < g.range_count(); i++) {
            const uint64_t first = g.range(i).iova >> kPageShift, last = (g.range(i).end() - 1) >> kPageShift;
            const uint64_t diff = first ^ last;
            const unsigned am = diff ? 64u - static_cast<unsigned>(__builtin_clzll(diff)) : 0u;
            r = inv_iotlb(iotlb::kPage, s->did, (first & ~((uint64_t{1} << am) - 1)) << kPageShift, am, ih);
        }
    }
    if (r == Status::ok) r = commit();
    return r;
}

// ---------------------------------------------------------------- faults

// Polled (FECTL.IM set): every fault recording register with F set, from FSTS.FRI on, once
// round; each is decoded, cleared (F is write-1-to-clear), then FSTS's overflow and error bits.
// VT-d reports an absent leaf and a forbidden access alike (reason 5 write / 6 read): the
// stream's domain tells them apart (nothing mapped there: translation; mapped: permission).
unsigned Vtd::poll_faults(FaultLog& log) {
    if (!ready_) return 0;
    unsigned n = 0;
    const uint32_t fs = rd32(Reg32::FSTS);
    const unsigned first = static_cast<unsigned>(fsts::kFri.get(fs)) % nfr_;
    for (unsigned k = 0; k < nfr_; k++) {
        const uint32_t off = fro_ + ((first + k) % nfr_) * frcd::kBytes;
        const uint64_t hi = mmio::read64(cfg_.base + off + 8);
        if (!(hi & frcd::kF)) continue;
        const uint64_t lo = mmio::read64(cfg_.base + off);
        mmio::write32(cfg_.base + off + 12, 1u << 31);  // F
        const unsigned why = static_cast<unsigned>(frcd::kFr.get(hi));
        FaultRecord r{};
        r.iommu = cfg_.name;
        r.stream = static_cast<uint32_t>(frcd::kSid.get(hi));
        r.address = lo & frcd::kFi;
        r.write = !(hi & frcd::kT);
        r.raw = why;
        r.detail = reason_name(why);
        switch (why) {
        case reason::kRootNotPresent:
        case reason::kContextNotPresent: r.kind = FaultKind::stream_disabled; break;
        case reason::kBeyondMgaw: r.kind = FaultKind::address_size; break;
        case reason::kWrite:
        case reason::kRead: {
            Dev* dev = dev_for(static_cast<uint16_t>(r.stream));
            if (!dev || !dev->domain) r.kind = FaultKind::stream_disabled;
            else r.kind = dev->domain->lookup(r.address).ok() ? FaultKind::permission : FaultKind::translation;
            break;
        }
        case reason::kPagingEntry:
        case reason::kRootTable:
        case reason::kContextTable: r.kind = FaultKind::walk_abort; break;
        case reason::kContextInvalid:
        case reason::kRootReserved:
        case reason::kContextReserved:
        case reason::kPagingReserved:
        case reason::kTranslationType: r.kind = FaultKind::bad_config; break;
        default: r.kind = FaultKind::other; break;
        }
        log.record(r);
        n++;
    }
    // Faults that found every record full were dropped by the unit: count, acknowledge.
    if (fs & fsts::kPfo) overflows_++;
    wr32(Reg32::FSTS, fs & (fsts::kPfo | fsts::kAfo | fsts::kApf));
    return n;
}

// ---------------------------------------------------------------- the driver contract

void Vtd::describe(Sink& out) const {
    format(out, "enabled: VT-d %u.%u, %s mode, %s%s%s tables (SAGAW %s%s, MGAW %u), %u domain ids, caching mode %s, "
                "%s walks, %s invalidation%s, superpages%s%s, snoop control %s, pass-through %s (unused), "
                "faults polled, every device blocked until attached",
           (ver_ >> 4) & 0xf, ver_ & 0xf, scalable_ ? "scalable" : "legacy", has39_ ? "3-level" : "", has39_ && has48_ ? "/" : "",
           has48_ ? "4-level" : "", has39_ ? "39" : "", has48_ ? " 48" : "", mgaw_, ndomains_, cm_ ? "on" : "off",
           walk_coherent_ ? "coherent" : "non-coherent (flushed)", qi_ ? "queued" : "register",
           psi_ ? ", page-selective" : ", domain-selective", (opts_ & iopt::vtd_opt::k2M) ? " 2M" : " none",
           (opts_ & iopt::vtd_opt::k1G) ? " 1G" : "", (opts_ & iopt::vtd_opt::kSnoop) ? "yes" : "no",
           (ecap_ & ecap::kPt) ? "available" : "absent");
}

// The RMRRs that name this requester id, as regions every domain of the stream maps 1:1.
unsigned Vtd::reserved_regions(StreamId sid, ReservedRegion* out, unsigned max) const {
    unsigned n = 0;
    for (unsigned i = 0; i < cfg_.nrmrr && n < max; i++) {
        const Config::Rmrr& r = cfg_.rmrr[i];
        if (r.bdf == sid) out[n++] = ReservedRegion{r.base, r.limit - r.base + 1};
    }
    return n;
}

// One cell: the requester id (bus << 8 | device << 3 | function).
Status Vtd::xlate(const uint32_t* args, unsigned nargs, StreamId& out, Why& why) const {
    if (nargs != 1) return why.set(Status::bad_dt, "%u cells for a device of %s; it takes 1 (the requester id)", nargs, cfg_.name);
    if (args[0] > 0xffff) return why.set(Status::out_of_range, "requester id 0x%x on %s is wider than 16 bits", args[0], cfg_.name);
    out = args[0];
    return Status::ok;
}

namespace {
constexpr unsigned kMaxVtd = 4;
Instances<Vtd, kMaxVtd> g_vtd;

Iommu* probe_from_tree(ProbeEnv& env, unsigned index, Why& why) {
    const IommuInfo& io = env.topo.iommus[index];
    if (!env.pool) return why.set(Status::no_memory, "no page pool for its root table and queue"), nullptr;
    if (io.nregs < 1) return why.set(Status::bad_dt, "no reg"), nullptr;
    if (io.regs[0].size < kPageSize)
        return why.set(Status::bad_dt, "reg size 0x%lx does not cover the 4 KiB register page", io.regs[0].size), nullptr;
    Vtd::Config cfg;
    cfg.base = static_cast<uintptr_t>(io.regs[0].addr);
    cfg.name = env.tree.name(io.node);
    cfg.cpu_pa_bits = env.cpu_pa_bits;
    cfg.haw = env.cpu_pa_bits;
    uint32_t haw = 0;
    if (env.tree.has(io.node, kVtdHawProperty)) {
        if (env.tree.u32(io.node, kVtdHawProperty, haw) != Status::ok || haw < 32 || haw > 64)
            return why.set(Status::bad_dt, "%s is not a width of 32..64 bits", kVtdHawProperty), nullptr;
        cfg.haw = haw;
    }
    int len = 0;
    if (const void* raw = env.tree.prop(io.node, kVtdRmrrProperty, &len)) {
        const unsigned bytes = len > 0 ? static_cast<unsigned>(len) : 0u, cells = bytes / 4;
        if (bytes == 0 || bytes % (4 * kVtdRmrrCells) != 0)
            return why.set(Status::bad_dt, "%s is %u bytes, not a list of %u-cell entries", kVtdRmrrProperty, bytes, kVtdRmrrCells), nullptr;
        if (cells / kVtdRmrrCells > Vtd::Config::kMaxRmrr)
            return why.set(Status::no_space, "%s has %u entries; moat holds %u", kVtdRmrrProperty, cells / kVtdRmrrCells,
                           Vtd::Config::kMaxRmrr), nullptr;
        for (unsigned i = 0; i < cells / kVtdRmrrCells; i++) {
            const unsigned e = i * kVtdRmrrCells;
            Vtd::Config::Rmrr r;
            r.base = uint64_t{dt::be32(raw, e)} << 32 | dt::be32(raw, e + 1);
            r.limit = uint64_t{dt::be32(raw, e + 2)} << 32 | dt::be32(raw, e + 3);
            const uint32_t bdf = dt::be32(raw, e + 4);
            if (r.limit < r.base || (r.base & (kPageSize - 1)) || ((r.limit + 1) & (kPageSize - 1)) || bdf > 0xffff)
                return why.set(Status::bad_dt, "%s entry %u [0x%lx, 0x%lx] for requester 0x%x is not a page-aligned range of a 16-bit requester",
                               kVtdRmrrProperty, i, r.base, r.limit, bdf), nullptr;
            r.bdf = static_cast<uint16_t>(bdf);
            cfg.rmrr[cfg.nrmrr++] = r;
        }
    }
    return vtd_probe(*env.pool, cfg, why);
}

void release_from_tree(Iommu* i) { vtd_release(static_cast<Vtd*>(i)); }

}  // namespace

Vtd* vtd_probe(PagePool& pool, const Vtd::Config& cfg, Why& why) { return g_vtd.probe(cfg, "VT-d (kMaxVtd)", why, pool); }

void vtd_release(Vtd* v) {
    if (!v) return;
    v->shutdown();
    g_vtd.release(v);
}

const DriverOps kVtdOps = {"vtd", &probe_from_tree, &release_from_tree, kMaxVtd};

}  // namespace moat
