#include "xen-compat/pv_iommu.hpp"

#include <new>

namespace moat::xen {

namespace {

constexpr long err(Errno e) { return to_guest(e); }
constexpr long err(Status s) { return to_guest(errno_for(s)); }

// ---------------------------------------------------------------- guest-side state

}  // namespace

PvIommuGuest::PvIommuGuest(uint16_t domid, bool privileged, GuestMemory& mem, PagePool& pool, const PvIommuConfig& cfg)
    : domid_(domid), privileged_(privileged), mem_(mem), pool_(pool), cfg_(cfg), quota_(cfg.quota_pages) {}

PvIommuGuest::~PvIommuGuest() {
    for (unsigned i = 0; i < ndev_; i++)
        if (IoDomain* d = context(dev_[i].ctx)) (void)d->detach(*dev_[i].iommu, dev_[i].sid);
    for (unsigned c = 0; c < kMaxContexts; c++)
        if (ctx_[c]) {
            if (c != 0 || !shared_default_) ctx_[c]->~IoDomain();  // a shared P2M is its owner's
            ctx_[c] = nullptr;
        }
}

IoDomain* PvIommuGuest::context(unsigned ctx) { return ctx < kMaxContexts ? ctx_[ctx] : nullptr; }

unsigned PvIommuGuest::contexts_in_use() const {
    unsigned n = 0;
    for (IoDomain* d : ctx_) n += d != nullptr;
    return n;
}

PvDevice* PvIommuGuest::device(uint16_t seg, uint8_t bus, uint8_t devfn) {
    for (unsigned i = 0; i < ndev_; i++)
        if (dev_[i].seg == seg && dev_[i].bus == bus && dev_[i].devfn == devfn) return &dev_[i];
    return nullptr;
}

// Maps every RAM frame of the guest at DMA address == guest address, in runs of contiguous frames.
Status PvIommuGuest::map_identity(IoDomain& d) {
    iopt::Prot prot;
    if (!cfg_.format.coherent_walk) prot.type = iopt::MemType::normal_nc;
    uint64_t run_gfn = 0, run_mfn = 0, run_len = 0;
    for (uint64_t i = 0; i <= ram_pages_; i++) {
        uint64_t gfn = ram_first_gfn_ + i, mfn = 0;
        bool owned = i < ram_pages_ && mem_.ram_frame(gfn, mfn) == Status::ok;
        if (owned && run_len && mfn == run_mfn + run_len) {
            run_len++;
            continue;
        }
        if (run_len) {
            Progress p = d.map(run_gfn << kPageShift, run_mfn << kPageShift, run_len << kPageShift, prot);
            if (!p.ok()) return p.status;
        }
        run_len = owned ? 1 : 0;
        run_gfn = gfn;
        run_mfn = mfn;
    }
    return Status::ok;
}

Result<unsigned> PvIommuGuest::create_context(bool identity) {
    unsigned c = 0;  // the first context created is the default one
    if (ctx_[0]) {
        for (unsigned k = 1; k <= max_ctx && k < kMaxContexts && !c; k++)
            if (!ctx_[k]) c = k;
        if (!c) return Status::no_space;
    }
    IoDomain* d = new (storage_[c]) IoDomain(pool_, cfg_.format, &quota_);
    Status st = d->init();
    if (st == Status::ok && identity) st = map_identity(*d);
    if (st != Status::ok) {
        d->~IoDomain();  // gives back every table page: never a half-built context
        return st;
    }
    ctx_[c] = d;
    return c;
}

Status PvIommuGuest::destroy_context(unsigned c) {
    if (!context(c) || (c == 0 && shared_default_)) return Status::invalid_argument;
    // Destroyed or quarantined, the context is gone either way: IoDomain keeps whatever the
    // hardware did not let go of, and a context built later in this storage is a new domain.
    Status st = ctx_[c]->destroy();
    ctx_[c]->~IoDomain();
    ctx_[c] = nullptr;
    return st;
}

Status PvIommuGuest::init_default(uint64_t first_gfn, uint64_t pages) {
    if (ctx_[0]) return Status::in_use;
    ram_first_gfn_ = first_gfn;
    ram_pages_ = pages;
    Result<unsigned> r = create_context(true);
    return r.status;
}

Status PvIommuGuest::init_default_shared(IoDomain& p2m, uint64_t first_gfn, uint64_t pages) {
    if (ctx_[0]) return Status::in_use;
    if (p2m.format().id != iopt::FormatId::vmsa_s2 || !p2m.tag()) return Status::invalid_argument;
    ram_first_gfn_ = first_gfn;
    ram_pages_ = pages;
    ctx_[0] = &p2m;
    shared_default_ = true;
    return Status::ok;
}

Status PvIommuGuest::remove_ram(IoDomain& p2m, uint64_t gfn, uint64_t frames) {
    if (!ctx_[0] || !frames || gfn < ram_first_gfn_ || gfn - ram_first_gfn_ >= ram_pages_ ||
        frames > ram_pages_ - (gfn - ram_first_gfn_))
        return Status::invalid_argument;
    if (shared_default_ && ctx_[0] != &p2m) return Status::invalid_argument;
    for (unsigned c = 1; c < kMaxContexts; c++)
        if (ctx_[c]) return Status::busy;
    uint64_t base = gfn << kPageShift, size = frames << kPageShift;
    Progress p = p2m.unmap(base, size);
    if (!p.ok()) return p.status;
    if (!shared_default_) p = ctx_[0]->unmap(base, size);  // the mirror follows in the same step
    return p.status;
}

Status PvIommuGuest::assign(uint16_t seg, uint8_t bus, uint8_t devfn, Iommu& iommu, StreamId sid) {
    if (!ctx_[0]) return Status::invalid_argument;
    if (device(seg, bus, devfn)) return Status::in_use;
    if (ndev_ == kMaxDevices) return Status::no_space;
    Status st = ctx_[0]->attach(iommu, sid);
    if (st != Status::ok) return st;
    dev_[ndev_++] = PvDevice{seg, bus, devfn, &iommu, sid, 0};
    return Status::ok;
}

Status PvIommuHost::add(PvIommuGuest& g) {
    if (find(g.domid())) return Status::in_use;
    for (PvIommuGuest*& s : guests_)
        if (!s) {
            s = &g;
            return Status::ok;
        }
    return Status::no_space;
}

PvIommuGuest* PvIommuHost::find(uint16_t domid) {
    for (PvIommuGuest* g : guests_)
        if (g && g->domid() == domid) return g;
    return nullptr;
}

// ---------------------------------------------------------------- decoders, one per sub-op

namespace {

struct Call {
    PvIommuHost& host;
    PvIommuGuest& target;  // whose contexts are acted on
    GuestMemory& args;     // where the struct lives (the caller's memory)
    bool preempted = false;
};

constexpr uint64_t kPageSizes = (1ull << 12) | (1ull << 21) | (1ull << 30);

long do_query(Call& c, PvIommuCapabilities& a) {
    const PvIommuConfig& cfg = c.target.config();
    a = PvIommuCapabilities{};
    a.max_iova_addr = (uint64_t{1} << cfg.format.ias) - 1;
    // `cache` only when entries really are cacheable and the walker snoops.
    a.cap_flags = cap::kIdentity | (cfg.format.coherent_walk ? cap::kCache : 0);
    a.pgsize_mask = static_cast<uint32_t>(kPageSizes);
    a.max_pasid = 0;
    a.max_ctx_no = static_cast<uint16_t>(c.target.initialised ? c.target.max_ctx : PvIommuGuest::kMaxContexts - 1);
    return 0;
}

long do_init(Call& c, PvIommuInit& a) {
    if (c.target.initialised) return err(Errno::eacces);
    if (a.max_ctx_no > PvIommuGuest::kMaxContexts - 1 || a.arena_order > 16) return err(Errno::e2big);
    c.target.max_ctx = a.max_ctx_no ? a.max_ctx_no : PvIommuGuest::kMaxContexts - 1;
    // The arena the guest asks for (2^arena_order pages for the contexts it will allocate, on
    // top of what its default context holds) can lower its quota, never raise it.
    if (a.arena_order) {
        PageQuota& q = c.target.quota();
        uint64_t arena = q.used() + (uint64_t{1} << a.arena_order);
        if (arena < q.limit()) q.set_limit(arena);
    }
    c.target.initialised = true;
    return 0;
}

long do_alloc(Call& c, PvIommuAllocContext& a) {
    if (!c.target.initialised) return err(Errno::eacces);
    if (a.alloc_flags & ~kAllocIdentity) return err(Errno::einval);
    Result<unsigned> r = c.target.create_context((a.alloc_flags & kAllocIdentity) != 0);
    if (!r.ok()) return err(r.status);
    a.ctx_no = static_cast<uint16_t>(r.value);
    return 0;
}

Status move_device(PvIommuGuest& g, PvDevice& dev, unsigned to) {
    IoDomain* from = g.context(dev.ctx);
    IoDomain* dst = g.context(to);
    if (!dst) return Status::invalid_argument;
    if (dev.ctx == to) return Status::ok;
    // Detached in between means blocked, never bypassing.
    Status st = from ? from->detach(*dev.iommu, dev.sid) : Status::ok;
    if (st != Status::ok) return st;
    st = dst->attach(*dev.iommu, dev.sid);
    if (st != Status::ok) {
        if (from) (void)from->attach(*dev.iommu, dev.sid);
        return st;
    }
    dev.ctx = static_cast<uint16_t>(to);
    return Status::ok;
}

long do_free(Call& c, PvIommuFreeContext& a) {
    if (a.free_flags & ~kFreeReattachDefault) return err(Errno::einval);
    if (a.ctx_no == 0 || !c.target.context(a.ctx_no)) return err(Errno::einval);
    unsigned users = 0;
    for (unsigned i = 0; i < c.target.device_count(); i++) users += c.target.device_at(i).ctx == a.ctx_no;
    if (users && !(a.free_flags & kFreeReattachDefault)) return err(Errno::ebusy);
    for (unsigned i = 0; i < c.target.device_count(); i++) {
        PvDevice& d = c.target.device_at(i);
        if (d.ctx == a.ctx_no) {
            Status st = move_device(c.target, d, 0);
            if (st != Status::ok) return err(st);
        }
    }
    Status st = c.target.destroy_context(a.ctx_no);
    return st == Status::ok ? 0 : err(st);
}

long do_reattach(Call& c, PvIommuReattachDevice& a) {
    PvDevice* dev = c.target.device(a.seg, a.bus, a.devfn);
    if (!dev) return err(Errno::enodev);  // not a device of this guest
    if (!c.target.context(a.ctx_no)) return err(Errno::einval);
    if (a.pasid) return err(Errno::eopnotsupp);
    Status st = move_device(c.target, *dev, a.ctx_no);
    return st == Status::ok ? 0 : err(st);
}

// Common checks of map/unmap: a context the guest may change, a page size we have, aligned
// frames, and a DMA range that neither wraps nor passes the context's size.
long check_range(Call& c, uint16_t ctx, uint64_t dfn, uint64_t pgsize, uint64_t nr_pages, IoDomain*& d) {
    if (ctx == 0) return err(Errno::einval);  // the default context is never changed through this interface
    d = c.target.context(ctx);
    if (!d) return err(Errno::einval);
    if (!is_pow2(pgsize) || !(pgsize & kPageSizes)) return err(Errno::einval);
    uint64_t frames = pgsize >> kPageShift;
    if (!is_aligned(dfn, frames)) return err(Errno::einval);
    uint64_t limit_frames = uint64_t{1} << (c.target.config().format.ias - kPageShift);
    if (nr_pages > limit_frames / frames || dfn > limit_frames || nr_pages * frames > limit_frames - dfn)
        return err(Errno::erange);
    return 0;
}

long do_map(Call& c, PvIommuMapPages& a) {
    IoDomain* d = nullptr;
    if (long e = check_range(c, a.ctx_no, a.dfn, a.pgsize, a.nr_pages, d)) return e;
    if ((a.map_flags & ~mapf::kAll) || !(a.map_flags & (mapf::kReadable | mapf::kWriteable))) return err(Errno::einval);
    if ((a.map_flags & mapf::kCache) && !c.target.config().format.coherent_walk) return err(Errno::eopnotsupp);
    uint64_t frames = a.pgsize >> kPageShift;
    if (!is_aligned(a.gfn, frames) || add_overflows(a.gfn, a.nr_pages * frames)) return err(Errno::einval);
    if (a.nr_pages == 0) return 0;

    uint64_t batch = min(a.nr_pages, max<uint64_t>(1, c.target.config().budget_pages / frames));
    // Ownership of the whole batch first: a frame the guest does not own changes nothing. A page
    // larger than 4 KiB needs a machine run that is contiguous and aligned to its size.
    // One question per page (GuestMemory::ram_run), so a round's work is bounded by its pages.
    for (uint64_t j = 0; j < batch; j++) {
        uint64_t first = 0;
        Status st = c.target.memory().ram_run(a.gfn + j * frames, frames, first);
        if (st == Status::invalid_argument) return err(Errno::einval);
        if (st != Status::ok) return err(st == Status::not_found ? Errno::enoent : Errno::eperm);
        if (!is_aligned(first, frames)) return err(Errno::einval);
    }
    iopt::Prot prot;
    prot.perm = static_cast<uint8_t>(((a.map_flags & mapf::kReadable) ? iopt::kRead : 0) |
                                     ((a.map_flags & mapf::kWriteable) ? iopt::kWrite : 0));
    prot.type = (a.map_flags & mapf::kCache) ? iopt::MemType::normal_wb : iopt::MemType::normal_nc;

    // Map in runs of machine-contiguous pages: one IoDomain call (and at most one flush) each.
    uint64_t done = 0;
    long ret = 0;
    while (done < batch) {
        uint64_t mfn0 = 0;
        (void)c.target.memory().ram_run(a.gfn + done * frames, frames, mfn0);  // checked above
        uint64_t run = 1;
        for (uint64_t m = 0; done + run < batch; run++) {
            (void)c.target.memory().ram_run(a.gfn + (done + run) * frames, frames, m);
            if (m != mfn0 + run * frames) break;
        }
        Progress p = d->map((a.dfn + done * frames) << kPageShift, mfn0 << kPageShift, (run * frames) << kPageShift, prot, a.pgsize);
        done += p.bytes_done / a.pgsize;
        if (!p.ok()) {
            ret = err(p.status);
            break;
        }
    }
    a.gfn += done * frames;
    a.dfn += done * frames;
    a.nr_pages -= done;
    a.mapped += done;
    if (ret == 0 && a.nr_pages) c.preempted = true;
    return ret;
}

// Exact and bounded: a page is removed only when one leaf of `pgsize` or larger maps all of it
// (a larger block is split around it), so `unmapped` counts exactly what went, and a call
// removes at most budget_pages such pages: at most that many leaves cleared plus a fixed number
// of entries per split, and without range invalidation at most one TLBI per page plus a sync,
// whatever the page size. A page with nothing mapped at its start (-ENOENT) or mapped with
// smaller pages (-EINVAL) stops the call before it is touched: the pages before it are removed
// and counted, it and the rest stay mapped (docs/hardware.md §5.4).
long do_unmap(Call& c, PvIommuUnmapPages& a) {
    IoDomain* d = nullptr;
    if (long e = check_range(c, a.ctx_no, a.dfn, a.pgsize, a.nr_pages, d)) return e;
    if (a.nr_pages == 0) return 0;
    uint64_t frames = a.pgsize >> kPageShift;
    uint64_t batch = min(a.nr_pages, max<uint64_t>(1, c.target.config().budget_pages));
    uint64_t whole = 0;
    long stop = 0;
    for (; whole < batch; whole++) {
        Result<iopt::Translation> t = d->lookup((a.dfn + whole * frames) << kPageShift);
        if (!t.ok()) {
            stop = err(Errno::enoent);
            break;
        }
        if (t.value.size < a.pgsize) {
            stop = err(Errno::einval);
            break;
        }
    }
    Progress p = whole ? d->unmap(a.dfn << kPageShift, whole * a.pgsize) : Progress{};
    uint64_t done = p.bytes_done / a.pgsize;  // only whole pages were covered: exact
    a.dfn += done * frames;
    a.nr_pages -= done;
    a.unmapped += done;
    if (!p.ok()) return err(p.status);
    if (stop) return stop;
    if (a.nr_pages) c.preempted = true;
    return 0;
}

// A table of small decoders: the struct's size and its handler.
template <class T, long (*Fn)(Call&, T&)>
long decode(Call& c, uint64_t arg) {
    T a;
    if (!c.args.read(arg, &a, sizeof a)) return err(Errno::efault);
    long ret = Fn(c, a);
    if (!c.args.write(arg, &a, sizeof a)) return err(Errno::efault);
    return ret;
}

long noop(Call&, uint64_t) { return 0; }
long unsupported(Call&, uint64_t) { return err(Errno::eopnotsupp); }

using Decoder = long (*)(Call&, uint64_t);
constexpr Decoder kDecoders[] = {
    noop,                                               // noop
    decode<PvIommuCapabilities, do_query>,              // query_capabilities
    decode<PvIommuInit, do_init>,                       // init
    decode<PvIommuAllocContext, do_alloc>,              // alloc_context
    decode<PvIommuFreeContext, do_free>,                // free_context
    decode<PvIommuReattachDevice, do_reattach>,         // reattach_device
    decode<PvIommuMapPages, do_map>,                    // map_pages
    decode<PvIommuUnmapPages, do_unmap>,                // unmap_pages
    nullptr,                                            // remote_cmd: handled before the table
    unsupported, unsupported, unsupported, unsupported, // nested and PASID sub-ops
};

constexpr const char* kNames[] = {"noop", "query_capabilities", "init", "alloc_context", "free_context", "reattach_device",
                                  "map_pages", "unmap_pages", "remote_cmd", "alloc_nested", "flush_nested",
                                  "attach_pasid", "detach_pasid"};

}  // namespace

const char* subop_name(uint64_t subop) { return subop < sizeof kNames / sizeof kNames[0] ? kNames[subop] : "unknown"; }

CallResult iommu_op(PvIommuHost& host, PvIommuGuest& caller, uint64_t subop, uint64_t arg) {
    constexpr uint64_t kCount = sizeof kDecoders / sizeof kDecoders[0];
    if (subop >= kCount) return {err(Errno::eopnotsupp), false};
    if (subop == static_cast<uint64_t>(IommuSubop::remote_cmd)) {
        if (!caller.privileged()) return {err(Errno::eperm), false};
        PvIommuRemoteCmd r;
        if (!caller.memory().read(arg, &r, sizeof r)) return {err(Errno::efault), false};
        if (r.subop == static_cast<uint16_t>(IommuSubop::remote_cmd) || r.subop >= kCount) return {err(Errno::einval), false};
        PvIommuGuest* target = host.find(r.domid);
        if (!target) return {err(Errno::enoent), false};
        LockGuard g(target->lock);  // the target's state only: remote_cmd never nests
        Call c{host, *target, caller.memory()};
        long ret = kDecoders[r.subop](c, r.arg);
        return {ret, c.preempted};
    }
    LockGuard g(caller.lock);
    Call c{host, caller, caller.memory()};
    long ret = kDecoders[subop](c, arg);
    return {ret, c.preempted};
}

}  // namespace moat::xen
