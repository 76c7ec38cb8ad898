// Parked tables (page_table.hpp, "Parking"): a leaf table the DMA hot path empties stays linked for
// the next map into its span, within a fixed bound, and is unlinked with the invalidation it needs:
// its span in the caller's Gather (eviction at the end of an unmap, the owner's release point), or
// break-before-make through the hook (a block wanted where it is).
#include "tests/unit/iopt_rig.hpp"

using namespace iopt_test;

namespace {

constexpr uint64_t K4 = 4 * KiB, M2 = 2 * MiB, G1 = GiB;
constexpr uint64_t kHot = 0x5a5a40000000;                // a leaf table's span above 4 GiB, nothing else near
constexpr uint64_t kOther = kHot + (uint64_t{1} << 39);  // the same under the next level-0 entry
using PT = PageTable<Stage1, RecordingMemory>;

uint64_t leaf_table(Rig<Stage1>& r, uint64_t iova) {
    const uint64_t* t = r.mem.table(r.pt.root_pa());
    uint64_t pa = 0;
    for (unsigned level = 0; level < 3; level++) {
        const uint64_t e = t[(iova >> level_shift(level)) & 511];
        if ((e & 3) != 3) return 0;
        pa = e & desc::kOa;
        t = r.mem.table(pa);
    }
    return pa;
}

TEST(IoptPark, SoloPairKeepsItsWalkLinkedAndBuildsNothing) {
    Rig<Stage1> r(48);
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    const uint64_t leaf = leaf_table(r, kHot);
    ASSERT_NE(leaf, 0u);
    Gather g(hook_for(r.mem));
    ASSERT_TRUE(r.pt.unmap(kHot, K4, g).ok());
    EXPECT_EQ(g.pending_pages(), 0u);  // nothing unlinked...
    EXPECT_FALSE(g.tables_freed());
    ASSERT_EQ(g.range_count(), 1u);  // ...the page's own invalidation only
    r.flush(g);
    EXPECT_EQ(r.parked(), 1u);
    EXPECT_EQ(r.pt.parked_table(0), leaf);
    EXPECT_EQ(r.pt.side_word(leaf), PT::kParkedBit);
    EXPECT_EQ(r.pt.lookup(kHot).status, Status::not_found);  // a hole to the walker as to lookup
    EXPECT_EQ(r.tables(), 3u);
    // A thousand pairs: no page from the pool, none zeroed, none back, the same leaf table.
    const size_t used = r.pool().used_pages();
    const uint64_t zeroed = r.pool().zeroed_pages();
    r.mem.keep_log = false;
    for (int k = 0; k < 1000; k++) {
        ASSERT_TRUE(r.map(kHot + 7 * K4, 0x50000000, 4 * K4).ok());
        ASSERT_EQ(r.parked(), 1u);  // stays in the set while in use: the pair touches no bookkeeping
        ASSERT_EQ(r.pt.side_word(leaf), PT::kParkedBit + 4 * 0x10001u);
        ASSERT_EQ(r.pa(kHot + 9 * K4 + 5), 0x50002005u);
        ASSERT_EQ(leaf_table(r, kHot), leaf);
        ASSERT_TRUE(r.unmap(kHot + 7 * K4, 4 * K4).ok());
        ASSERT_EQ(r.parked(), 1u);
    }
    EXPECT_EQ(r.pool().used_pages(), used);
    EXPECT_EQ(r.pool().zeroed_pages(), zeroed);
    EXPECT_EQ(r.pt.evictions(), 0u);
    r.release_point();
    EXPECT_EQ(r.pool().used_pages(), r.base);
}

// The eviction at the end of an unmap elsewhere names the evicted span in that unmap's Gather;
// an owner that invalidates only its call's own range would let the page be reused while a walk
// cache may still hold it, and the recorder catches exactly that.
TEST(IoptPark, EvictedTableWaitsForTheInvalidationOfItsSpan) {
    for (bool correct : {true, false}) {
        SCOPED_TRACE(correct ? "owner invalidates the gather's ranges" : "owner invalidates only the call's range");
        Rig<Stage1> r(48);
        ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
        ASSERT_TRUE(r.unmap(kHot, K4).ok());
        ASSERT_EQ(r.parked(), 1u);
        // Pinned elsewhere: unmaps that park nothing, until the parked one has been idle too long.
        ASSERT_TRUE(r.map(kOther + 100 * K4, 0x60000000, K4).ok());
        for (unsigned k = 1; k < PT::kParkIdle; k++) {
            ASSERT_TRUE(r.map(kOther, 0x40000000, K4).ok());
            ASSERT_TRUE(r.unmap(kOther, K4).ok());
        }
        ASSERT_EQ(r.parked(), 1u);
        ASSERT_TRUE(r.map(kOther, 0x40000000, K4).ok());
        Gather g(hook_for(r.mem));
        ASSERT_TRUE(r.pt.unmap(kOther, K4, g).ok());
        EXPECT_EQ(r.parked(), 0u);
        EXPECT_EQ(r.pt.evictions(), 1u);
        EXPECT_EQ(g.pending_pages(), 3u);  // the evicted walk: leaf, level 2, level 1
        EXPECT_TRUE(g.tables_freed());
        ASSERT_EQ(g.range_count(), 2u);
        bool names_span = false;
        for (unsigned i = 0; i < g.range_count(); i++) names_span = names_span || g.range(i).iova == kHot;
        EXPECT_TRUE(names_span);
        EXPECT_EQ(r.pt.lookup(kHot).status, Status::not_found);
        EXPECT_EQ(r.mem.pending_invalidation(), 3u);
        if (correct) {
            r.flush(g);
        } else {
            r.mem.invalidated(kOther, K4);  // the bug: the call's range only
            r.pt.release(g);
        }
        EXPECT_EQ(r.cached(), 3u);
        ASSERT_TRUE(r.map(kHot + G1, 0x40000000, K4).ok());  // a new walk: takes the three from the cache
        if (correct) {
            EXPECT_TRUE(r.mem.violations.empty()) << r.mem.violations.front();
        } else {
            ASSERT_FALSE(r.mem.violations.empty());
            EXPECT_NE(r.mem.violations.front().find("before the invalidation"), std::string::npos) << r.mem.violations.front();
            r.mem.violations.clear();  // seen; ~Rig checks the rest
        }
    }
}

// Bounded: with the set full, a table that empties is unlinked at once (in the call's own range);
// with the pool short, nothing is parked.
TEST(IoptPark, SetIsBoundedAndPressureParksNothing) {
    Rig<Stage1> r(48);
    const unsigned n = PT::kParkedTables + 2;
    for (uint64_t k = 0; k < n; k++) ASSERT_TRUE(r.map(kHot + k * M2, 0x40000000, K4).ok());
    const size_t tables = r.tables();
    EXPECT_EQ(tables, 2 + n);
    for (uint64_t k = 0; k < n; k++) ASSERT_TRUE(r.unmap(kHot + k * M2, K4).ok());
    EXPECT_EQ(r.parked(), PT::kParkedTables);
    EXPECT_EQ(r.tables() + r.cached(), tables);
    EXPECT_EQ(r.cached(), 2u);  // the two that found the set full
    EXPECT_EQ(r.pt.evictions(), 0u);
    r.release_point();
    EXPECT_EQ(r.pool().used_pages(), r.base);
    // Short of pages: the emptied walk goes (after the flush, into the cache: trimmed by release()).
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    r.mem.short_below = r.pool().free_pages() + 1;
    ASSERT_TRUE(r.unmap(kHot, K4).ok());
    EXPECT_EQ(r.parked(), 0u);
    EXPECT_EQ(r.pool().used_pages(), r.base);
}

// A hole in a parked table is a hole: the general path reports it and unlinks nothing it did not
// gather (the table stays parked).
TEST(IoptPark, UnmapOfAParkedHoleChangesNothing) {
    Rig<Stage1> r(48);
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    ASSERT_TRUE(r.unmap(kHot, K4).ok());
    Gather g(hook_for(r.mem));
    expect_progress(r.pt.unmap(kHot, 3 * M2, g), 0, Status::not_found);
    EXPECT_TRUE(g.empty());
    EXPECT_EQ(g.pending_pages(), 0u);
    r.flush(g);
    EXPECT_EQ(r.parked(), 1u);
    EXPECT_EQ(r.tables(), 3u);
}

// A block where only parked tables are: break, invalidation of each parked span through the hook,
// then the block; the pages go back (cache or pool) at once, since the invalidation is done.
TEST(IoptPark, BlockOverParkedTablesIsBreakBeforeMake) {
    for (uint64_t pgsize : {uint64_t{0}, M2}) {
        Rig<Stage1> r(48);
        ASSERT_TRUE(r.map(kHot + 5 * K4, 0x40000000, K4).ok());
        ASSERT_TRUE(r.unmap(kHot + 5 * K4, K4).ok());
        ASSERT_EQ(r.parked(), 1u);
        r.mem.clear_log();
        Gather g(hook_for(r.mem));
        ASSERT_TRUE(r.pt.map(kHot, 0x40000000, M2, Prot{}, g, pgsize).ok());
        EXPECT_EQ(g.immediate_invalidations(), 1u);
        EXPECT_EQ(g.pending_pages(), 0u);
        r.flush(g);
        EXPECT_EQ(r.level(kHot + 5 * K4), 2u);
        EXPECT_EQ(r.pa(kHot + 5 * K4), 0x40005000u);
        EXPECT_EQ(r.parked(), 0u);
        EXPECT_EQ(r.tables(), 2u);
        // Break (table entry -> 0), invalidation covering the span, make (block), in that order.
        int phase = 0;
        for (const auto& e : r.mem.log) {
            if (phase == 0 && e.kind == RecordingMemory::Event::store && (e.a & 3) == 3 && e.b == 0) phase = 1;
            else if (phase == 1 && e.kind == RecordingMemory::Event::invalidate && e.pa <= kHot && kHot < e.pa + e.a) phase = 2;
            else if (phase == 2 && e.kind == RecordingMemory::Event::store && e.a == 0 && (e.b & 3) == 1) phase = 3;
        }
        EXPECT_EQ(phase, 3);
    }
}

// The same one level up: a 1 GiB block over a level-2 table that holds only parked leaf tables.
TEST(IoptPark, GigabyteBlockOverParkedTables) {
    Rig<Stage1> r(48, true, 40, 4096);
    const uint64_t base = align_down(kHot, G1);
    for (uint64_t k : {3u, 200u}) ASSERT_TRUE(r.map(base + k * M2, 0x40000000, K4).ok());
    for (uint64_t k : {3u, 200u}) ASSERT_TRUE(r.unmap(base + k * M2, K4).ok());
    ASSERT_EQ(r.parked(), 2u);
    Gather g(hook_for(r.mem));
    ASSERT_TRUE(r.pt.map(base, 0x40000000, G1, Prot{}, g, G1).ok());
    EXPECT_EQ(g.immediate_invalidations(), 2u);  // one page of each parked span
    r.flush(g);
    EXPECT_EQ(r.level(base + 200 * M2), 1u);
    EXPECT_EQ(r.parked(), 0u);
    EXPECT_EQ(r.tables(), 1u);  // the level-1 table
    ASSERT_TRUE(r.unmap(base, G1).ok());
}

// Pool exhausted and the cache empty: a map fails (the engine alone cannot unlink parked tables
// without the owner's invalidation); after the owner's release point the same map succeeds from
// the pages that came back.
TEST(IoptPark, ExhaustionIsServedOnceTheOwnerUnlinksParkedTables) {
    Rig<Stage1> r(48);
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    ASSERT_TRUE(r.unmap(kHot, K4).ok());
    ASSERT_EQ(r.parked(), 1u);
    r.pool().fail_after(0);
    expect_progress(r.map(kOther, 0x40000000, K4), 0, Status::no_memory);
    Gather g(hook_for(r.mem));
    EXPECT_EQ(r.pt.unlink_parked(g), 1u);
    r.flush(g);
    EXPECT_EQ(r.cached(), 3u);
    expect_progress(r.map(kOther, 0x40000000, K4), K4, Status::ok);
    EXPECT_EQ(r.cached(), 0u);
    r.pool().fail_after(SIZE_MAX);
    EXPECT_EQ(r.pa(kOther), 0x40000000u);
}

}  // namespace
