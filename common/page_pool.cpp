#include "common/page_pool.hpp"

#include <string.h>

namespace moat {

Status PagePool::add_region(uint64_t pa, uint64_t size) {
    if (add_overflows(pa, size)) return Status::invalid_argument;
    uint64_t lo = align_up(pa, kPageSize), hi = align_down(pa + size, kPageSize);
    // Physical page 0 is never handed out: its address reads as "none" to callers and hardware
    // registers alike (a null CPU pointer where RAM is identity mapped, as on ZynqMP).
    if (lo == 0) lo = kPageSize;
    if (hi <= lo) return Status::ok;  // nothing whole inside: not an error
    const size_t all = static_cast<size_t>((hi - lo) >> kPageShift), meta = meta_pages(all), pages = all - meta;
    if (pages == 0) return Status::ok;  // one page: no room for a page and its owner word
    if (nregions_ == kMaxRegions || pages > kMaxPages - nbits_) return Status::no_space;
    for (size_t i = 0; i < nregions_; i++) {
        uint64_t b = regions_[i].base, e = b + (uint64_t{regions_[i].pages + regions_[i].meta} << kPageShift);
        if (lo < e && b < hi) return Status::in_use;
    }
    // The owner words live in the region's last pages, left as they are: owners write first.
    uint32_t* words = static_cast<uint32_t*>(virt(lo + (uint64_t{pages} << kPageShift)));
    regions_[nregions_++] = Region{lo, pages, nbits_, meta, words};
    // Bits beyond nbits_ are zero; they become meaningful only now.
    nbits_ += pages;
    total_ += pages;
    return Status::ok;
}

void PagePool::set_range(size_t b, size_t n, bool v) {
    for (size_t i = b; i < b + n; i++) {
        uint64_t m = 1ull << (i % 64);
        if (v) bits_[i / 64] |= m; else bits_[i / 64] &= ~m;
    }
}

bool PagePool::locate(uint64_t pa, size_t pages, size_t& bit) const {
    if (!is_aligned(pa, kPageSize)) return false;
    for (size_t i = 0; i < nregions_; i++) {
        const Region& r = regions_[i];
        if (pa < r.base) continue;
        uint64_t idx = (pa - r.base) >> kPageShift;
        if (idx >= r.pages || pages > r.pages - idx) continue;
        bit = r.first_bit + static_cast<size_t>(idx);
        return true;
    }
    return false;
}

bool PagePool::find_single(size_t& bit) {
    const size_t words = (nbits_ + 63) / 64;
    size_t w = hint_ < words ? hint_ : 0;
    for (size_t n = 0; n < words; n++, w = w + 1 == words ? 0 : w + 1) {  // no division per call
        uint64_t avail = ~bits_[w];
        if (w == words - 1 && nbits_ % 64) avail &= (1ull << (nbits_ % 64)) - 1;
        if (avail) {
            hint_ = w;
            bit = w * 64 + static_cast<size_t>(__builtin_ctzll(avail));
            return true;
        }
    }
    return false;
}

uint64_t PagePool::bit_pa(size_t bit) const {
    for (size_t r = 0; r < nregions_; r++) {
        const Region& rg = regions_[r];
        if (bit >= rg.first_bit && bit < rg.first_bit + rg.pages) return rg.base + (uint64_t{bit - rg.first_bit} << kPageShift);
    }
    return 0;  // not a page of any region: such bits are never clear
}

size_t PagePool::alloc_each(uint64_t* pas, size_t n) {
    LockGuard g(lock_);
    if (n > free_pages()) n = free_pages();
    if (n > fail_after_) n = fail_after_;
    size_t done = 0, bit = 0;
    // Every free page of a bitmap word at once: one scan per 64 pages instead of one per page.
    while (done < n && find_single(bit)) {
        const size_t w = bit / 64;
        uint64_t avail = ~bits_[w];
        if (w == (nbits_ + 63) / 64 - 1 && nbits_ % 64) avail &= (1ull << (nbits_ % 64)) - 1;
        while (avail && done < n) {
            const size_t b = w * 64 + static_cast<size_t>(__builtin_ctzll(avail));
            avail &= avail - 1;
            bits_[w] |= uint64_t{1} << (b % 64);
            pas[done++] = bit_pa(b);
        }
    }
    used_ += done;
    if (fail_after_ != SIZE_MAX) fail_after_ -= done;
    return done;
}

Result<uint64_t> PagePool::alloc(size_t pages, size_t align_pages, bool zero) {
    if (pages == 0 || !is_pow2(align_pages)) return Status::invalid_argument;
    Result<uint64_t> r = take(pages, align_pages, zero);
    // Zeroing outside the lock: the pages are ours alone now, and 4 KiB of stores per page would
    // otherwise serialise every CPU's allocations.
    if (r.ok() && zero) memset(virt(r.value), 0, pages * kPageSize);
    return r;
}

Result<uint64_t> PagePool::take(size_t pages, size_t align_pages, bool zero) {
    LockGuard g(lock_);
    if (fail_after_ == 0 || pages > free_pages()) return Status::no_memory;
    size_t bit = 0;
    uint64_t pa = 0;
    bool found = false;
    if (pages == 1 && align_pages == 1) {
        found = find_single(bit);
    } else {
        // First fit inside one region, honouring physical alignment. Rare (queues, concatenated
        // stage-2 roots), so a linear scan is fine.
        for (size_t r = 0; r < nregions_ && !found; r++) {
            const Region& rg = regions_[r];
            uint64_t align = uint64_t{align_pages} << kPageShift;
            for (uint64_t p = align_up(rg.base, align); p + (uint64_t{pages} << kPageShift) <= rg.base + (uint64_t{rg.pages} << kPageShift); p += align) {
                size_t b = rg.first_bit + static_cast<size_t>((p - rg.base) >> kPageShift), k = 0;
                while (k < pages && !test(b + k)) k++;
                if (k == pages) { bit = b; found = true; break; }
            }
        }
    }
    if (!found) return Status::no_memory;
    pa = bit_pa(bit);
    set_range(bit, pages, true);
    used_ += pages;
    if (fail_after_ != SIZE_MAX) fail_after_--;
    if (zero) zeroed_ += pages;
    return pa;
}

Status PagePool::free(uint64_t pa, size_t pages) {
    LockGuard g(lock_);
    size_t bit;
    if (pages == 0 || !locate(pa, pages, bit)) return Status::invalid_argument;
    for (size_t k = 0; k < pages; k++)
        if (!test(bit + k)) return Status::invalid_argument;
    set_range(bit, pages, false);
    used_ -= pages;
    if (bit / 64 < hint_) hint_ = bit / 64;
    return Status::ok;
}

size_t PagePool::free_each(const uint64_t* pas, size_t n) {
    LockGuard g(lock_);
    size_t done = 0;
    for (size_t k = 0; k < n; k++) {
        size_t bit;
        if (!locate(pas[k], 1, bit) || !test(bit)) continue;
        bits_[bit / 64] &= ~(uint64_t{1} << (bit % 64));
        if (bit / 64 < hint_) hint_ = bit / 64;
        done++;
    }
    used_ -= done;
    return done;
}

}  // namespace moat
