// The I/O page-table engine: one VMSAv8-64 (4 KiB granule) table, stage 1 or stage 2, over a
// memory policy (memory.hpp). The same code serves the CPU's stage 2 and every Arm IOMMU.
//
// Rules every update follows, because a walker may read the table at any moment:
//  - an entry changes with ONE 64-bit store (Memory::store);
//  - a new table is written completely, in private, then cleaned (non-coherent walker) and ordered
//    before the single store that links it: a walker sees no table or a finished one;
//  - a live valid entry is never replaced by another valid one: a block becomes a table by
//    break-before-make (invalid entry, immediate invalidation through the Gather's hook, new entry);
//  - an unlinked table is only handed back to the pool, or reused, after the caller's invalidation
//    (release()).
// Pages mapped by separate calls are never folded into a block.
//
// Counting instead of scanning. Each table below the root has a side word (Memory::side, kept
// outside the table because the walker reads the table): its valid entries, and its "full" entries
// (a leaf, or a table whose whole span is mapped). Emptiness and "everything under this entry is
// mapped" are then one load, and an aligned unmap of a full table drops it without reading leaves.
//
// Parking. A leaf table that a one-leaf-table unmap (the DMA hot path) empties stays LINKED: the
// walker reads invalid entries there (a translation fault, as for any hole), and the next map into
// that span writes its entries without building a walk. Such a table is "parked": recorded in a
// fixed set of kParkedTables per table (its span and page; its side word carries kParkedBit), never
// more. It stays in the set while maps and unmaps reuse it (the DMA hot path touches neither the
// set nor the pool), and is unlinked ("evicted", with its ancestors that empty, bottom-up) when
//  - the set is full or the pool is short: a table that empties and is not in it is unlinked at once;
//  - the set served no map for kParkIdle unmaps: the oldest, at the end of the next unmap (one
//    that is in use again just leaves the set);
//  - the owner asks (unlink_parked(): pool pressure, the release point) or destroy();
//  - a map wants a block where a parked table (or a table holding only parked ones) is: break,
//    immediate invalidation through the Gather's hook, then the block (break-before-make).
// A parked table that a larger unmap drops whole (full) leaves the set with it.
// An eviction outside a map adds one page of the evicted span to the caller's Gather (removed,
// tables freed): every walk-cache entry for the unlinked tables is on the walk of that page, so the
// caller's (non-leaf) invalidation of the Gather's ranges covers them before release() lets the
// pages be reused. A parked table counts as valid in its parent: its parent never empties under it.
//
// Recycling. A table that emptied entry by entry is all zeroes again; after release() (so after the
// caller's invalidation: no walk cache still holds it) it goes to a small cache of kCacheTables
// pages that map() takes from before the pool, unzeroed. The DMA hot path (map one buffer, unmap
// it) then allocates, zeroes and frees nothing. Cached pages are bounded and not kept forever:
// release() gives them all back when the pool runs short, when the cache served nothing for
// kCacheIdle releases, or (under one acquisition of the pool's lock) when another empty table
// finds it full, which then starts it again, and trim() (the owner's release point) and destroy() give them back at once.
// Dropped full subtrees are not zero and go straight back to the pool.
//
// Fences, each where a walker's ordering needs it and nowhere else:
//  - order() once before the store that links a new table into a live one (map, and the "make" of
//    a split): the new subtree's entries before the link. Links between private tables need none.
//  - barrier() after the "break" of a split, before the hook's immediate invalidation.
//  - none at the end of map(): it only filled invalid entries, which the Arm walkers never cache;
//    whoever then tells a device about the buffer orders these stores with barrier::memory_before_mmio
//    (a doorbell, a queue's producer index), as every driver's command path does; the CPU's own
//    stage 2 is ordered by the dsb before the first entry into the guest (arch/arm64/vm.cpp).
//  - none at the end of unmap(): whoever issues the invalidation the caller owes puts the fence
//    before it, once per flush rather than once per call: IoDomain::finish (before_invalidate
//    ahead of every driver's flush, whose first TLBI or command must not overtake the cleared
//    entries). For a non-coherent walker (IPMMU) the clean in Memory::sync already waited too.
//
// Not thread-safe: the owner (an IoDomain, a P2M) serialises calls. The hardware never writes the
// tables (the access flag is preset and dirty-state management is not used), so the engine may read
// them with plain loads.
#pragma once
#include "common/iopt/descriptor.hpp"
#include "common/iopt/gather.hpp"
#include "common/status.hpp"

namespace moat::iopt {

template <class Format, class Memory>
class PageTable {
    using desc = typename Format::Desc;  // the format's descriptor rules (VMSA, VT-d): every desc:: below
public:
    // map() page-size policy: the largest page or block that alignment and range allow...
    static constexpr uint64_t kLargest = 0;
    // ...or else exactly one of pgsize_bitmap() (PV-IOMMU's pgsize), with iova, pa and size aligned to it.

    // Empty tables kept for reuse: a 4-level walk is 3 tables below the root, and a few buffers
    // in flight in separate leaf tables fit too. Bounded per table, so per domain.
    static constexpr size_t kCacheTables = 8;
    static constexpr unsigned kStash = 32;  // leaf tables a large map takes from the pool at once
    // release() calls in a row that took nothing from the cache before it is given back.
    static constexpr unsigned kCacheIdle = 64;
    // Emptied leaf tables kept linked (see "Parking"): a few buffers in flight in separate leaf
    // tables. With their walks, at most 3 pages each stay out of the pool until evicted.
    static constexpr unsigned kParkedTables = 8;
    // Unmaps in a row while no map reused a parked table before the oldest is evicted.
    static constexpr unsigned kParkIdle = 64;

    PageTable(Memory& mem, unsigned ias, unsigned oas) : mem_(mem), geo_(make_geometry(Format::kStage, ias, oas)) {}
    PageTable(const PageTable&) = delete;
    PageTable& operator=(const PageTable&) = delete;

    // Allocates the (possibly concatenated, size-aligned) root. invalid_argument for an IAS/OAS
    // outside 32..48 / the architected output sizes; no_memory from the pool.
    Status init() {
        if (!geo_.valid()) return Status::invalid_argument;
        if (ready_) return Status::in_use;
        Result<uint64_t> r = mem_.alloc(geo_.root_tables, geo_.root_tables);
        if (!r.ok()) return r.status;
        root_pa_ = r.value;
        ready_ = true;
        ncache_ = 0;
        idle_ = 0;
        nparked_ = 0;
        park_idle_ = 0;
        mem_.sync(table(root_pa_), size_t{geo_.root_tables} * kEntries);  // the pool's zeroes, too
        mem_.barrier();
        return Status::ok;
    }

    // Frees every table and the root at once. Only after every walker was detached and invalidated.
    void destroy() {
        if (!ready_) return;
        const uint64_t* root = table(root_pa_);
        for (size_t i = 0; i < geo_.root_entries(); i++)
            if (desc::is_table(root[i], geo_.start_level)) free_private(root[i] & desc::kOa, geo_.start_level + 1);
        nparked_ = 0;  // parked tables are linked: freed with the rest
        trim();
        mem_.free(root_pa_, geo_.root_tables);
        ready_ = false;
    }

    const Geometry& geometry() const { return geo_; }
    // TTBR / VTTBR / CD.TTB0 / STE.S2TTB (concatenated roots start here and are aligned to their size).
    uint64_t root_pa() const { return root_pa_; }
    bool ready() const { return ready_; }

    // Maps [iova, iova + size) to [pa, pa + size). Stops at the first entry already in use
    // (Status::in_use) or when the pool runs dry (no_memory); bytes_done says how far it got and
    // those bytes STAY MAPPED: the caller unmaps them if it wants all or nothing.
    Progress map(uint64_t iova, uint64_t pa, uint64_t size, const Prot& prot, Gather& g, uint64_t pgsize = kLargest) {
        Status bad = check_map(iova, pa, size, prot, pgsize);
        if (bad != Status::ok) return {0, bad};
        if (in_one_leaf_table(iova, size) && pgsize <= kPageSize) {  // the DMA hot path
            Progress p;
            if (map_small(iova, pa, size, Format::encode(prot), p)) {
                if (p.bytes_done) g.add(iova, p.bytes_done, kGranuleShift, false);
                return p;
            }
        }
        MapCursor c{iova, pa, iova + size, Format::encode(prot), pgsize, 63, &g};
        Status st = map_table(table(root_pa_), root_word_, geo_.start_level, false, c);
        if (c.next < c.n) mem_.free_each(c.stash + c.next, c.n - c.next);  // untouched: straight back
        uint64_t done = c.iova - iova;
        if (done) g.add(iova, done, c.granule_shift, false);
        return {done, st};
    }

    // Unmaps [iova, iova + size). Stops at the first hole (not_found). Unmapping part of a block
    // splits it, which needs table pages and the Gather's hook: without memory it stops before that
    // block with no_memory and nothing about the block changed; without a hook, unsupported; when
    // the hook's invalidation fails, with its status and the whole block unmapped (gathered).
    // Tables that empty are unlinked and wait in `g` for release().
    Progress unmap(uint64_t iova, uint64_t size, Gather& g) {
        Status bad = check_range(iova, size);
        if (bad != Status::ok) return {0, bad};
        if (in_one_leaf_table(iova, size)) {  // the DMA hot path
            bool freed = false;
            if (unmap_small(iova, size, g, freed)) {
                g.add(iova, size, kGranuleShift, true);
                if (freed) g.tables_freed_ = true;
                if (nparked_ && ++park_idle_ > kParkIdle) evict_oldest(g);
                return {size, Status::ok};
            }
        }
        UnmapCursor c{iova, iova + size, 63, false};
        Status st = unmap_table(table(root_pa_), root_word_, geo_.start_level, c, g);
        uint64_t done = c.iova - iova;
        if (done) g.add(iova, done, c.granule_shift, true);
        if (c.tables_freed) g.tables_freed_ = true;
        if (nparked_ && ++park_idle_ > kParkIdle) evict_oldest(g);
        return {done, st};
    }

    Result<Translation> lookup(uint64_t iova) const {
        if (!ready_) return Status::invalid_argument;
        if (iova >= geo_.input_limit()) return Status::out_of_range;
        const uint64_t* t = table(root_pa_);
        for (unsigned level = geo_.start_level;; level++) {
            uint64_t e = t[index(iova, level)];
            if (!desc::valid(e)) return Status::not_found;
            if (desc::is_table(e, level)) {
                t = table(e & desc::kOa);
                continue;
            }
            Translation tr;
            tr.size = level_size(level);
            tr.pa = (e & desc::kOa & ~(tr.size - 1)) | (iova & (tr.size - 1));
            tr.level = level;
            tr.prot = Format::decode(e);
            return tr;
        }
    }

    // Takes the table pages `g` holds (into the cache while it has room and they are empty, else
    // back to the pool) and empties `g`. Call once the invalidation of g's ranges has completed.
    void release(Gather& g) {
        if (g.nheld_ | g.free_count_) {
            unsigned k = 0;
            if (g.nheld_ <= kCacheTables - ncache_)  // the hot path: everything fits, no page is touched
                for (; k < g.nheld_ && !(g.held_[k] & kNotEmpty); k++) cache_[ncache_++] = g.held_[k];
            // The rest: empty ones into the cache, spilling the whole cache to the pool under one
            // acquisition of its lock when it is full (scattered unmaps each empty a leaf table
            // and often the one above: one lock per few calls, not two per call); others back
            // with them. The cache stays within its bound either way.
            uint64_t back[Gather::kHeldPages];
            size_t nback = 0;
            for (; k < g.nheld_; k++) {
                const uint64_t held = g.held_[k] & desc::kOa;
                if (g.held_[k] & kNotEmpty) {
                    back[nback++] = held;
                    continue;
                }
                if (ncache_ == kCacheTables) {
                    mem_.free_each(cache_, ncache_);
                    ncache_ = 0;
                }
                cache_[ncache_++] = held;
            }
            if (nback) mem_.free_each(back, nback);
            // A dropped subtree's pages go straight back, a batch per acquisition of the pool's lock.
            uint64_t batch[kFreeBatch];
            size_t nb = 0;
            uint64_t pa = g.free_head_;
            for (size_t j = 0; j < g.free_count_; j++) {
                const uint64_t link = table(pa)[0];
                if (!(link & kNotEmpty)) {
                    recycle(pa, true, true);
                } else {
                    batch[nb++] = pa;
                    if (nb == kFreeBatch) {
                        mem_.free_each(batch, nb);
                        nb = 0;
                    }
                }
                pa = link & desc::kOa;
            }
            if (nb) mem_.free_each(batch, nb);
            g.nheld_ = 0;
            g.free_head_ = 0;
            g.free_count_ = 0;
        }
        g.clear_ranges();
        if (ncache_ && (++idle_ > kCacheIdle || mem_.short_of_pages())) trim();
    }

    // The release point of cached empty tables: all of them back to the pool now.
    void trim() {
        while (ncache_) mem_.free(cache_[--ncache_], 1);
        idle_ = 0;
    }
    // Evicts every parked table into `g` (their pages wait there for the invalidation of g's ranges
    // and release()). Returns how many. The owner's release point: unlink_parked, flush, release, trim.
    unsigned unlink_parked(Gather& g) {
        unsigned n = 0;
        while (nparked_) n += evict_oldest(g);
        return n;
    }
    // Leaf tables in the parked set, oldest first: linked, and empty unless a map used one again
    // (the empty ones and their walks are part of what the table holds from the pool).
    size_t parked_tables() const { return nparked_; }
    uint64_t parked_table(size_t i) const { return parked_[i].pa; }
    // Parked tables unlinked so far (each added a page to some Gather), for tests and figures.
    uint64_t evictions() const { return evictions_; }
    // Tests: at most n tables parked from now on (0: an emptied table is unlinked at once).
    void set_park_limit(unsigned n) { park_limit_ = n < kParkedTables ? n : kParkedTables; }
    // Empty, invalidated tables held for reuse (part of what the table holds from the pool).
    size_t cached_tables() const { return ncache_; }
    uint64_t cached_table(size_t i) const { return cache_[i]; }

    // The side word of the table at `pa` (below the root): for tests, which check it against a walk.
    static constexpr unsigned valid_entries(uint32_t w) { return w & 0x7fff; }
    static constexpr uint32_t kParkedBit = uint32_t{1} << 15;  // the leaf table is in the parked set
    static constexpr unsigned full_entries(uint32_t w) { return w >> 16; }
    uint32_t side_word(uint64_t pa) const { return mem_.side(pa); }

private:
    struct MapCursor {
        uint64_t iova, pa, end;  // next IOVA and PA to map, end of the range
        uint64_t attrs;          // leaf attribute bits from the format
        uint64_t pgsize;         // kLargest or the exact size
        unsigned granule_shift;  // smallest leaf written
        Gather* g;               // for the break-before-make of a block over parked tables
        // Leaf-table pages taken from the pool a batch at a time for a range of whole leaf tables
        // (one acquisition of the pool's lock and one bitmap scan per kStash tables instead of per
        // table); [next, n) are still unused, not zeroed, and go back when the map returns.
        uint64_t stash[kStash];
        unsigned next = 0, n = 0;
    };
    struct UnmapCursor {
        uint64_t iova, end;
        unsigned granule_shift;  // smallest leaf removed
        bool tables_freed;
    };

    uint64_t* table(uint64_t pa) const { return mem_.table(pa); }
    size_t entries(unsigned level) const { return level == geo_.start_level ? geo_.root_entries() : kEntries; }
    size_t index(uint64_t iova, unsigned level) const { return (iova >> level_shift(level)) & (entries(level) - 1); }

    Status check_range(uint64_t iova, uint64_t size) const {
        if (!ready_ || size == 0 || !is_aligned(iova | size, kPageSize)) return Status::invalid_argument;
        if (add_overflows(iova, size) || iova + size > geo_.input_limit()) return Status::out_of_range;
        return Status::ok;
    }
    Status check_map(uint64_t iova, uint64_t pa, uint64_t size, const Prot& p, uint64_t pgsize) const {
        if (!is_aligned(pa, kPageSize)) return Status::invalid_argument;
        if (pgsize != kLargest &&
            (!is_pow2(pgsize) || !(pgsize & geo_.pgsize_bitmap()) || !is_aligned(iova | pa | size, pgsize)))
            return Status::invalid_argument;
        if (!(p.perm & (kRead | kWrite)) || (p.perm & ~kPermMask) || p.type > MemType::device ||
            (p.share != Share::none && p.share != Share::outer && p.share != Share::inner) || !Format::accepts(p))
            return Status::invalid_argument;
        Status st = check_range(iova, size);
        if (st != Status::ok) return st;
        if (add_overflows(pa, size) || pa + size > geo_.output_limit()) return Status::out_of_range;
        return Status::ok;
    }

    // One valid entry, one full entry (a leaf, or a table whose whole span is mapped), both.
    static constexpr uint32_t kValidOne = 1, kFullOne = uint32_t{1} << 16, kBoth = kValidOne | kFullOne;
    static bool is_full(uint32_t w) { return full_entries(w) == kEntries; }
    uint32_t& side(uint64_t pa) { return mem_.side(pa); }

    // How many of p[0, n) are valid before the first hole. Plain loads, in blocks of 16 with
    // independent accumulators so that -O2 vectorises them; only over the range asked for.
    static size_t valid_prefix(const uint64_t* p, size_t n) {
        size_t i = 0;
        for (; i + 16 <= n; i += 16) {
            uint64_t a = desc::kValid, b = desc::kValid, c = desc::kValid, d = desc::kValid;
            for (size_t k = 0; k < 16; k += 4) {
                a &= p[i + k];
                b &= p[i + k + 1];
                c &= p[i + k + 2];
                d &= p[i + k + 3];
            }
            if (!((a & b & c & d) & desc::kValid)) break;
        }
        while (i < n && desc::valid(p[i])) i++;
        return i;
    }

    // A table page for the engine: a cached empty one (zero, invalidated) or one from the pool.
    // Its side word reads "empty" until the caller counts what it writes.
    Result<uint64_t> take_table(bool zero, bool reset_side = true) {
        if (ncache_) {
            idle_ = 0;
            const uint64_t pa = cache_[--ncache_];
            if (reset_side) side(pa) = 0;
            return pa;
        }
        Result<uint64_t> r = mem_.alloc(1, 1, zero);
        if (r.ok() && reset_side) side(r.value) = 0;
        return r;
    }
    // A leaf table the map will fill whole before linking it: a cached one first (under pool
    // exhaustion those are what is left), else the cursor's batch, refilled with up to kStash
    // pages when more than one whole leaf table is still to come.
    Result<uint64_t> take_leaf_table(MapCursor& c) {
        if (!ncache_ && c.next == c.n) {
            const uint64_t whole = (c.end - c.iova) >> level_shift(kLastLevel - 1);
            if (whole > 1) {
                c.next = 0;
                c.n = static_cast<unsigned>(mem_.alloc_each(c.stash, min<uint64_t>(whole, kStash)));
            }
        }
        if (ncache_ || c.next == c.n) return take_table(false);
        const uint64_t pa = c.stash[c.next++];
        side(pa) = 0;
        return pa;
    }
    // A page that came out of a gather: empty ones into the cache (the chain's link was its only
    // non-zero word), others back to the pool.
    void recycle(uint64_t pa, bool empty, bool chained) {
        if (empty && ncache_ < kCacheTables) {
            if (chained) mem_.store(table(pa), 0);  // unreachable since the invalidation: a plain reset
            cache_[ncache_++] = pa;
            return;
        }
        mem_.free(pa, 1);
    }

    // ---- The DMA hot path: a range of pages inside one leaf table's span (below 2 MiB, so never a
    // block). One iterative walk that keeps each level's table, slot and side word, instead of the
    // general recursion. Anything unusual on the way (a block, a collision, a hole) returns false
    // before changing anything, and the general path does the work and reports it.
    struct Path {
        uint64_t* slot[kLastLevel + 1];  // slot[l]: the entry at level l on the walk
        uint64_t pa[kLastLevel + 1];     // pa[l]: the table at level l
    };
    // Side word of the table at level l on the walk (looked up only where a count changes).
    uint32_t& word(const Path& p, unsigned l) { return l == geo_.start_level ? root_word_ : side(p.pa[l]); }
    static bool in_one_leaf_table(uint64_t iova, uint64_t size) {
        return size < level_size(kLastLevel - 1) && ((iova ^ (iova + size - 1)) >> level_shift(kLastLevel - 1)) == 0;
    }
    // Walks to the deepest table on iova's walk; returns its level (kLastLevel: the leaf table).
    unsigned walk(uint64_t iova, Path& p) {
        uint64_t* t = table(root_pa_);
        unsigned level = geo_.start_level;
        p.slot[kLastLevel] = nullptr;  // never a slot: the walk stops at the leaf table
        p.pa[level] = root_pa_;
        size_t idx = (iova >> level_shift(level)) & (geo_.root_entries() - 1);
        for (;;) {
            p.slot[level] = t + idx;
            const uint64_t e = t[idx];
            if (!desc::is_table(e, level)) return level;
            p.pa[level + 1] = e & desc::kOa;
            t = table(e & desc::kOa);
            if (++level == kLastLevel) return level;
            idx = (iova >> level_shift(level)) & (kEntries - 1);
        }
    }

    bool map_small(uint64_t iova, uint64_t pa, uint64_t size, uint64_t attrs, Progress& out) {
        Path p;  // walk() fills what is read: [start_level, deepest]
        const unsigned deepest = walk(iova, p);
        const size_t first = index(iova, kLastLevel), n = size >> kGranuleShift;
        const uint64_t e0 = desc::leaf(kLastLevel, pa, attrs);
        if (deepest == kLastLevel) {
            uint64_t* t = table(p.pa[kLastLevel]);
            uint32_t& w = side(p.pa[kLastLevel]);
            if (valid_entries(w)) {
                for (size_t k = 0; k < n; k++)
                    if (desc::valid(t[first + k])) return false;  // collision: the general path stops there
            } else if (w & kParkedBit) {  // a parked table used again: no walk to build
                park_idle_ = 0;
            }
            for (size_t k = 0; k < n; k++) mem_.store(t + first + k, e0 + (k << kGranuleShift));
            mem_.sync(t + first, n);
            w += static_cast<uint32_t>(n) * kBoth;
            // A table that just became full makes its parent's entry full, and so on up.
            if (is_full(w))
                for (unsigned l = kLastLevel; l > geo_.start_level && is_full(word(p, l)); l--) word(p, l - 1) += kFullOne;
            out = {size, Status::ok};
            return true;
        }
        uint64_t* const slot = p.slot[deepest];
        if (!slot || desc::valid(*slot)) return false;  // a block: the general path reports the collision
        // The rest of the walk, built in private bottom-up, then linked with one store.
        uint64_t pages[kLastLevel + 1];
        for (unsigned l = deepest + 1; l <= kLastLevel; l++) {
            Result<uint64_t> r = take_table(true, false);  // side words are written below
            if (!r.ok()) {
                while (--l > deepest) {  // untouched: back as they came, counted empty
                    side(pages[l]) = 0;
                    recycle(pages[l], true, false);
                }
                out = {0, Status::no_memory};
                return true;
            }
            pages[l] = r.value;
        }
        uint64_t* leaf = table(pages[kLastLevel]);
        mem_.fill(leaf + first, n, e0, kPageSize);
        side(pages[kLastLevel]) = static_cast<uint32_t>(n) * kBoth;
        mem_.sync(leaf, kEntries);  // whole: the pool's zeroes may still sit in the cache
        for (unsigned l = kLastLevel - 1; l > deepest; l--) {
            uint64_t* t = table(pages[l]);
            mem_.store(t + index(iova, l), desc::table(pages[l + 1]));  // private: no fence of its own
            side(pages[l]) = kValidOne;
            mem_.sync(t, kEntries);
        }
        mem_.order();  // the new subtree before the store that makes it reachable
        mem_.store(slot, desc::table(pages[deepest + 1]));
        mem_.sync(slot, 1);
        word(p, deepest) += kValidOne;
        out = {size, Status::ok};
        return true;
    }

    bool unmap_small(uint64_t iova, uint64_t size, Gather& g, bool& freed) {
        Path p;  // walk() fills what is read: [start_level, deepest]
        if (walk(iova, p) != kLastLevel) return false;  // a block to split, or a hole
        uint64_t* t = table(p.pa[kLastLevel]);
        uint32_t& w = side(p.pa[kLastLevel]);
        const size_t first = index(iova, kLastLevel), n = size >> kGranuleShift;
        const bool was_full = is_full(w);
        if (!was_full && valid_prefix(t + first, n) < n) return false;  // a hole: reported by the general path
        for (size_t k = 0; k < n; k++) mem_.store(t + first + k, 0);
        mem_.sync(t + first, n);
        w -= static_cast<uint32_t>(n) * kBoth;
        if (was_full) {  // no longer full: neither is its parent's entry, and so on up while they were
            for (unsigned l = kLastLevel; l > geo_.start_level; l--) {
                uint32_t& pw = word(p, l - 1);
                const bool parent_was_full = is_full(pw);
                pw -= kFullOne;
                if (!parent_was_full) break;
            }
            return true;  // n < 512: a table that was full is not empty now
        }
        if (valid_entries(w) != 0 || (w & kParkedBit)) return true;  // still in use, or parked again
        // Emptied: parked (left linked for the next map into this span) while the set has room and
        // the pool does not run short; else unlinked at once with the tables it empties, bottom-up.
        if (nparked_ < park_limit_ && !mem_.short_of_pages()) {
            parked_[nparked_++] = Parked{span_of(iova), p.pa[kLastLevel]};
            w = kParkedBit;
            return true;
        }
        for (unsigned l = kLastLevel; l > geo_.start_level; l--) {
            mem_.store(p.slot[l - 1], 0);
            mem_.sync(p.slot[l - 1], 1);
            defer_free(p.pa[l], g, true);
            freed = true;
            uint32_t& pw = word(p, l - 1);
            pw -= kValidOne;
            if (valid_entries(pw)) break;
        }
        return true;
    }

    // ---- Parked tables (see "Parking" at the top).
    struct Parked {
        uint64_t span;  // IOVA of the leaf table's span (aligned to it)
        uint64_t pa;    // the leaf table
    };
    static uint64_t span_of(uint64_t iova) { return align_down(iova, level_size(kLastLevel - 1)); }
    // The leaf table at `pa` goes away whole (a full table dropped): out of the set.
    void forget_parked_table(uint64_t pa) {
        side(pa) &= ~kParkedBit;
        for (unsigned k = 0; k < nparked_; k++)
            if (parked_[k].pa == pa) return forget_parked(k);
    }
    void forget_parked(unsigned k) {
        for (unsigned j = k + 1; j < nparked_; j++) parked_[j - 1] = parked_[j];
        nparked_--;
    }
    // The oldest parked table leaves the set; if it is empty it is unlinked with the ancestors it
    // leaves empty, one page of its span goes into g (removed, tables freed) and the pages wait in
    // g for release(). Returns whether it was unlinked (one in use again only leaves the set).
    bool evict_oldest(Gather& g) {
        park_idle_ = 0;
        const Parked victim = parked_[0];
        forget_parked(0);
        uint32_t& w = side(victim.pa);
        w &= ~kParkedBit;
        if (w != 0) return false;
        Path p;
        if (walk(victim.span, p) != kLastLevel || p.pa[kLastLevel] != victim.pa) return false;  // cannot happen
        for (unsigned l = kLastLevel; l > geo_.start_level; l--) {
            mem_.store(p.slot[l - 1], 0);
            mem_.sync(p.slot[l - 1], 1);
            defer_free(p.pa[l], g, true);
            uint32_t& pw = word(p, l - 1);
            pw -= kValidOne;
            if (valid_entries(pw)) break;
        }
        g.add(victim.span, kPageSize, kGranuleShift, true);
        g.tables_freed_ = true;
        evictions_++;
        return true;
    }
    // Parked tables under the entry `e` at `level` (span [base, base + size)) are everything it
    // holds: the entry itself is a parked leaf table, or a level-2 table whose valid entries are
    // all parked leaf tables (the set holds exactly those of its span).
    bool holds_only_parked(uint64_t e, unsigned level, uint64_t base, uint64_t size) {
        if (!nparked_ || !desc::is_table(e, level)) return false;
        const uint32_t cw = side(e & desc::kOa);
        if (level + 1 == kLastLevel) return cw == kParkedBit;
        if (level + 2 != kLastLevel) return false;
        unsigned n = 0;  // parked and empty in the span
        for (unsigned k = 0; k < nparked_; k++) n += parked_[k].span - base < size && side(parked_[k].pa) == kParkedBit;
        return n && n == valid_entries(cw) && full_entries(cw) == 0;
    }
    // A block is wanted at `slot` (level, span [base, base + size)) where only parked tables are:
    // break, invalidate now (walk caches may hold the tables), and give the pages back; the caller
    // then writes the block into the invalid slot. If the invalidation fails the slot stays invalid
    // and the pages wait in g, which the owner then quarantines.
    Status clear_parked(uint64_t* slot, uint32_t& w, unsigned level, uint64_t base, uint64_t size, Gather& g) {
        const uint64_t child = *slot & desc::kOa;
        mem_.store(slot, 0);  // break
        mem_.sync(slot, 1);
        mem_.barrier();
        w -= kValidOne;  // it was valid, never full
        Status st = Status::ok;
        unsigned leaves = 0;
        uint64_t leaf_pa[kParkedTables];
        for (unsigned k = 0; k < nparked_;) {
            if (parked_[k].span - base >= size) {
                k++;
                continue;
            }
            // One page of each leaf table's span: every walk-cache entry for it and its parent.
            if (st == Status::ok) st = g.invalidate_now(parked_[k].span, kPageSize, kGranuleShift);
            side(parked_[k].pa) = 0;
            leaf_pa[leaves++] = parked_[k].pa;
            forget_parked(k);
        }
        evictions_ += leaves;
        const bool upper = level + 2 == kLastLevel;
        if (st != Status::ok) {
            for (unsigned k = 0; k < leaves; k++) defer_free(leaf_pa[k], g, true);
            if (upper) defer_free(child, g, false);
            g.tables_freed_ = true;
            return st;
        }
        for (unsigned k = 0; k < leaves; k++) recycle(leaf_pa[k], true, false);
        if (upper) mem_.free(child, 1);  // holds the links to the leaves: not zero
        return Status::ok;
    }

    // Maps what of the cursor's range falls in table `t` at `level`. `fresh`: t is a private table
    // just taken from the pool (all zero, unreachable), so a leaf table can be filled blindly.
    // `w` is t's side word (a dummy for the root, whose counts nothing reads).
    Status map_table(uint64_t* t, uint32_t& w, unsigned level, bool fresh, MapCursor& c) {
        const unsigned shift = level_shift(level);
        const uint64_t size = uint64_t{1} << shift;
        const size_t n = entries(level), first = index(c.iova, level);
        size_t i = first;
        Status st = Status::ok;
        if (level == kLastLevel) {
            size_t count = min<uint64_t>(n - first, (c.end - c.iova) >> shift);
            const uint64_t e0 = desc::leaf(level, c.pa, c.attrs);
            if (fresh) {
                mem_.fill(t + first, count, e0, size);  // the hot loop of a large map
            } else if (valid_entries(w) == 0) {
                if (w & kParkedBit) park_idle_ = 0;
                for (size_t k = 0; k < count; k++) mem_.store(t + first + k, e0 + k * size);  // nothing to collide with
            } else {
                size_t k = 0;
                for (; k < count; k++) {
                    if (desc::valid(t[first + k])) {
                        st = Status::in_use;
                        break;
                    }
                    mem_.store(t + first + k, e0 + k * size);
                }
                count = k;
            }
            w += static_cast<uint32_t>(count) * kBoth;
            if (count) c.granule_shift = shift;
            c.iova += count << shift;
            c.pa += count << shift;
            i = first + count;
        } else {
            const bool blocks = desc::can_block(level) && (c.pgsize == kLargest || c.pgsize == size);
            while (c.iova < c.end && i < n) {
                const uint64_t e = t[i];
                if (blocks && (c.pgsize == size || (is_aligned(c.iova | c.pa, size) && c.end - c.iova >= size))) {
                    if (!desc::valid(e)) {
                        mem_.store(t + i, desc::leaf(level, c.pa, c.attrs));
                        w += kBoth;
                        c.granule_shift = min(c.granule_shift, shift);
                        c.iova += size;
                        c.pa += size;
                        i++;
                        continue;
                    }
                    // Only parked tables here: they make room for the block (break-before-make).
                    const uint64_t base = align_down(c.iova, size);
                    if (c.g->has_hook() && holds_only_parked(e, level, base, size)) {
                        st = clear_parked(t + i, w, level, base, size, *c.g);
                        if (st != Status::ok) break;
                        continue;  // the slot is invalid now: the block goes in
                    }
                    // Exactly this size was asked for, or a block is here: collision. A table under
                    // the largest policy holds smaller mappings: fill around them below.
                    if (c.pgsize == size || !desc::is_table(e, level)) {
                        st = Status::in_use;
                        break;
                    }
                }
                if (desc::is_leaf(e, level)) {
                    st = Status::in_use;
                    break;
                }
                if (desc::valid(e)) {
                    uint32_t& cw = side(e & desc::kOa);
                    const bool was_full = is_full(cw);
                    st = map_table(table(e & desc::kOa), cw, level + 1, false, c);
                    if (!was_full && is_full(cw)) w += kFullOne;
                } else {
                    st = map_new_table(t + i, w, level, fresh, c);
                }
                i++;
                if (st != Status::ok) break;
            }
        }
        // A fresh page is cleaned whole: outside what we wrote it holds the pool's zeroes, which may
        // still sit in the cache over stale memory.
        if (fresh) mem_.sync(t, kEntries);
        else if (i > first) mem_.sync(t + first, i - first);
        return st;
    }

    // Builds the table under the invalid entry `slot` (of a table whose side word is `w`) in
    // private, then links it with one store. `parent_fresh`: the slot's table is private too.
    Status map_new_table(uint64_t* slot, uint32_t& w, unsigned level, bool parent_fresh, MapCursor& c) {
        // A leaf table the range covers whole is filled entry by entry below: zeroing it first
        // would write its 4 KiB twice (half of what a 1 GiB map of pages costs).
        const uint64_t span = level_size(level);
        const bool whole = level + 1 == kLastLevel && is_aligned(c.iova, span) && c.end - c.iova >= span;
        Result<uint64_t> r = whole ? take_leaf_table(c) : take_table(true);
        if (!r.ok()) return Status::no_memory;
        uint32_t& cw = side(r.value);
        const uint64_t before = c.iova;
        Status st = map_table(table(r.value), cw, level + 1, true, c);
        if (c.iova == before) {  // nothing written (a page further down was refused): nothing to link
            recycle(r.value, true, false);  // still all zeroes and never reachable
            return st;
        }
        // The subtree before the link that makes it reachable; a link into a private table waits
        // for the one fence at the top of the new subtree.
        if (!parent_fresh) mem_.order();
        mem_.store(slot, desc::table(r.value));
        w += is_full(cw) ? kBoth : kValidOne;
        return st;
    }

    Status unmap_table(uint64_t* t, uint32_t& w, unsigned level, UnmapCursor& c, Gather& g) {
        const unsigned shift = level_shift(level);
        const uint64_t size = uint64_t{1} << shift;
        const size_t n = entries(level), first = index(c.iova, level);
        size_t i = first;
        Status st = Status::ok;
        if (level == kLastLevel) {
            const size_t count = min<uint64_t>(n - first, (c.end - c.iova) >> shift);
            // A full leaf table has no hole to find; otherwise only the range asked for is read.
            const size_t k = is_full(w) ? count : valid_prefix(t + first, count);
            for (size_t j = 0; j < k; j++) mem_.store(t + first + j, 0);
            w -= static_cast<uint32_t>(k) * kBoth;
            if (k < count) st = Status::not_found;
            if (k) c.granule_shift = shift;
            c.iova += k << shift;
            i = first + k;
        } else {
            while (c.iova < c.end && i < n) {
                const uint64_t e = t[i];
                if (!desc::valid(e)) {
                    st = Status::not_found;
                    break;
                }
                const bool whole = is_aligned(c.iova, size) && c.end - c.iova >= size;
                if (!desc::is_table(e, level)) {
                    if (!whole) {
                        st = split(t + i, w, level, e, c, g);
                        if (st != Status::ok) break;
                    } else {
                        mem_.store(t + i, 0);
                        w -= kBoth;
                        c.granule_shift = min(c.granule_shift, shift);
                        c.iova += size;
                    }
                } else {
                    const uint64_t cpa = e & desc::kOa;
                    uint32_t& cw = side(cpa);
                    if (whole && is_full(cw)) {
                        // Everything under it is mapped: drop the subtree with one store, no leaf read.
                        mem_.store(t + i, 0);
                        w -= kBoth;
                        drop_subtree(cpa, level + 1, c, g);
                        c.iova += size;
                    } else {
                        const bool was_full = is_full(cw), was_empty = valid_entries(cw) == 0;
                        st = unmap_table(table(cpa), cw, level + 1, c, g);
                        // Emptied by this call (its range is gathered): unlinked. One that was
                        // empty already is parked and stays (a hole: not_found, nothing changes).
                        if (!was_empty && cw == 0) {  // (a parked one that empties stays: cw == kParkedBit)
                            mem_.store(t + i, 0);
                            w -= was_full ? kBoth : kValidOne;
                            defer_free(cpa, g, true);
                            c.tables_freed = true;
                        } else if (was_full && !is_full(cw)) {
                            w -= kFullOne;
                        }
                        if (st != Status::ok) {
                            i++;
                            break;
                        }
                    }
                }
                i++;
            }
        }
        if (i > first) mem_.sync(t + first, i - first);
        return st;
    }

    // The subtree at `pa` was just unlinked: queue all its pages for release(). It was full, so
    // none of its pages is empty (they go back to the pool), and leaf tables are not read at all.
    void drop_subtree(uint64_t pa, unsigned level, UnmapCursor& c, Gather& g) {
        c.granule_shift = min(c.granule_shift, level_shift(level));
        if (level == kLastLevel && nparked_ && (side(pa) & kParkedBit)) forget_parked_table(pa);
        const uint64_t* t = table(pa);
        if (level + 1 < kLastLevel) {
            for (size_t i = 0; i < kEntries; i++)
                if (desc::is_table(t[i], level)) drop_subtree(t[i] & desc::kOa, level + 1, c, g);
        } else if (level + 1 == kLastLevel) {
            // Its leaf tables, chained straight through their first entries (the loop of a large unmap).
            uint64_t head = g.free_head_;
            size_t count = g.free_count_;
            for (size_t i = 0; i < kEntries; i++) {
                const uint64_t e = t[i];
                if (!desc::is_table(e, level)) continue;
                if (nparked_ && (side(e & desc::kOa) & kParkedBit)) forget_parked_table(e & desc::kOa);
                mem_.store(table(e & desc::kOa), head | kNotEmpty);
                head = e & desc::kOa;
                count++;
            }
            if (count != g.free_count_) c.granule_shift = level_shift(kLastLevel);
            g.free_head_ = head;
            g.free_count_ = count;
        }
        defer_free(pa, g, false);
        c.tables_freed = true;
    }

    // Hands an unlinked page to g: in g's few slots, else chained through its first entry. The link
    // is a page address with bit 0 clear, so a walker still holding the old pointer reads an invalid
    // descriptor there; bit 1 (kNotEmpty) says the page holding it is not all zeroes (a dropped
    // subtree's), so release() gives it to the pool without looking at it again.
    static constexpr uint64_t kNotEmpty = 2;
    static constexpr size_t kFreeBatch = 64;  // pages release() gives back per call into the pool
    void defer_free(uint64_t pa, Gather& g, bool empty) {
        const uint64_t tag = empty ? 0 : kNotEmpty;
        if (g.nheld_ < Gather::kHeldPages) {  // the common case: no store into the page at all
            g.held_[g.nheld_++] = pa | tag;
            return;
        }
        mem_.store(table(pa), g.free_head_ | tag);
        g.free_head_ = pa;
        g.free_count_++;
    }

    // Frees a subtree no walker can reach (never linked, or the whole table is being destroyed).
    void free_private(uint64_t pa, unsigned level) {
        const uint64_t* t = table(pa);
        if (level < kLastLevel)
            for (size_t i = 0; i < kEntries; i++)
                if (desc::is_table(t[i], level)) free_private(t[i] & desc::kOa, level + 1);
        mem_.free(pa, 1);
    }

    // Removes [c.iova, min(c.end, block end)) from the block `e` at `slot`: builds what remains as
    // a private table (which may fail for lack of memory: then nothing changed), then swaps it in
    // break-before-make. The hook's invalidation covers the block; the cut is gathered by unmap().
    Status split(uint64_t* slot, uint32_t& w, unsigned level, uint64_t e, UnmapCursor& c, Gather& g) {
        if (!g.has_hook()) return Status::unsupported;
        const unsigned shift = level_shift(level);
        const uint64_t base = align_down(c.iova, uint64_t{1} << shift);
        const uint64_t cut_end = min(c.end, base + (uint64_t{1} << shift));
        Result<uint64_t> r = build_remainder(level + 1, base, e & desc::kOa, desc::attrs_of(e), c.iova, cut_end);
        if (!r.ok()) return r.status;
        mem_.store(slot, 0);  // break
        mem_.sync(slot, 1);
        mem_.barrier();
        Status st = g.invalidate_now(base, uint64_t{1} << shift, shift);
        if (st != Status::ok) {
            // Some TLB may still hold the block: leave it broken (its DMA faults) rather than make
            // the table, and let the caller's flush try the whole block again. The block's bytes
            // outside the cut are unmapped too; the remainder was never linked.
            free_private(r.value, level + 1);
            g.add(base, uint64_t{1} << shift, shift, true);
            w -= kBoth;
            return st;
        }
        mem_.order();  // the remainder before the link that makes it reachable
        mem_.store(slot, desc::table(r.value));  // make
        w -= kFullOne;  // still valid, no longer wholly mapped
        mem_.sync(slot, 1);  // now, not with the rest of the parent: shortens the walker's fault window
        c.granule_shift = min(c.granule_shift, shift);
        c.iova = cut_end;
        return Status::ok;
    }

    // A private table at `level` mapping [base, base + 512 entries) to pa.. except [lo, hi), with the
    // largest leaves that fit; only the (at most two) entries the cut partly covers need subtables.
    Result<uint64_t> build_remainder(unsigned level, uint64_t base, uint64_t pa, uint64_t attrs, uint64_t lo, uint64_t hi) {
        Result<uint64_t> r = take_table(true);
        if (!r.ok()) return Status::no_memory;
        uint64_t* t = table(r.value);
        const unsigned shift = level_shift(level);
        const uint64_t size = uint64_t{1} << shift;
        const size_t first = (lo - base) >> shift, last = (hi - 1 - base) >> shift;
        mem_.fill(t, first, desc::leaf(level, pa, attrs), size);
        mem_.fill(t + last + 1, kEntries - last - 1, desc::leaf(level, pa + (last + 1) * size, attrs), size);
        uint32_t w = static_cast<uint32_t>(first + kEntries - last - 1) * kBoth;
        for (size_t i = first;; i = last) {
            const uint64_t eb = base + i * size;
            if (lo > eb || hi < eb + size) {  // partly cut (never at the last level: pages are whole)
                Result<uint64_t> sub = build_remainder(level + 1, eb, pa + i * size, attrs, max(lo, eb), min(hi, eb + size));
                if (!sub.ok()) {
                    free_private(r.value, level);
                    return Status::no_memory;
                }
                mem_.store(t + i, desc::table(sub.value));  // private: split's fence covers it
                w += kValidOne;
            }
            if (i == last) break;
        }
        side(r.value) = w;
        mem_.sync(t, kEntries);
        return r.value;
    }

    Memory& mem_;
    Geometry geo_;
    uint64_t root_pa_ = 0;
    uint32_t root_word_ = 0;  // what the root's counts would be; the root is never freed, so unread
    bool ready_ = false;
    unsigned ncache_ = 0;
    unsigned idle_ = 0;
    unsigned nparked_ = 0;
    unsigned park_idle_ = 0;
    unsigned park_limit_ = kParkedTables;
    uint64_t evictions_ = 0;
    uint64_t cache_[kCacheTables];  // [0, ncache_): empty, zeroed, invalidated table pages
    Parked parked_[kParkedTables];  // [0, nparked_): linked empty leaf tables, oldest first
};

}  // namespace moat::iopt
