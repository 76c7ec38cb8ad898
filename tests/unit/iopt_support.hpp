// Test support for the page-table engine: a pool over host memory, a memory policy that records
// and checks every store, an independent walker, and a reference model of 4 KiB pages.
#pragma once
#include <gtest/gtest.h>

#include <bitset>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "arch/cache.hpp"
#include "common/iopt/page_table.hpp"
#include "common/page_pool.hpp"
#include "tests/models/host_pool.hpp"

namespace iopt_test {

using namespace moat;
using namespace moat::iopt;

constexpr uint64_t kPhysBase = 0x80000000;  // fake physical address of the pool: fits a 40-bit OAS

// A pool over a host buffer posing as physical memory at kPhysBase.
struct HostPool : moat::model::HostPool {
    explicit HostPool(size_t pages) : moat::model::HostPool(pages, kPhysBase) { EXPECT_TRUE(ok); }
};

// The host "fake memory": a memory policy that records every store (address, old, new, order) and
// checks, as each store happens, the rules a concurrent walker depends on:
//  - only allocated pages are written, only unreachable pages are freed;
//  - a table that became unreachable is freed or linked again only after an invalidation that
//    covered part of its span (what a walk cache holding it is found by): per range, not "any
//    invalidation since", so an owner that invalidates only its own call's range is caught;
//  - a valid live entry is never replaced by another valid one, and an entry that was broken
//    (valid -> invalid) is made valid again only after an invalidation;
//  - a table becomes reachable only when everything in its subtree was written before the last
//    order() (coherent walker) or cleaned (non-coherent walker: the pool's zeroes included);
//  - at the end of an operation no reachable entry is left uncleaned (non-coherent; check_clean()).
class RecordingMemory {
public:
    struct Event {
        enum Kind : uint8_t { store, clean, order, barrier, invalidate, alloc, free } kind;
        uint64_t seq;
        uint64_t pa;   // store/clean/alloc/free: physical address; invalidate: IOVA
        uint64_t a;    // store: old value; clean: bytes; invalidate: size; alloc/free: pages
        uint64_t b;    // store: new value
        bool live = false;  // store: into a table a walker could reach at the time
    };

    RecordingMemory(PagePool& pool, bool coherent) : pool_(pool), coherent_(coherent) {}

    // ---- the memory policy
    Result<uint64_t> alloc(size_t pages, size_t align, bool zero = true) {
        Result<uint64_t> r = pool_.alloc(pages, align, zero);
        if (r.ok()) adopt(r.value, pages, zero);
        return r;
    }
    size_t alloc_each(uint64_t* pas, size_t n) {
        const size_t done = pool_.alloc_each(pas, n);
        for (size_t k = 0; k < done; k++) adopt(pas[k], 1, false);  // as alloc(1, 1, false) gives each
        return done;
    }
    // Pages the pool just handed out become tracked, allocated pages.
    void adopt(uint64_t pa, size_t pages, bool zero) {
        // An unzeroed page holds garbage that reads as valid entries: any entry the engine fails
        // to overwrite before linking the table shows up in the walks and reference checks.
        if (!zero) memset(pool_.virt(pa), 0xff, pages * kPageSize);
        unzeroed_ += zero ? 0 : pages;
        for (size_t k = 0; k < pages; k++) {
            Page& p = pages_[pa + k * kPageSize];
            p = Page{};
            p.allocated = true;
            if (!coherent_) {  // the pool's memset left the zeroes in the cache
                p.dirty.set();
                dirty_pages_.insert(pa + k * kPageSize);
            }
        }
        note(Event::alloc, pa, pages, 0);
    }
    void free(uint64_t pa, size_t pages) {
        for (size_t k = 0; k < pages; k++) {
            Page& p = pages_[pa + k * kPageSize];
            if (!p.allocated) violation("free of a page not allocated", pa);
            if (p.live) violation("free of a page a walker can reach", pa);
            if (pending_.count(pa + k * kPageSize)) violation("free of an unlinked page before its invalidation", pa);
            p.allocated = false;
            dirty_pages_.erase(pa + k * kPageSize);
        }
        note(Event::free, pa, pages, 0);
        EXPECT_EQ(pool_.free(pa, pages), Status::ok);
    }
    void free_each(const uint64_t* pas, size_t n) {
        for (size_t k = 0; k < n; k++) free(pas[k], 1);
    }
    uint64_t* table(uint64_t pa) const { return static_cast<uint64_t*>(pool_.virt(pa)); }
    uint32_t& side(uint64_t pa) const {
        auto it = pages_.find(pa);
        if (it == pages_.end() || !it->second.allocated) const_cast<RecordingMemory*>(this)->violation("side word of a page not allocated", pa);
        return pool_.owner_word(pa);
    }
    bool short_of_pages() const { return pool_.free_pages() < short_below; }

    void store(uint64_t* ptr, uint64_t v) {
        const uint64_t pa = pool_.phys(ptr), page = align_down(pa, kPageSize);
        const size_t idx = (pa - page) / 8;
        Page& p = pages_[page];
        const uint64_t old = *ptr;
        const uint64_t seq = ++seq_;
        if (!p.allocated) violation("store to a page not allocated", pa);
        if (p.live) check_live_store(p, pa, old, v, seq);
        __atomic_store_n(ptr, v, __ATOMIC_RELAXED);
        p.last_store = seq;
        if (!coherent_) {
            p.dirty.set(idx);
            dirty_pages_.insert(page);
        }
        stores++;
        if (keep_log) log.push_back(Event{Event::store, seq, pa, old, v, p.live});
        if (p.live && after_store) after_store();
    }
    void fill(uint64_t* ptr, size_t n, uint64_t first, uint64_t step) {
        for (size_t i = 0; i < n; i++) store(ptr + i, first + i * step);
    }
    void sync(const uint64_t* ptr, size_t n) {
        if (coherent_) return;
        cache::sync_for_device(ptr, n * 8);
        uint64_t pa = pool_.phys(ptr);
        for (size_t i = 0; i < n; i++, pa += 8) {
            auto it = pages_.find(align_down(pa, kPageSize));
            if (it == pages_.end()) continue;
            it->second.dirty.reset((pa & (kPageSize - 1)) / 8);
            if (it->second.dirty.none()) dirty_pages_.erase(it->first);
        }
        note(Event::clean, pool_.phys(ptr), n * 8, 0);
    }
    void order() { last_order_ = note(Event::order, 0, 0, 0); }
    void barrier() { note(Event::barrier, 0, 0, 0); }

    // ---- for tests
    // After an operation, before the caller's invalidation: nothing reachable is left uncleaned.
    void check_clean() {
        for (uint64_t page : dirty_pages_)
            if (pages_[page].live) violation("a reachable entry was left uncleaned at the end of an operation", page);
    }
    void set_root(uint64_t pa, unsigned tables, unsigned level) {
        for (unsigned k = 0; k < tables; k++) {
            Page& p = pages_[pa + k * kPageSize];
            p.live = true;
            p.level = static_cast<int>(level);
            p.base = k * (uint64_t{kEntries} << level_shift(level));
        }
    }
    // An invalidation of [iova, iova + size) completed (the hook, or the caller's flush after an
    // operation): unlinked tables whose span it touches may be freed or reused now.
    void invalidated(uint64_t iova, uint64_t size) {
        last_invalidate_ = note(Event::invalidate, iova, size, 0);
        const uint64_t end = size > ~iova ? ~uint64_t{0} : iova + size;
        for (auto it = pending_.begin(); it != pending_.end();) {
            const Page& p = pages_[*it];
            if (p.base < end && iova < p.base + p.span) it = pending_.erase(it);
            else ++it;
        }
    }
    // Tables unlinked and not yet covered by an invalidation.
    size_t pending_invalidation() const { return pending_.size(); }
    bool live(uint64_t page) const {
        auto it = pages_.find(page);
        return it != pages_.end() && it->second.live;
    }
    bool coherent() const { return coherent_; }
    void clear_log() { log.clear(); }

    bool keep_log = true;
    size_t short_below = 64;  // short_of_pages() below this many free pool pages
    std::vector<Event> log;
    std::vector<std::string> violations;
    std::function<void()> after_store;  // called after every store to a reachable table
    uint64_t stores = 0;

    // Pages handed out without zeroing (the engine promised to overwrite them whole).
    uint64_t unzeroed_pages() const { return unzeroed_; }

private:
    uint64_t unzeroed_ = 0;
    struct Page {
        bool allocated = false;
        bool live = false;
        int level = -1;
        uint64_t base = 0, span = 0;  // the IOVA span the table translates where it was linked
        uint64_t last_store = 0;
        uint64_t unlinked = 0;  // seq at which it last became unreachable (0: never was reachable)
        std::bitset<512> dirty;
    };

    uint64_t note(Event::Kind k, uint64_t pa, uint64_t a, uint64_t b) {
        uint64_t seq = ++seq_;
        if (keep_log) log.push_back(Event{k, seq, pa, a, b});
        return seq;
    }
    void violation(const char* what, uint64_t pa) {
        char buf[64];
        snprintf(buf, sizeof buf, " at pa %#llx (seq %llu)", static_cast<unsigned long long>(pa),
                 static_cast<unsigned long long>(seq_));
        violations.push_back(std::string(what) + buf);
    }

    void check_live_store(Page& p, uint64_t pa, uint64_t old, uint64_t v, uint64_t seq) {
        const unsigned level = static_cast<unsigned>(p.level);
        const bool was = desc::valid(old), is = desc::valid(v);
        if (was && is) violation("a valid live entry replaced by another valid one (no break-before-make)", pa);
        const uint64_t iova = p.base + (((pa & (kPageSize - 1)) / 8) << level_shift(level));
        if (was && !is) {
            breaks_[pa] = seq;
            if (desc::is_table(old, level)) set_live(old & desc::kOa, level + 1, false, iova);
        }
        if (!was && is) {
            auto b = breaks_.find(pa);
            if (b != breaks_.end()) {
                if (last_invalidate_ < b->second) violation("entry made valid again before the break was invalidated", pa);
                breaks_.erase(b);
            }
            if (desc::is_table(v, level)) {
                check_subtree_ready(v & desc::kOa, level + 1);
                set_live(v & desc::kOa, level + 1, true, iova);
            }
        }
    }
    void check_subtree_ready(uint64_t page, unsigned level) {
        auto it = pages_.find(page);
        if (it == pages_.end() || !it->second.allocated) return violation("link to a page not allocated", page);
        const Page& p = it->second;
        if (p.live) violation("link to a table that is already reachable", page);
        // A walk cache may still hold a table it reached before its unlink: reusing it before the
        // invalidation would let a device walk someone else's entries through it.
        if (pending_.count(page)) violation("table linked again before the invalidation of its unlink", page);
        if (coherent_ && p.last_store > last_order_) violation("table written after the last barrier before its link", page);
        if (!coherent_ && p.dirty.any()) violation("table linked before all of it was cleaned", page);
        const uint64_t* t = table(page);
        if (level < kLastLevel)
            for (size_t i = 0; i < kEntries; i++)
                if (desc::is_table(t[i], level)) check_subtree_ready(t[i] & desc::kOa, level + 1);
    }
    // The table at `page` (level, translating from `base`) and its subtree become (un)reachable.
    void set_live(uint64_t page, unsigned level, bool live, uint64_t base) {
        Page& p = pages_[page];
        p.live = live;
        p.level = static_cast<int>(level);
        p.base = base;
        p.span = level_size(level - 1);
        if (!live) {
            p.unlinked = seq_;
            pending_.insert(page);
        }
        const uint64_t* t = table(page);
        if (level < kLastLevel)
            for (size_t i = 0; i < kEntries; i++)
                if (desc::is_table(t[i], level)) set_live(t[i] & desc::kOa, level + 1, live, base + (uint64_t{i} << level_shift(level)));
    }

    PagePool& pool_;
    bool coherent_;
    uint64_t seq_ = 0, last_order_ = 0, last_invalidate_ = 0;
    std::unordered_map<uint64_t, Page> pages_;
    std::unordered_set<uint64_t> dirty_pages_;
    std::unordered_map<uint64_t, uint64_t> breaks_;  // entry address -> seq of its break
    std::unordered_set<uint64_t> pending_;  // unlinked tables no invalidation has covered yet
};

// The hook tests hand to a Gather: records the invalidation in the memory's log.
inline Status record_invalidation(void* ctx, uint64_t iova, uint64_t size, unsigned) {
    static_cast<RecordingMemory*>(ctx)->invalidated(iova, size);
    return Status::ok;
}
inline InvalidateHook hook_for(RecordingMemory& m) { return InvalidateHook{record_invalidation, &m}; }
// What a driver's flush does with a Gather: each range, or everything when it overflowed.
inline void invalidate_ranges(RecordingMemory& m, const Gather& g) {
    if (g.overflowed()) return m.invalidated(0, ~uint64_t{0});
    for (unsigned i = 0; i < g.range_count(); i++) m.invalidated(g.range(i).iova, g.range(i).size);
}

// An independent walker: decodes the raw descriptors as the hardware would, without the engine.
struct Leaf {
    uint64_t iova, size, pa, raw;
    unsigned level;
};
struct TableCount {
    uint64_t pa;
    unsigned valid, full;  // valid entries; leaves and tables whose whole span is mapped
};
struct Walk {
    std::vector<Leaf> leaves;  // in IOVA order
    size_t tables = 0;         // table pages below the root
    size_t empty_tables = 0;   // of which with no valid entry
    std::vector<TableCount> counts;  // every table below the root, as a full scan finds it
    std::vector<std::string> errors;
};
// Returns whether the whole span of the table at `pa` is mapped.
inline bool walk_table(const PagePool& pool, const Geometry& g, uint64_t pa, unsigned level, uint64_t base, Walk& w) {
    const uint64_t* t = static_cast<const uint64_t*>(pool.virt(pa));
    const size_t n = level == g.start_level ? g.root_entries() : 512;
    const unsigned shift = 12 + 9 * (3 - level);
    unsigned valid = 0, full = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t e = t[i];
        if (!(e & 1)) continue;
        valid++;
        uint64_t iova = base + (uint64_t{i} << shift);
        if (level < 3 && (e & 3) == 3) {
            w.tables++;
            full += walk_table(pool, g, e & 0x0000fffffffff000ull, level + 1, iova, w);
        } else if ((level == 3 && (e & 3) != 3) || level == 0) {
            w.errors.push_back("reserved descriptor at level " + std::to_string(level));
        } else {
            full++;
            uint64_t size = uint64_t{1} << shift;
            w.leaves.push_back(Leaf{iova, size, e & 0x0000fffffffff000ull & ~(size - 1), e, level});
        }
    }
    if (level != g.start_level) {
        if (!valid) w.empty_tables++;
        w.counts.push_back(TableCount{pa, valid, full});
    }
    return full == n;
}
inline void walk_into(const PagePool& pool, const Geometry& g, uint64_t root, Walk& w) {
    w.leaves.clear();
    w.errors.clear();
    w.counts.clear();
    w.tables = w.empty_tables = 0;
    walk_table(pool, g, root, g.start_level, 0, w);
}
inline Walk walk(const PagePool& pool, const Geometry& g, uint64_t root) {
    Walk w;
    walk_into(pool, g, root, w);
    return w;
}

// The reference model: disjoint extents, one per successful piece of a map call, never merged, so
// that a leaf spanning two extents proves that separate calls were folded.
struct Extent {
    uint64_t size, pa;
    Prot prot;
    uint64_t pgsize;  // 0: largest policy
    uint64_t call;
};
class Model {
public:
    std::map<uint64_t, Extent> m;

    // The extent holding a, or nullptr.
    const Extent* find(uint64_t a, uint64_t* start) const {
        auto it = m.upper_bound(a);
        if (it == m.begin()) return nullptr;
        --it;
        if (a >= it->first + it->second.size) return nullptr;
        *start = it->first;
        return &it->second;
    }
    uint64_t first_mapped(uint64_t lo, uint64_t hi) const {
        uint64_t s;
        if (find(lo, &s)) return lo;
        auto it = m.lower_bound(lo);
        return it == m.end() || it->first >= hi ? hi : it->first;
    }
    uint64_t first_unmapped(uint64_t lo, uint64_t hi) const {
        uint64_t a = lo, s;
        while (a < hi) {
            const Extent* e = find(a, &s);
            if (!e) return a;
            a = s + e->size;
        }
        return hi;
    }
    void insert(uint64_t iova, uint64_t size, uint64_t pa, const Prot& p, uint64_t pgsize, uint64_t call) {
        if (size) m[iova] = Extent{size, pa, p, pgsize, call};
    }
    void erase(uint64_t lo, uint64_t hi) {
        if (lo >= hi) return;
        auto it = m.upper_bound(lo);
        if (it != m.begin()) --it;
        while (it != m.end() && it->first < hi) {
            uint64_t s = it->first, e = s + it->second.size;
            if (e <= lo) {
                ++it;
                continue;
            }
            Extent x = it->second;
            it = m.erase(it);
            if (s < lo) keep(x, s, s, lo, lo);
            if (e > hi) keep(x, s, hi, e, hi);
        }
    }
    // Keeps [a, b) of extent x (which started at s) after a cut at `cut`: the leaves of an exact-size
    // mapping that the cut split are smaller now, the others keep their size.
    void keep(const Extent& x, uint64_t s, uint64_t a, uint64_t b, uint64_t cut) {
        auto put = [&](uint64_t lo, uint64_t hi, uint64_t pgsize) {
            if (hi > lo) m[lo] = Extent{hi - lo, x.pa + (lo - s), x.prot, pgsize, x.call};
        };
        if (!x.pgsize || cut % x.pgsize == 0) return put(a, b, x.pgsize);
        const uint64_t blo = align_down(cut, x.pgsize), bhi = blo + x.pgsize;  // the split leaf
        put(a, max(a, min(b, blo)), x.pgsize);
        put(max(a, blo), min(b, bhi), 0);
        put(max(a, bhi), b, x.pgsize);
    }
    uint64_t bytes() const {
        uint64_t b = 0;
        for (auto& [k, e] : m) b += e.size;
        return b;
    }
};

// What lookup should read back for what was mapped (stage 1 has no write-only permission).
template <class F>
Prot effective(Prot p) {
    if (F::kStage == Stage::s1 && (p.perm & kWrite)) p.perm |= kRead;
    return p;
}

}  // namespace iopt_test
