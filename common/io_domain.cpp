#include "common/io_domain.hpp"

#include "arch/barrier.hpp"
#include "common/lock.hpp"

namespace moat {

namespace {

constexpr unsigned kMaxDomains = IoDomain::kMaxDomains;
constexpr unsigned kMaxStreams = 256;     // attached (iommu, stream) pairs in the whole system

// An entry is in use when domain_id is set; domain is nullptr for a stream the quarantine holds.
struct StreamOwner {
    const Iommu* iommu;
    StreamId sid;
    uint64_t domain_id;
    IoDomain* domain;
};

Spinlock g_lock;
bool g_tag_used[kMaxDomains + 1];
StreamOwner g_owners[kMaxStreams];
uint64_t g_last_id;
IoDomain::Quarantine g_quarantine;

StreamOwner* find_owner(const Iommu& iommu, StreamId sid) {
    for (StreamOwner& o : g_owners)
        if (o.domain_id && o.iommu == &iommu && o.sid == sid) return &o;
    return nullptr;
}

}  // namespace

IoDomain::IoDomain(PagePool& pool, const iopt::Format& format, PageQuota* quota) : format_(format), quota_(quota) {
    if (slot_.build(pool, format, quota) == Status::ok) table_ = slot_.get();
}

IoDomain::~IoDomain() { (void)destroy(); }

uint64_t IoDomain::root_pa() const { return table_ ? table_->root_pa() : 0; }
uint64_t IoDomain::pgsize_bitmap() const { return table_ ? table_->pgsize_bitmap() : 0; }

Status IoDomain::init() {
    LockGuard dl(lock_);
    if (!table_) return Status::unsupported;  // no engine builds this format
    if (tag_) return Status::in_use;
    {
        LockGuard g(g_lock);
        for (unsigned t = 1; t <= kMaxDomains && !tag_; t++)
            if (!g_tag_used[t]) {
                g_tag_used[t] = true;
                tag_ = static_cast<uint16_t>(t);
            }
        if (tag_) id_ = ++g_last_id;
    }
    if (!tag_) return Status::no_space;
    Status st = table_->init();
    if (st != Status::ok) {
        LockGuard g(g_lock);
        g_tag_used[tag_] = false;
        tag_ = 0;
    }
    return st;
}

Status IoDomain::destroy() {
    LockGuard dl(lock_);
    if (!tag_) return Status::ok;
    Status first = Status::ok;
    uint64_t held = 0;
    while (nattached_) {
        Attachment a = attached_[--nattached_];
        Status st = a.iommu->detach(*this, a.sid);
        LockGuard g(g_lock);
        StreamOwner* o = find_owner(*a.iommu, a.sid);
        if (st == Status::ok) {
            if (o) *o = StreamOwner{};
            continue;
        }
        // Not confirmed: the IOMMU may still translate this stream through our tables. The entry
        // stays, owned by nobody, so no domain can ever attach the stream again.
        if (o) o->domain = nullptr;
        held++;
        if (first == Status::ok) first = st;
    }
    // The CPU may still cache this P2M's translations under its tag (the VMID a guest ran with):
    // all of them go before the tag can name another domain's table.
    if (first == Status::ok && cpu_.flush) {
        iopt::Gather all;
        all.add(0, uint64_t{1} << 48, kPageShift, true);
        first = cpu_.flush(cpu_.ctx, *this, all);
        cpu_flushes_++;
    }
    LockGuard g(g_lock);
    if (first == Status::ok) {
        table_->destroy();
        g_tag_used[tag_] = false;
    } else {
        // Tables, tag and the drivers' slots (keyed by id_) are kept for good; the pages stay
        // charged to the guest's quota. table_ is forgotten, not destroyed.
        g_quarantine.domains++;
        g_quarantine.streams += held;
        g_quarantine.pages += table_->pages();
    }
    tag_ = 0;
    table_ = nullptr;
    return first;
}

IoDomain::Quarantine IoDomain::quarantine() {
    LockGuard g(g_lock);
    return g_quarantine;
}

bool IoDomain::stream_quarantined(const Iommu& iommu, StreamId sid) {
    LockGuard g(g_lock);
    StreamOwner* o = find_owner(iommu, sid);
    return o && !o->domain;
}

// The one invalidation path: the CPU's stage 2 where it walks this table, then each distinct IOMMU
// the domain is attached through, once.
Status IoDomain::flush_iommus(const iopt::Gather& g) {
    Status first = Status::ok;
    if (cpu_.flush) {
        first = cpu_.flush(cpu_.ctx, *this, g);
        cpu_flushes_++;
    }
    for (unsigned i = 0; i < nattached_; i++) {
        bool seen = false;
        for (unsigned k = 0; k < i; k++) seen = seen || attached_[k].iommu == attached_[i].iommu;
        if (seen) continue;
        Status st = attached_[i].iommu->flush(*this, g);
        flushes_++;
        if (st != Status::ok && first == Status::ok) first = st;
    }
    return first;
}

// Break-before-make inside the engine: the range, as a gather of its own, down the same path as
// the end-of-call flush. Walk caches too: the break may have been of a table entry (parked empty
// tables making room for a block), not only of a block.
Status IoDomain::invalidate_now(void* ctx, uint64_t iova, uint64_t size, unsigned granule_shift) {
    iopt::Gather one;
    one.add(iova, size, granule_shift, true);
    one.mark_tables_freed();
    return static_cast<IoDomain*>(ctx)->flush_iommus(one);
}

// Pool pressure: the tables this domain's engine holds for reuse go back, with the invalidation
// they need (parked tables are still linked: unlinked, flushed, released; then the cache is
// trimmed). Under the domain's lock, so the order stays domain -> driver -> pool. Returns whether
// any page went back.
bool IoDomain::reclaim_locked() {
    const uint64_t before = table_->pages();
    iopt::Gather g(iopt::InvalidateHook{&IoDomain::invalidate_now, this});
    if (table_->unlink_parked(g) && finish(g) != Status::ok) return table_->pages() < before;
    table_->trim();
    reclaims_++;
    return table_->pages() < before;
}

// End of a call. Unlinked table pages go back only once every walker has been told to forget
// them. If an invalidation failed, now or in the middle of the call, a walker may still hold them:
// they stay out of the pool for good (counted) rather than come back as someone else's memory.
Status IoDomain::finish(iopt::Gather& g) {
    Status first = g.immediate_status();
    if (!g.empty()) {
        // The engine ends a call without a fence: this one puts every table store of the call
        // before the first invalidation any driver issues (a TLBI register, a queue command).
        barrier::before_invalidate();
        Status st = flush_iommus(g);
        if (first == Status::ok) first = st;
    }
    if (first == Status::ok) table_->release(g);
    else quarantined_ += g.pending_pages();
    return first;
}

Progress IoDomain::map(uint64_t iova, uint64_t pa, uint64_t size, const iopt::Prot& prot, uint64_t pgsize) {
    LockGuard dl(lock_);
    return map_locked(iova, pa, size, prot, pgsize);
}

// A map that runs out of pages first gets back what its own table holds for reuse, then goes on
// from where it stopped (what it mapped stays mapped either way).
Progress IoDomain::map_locked(uint64_t iova, uint64_t pa, uint64_t size, const iopt::Prot& prot, uint64_t pgsize) {
    Progress p = map_once(iova, pa, size, prot, pgsize);
    if (p.status != Status::no_memory || !reclaim_locked()) return p;
    const uint64_t done = p.bytes_done;
    p = map_once(iova + done, pa + done, size - done, prot, pgsize);
    p.bytes_done += done;
    return p;
}

Progress IoDomain::map_once(uint64_t iova, uint64_t pa, uint64_t size, const iopt::Prot& prot, uint64_t pgsize) {
    if (!tag_) return {0, Status::invalid_argument};
    iopt::Gather g(iopt::InvalidateHook{&IoDomain::invalidate_now, this});
    Progress p = table_->map(iova, pa, size, prot, g, pgsize);
    // A map only writes entries that were invalid; walkers of the Arm IOMMUs do not cache invalid
    // entries, so nothing needs invalidating unless the engine says something was removed, or
    // an IOMMU it is attached through caches not-present entries (VT-d caching mode).
    bool caches_invalid = false;
    for (unsigned i = 0; i < nattached_; i++) caches_invalid = caches_invalid || attached_[i].iommu->caps().caches_invalid;
    if (!g.removed() && !g.tables_freed() && !caches_invalid) g.clear_ranges();
    Status st = finish(g);
    if (p.status == Status::ok && st != Status::ok) p.status = st;
    return p;
}

// A failed break-before-make invalidation stopped the engine with its status; the end-of-call
// flush still runs for what was done (and the broken block), and its own error comes second.
Progress IoDomain::unmap(uint64_t iova, uint64_t size) {
    LockGuard dl(lock_);
    return unmap_locked(iova, size);
}

Progress IoDomain::unmap_locked(uint64_t iova, uint64_t size) {
    if (!tag_) return {0, Status::invalid_argument};
    iopt::Gather g(iopt::InvalidateHook{&IoDomain::invalidate_now, this});
    Progress p = table_->unmap(iova, size, g);
    Status st = finish(g);
    if (p.status == Status::ok && st != Status::ok) p.status = st;
    return p;
}

Result<iopt::Translation> IoDomain::lookup(uint64_t iova) const {
    LockGuard dl(lock_);
    if (!tag_) return Status::invalid_argument;
    return table_->lookup(iova);
}

Status IoDomain::attach(Iommu& iommu, StreamId sid) {
    LockGuard dl(lock_);
    if (!tag_) return Status::invalid_argument;
    {
        LockGuard g(g_lock);
        if (StreamOwner* o = find_owner(iommu, sid)) return o->domain ? Status::in_use : Status::hw_error;
        if (nattached_ == kMaxAttached) return Status::no_space;
        StreamOwner* slot = nullptr;
        for (StreamOwner& o : g_owners)
            if (!o.domain_id) {  // not !o.domain: that is also a stream the quarantine holds
                slot = &o;
                break;
            }
        if (!slot) return Status::no_space;
        *slot = StreamOwner{&iommu, sid, id_, this};  // claimed before the hardware sees it
    }
    why_.clear();
    // Reserved regions first: the stream reaches them from its first DMA on. One another stream
    // of this domain reserves too is mapped already (and stays that stream's as well).
    Iommu::ReservedRegion rr[kMaxReserved];
    const unsigned nr = iommu.reserved_regions(sid, rr, kMaxReserved);
    bool mine[kMaxReserved] = {};
    Status st = Status::ok;
    auto undo = [&] {
        for (unsigned k = 0; k < nr; k++)
            if (mine[k]) (void)unmap_locked(rr[k].base, rr[k].size);
    };
    for (unsigned k = 0; k < nr && st == Status::ok; k++) {
        if (reserved_by_other(iommu, sid, rr[k])) continue;
        iopt::Prot rw;  // read/write, no execute-never distinction for DMA
        Progress p = map_locked(rr[k].base, rr[k].base, rr[k].size, rw, kLargest);
        if (p.ok()) {
            mine[k] = true;
            continue;
        }
        if (p.bytes_done) (void)unmap_locked(rr[k].base, p.bytes_done);
        st = p.status;
        if (st == Status::in_use)
            why_.set(st, "stream 0x%x of %s: reserved region [0x%lx, 0x%lx] collides with the domain's mapping at 0x%lx",
                     static_cast<unsigned>(sid), iommu.name(), rr[k].base, rr[k].base + rr[k].size - 1, rr[k].base + p.bytes_done);
        else
            why_.set(st, "stream 0x%x of %s: reserved region [0x%lx, 0x%lx] could not be mapped 1:1 (%s)", static_cast<unsigned>(sid),
                     iommu.name(), rr[k].base, rr[k].base + rr[k].size - 1, to_string(st));
    }
    if (st == Status::ok) st = iommu.attach(*this, sid);
    if (st != Status::ok) undo();
    LockGuard g(g_lock);
    if (st != Status::ok) {
        if (StreamOwner* o = find_owner(iommu, sid)) *o = StreamOwner{};
        return st;
    }
    attached_[nattached_++] = Attachment{&iommu, sid};
    return Status::ok;
}

bool IoDomain::reserved_by_other(const Iommu& iommu, StreamId sid, const Iommu::ReservedRegion& r) const {
    for (unsigned i = 0; i < nattached_; i++) {
        if (attached_[i].iommu == &iommu && attached_[i].sid == sid) continue;
        Iommu::ReservedRegion o[kMaxReserved];
        const unsigned n = attached_[i].iommu->reserved_regions(attached_[i].sid, o, kMaxReserved);
        for (unsigned k = 0; k < n; k++)
            if (o[k].base == r.base && o[k].size == r.size) return true;
    }
    return false;
}

Status IoDomain::detach(Iommu& iommu, StreamId sid) {
    LockGuard dl(lock_);
    const unsigned i = find_attached(iommu, sid);
    if (i == nattached_) return Status::not_found;
    Status st = iommu.detach(*this, sid);
    if (st != Status::ok) return st;
    attached_[i] = attached_[--nattached_];
    // The stream is blocked and invalidated: its reserved regions go, but for those another
    // stream here still needs. (An unmap that fails to invalidate quarantines its pages.)
    Iommu::ReservedRegion rr[kMaxReserved];
    const unsigned nr = iommu.reserved_regions(sid, rr, kMaxReserved);
    for (unsigned k = 0; k < nr; k++)
        if (!reserved_by_other(iommu, sid, rr[k])) (void)unmap_locked(rr[k].base, rr[k].size);
    LockGuard g(g_lock);
    if (StreamOwner* o = find_owner(iommu, sid)) *o = StreamOwner{};
    return Status::ok;
}

unsigned IoDomain::find_attached(const Iommu& iommu, StreamId sid) const {
    unsigned i = 0;
    while (i < nattached_ && !(attached_[i].iommu == &iommu && attached_[i].sid == sid)) i++;
    return i;
}

bool IoDomain::attached(const Iommu& iommu, StreamId sid) const {
    LockGuard dl(lock_);
    return find_attached(iommu, sid) != nattached_;
}

void IoDomain::drop_attachment(const Iommu& iommu, StreamId sid) {
    const unsigned i = find_attached(iommu, sid);
    if (i != nattached_) attached_[i] = attached_[--nattached_];
}

void IoDomain::forget(const Iommu& iommu) {
    LockGuard g(g_lock);
    for (StreamOwner& o : g_owners) {
        if (!o.domain_id || o.iommu != &iommu) continue;
        if (o.domain) o.domain->drop_attachment(iommu, o.sid);
        o = StreamOwner{};
    }
}

// Every driver's destructor ends here (see the top of io_domain.hpp).
Iommu::~Iommu() { IoDomain::forget(*this); }

IoDomain* IoDomain::owner(const Iommu& iommu, StreamId sid) {
    LockGuard g(g_lock);
    StreamOwner* o = find_owner(iommu, sid);
    return o ? o->domain : nullptr;
}

}  // namespace moat
