// The I/O page-table engine: one VMSAv8-64 (4 KiB granule) table, stage 1 or stage 2, over a
// memory policy (memory.hpp). The same code serves the CPU's stage 2 and every Arm IOMMU.
//
// Rules every update follows, because a walker may read the table at any moment:
//  - an entry changes with ONE 64-bit store (Memory::store);
//  - a new table is written completely, in private, then cleaned (non-coherent walker) and ordered
//    before the single store that links it: a walker sees no table or a finished one;
//  - a live valid entry is never replaced by another valid one: a block becomes a table by
//    break-before-make (invalid entry, immediate invalidation through the Gather's hook, new entry);
//  - an unlinked table is only handed back to the pool after the caller's invalidation (release()).
// A table -> block change never happens: empty tables are freed as soon as they empty, so a table
// entry always has something mapped under it, and pages mapped by separate calls are never folded.
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
        MapCursor c{iova, pa, iova + size, Format::encode(prot), pgsize, 63};
        Status st = map_table(table(root_pa_), geo_.start_level, false, c);
        mem_.barrier();
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
        UnmapCursor c{iova, iova + size, 63, false};
        Status st = unmap_table(table(root_pa_), geo_.start_level, c, g);
        mem_.barrier();
        uint64_t done = c.iova - iova;
        if (done) g.add(iova, done, c.granule_shift, true);
        if (c.tables_freed) g.tables_freed_ = true;
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

    // Gives the table pages `g` holds back to the pool and empties `g`. Call once the invalidation
    // of g's ranges has completed.
    void release(Gather& g) {
        uint64_t pa = g.free_head_;
        for (size_t k = 0; k < g.free_count_; k++) {
            uint64_t next = table(pa)[0];
            mem_.free(pa, 1);
            pa = next;
        }
        g.free_head_ = 0;
        g.free_count_ = 0;
        g.clear_ranges();
    }

private:
    struct MapCursor {
        uint64_t iova, pa, end;  // next IOVA and PA to map, end of the range
        uint64_t attrs;          // leaf attribute bits from the format
        uint64_t pgsize;         // kLargest or the exact size
        unsigned granule_shift;  // smallest leaf written
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

    // Scans with plain loads, written with independent accumulators so that -O2 vectorises them:
    // proving a table full or empty reads all of it.
    template <size_t N>
    static bool all_valid(const uint64_t* p) {
        static_assert(N % 4 == 0);
        uint64_t a = desc::kValid, b = desc::kValid, c = desc::kValid, d = desc::kValid;
        for (size_t i = 0; i < N; i += 4) {
            a &= p[i];
            b &= p[i + 1];
            c &= p[i + 2];
            d &= p[i + 3];
        }
        return (a & b & c & d) & desc::kValid;
    }
    // Any valid entry in a whole table; stops at the first 64-entry block that has one.
    static bool any_valid(const uint64_t* p) {
        for (const uint64_t* q = p; q < p + kEntries; q += 64) {
            uint64_t a = 0, b = 0, c = 0, d = 0;
            for (size_t i = 0; i < 64; i += 4) {
                a |= q[i];
                b |= q[i + 1];
                c |= q[i + 2];
                d |= q[i + 3];
            }
            if ((a | b | c | d) & desc::kValid) return true;
        }
        return false;
    }
    static size_t valid_prefix(const uint64_t* p, size_t n) {
        size_t i = 0;
        while (i + 16 <= n && all_valid<16>(p + i)) i += 16;
        while (i < n && desc::valid(p[i])) i++;
        return i;
    }

    // Maps what of the cursor's range falls in table `t` at `level`. `fresh`: t is a private table
    // just taken from the pool (all zero, unreachable), so a leaf table can be filled blindly.
    Status map_table(uint64_t* t, unsigned level, bool fresh, MapCursor& c) {
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
                        c.granule_shift = min(c.granule_shift, shift);
                        c.iova += size;
                        c.pa += size;
                        i++;
                        continue;
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
                st = desc::valid(e) ? map_table(table(e & desc::kOa), level + 1, false, c) : map_new_table(t + i, level, c);
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

    // Builds the table under the invalid entry `slot` in private, then links it with one store.
    Status map_new_table(uint64_t* slot, unsigned level, MapCursor& c) {
        // A leaf table the range covers whole is filled entry by entry below: zeroing it first
        // would write its 4 KiB twice (half of what a 1 GiB map of pages costs).
        const uint64_t span = level_size(level);
        const bool whole = level + 1 == kLastLevel && is_aligned(c.iova, span) && c.end - c.iova >= span;
        Result<uint64_t> r = mem_.alloc(1, 1, !whole);
        if (!r.ok()) return Status::no_memory;
        const uint64_t before = c.iova;
        Status st = map_table(table(r.value), level + 1, true, c);
        if (c.iova == before) {  // nothing written: nothing to link (empty tables are never live)
            mem_.free(r.value, 1);
            return st;
        }
        mem_.order();
        mem_.store(slot, desc::table(r.value));
        return st;
    }

    Status unmap_table(uint64_t* t, unsigned level, UnmapCursor& c, Gather& g) {
        const unsigned shift = level_shift(level);
        const uint64_t size = uint64_t{1} << shift;
        const size_t n = entries(level), first = index(c.iova, level);
        size_t i = first;
        Status st = Status::ok;
        if (level == kLastLevel) {
            const size_t count = min<uint64_t>(n - first, (c.end - c.iova) >> shift);
            const size_t k = valid_prefix(t + first, count);
            for (size_t j = 0; j < k; j++) mem_.store(t + first + j, 0);
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
                        st = split(t + i, level, e, c, g);
                        if (st != Status::ok) break;
                    } else {
                        mem_.store(t + i, 0);
                        c.granule_shift = min(c.granule_shift, shift);
                        c.iova += size;
                    }
                } else {
                    const uint64_t cpa = e & desc::kOa;
                    uint64_t* ct = table(cpa);
                    if (whole && subtree_full(ct, level + 1)) {
                        // Drop the subtree with one store instead of clearing every entry under it.
                        mem_.store(t + i, 0);
                        drop_subtree(cpa, level + 1, c, g);
                        c.iova += size;
                    } else {
                        const uint64_t before = c.iova;
                        st = unmap_table(ct, level + 1, c, g);
                        if (c.iova != before && !any_valid(ct)) {
                            mem_.store(t + i, 0);
                            defer_free(cpa, g);
                            c.tables_freed = true;
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

    bool subtree_full(const uint64_t* t, unsigned level) const {
        if (level == kLastLevel) return all_valid<kEntries>(t);
        for (size_t i = 0; i < kEntries; i++) {
            const uint64_t e = t[i];
            if (!desc::valid(e)) return false;
            if (desc::is_table(e, level) && !subtree_full(table(e & desc::kOa), level + 1)) return false;
        }
        return true;
    }

    // The subtree at `pa` was just unlinked: queue all its pages for release().
    void drop_subtree(uint64_t pa, unsigned level, UnmapCursor& c, Gather& g) {
        const uint64_t* t = table(pa);
        unsigned leaf_shift = level_shift(level);
        if (level < kLastLevel)
            for (size_t i = 0; i < kEntries; i++)
                if (desc::is_table(t[i], level)) drop_subtree(t[i] & desc::kOa, level + 1, c, g);
        c.granule_shift = min(c.granule_shift, leaf_shift);
        defer_free(pa, g);
        c.tables_freed = true;
    }

    // Chains an unlinked page into g through its first entry. The link is a page address, so its
    // bit 0 is clear: a walker still holding the old pointer reads an invalid descriptor there.
    void defer_free(uint64_t pa, Gather& g) {
        mem_.store(table(pa), g.free_head_);
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
    Status split(uint64_t* slot, unsigned level, uint64_t e, UnmapCursor& c, Gather& g) {
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
            return st;
        }
        mem_.order();
        mem_.store(slot, desc::table(r.value));  // make
        mem_.sync(slot, 1);  // now, not with the rest of the parent: shortens the walker's fault window
        c.granule_shift = min(c.granule_shift, shift);
        c.iova = cut_end;
        return Status::ok;
    }

    // A private table at `level` mapping [base, base + 512 entries) to pa.. except [lo, hi), with the
    // largest leaves that fit; only the (at most two) entries the cut partly covers need subtables.
    Result<uint64_t> build_remainder(unsigned level, uint64_t base, uint64_t pa, uint64_t attrs, uint64_t lo, uint64_t hi) {
        Result<uint64_t> r = mem_.alloc(1, 1);
        if (!r.ok()) return Status::no_memory;
        uint64_t* t = table(r.value);
        const unsigned shift = level_shift(level);
        const uint64_t size = uint64_t{1} << shift;
        const size_t first = (lo - base) >> shift, last = (hi - 1 - base) >> shift;
        mem_.fill(t, first, desc::leaf(level, pa, attrs), size);
        mem_.fill(t + last + 1, kEntries - last - 1, desc::leaf(level, pa + (last + 1) * size, attrs), size);
        for (size_t i = first;; i = last) {
            const uint64_t eb = base + i * size;
            if (lo > eb || hi < eb + size) {  // partly cut (never at the last level: pages are whole)
                Result<uint64_t> sub = build_remainder(level + 1, eb, pa + i * size, attrs, max(lo, eb), min(hi, eb + size));
                if (!sub.ok()) {
                    free_private(r.value, level);
                    return Status::no_memory;
                }
                mem_.order();
                mem_.store(t + i, desc::table(sub.value));
            }
            if (i == last) break;
        }
        mem_.sync(t, kEntries);
        return r.value;
    }

    Memory& mem_;
    Geometry geo_;
    uint64_t root_pa_ = 0;
    bool ready_ = false;
};

}  // namespace moat::iopt
