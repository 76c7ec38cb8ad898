// The only source of dynamic memory in moat: 4 KiB pages handed over at boot.
//
// A bitmap over at most kMaxRegions physical ranges. Each region gives up its last pages to the
// owner words of its other pages (4 bytes per page: one page of words per 1024 pages, so the
// metadata scales with the pool instead of being sized in the image for the largest pool).
// Pages are addressed by physical address;
// the pool reaches them through a fixed offset (0 on targets where RAM is identity mapped, the
// host buffer's offset in host builds). Allocation returns zeroed pages, can fail, and every
// page in use is counted so a test can prove that teardown gave everything back.
//
// Several CPUs: alloc() and free() take the pool's lock (innermost of moat's locks: nothing is
// taken under it); alloc zeroes its pages after releasing it. add_region() is boot-time, before
// other CPUs run. The counters are exact whenever no alloc or free is under way.
#pragma once
#include "common/lock.hpp"
#include "common/status.hpp"

namespace moat {

class PagePool {
public:
    static constexpr size_t kMaxPages = size_t{1} << 20;  // 4 GiB of pool at most
    static constexpr size_t kMaxRegions = 16;

    // virt_offset: the CPU address of physical address pa is pa + virt_offset.
    explicit PagePool(uintptr_t virt_offset = 0) : virt_offset_(virt_offset) {}
    PagePool(const PagePool&) = delete;
    PagePool& operator=(const PagePool&) = delete;

    // Adds the whole pages inside [pa, pa + size), except physical page 0, less the pages at its end
    // that hold the others' owner words (meta_pages(n) of n). Fails when the pool is full of regions
    // or pages, or when the range overlaps one already added. A range of one page has no room for
    // both and adds nothing.
    Status add_region(uint64_t pa, uint64_t size);

    // `pages` contiguous pages whose physical address is aligned to `align_pages` pages, zeroed
    // unless the caller will overwrite every byte before anyone else can see them (zero = false).
    Result<uint64_t> alloc(size_t pages = 1, size_t align_pages = 1, bool zero = true);
    // Up to n single pages into pas[] under one acquisition of the lock, not zeroed: for an owner
    // that writes every byte of each before anyone else can see it (a large map's leaf tables).
    // Returns how many it took (fewer only when the pool runs out); each goes back by free().
    size_t alloc_each(uint64_t* pas, size_t n);
    // Gives back pages from alloc(). Returns invalid_argument (and changes nothing) for a page
    // that is not in the pool or not allocated: a double free is a bug worth reporting.
    Status free(uint64_t pa, size_t pages = 1);
    // Gives back n single pages under one acquisition of the lock (a large unmap's leaf tables).
    // Returns how many went back; one that free() would refuse is skipped and not counted.
    size_t free_each(const uint64_t* pas, size_t n);

    // One 32-bit word per page for whoever allocated it (the page-table engine keeps a table's
    // counts of valid and of wholly mapped entries there: the walker reads the page itself, so
    // nothing of the engine's may live in it). alloc() leaves it as it was; the owner sets it.
    // `pa` must be a page of the pool: O(regions), and no lock (the page's owner serialises).
    uint32_t& owner_word(uint64_t pa) {
        const uint64_t off0 = pa - regions_[0].base;  // most pools are one region: no loop for it
        if (off0 < (uint64_t{regions_[0].pages} << kPageShift)) return regions_[0].words[off0 >> kPageShift];
        for (size_t i = 1; i < nregions_; i++) {
            const uint64_t off = pa - regions_[i].base;
            if (off < (uint64_t{regions_[i].pages} << kPageShift)) return regions_[i].words[off >> kPageShift];
        }
        return sink_;  // not a pool page: a sink, never read by a correct owner
    }
    // Pages of an n-page range that hold the owner words of the rest: the least m with 1024 m >= n - m.
    static constexpr size_t meta_pages(size_t n) { return (n + kWordsPerPage) / (kWordsPerPage + 1); }

    void* virt(uint64_t pa) const { return reinterpret_cast<void*>(static_cast<uintptr_t>(pa) + virt_offset_); }
    uint64_t phys(const void* p) const { return reinterpret_cast<uintptr_t>(p) - virt_offset_; }

    size_t total_pages() const { return total_; }
    size_t used_pages() const { return used_; }
    size_t free_pages() const { return total_ - used_; }
    size_t region_count() const { return nregions_; }
    uint64_t zeroed_pages() const { return zeroed_; }  // pages alloc() has zeroed, ever
    // [base, base + pages) are the pool's pages; the region's owner words follow them (meta pages).
    struct Region { uint64_t base; size_t pages; size_t first_bit; size_t meta; uint32_t* words; };
    const Region& region(size_t i) const { return regions_[i]; }

    // Test hook: make the next `n` allocations succeed and every one after fail (SIZE_MAX: off).
    void fail_after(size_t n) { fail_after_ = n; }

private:
    static constexpr size_t kWordsPerPage = kPageSize / sizeof(uint32_t);

    bool test(size_t b) const { return (bits_[b / 64] >> (b % 64)) & 1; }
    void set_range(size_t b, size_t n, bool v);
    bool locate(uint64_t pa, size_t pages, size_t& bit) const;
    bool find_single(size_t& bit);
    uint64_t bit_pa(size_t bit) const;
    Result<uint64_t> take(size_t pages, size_t align_pages, bool zero);

    uintptr_t virt_offset_;
    Region regions_[kMaxRegions] = {};
    size_t nregions_ = 0;
    size_t nbits_ = 0;    // bits handed to regions so far
    size_t total_ = 0;
    size_t used_ = 0;
    size_t hint_ = 0;     // word index where a free single page was last seen
    size_t fail_after_ = SIZE_MAX;
    uint64_t zeroed_ = 0;
    Spinlock lock_;
    uint64_t bits_[kMaxPages / 64] = {};  // 1 = allocated (or not a page of any region)
    uint32_t sink_ = 0;                   // owner_word() of an address outside the pool
};

}  // namespace moat
