// One DMA address space: a page table of the format its IOMMUs walk (chosen by a driver, see
// Iommu::domain_format) and the (IOMMU, stream) pairs that use it. A stream is attached to at most
// one domain in the whole system: a second attach is refused.
//
// Invalidation has one path. Whether it is the break-before-make invalidation the engine asks for
// in the middle of a call (splitting a block) or the flush at the end of one, it is Iommu::flush
// for each distinct IOMMU the domain is attached through, once; every error reaches the caller,
// and the table pages the call unlinked are quarantined (never given back) after any failure.
//
// Teardown is total or quarantined. destroy() detaches every stream; a detach the hardware did
// not confirm (a sync that timed out) leaves that stream owned by the quarantine for as long as
// that IOMMU instance lives (no domain can attach it: the IOMMU may still hold the dead
// configuration), and then the whole domain is quarantined: its tables are never freed (a walker
// may still read them), its tag is never handed out again, and the drivers keep their slot for
// it. Drivers find a domain's state by its id(), unique for the life of the system, never by the
// object's address: a domain built later in the same storage is a stranger to them.
// quarantine() counts what was withheld.
//
// Stream ownership lives exactly as long as the IOMMU instance: its destructor (every driver's,
// through ~Iommu) calls forget(), which drops its streams' owners and quarantine and takes it out
// of the domains still attached through it. An instance built later in the same storage probes
// the unit afresh (every stream blocked, every cached configuration invalidated, or the probe
// fails), so it inherits nothing; the quarantined domains' tables stay withheld regardless.
//
// Several CPUs: every operation on one domain (map, unmap, lookup, attach, detach, destroy)
// serialises on the domain's lock, so its table has one writer at a time and the attachment list
// that map/unmap flush through never changes under them. Under it, a driver's locks, then the
// pool's (docs/architecture.md, "Concurrency"). Thread context only: never from an interrupt.
#pragma once
#include "common/iommu.hpp"
#include "common/iopt/table.hpp"
#include "common/lock.hpp"

namespace moat {

class IoDomain {
public:
    static constexpr unsigned kMaxAttached = 16;
    // Live (or quarantined) domains in the whole system: tags 1..255 fit an 8-bit VMID as well
    // as a 16-bit ASID. A driver that keeps a slot per domain needs no more than this many.
    static constexpr unsigned kMaxDomains = 255;
    static constexpr uint64_t kLargest = iopt::Table::kLargest;

    // quota: the guest the domain's table pages are charged to (nullptr: moat's own).
    IoDomain(PagePool& pool, const iopt::Format& format, PageQuota* quota = nullptr);
    ~IoDomain();
    IoDomain(const IoDomain&) = delete;
    IoDomain& operator=(const IoDomain&) = delete;

    // Allocates the root table and a tag (a small id unique among live domains, usable as ASID or
    // VMID, never 0). unsupported for a format no engine builds, invalid_argument for a bad
    // geometry, no_memory, no_space.
    Status init();
    // Detaches every stream (each to abort), releases every table page and the tag. When the
    // hardware did not confirm a detach, quarantines instead (see the top of this file) and
    // returns the hardware's status; the domain is dead either way.
    Status destroy();

    Progress map(uint64_t iova, uint64_t pa, uint64_t size, const iopt::Prot& prot, uint64_t pgsize = kLargest);
    Progress unmap(uint64_t iova, uint64_t size);
    Result<iopt::Translation> lookup(uint64_t iova) const;

    // A walker of this table that is not an IOMMU: the CPU's stage 2, when the domain is a guest's
    // P2M shared with its IOMMUs (DomainUse::guest_p2m). Its flush runs first on the one
    // invalidation path, so a removal is one flush for every walker, CPU and IOMMUs alike, before
    // any table page goes back. Set it before the first map; nullptr fn: none.
    struct CpuWalker {
        Status (*flush)(void* ctx, const IoDomain& d, const iopt::Gather& g) = nullptr;
        void* ctx = nullptr;
    };
    void set_cpu_walker(const CpuWalker& w) { cpu_ = w; }
    uint64_t cpu_flushes() const { return cpu_flushes_; }

    // attach maps the stream's reserved regions (Iommu::reserved_regions) identity first; a
    // region that collides with a mapping already there refuses the attach (in_use) with why()
    // naming the stream and both ranges, and nothing of the attempt stays mapped. detach unmaps
    // the regions no other stream attached here still needs.
    static constexpr unsigned kMaxReserved = 8;  // reserved regions of one stream
    Status attach(Iommu& iommu, StreamId sid);
    Status detach(Iommu& iommu, StreamId sid);
    // Why the last attach was refused here (reserved regions), empty otherwise.
    const char* why() const { return why_.text(); }
    bool attached(const Iommu& iommu, StreamId sid) const;
    unsigned attached_count() const { return nattached_; }

    // What drivers program: the format (an Arm driver gets its VMSA geometry from it with
    // iopt::vmsa_geometry) and the root. pgsize_bitmap: what map() can write.
    const iopt::Format& format() const { return format_; }
    uint64_t root_pa() const;
    uint64_t pgsize_bitmap() const;
    uint16_t tag() const { return tag_; }
    // Never 0 once init() succeeded, never the same for two domains (drivers key their slots by it).
    uint64_t id() const { return id_; }
    PageQuota* quota() const { return quota_; }
    // Flushes issued (one per distinct attached IOMMU per invalidation: at the end of a call that
    // removed something, and for each break-before-make in it).
    uint64_t flushes() const { return flushes_; }
    // Times a map short of pool pages tried to take back what the domain's table holds for reuse
    // (parked and cached empty tables, page_table.hpp) before going on.
    uint64_t reclaims() const { return reclaims_; }
    // Table pages withheld from the pool because an invalidation that should have preceded their
    // release failed (a walker may still read them).
    uint64_t quarantined_pages() const { return quarantined_; }
    // Owner of a stream, or nullptr (also for a stream held by the quarantine).
    static IoDomain* owner(const Iommu& iommu, StreamId sid);
    // Teardowns the hardware did not confirm, since boot: domains, their table pages kept out of
    // the pool, streams left blocked (each until its IOMMU instance is released).
    struct Quarantine {
        uint64_t domains = 0, pages = 0, streams = 0;
    };
    static Quarantine quarantine();
    static bool stream_quarantined(const Iommu& iommu, StreamId sid);
    // The instance is going away: forgets its streams (owned or quarantined), and every domain
    // attached through it forgets the attachment (it will neither flush nor detach it). Called by
    // ~Iommu; the caller must not be using those domains at the same time.
    static void forget(const Iommu& iommu);

private:
    static Status invalidate_now(void* ctx, uint64_t iova, uint64_t size, unsigned granule_shift);
    void drop_attachment(const Iommu& iommu, StreamId sid);
    // Index of (iommu, sid) in attached_, or nattached_ when it is not attached.
    unsigned find_attached(const Iommu& iommu, StreamId sid) const;
    Status flush_iommus(const iopt::Gather& g);
    Status finish(iopt::Gather& g);
    Progress map_locked(uint64_t iova, uint64_t pa, uint64_t size, const iopt::Prot& prot, uint64_t pgsize);
    Progress map_once(uint64_t iova, uint64_t pa, uint64_t size, const iopt::Prot& prot, uint64_t pgsize);
    bool reclaim_locked();
    Progress unmap_locked(uint64_t iova, uint64_t size);
    // Whether a stream attached here other than (iommu, sid) reserves exactly region r.
    bool reserved_by_other(const Iommu& iommu, StreamId sid, const Iommu::ReservedRegion& r) const;

    iopt::Format format_;
    PageQuota* quota_;
    uint64_t id_ = 0;
    iopt::TableSlot slot_;
    iopt::Table* table_ = nullptr;
    uint16_t tag_ = 0;
    unsigned nattached_ = 0;
    struct Attachment { Iommu* iommu; StreamId sid; };
    Attachment attached_[kMaxAttached] = {};
    uint64_t flushes_ = 0;
    uint64_t quarantined_ = 0;
    uint64_t reclaims_ = 0;
    CpuWalker cpu_;
    uint64_t cpu_flushes_ = 0;
    Why why_;
    // Outermost of moat's locks: taken first, held across the driver calls of one operation.
    mutable Spinlock lock_;
};

}  // namespace moat
