// The memory policy of the page-table engine on targets: tables are PagePool pages, and when the
// walker does not snoop the CPU caches (SMMUv2 ID0.CTTW clear, SMMUv3 IDR0.COHACC clear, IPMMU)
// every written range is cleaned to the point of coherency before anything that points at it.
//
// A policy provides (the host test memory in tests/unit implements the same and checks the rules):
//   alloc(pages, align_pages, zero) -> Result<uint64_t>   pages by physical address, zeroed unless zero = false
//   free(pa, pages)                                  give pages back
//   alloc_each(pas, n) -> size_t                     up to n single unzeroed pages at once; how many
//   free_each(pas, n)                                give n single pages back at once
//   table(pa) -> uint64_t*                           CPU pointer to a table
//   side(pa) -> uint32_t&                            the engine's word for the table at pa, outside it
//   short_of_pages() -> bool                         the pool is running low: give cached pages back
//   store(p, v)                                      ONE single-copy-atomic 64-bit store (live tables)
//   fill(p, n, first, step)                          p[i] = first + i * step in a table no walker can reach
//   sync(p, n)                                       entries [p, p + n) must become visible to the walker
//   order()                                          earlier table writes before the next store
//   barrier()                                        earlier stores complete before an invalidation
#pragma once
#include "arch/barrier.hpp"
#include "arch/cache.hpp"
#include "arch/fill.hpp"
#include "common/page_pool.hpp"
#include "common/page_quota.hpp"

namespace moat::iopt {

class PoolMemory {
public:
    // quota: the guest every page of this table is charged to (nullptr: moat's own tables).
    PoolMemory(PagePool& pool, bool walker_coherent, PageQuota* quota = nullptr)
        : pool_(pool), coherent_(walker_coherent), quota_(quota) {}

    bool coherent() const { return coherent_; }
    PagePool& pool() const { return pool_; }

    // zero = false: the engine writes every entry before the page becomes reachable.
    Result<uint64_t> alloc(size_t pages, size_t align_pages, bool zero = true) {
        if (quota_ && !quota_->charge(pages)) return Status::no_memory;
        Result<uint64_t> r = pool_.alloc(pages, align_pages, zero);
        if (!r.ok() && quota_) quota_->uncharge(pages);
        if (r.ok()) held_ += pages;
        return r;
    }
    // Up to n single unzeroed pages, fewer when the pool or the quota runs short; how many.
    size_t alloc_each(uint64_t* pas, size_t n) {
        if (quota_) {
            const uint64_t room = quota_->used() < quota_->limit() ? quota_->limit() - quota_->used() : 0;
            if (n > room) n = static_cast<size_t>(room);
            if (!n || !quota_->charge(n)) return 0;  // the caller's single allocation then reports it
        }
        const size_t done = pool_.alloc_each(pas, n);
        if (quota_) quota_->uncharge(n - done);
        held_ += done;
        return done;
    }
    void free(uint64_t pa, size_t pages) {
        if (pool_.free(pa, pages) != Status::ok) return;
        held_ -= pages;
        if (quota_) quota_->uncharge(pages);
    }
    void free_each(const uint64_t* pas, size_t n) {
        const size_t done = pool_.free_each(pas, n);
        held_ -= done;
        if (quota_) quota_->uncharge(done);
    }
    // Pages of the pool this table holds now.
    uint64_t held() const { return held_; }
    uint64_t* table(uint64_t pa) const { return static_cast<uint64_t*>(pool_.virt(pa)); }
    uint32_t& side(uint64_t pa) const { return pool_.owner_word(pa); }
    // Fewer free pages than one cache's worth for each of a few domains: cached tables go back.
    static constexpr size_t kLowWater = 64;
    bool short_of_pages() const { return pool_.free_pages() < kLowWater; }

    // Relaxed atomic: the compiler may neither tear nor merge it, and it costs a plain str/mov.
    static void store(uint64_t* p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

    // Only for tables nothing points at yet: plain stores, as wide as the target allows. This is
    // the whole cost of mapping a large range in 4 KiB pages.
    static void fill(uint64_t* p, size_t n, uint64_t first, uint64_t step) { arch::fill_step(p, n, first, step); }

    void sync(const uint64_t* p, size_t n) const {
        if (!coherent_) cache::sync_for_device(p, n * sizeof(uint64_t));
    }
    // A coherent walker observes our stores in order only after a barrier. For a non-coherent one,
    // the clean in sync() already waited for the cleaned lines to reach memory.
    void order() const {
        if (coherent_) barrier::publish_table();
    }
    // An invalidation (TLBI, an IOMMU command) must not overtake the table stores before it.
    static void barrier() { barrier::before_invalidate(); }

private:
    PagePool& pool_;
    bool coherent_;
    PageQuota* quota_;
    uint64_t held_ = 0;
};

}  // namespace moat::iopt
