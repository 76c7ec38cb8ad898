// What a page-table operation changed, so that a driver issues the fewest invalidations, plus the
// table pages that may only go back to the pool once those invalidations have completed.
//
// Driver flow:   Gather g(hook);  pt.unmap(iova, size, g);  flush(g);  pt.release(g);
//
// Why table pages wait in the Gather: after an unmap unlinks a table, a walker may still hold the
// old pointer in its walk cache until the invalidation completes. Freeing the page at once would
// let the pool hand it out again while a device can still read it as a table. So unlinked pages are
// chained (through their first word, which then reads as an invalid descriptor to any late walker)
// and freed by PageTable::release() after the caller's flush. Nothing bounds how many pages one
// unmap frees, so past a few held here (what a one-buffer unmap empties: no store into the page)
// the chain lives in the pages themselves.
#pragma once
#include "common/status.hpp"

namespace moat::iopt {

template <class Format, class Memory> class PageTable;

// Invalidate [iova, iova + size) (leaf entries of 2^granule_shift bytes) in every TLB that may hold
// it, walk caches included (the break may have removed a table entry), and WAIT for completion.
// The engine calls it between the "break" and the "make" of a break-before-make update (splitting a
// block, a block replacing parked empty tables), where a later, gathered invalidation is too late.
// Anything but ok means some walker may still hold the old entry: the engine then leaves the entry
// broken (invalid) and stops, since making it again could let two translations coexist.
struct InvalidateHook {
    Status (*fn)(void* ctx, uint64_t iova, uint64_t size, unsigned granule_shift) = nullptr;
    void* ctx = nullptr;
};

class Gather {
public:
    static constexpr unsigned kMaxRanges = 8;
    struct Range {
        uint64_t iova;
        uint64_t size;
        constexpr uint64_t end() const { return iova + size; }
    };

    Gather() = default;
    explicit Gather(InvalidateHook hook) : hook_(hook) {}
    Gather(const Gather&) = delete;
    Gather& operator=(const Gather&) = delete;

    // Ranges whose entries changed, merged when contiguous or overlapping. Past kMaxRanges disjoint
    // ranges they collapse into one covering range and overflowed() is set: a driver then picks
    // between a range invalidation of the cover and invalidating the whole context.
    unsigned range_count() const { return nranges_; }
    const Range& range(unsigned i) const { return ranges_[i]; }
    bool empty() const { return nranges_ == 0; }
    bool overflowed() const { return overflowed_; }
    // Smallest leaf size changed (12, 21 or 30): the stride / TTL hint of a range invalidation.
    unsigned granule_shift() const { return granule_shift_; }
    // Live entries were removed: the ranges must be invalidated. When only new entries were written
    // (a map), walkers that never cache invalid entries (the Arm SMMUs, IPMMU) need nothing.
    bool removed() const { return removed_; }
    // Table entries were removed: walk caches must be invalidated too (non-leaf invalidation).
    bool tables_freed() const { return tables_freed_; }
    // Table pages waiting for PageTable::release().
    size_t pending_pages() const { return nheld_ + free_count_; }
    // Break-before-make invalidations issued through the hook during the operations gathered.
    unsigned immediate_invalidations() const { return immediate_; }
    // The first of them that failed (ok if none). The pending pages must then stay out of the pool
    // even if a later flush succeeds: the owner quarantines them instead of calling release().
    Status immediate_status() const { return immediate_status_; }
    bool has_hook() const { return hook_.fn != nullptr; }

    // Walk caches must go too: for an owner's own gather (an InvalidateHook's, which may follow the
    // break of a table entry).
    void mark_tables_freed() { tables_freed_ = true; }

    // Forget the ranges (after the driver invalidated them); pending pages stay until release().
    void clear_ranges() {
        nranges_ = 0;
        overflowed_ = removed_ = tables_freed_ = false;
        granule_shift_ = 63;
        immediate_ = 0;
    }

    // Record a change of [iova, iova + size). Used by the engine; public for drivers' own tests.
    void add(uint64_t iova, uint64_t size, unsigned granule_shift, bool removed) {
        if (nranges_ == 0 && size) {  // the first range of a gather: nothing to merge with
            ranges_[0] = Range{iova, size};
            nranges_ = 1;
            granule_shift_ = min(granule_shift_, granule_shift);
            removed_ = removed_ || removed;
            return;
        }
        add_merging(iova, size, granule_shift, removed);
    }

private:
    template <class F, class M> friend class PageTable;

    void add_merging(uint64_t iova, uint64_t size, unsigned granule_shift, bool removed);

    Status invalidate_now(uint64_t iova, uint64_t size, unsigned granule_shift) {
        immediate_++;
        Status st = hook_.fn(hook_.ctx, iova, size, granule_shift);
        if (st != Status::ok && immediate_status_ == Status::ok) immediate_status_ = st;
        return st;
    }

    static constexpr unsigned kHeldPages = 4;  // a 4-level walk empties at most 3 below the root

    InvalidateHook hook_;
    Range ranges_[kMaxRanges];  // [0, nranges_) are meaningful: not zeroed on every call
    unsigned nranges_ = 0;
    unsigned granule_shift_ = 63;
    unsigned immediate_ = 0;
    Status immediate_status_ = Status::ok;
    bool overflowed_ = false;
    bool removed_ = false;
    bool tables_freed_ = false;
    uint64_t free_head_ = 0;   // physical address of the first pending page (valid if free_count_)
    size_t free_count_ = 0;
    uint64_t held_[kHeldPages];  // the first pending pages, kept here rather than chained
    unsigned nheld_ = 0;
};

}  // namespace moat::iopt
