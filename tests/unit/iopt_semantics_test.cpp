// Map / unmap / lookup semantics of the page-table engine, for both formats.
#include "tests/unit/iopt_rig.hpp"

using namespace iopt_test;

namespace {

constexpr uint64_t K4 = 4 * KiB, M2 = 2 * MiB, G1 = GiB;

template <class F>
class IoptSemantics : public ::testing::Test {};
using Formats = ::testing::Types<Stage1, Stage2>;
TYPED_TEST_SUITE(IoptSemantics, Formats);

TYPED_TEST(IoptSemantics, MapLookupUnmapRoundTrip) {
    Rig<TypeParam> r(48);
    expect_progress(r.map(0x10000, 0x40000000, 3 * K4), 3 * K4, Status::ok);
    EXPECT_EQ(r.pa(0x10000), 0x40000000u);
    EXPECT_EQ(r.pa(0x12abc), 0x40002abcu);
    EXPECT_EQ(r.level(0x11000), 3u);
    EXPECT_EQ(r.pt.lookup(0x13000).status, Status::not_found);
    EXPECT_EQ(r.tables(), 3u);  // levels 1, 2 and 3 under a level-0 root
    expect_progress(r.unmap(0x10000, 3 * K4), 3 * K4, Status::ok);
    EXPECT_EQ(r.pt.lookup(0x10000).status, Status::not_found);
    r.release_point();  // parked leaf tables too
    EXPECT_EQ(r.tables(), 0u);
}

TYPED_TEST(IoptSemantics, MapOverLiveEntryFailsAndKeepsWhatItMapped) {
    Rig<TypeParam> r(40);
    expect_progress(r.map(0x10000, 0x100000, 4 * K4), 4 * K4, Status::ok);
    // Starts 16 pages earlier: the first 16 are mapped, then the collision stops it.
    expect_progress(r.map(0x0, 0x200000, 32 * K4), 0x10000, Status::in_use);
    EXPECT_EQ(r.pa(0x0), 0x200000u);
    EXPECT_EQ(r.pa(0xf000), 0x20f000u);
    EXPECT_EQ(r.pa(0x10000), 0x100000u);  // untouched
    EXPECT_EQ(r.pa(0x13000), 0x103000u);
    EXPECT_EQ(r.pt.lookup(0x14000).status, Status::not_found);  // nothing after the collision
    // A collision at the very first page maps nothing.
    expect_progress(r.map(0x12000, 0x300000, K4), 0, Status::in_use);
    EXPECT_EQ(r.pa(0x12000), 0x102000u);
}

TYPED_TEST(IoptSemantics, MapOverBlockFails) {
    Rig<TypeParam> r(40);
    expect_progress(r.map(M2, 0x40000000, M2), M2, Status::ok);
    EXPECT_EQ(r.level(M2), 2u);
    expect_progress(r.map(M2 + 5 * K4, 0x1000, K4), 0, Status::in_use);
    // The first block is free and mapped, the second collides.
    expect_progress(r.map(0, 0x80000000, 2 * M2), M2, Status::in_use);
    EXPECT_EQ(r.level(0), 2u);
    EXPECT_EQ(r.pa(M2 + 0x1234), 0x40001234u);
    // Exact 2 MiB over a slot where 4 KiB pages live: collides at the slot.
    expect_progress(r.map(4 * M2 + K4, 0x1000, K4), K4, Status::ok);
    expect_progress(r.map(4 * M2, 0x400000, M2, Prot{}, M2), 0, Status::in_use);
}

TYPED_TEST(IoptSemantics, LargestPolicyUsesBlocksWhereAlignmentAllows) {
    Rig<TypeParam> r(40);
    const uint64_t iova = G1, pa = 3 * G1;
    expect_progress(r.map(iova, pa, G1 + M2 + K4), G1 + M2 + K4, Status::ok);
    EXPECT_EQ(r.level(iova), 1u);
    EXPECT_EQ(r.level(iova + G1), 2u);
    EXPECT_EQ(r.level(iova + G1 + M2), 3u);
    EXPECT_EQ(r.pa(iova + G1 + M2), pa + G1 + M2);
    EXPECT_EQ(r.tables(), r.upper() + 2u);  // one level-2 and one level-3 table
    // Same range but a PA aligned only to 4 KiB: pages only.
    expect_progress(r.map(8 * G1, 0x40001000, 2 * M2), 2 * M2, Status::ok);
    EXPECT_EQ(r.level(8 * G1), 3u);
    EXPECT_EQ(r.level(8 * G1 + M2 + 0x3000), 3u);
    // IOVA and PA equally misaligned to 2 MiB: pages up to the boundary, then a block.
    expect_progress(r.map(16 * G1 + M2 - 4 * K4, 0x7fe00000 - 4 * K4, M2 + 4 * K4), M2 + 4 * K4, Status::ok);
    EXPECT_EQ(r.level(16 * G1 + M2 - K4), 3u);
    EXPECT_EQ(r.level(16 * G1 + M2), 2u);
}

TYPED_TEST(IoptSemantics, ExactPolicyUsesExactlyThatSize) {
    Rig<TypeParam> r(48);
    expect_progress(r.map(G1, G1, G1, Prot{}, K4), G1, Status::ok);  // aligned for a 1 GiB block
    EXPECT_EQ(r.level(G1), 3u);
    EXPECT_EQ(r.level(G1 + G1 - K4), 3u);
    EXPECT_EQ(r.tables(), 512u + 2u);  // the minimum: 512 leaf tables, one level 2, one level 1
    expect_progress(r.map(4 * G1, 4 * G1, G1, Prot{}, M2), G1, Status::ok);
    EXPECT_EQ(r.level(4 * G1), 2u);
    expect_progress(r.map(8 * G1, 8 * G1, G1, Prot{}, G1), G1, Status::ok);
    EXPECT_EQ(r.level(8 * G1), 1u);
    // Misaligned for the size asked, or a size the granule does not have.
    expect_progress(r.map(16 * G1 + K4, 0, M2, Prot{}, M2), 0, Status::invalid_argument);
    expect_progress(r.map(16 * G1, K4, M2, Prot{}, M2), 0, Status::invalid_argument);
    expect_progress(r.map(16 * G1, 0, M2 + K4, Prot{}, M2), 0, Status::invalid_argument);
    expect_progress(r.map(16 * G1, 0, 64 * KiB, Prot{}, 64 * KiB), 0, Status::invalid_argument);
    expect_progress(r.map(16 * G1, 0, 3 * K4, Prot{}, 3 * K4), 0, Status::invalid_argument);
    EXPECT_EQ(r.pt.geometry().pgsize_bitmap(), K4 | M2 | G1);
}

TYPED_TEST(IoptSemantics, PagesFromSeparateCallsAreNeverFolded) {
    Rig<TypeParam> r(40);
    for (uint64_t i = 0; i < 512; i++) ASSERT_TRUE(r.map(M2 + i * K4, M2 + i * K4, K4).ok());
    for (uint64_t i = 0; i < 512; i += 37) EXPECT_EQ(r.level(M2 + i * K4), 3u);
    EXPECT_EQ(r.tables(), r.upper() + 2u);
    // One call over the same aligned range would have used a block.
    expect_progress(r.map(4 * M2, 4 * M2, M2), M2, Status::ok);
    EXPECT_EQ(r.level(4 * M2), 2u);
    expect_progress(r.unmap(M2, M2), M2, Status::ok);
    expect_progress(r.unmap(4 * M2, M2), M2, Status::ok);
    EXPECT_EQ(r.tables(), 0u);
}

TYPED_TEST(IoptSemantics, PartialUnmapOfBlockSplitsIt) {
    Rig<TypeParam> r(40);
    Prot p{kRead, MemType::normal_nc, Share::outer};
    expect_progress(r.map(M2, 0x40000000, M2, p), M2, Status::ok);
    Gather g(hook_for(r.mem));
    expect_progress(r.pt.unmap(M2 + 7 * K4, 2 * K4, g), 2 * K4, Status::ok);
    EXPECT_EQ(g.immediate_invalidations(), 1u);  // break-before-make of the block
    ASSERT_EQ(g.range_count(), 1u);
    EXPECT_EQ(g.range(0).iova, M2 + 7 * K4);
    EXPECT_EQ(g.range(0).size, 2 * K4);
    EXPECT_FALSE(g.tables_freed());
    r.flush(g);
    EXPECT_EQ(r.pa(M2 + 6 * K4), 0x40006000u);
    EXPECT_EQ(r.level(M2 + 6 * K4), 3u);
    EXPECT_EQ(r.pt.lookup(M2 + 7 * K4).status, Status::not_found);
    EXPECT_EQ(r.pt.lookup(M2 + 8 * K4).status, Status::not_found);
    EXPECT_EQ(r.pa(M2 + 9 * K4 + 5), 0x40009005u);
    EXPECT_EQ(r.pt.lookup(M2 + 9 * K4).value.prot, effective<TypeParam>(p));  // attributes carried over
    EXPECT_EQ(r.tables(), r.upper() + 2u);

    // A 1 GiB block split around a cut that crosses a 2 MiB boundary: 2 MiB blocks stay blocks.
    expect_progress(r.map(4 * G1, 5 * G1, G1), G1, Status::ok);
    size_t before = r.tables();
    expect_progress(r.unmap(4 * G1 + 10 * M2 - K4, 2 * K4), 2 * K4, Status::ok);
    EXPECT_EQ(r.tables() - before, 3u);  // one level-2 table, two level-3 tables
    EXPECT_EQ(r.level(4 * G1), 2u);
    EXPECT_EQ(r.level(4 * G1 + 9 * M2), 3u);
    EXPECT_EQ(r.level(4 * G1 + 10 * M2 + K4), 3u);
    EXPECT_EQ(r.level(4 * G1 + 11 * M2), 2u);
    EXPECT_EQ(r.pa(4 * G1 + 11 * M2 + 3), 5 * G1 + 11 * M2 + 3);
    EXPECT_EQ(r.pt.lookup(4 * G1 + 10 * M2 - K4).status, Status::not_found);
    EXPECT_EQ(r.pt.lookup(4 * G1 + 10 * M2).status, Status::not_found);
    // Unmapping everything that is left gives every table back.
    expect_progress(r.unmap(4 * G1, 10 * M2 - K4), 10 * M2 - K4, Status::ok);
    expect_progress(r.unmap(4 * G1 + 10 * M2 + K4, G1 - 10 * M2 - K4), G1 - 10 * M2 - K4, Status::ok);
    expect_progress(r.unmap(M2, 7 * K4), 7 * K4, Status::ok);
    expect_progress(r.unmap(M2 + 9 * K4, M2 - 9 * K4), M2 - 9 * K4, Status::ok);
    r.release_point();  // parked leaf tables too
    EXPECT_EQ(r.tables(), 0u);
}

TYPED_TEST(IoptSemantics, SplitWithoutMemoryChangesNothing) {
    Rig<TypeParam> r(40);
    expect_progress(r.map(G1, G1, G1), G1, Status::ok);
    expect_progress(r.map(4 * M2, 0x40000000, 2 * M2), 2 * M2, Status::ok);
    Walk before = walk(r.pool(), r.pt.geometry(), r.pt.root_pa());
    size_t used = r.pool().used_pages();
    r.mem.clear_log();
    // A 4 KiB hole in a 1 GiB block needs two tables; the second is refused.
    r.pool().fail_after(1);
    expect_progress(r.unmap(G1 + M2 + K4, K4), 0, Status::no_memory);
    for (auto& e : r.mem.log) {  // the failed split stored nothing into reachable tables
        if (e.kind == RecordingMemory::Event::store) {
            EXPECT_FALSE(r.mem.live(align_down(e.pa, K4)));
        }
    }
    r.pool().fail_after(0);
    // Whole first block unmapped, then the split of the second fails: short progress.
    expect_progress(r.unmap(4 * M2, M2 + K4), M2, Status::no_memory);
    r.pool().fail_after(SIZE_MAX);
    EXPECT_EQ(r.pool().used_pages(), used);
    Walk after = walk(r.pool(), r.pt.geometry(), r.pt.root_pa());
    ASSERT_EQ(after.leaves.size(), before.leaves.size() - 1);
    EXPECT_EQ(after.leaves.back().iova, G1);
    EXPECT_EQ(after.leaves.back().level, 1u);
    EXPECT_EQ(after.leaves[0].iova, 5 * M2);
    EXPECT_EQ(after.leaves[0].raw, before.leaves[1].raw);
    // With memory back, the same unmap succeeds.
    expect_progress(r.unmap(G1 + M2 + K4, K4), K4, Status::ok);
}

TYPED_TEST(IoptSemantics, SplitNeedsAnInvalidationHook) {
    Rig<TypeParam> r(40);
    expect_progress(r.map(M2, M2, M2), M2, Status::ok);
    Gather g;  // no hook: break-before-make cannot be honoured
    expect_progress(r.pt.unmap(M2, K4, g), 0, Status::unsupported);
    r.flush(g);
    EXPECT_EQ(r.level(M2), 2u);
}

TYPED_TEST(IoptSemantics, UnmapOfWhatIsNotMappedReportsNotFound) {
    Rig<TypeParam> r(39);
    expect_progress(r.unmap(0x100000, K4), 0, Status::not_found);
    expect_progress(r.map(0, 0x1000000, 4 * K4), 4 * K4, Status::ok);
    expect_progress(r.map(6 * K4, 0x2000000, 2 * K4), 2 * K4, Status::ok);
    expect_progress(r.unmap(0, 8 * K4), 4 * K4, Status::not_found);
    EXPECT_EQ(r.pa(6 * K4), 0x2000000u);  // after the hole: untouched
    expect_progress(r.unmap(6 * K4, 2 * K4), 2 * K4, Status::ok);
    r.release_point();  // parked leaf tables too
    EXPECT_EQ(r.tables(), 0u);
}

TYPED_TEST(IoptSemantics, EmptyTablesGoBackToThePool) {
    Rig<TypeParam> r(48, false);
    r.pt.set_park_limit(0);  // unlinked as they empty (parked tables: iopt_park_test.cpp)
    using PT = PageTable<TypeParam, RecordingMemory>;
    const uint64_t iovas[] = {0, 0x7f0000000000, 0x123456789000, 0x8040201000, 0xffffffff000};
    for (uint64_t a : iovas) ASSERT_TRUE(r.map(a, 0x1000, K4).ok());
    EXPECT_EQ(r.tables(), 3u * 5u);
    size_t linked = r.tables();
    for (uint64_t a : iovas) {
        Gather g(hook_for(r.mem));
        size_t used = r.pool().used_pages(), cached = r.cached();
        expect_progress(r.pt.unmap(a, K4, g), K4, Status::ok);
        EXPECT_TRUE(g.tables_freed());
        EXPECT_EQ(g.pending_pages(), 3u);
        EXPECT_EQ(r.pool().used_pages(), used);  // not before the flush...
        EXPECT_EQ(r.cached(), cached);           // ...neither to the pool nor to the cache
        r.flush(g);
        linked -= 3;
        EXPECT_EQ(r.tables(), linked);
        // Empty again: into the cache; one that finds it full sends the whole cache back to the
        // pool first (one lock for all of them) and starts it again.
        size_t want = cached;
        for (int t = 0; t < 3; t++) want = (want == PT::kCacheTables ? 0 : want) + 1;
        EXPECT_EQ(r.cached(), want);
        EXPECT_EQ(r.pool().used_pages(), r.base + linked + r.cached());
    }
    r.pt.trim();  // the release point: the pool is back where it started
    EXPECT_EQ(r.cached(), 0u);
    EXPECT_EQ(r.pool().used_pages(), r.base);
}

TYPED_TEST(IoptSemantics, UnmappingAWholeTableSpanDropsItInOneStore) {
    Rig<TypeParam> r(48);
    expect_progress(r.map(G1, 0, G1, Prot{}, K4), G1, Status::ok);
    uint64_t stores = r.mem.stores;
    Gather g(hook_for(r.mem));
    expect_progress(r.pt.unmap(G1, G1, g), G1, Status::ok);
    EXPECT_LE(r.mem.stores - stores, 2u + 514u);  // two unlinks + one free-list link per page
    EXPECT_EQ(g.pending_pages(), 514u);
    EXPECT_EQ(g.granule_shift(), 12u);
    EXPECT_EQ(g.range_count(), 1u);
    r.flush(g);
    // The full level-2 table and its leaves went back to the pool; the level-1 table emptied
    // entry by entry (one entry) and waits in the cache.
    EXPECT_EQ(r.tables(), 0u);
    EXPECT_EQ(r.cached(), 1u);
    r.pt.trim();
    EXPECT_EQ(r.pool().used_pages(), r.base);
}

// A 1 GiB call over a full subtree that has a hole below it still stops at the hole: counts
// say "not full", so that subtree is walked, and only it.
TYPED_TEST(IoptSemantics, WholeTableUnmapStillReportsHoles) {
    Rig<TypeParam> r(48);
    expect_progress(r.map(G1, 0, G1, Prot{}, K4), G1, Status::ok);
    expect_progress(r.unmap(G1 + 300 * M2 + 7 * K4, K4), K4, Status::ok);
    expect_progress(r.unmap(G1, G1), 300 * M2 + 7 * K4, Status::not_found);
    EXPECT_EQ(r.pa(G1 + 300 * M2 + 8 * K4), 300 * M2 + 8 * K4);  // after the hole: untouched
    expect_progress(r.unmap(G1 + 300 * M2 + 8 * K4, G1 - 300 * M2 - 8 * K4), G1 - 300 * M2 - 8 * K4, Status::ok);
    EXPECT_EQ(r.tables(), 0u);
}

TYPED_TEST(IoptSemantics, ArgumentsAreChecked) {
    Rig<TypeParam> r(39, true, 40);
    const uint64_t top = uint64_t{1} << 39;
    expect_progress(r.map(0x800, 0, K4), 0, Status::invalid_argument);
    expect_progress(r.map(0, 0x800, K4), 0, Status::invalid_argument);
    expect_progress(r.map(0, 0, 0x800), 0, Status::invalid_argument);
    expect_progress(r.map(0, 0, 0), 0, Status::invalid_argument);
    expect_progress(r.map(top - K4, 0, 2 * K4), 0, Status::out_of_range);
    expect_progress(r.map(~uint64_t{0} & ~0xfffull, 0, 2 * K4), 0, Status::out_of_range);
    expect_progress(r.map(0, (uint64_t{1} << 40) - K4, 2 * K4), 0, Status::out_of_range);
    expect_progress(r.map(0, 0, K4, Prot{0}), 0, Status::invalid_argument);
    expect_progress(r.map(0, 0, K4, Prot{kExec}), 0, Status::invalid_argument);
    expect_progress(r.map(0, 0, K4, Prot{0x18 | kRead}), 0, Status::invalid_argument);
    expect_progress(r.map(0, 0, K4, Prot{kRead, MemType::normal_wb, static_cast<Share>(1)}), 0, Status::invalid_argument);
    expect_progress(r.unmap(0, 0), 0, Status::invalid_argument);
    expect_progress(r.unmap(K4 / 2, K4), 0, Status::invalid_argument);
    expect_progress(r.unmap(top, K4), 0, Status::out_of_range);
    EXPECT_EQ(r.pt.lookup(top).status, Status::out_of_range);
    expect_progress(r.map(top - K4, (uint64_t{1} << 40) - K4, K4), K4, Status::ok);  // the very last page
    EXPECT_EQ(r.pa(top - 1), (uint64_t{1} << 40) - 1);
    EXPECT_EQ(r.tables(), 0u + 2u);
    EXPECT_EQ(r.pool().used_pages(), r.base + 2);
}

TYPED_TEST(IoptSemantics, GatherMergesContiguousRanges) {
    Rig<TypeParam> r(40);
    ASSERT_TRUE(r.map(0, 0, 64 * M2).ok());
    Gather g(hook_for(r.mem));
    EXPECT_TRUE(r.pt.unmap(4 * M2, M2, g).ok());
    EXPECT_TRUE(r.pt.unmap(5 * M2, M2, g).ok());
    EXPECT_TRUE(r.pt.unmap(3 * M2, M2, g).ok());
    ASSERT_EQ(g.range_count(), 1u);
    EXPECT_EQ(g.range(0).iova, 3 * M2);
    EXPECT_EQ(g.range(0).size, 3 * M2);
    EXPECT_EQ(g.granule_shift(), 21u);
    EXPECT_TRUE(g.removed());
    for (uint64_t i = 0; i < Gather::kMaxRanges; i++) EXPECT_TRUE(r.pt.unmap((10 + 2 * i) * M2, M2, g).ok());
    EXPECT_TRUE(g.overflowed());
    ASSERT_EQ(g.range_count(), 1u);
    EXPECT_EQ(g.range(0).iova, 3 * M2);
    EXPECT_EQ(g.range(0).end(), (10 + 2 * (Gather::kMaxRanges - 1) + 1) * M2);
    r.flush(g);
    EXPECT_TRUE(g.empty());
    // A map spanning several leaf tables is still one range; it removed nothing.
    Gather m(hook_for(r.mem));
    ASSERT_TRUE(r.pt.map(G1 - 3 * K4, 0, 3 * M2 + 6 * K4, Prot{}, m, K4).ok());
    ASSERT_EQ(m.range_count(), 1u);
    EXPECT_EQ(m.range(0).size, 3 * M2 + 6 * K4);
    EXPECT_FALSE(m.removed());
    r.flush(m);
}

TYPED_TEST(IoptSemantics, ConcatenatedAndSmallRootsReachTheirLastEntry) {
    for (unsigned ias : {32u, 39u, 40u, 43u, 44u, 48u}) {
        Rig<TypeParam> r(ias);
        const uint64_t top = uint64_t{1} << ias;
        expect_progress(r.map(top - 2 * M2, 0x40000000, 2 * M2), 2 * M2, Status::ok);
        expect_progress(r.map(0, 0x80000000, K4), K4, Status::ok);
        EXPECT_EQ(r.pa(top - 1), 0x40000000u + 2 * M2 - 1) << ias;
        EXPECT_EQ(r.pa(0), 0x80000000u) << ias;
        EXPECT_EQ(r.pt.lookup(top - 2 * M2 - K4).status, Status::not_found);
        expect_progress(r.unmap(top - 2 * M2, 2 * M2), 2 * M2, Status::ok);
        expect_progress(r.unmap(0, K4), K4, Status::ok);
        r.release_point();  // parked leaf tables too
        EXPECT_EQ(r.tables(), 0u);
    }
}

TYPED_TEST(IoptSemantics, DestroyGivesEverythingBack) {
    size_t used;
    {
        Rig<TypeParam> r(40);
        used = r.used_before_init;
        ASSERT_TRUE(r.map(0, 0, G1 + 5 * M2 + 7 * K4).ok());
        ASSERT_TRUE(r.map(100 * G1, 0, 3 * K4).ok());
        EXPECT_GT(r.tables(), 0u);
    }  // ~Rig destroys and checks the pool is back to where it was before init
    (void)used;
}

}  // namespace

// A leaf table the range covers whole is taken from the pool unzeroed (it is filled entry by
// entry before it is linked); any other new table is zeroed. The recording memory fills
// unzeroed pages with entries that look valid, so a missed entry would show in the checks below.
TYPED_TEST(IoptSemantics, OnlyWholeLeafTablesSkipZeroing) {
    Rig<TypeParam> r(39);
    const uint64_t base = 0x40000000, pa = 0x80001000;  // PA not 2 MiB aligned: pages, not a block
    ASSERT_TRUE(r.map(base, pa, 2 * MiB, Prot{}, kPageSize).ok());
    EXPECT_EQ(r.mem.unzeroed_pages(), 1u);
    for (uint64_t off = 0; off < 2 * MiB; off += kPageSize) ASSERT_EQ(r.pa(base + off), pa + off) << off;
    EXPECT_EQ(r.pa(base + 2 * MiB), ~uint64_t{0});
    EXPECT_EQ(r.pa(base - kPageSize), ~uint64_t{0});
    // Part of a leaf table: zeroed, and the rest of it reads as unmapped.
    ASSERT_TRUE(r.map(base + 4 * MiB + 8 * kPageSize, pa, 3 * kPageSize, Prot{}, kPageSize).ok());
    EXPECT_EQ(r.mem.unzeroed_pages(), 1u);
    EXPECT_EQ(r.pa(base + 4 * MiB), ~uint64_t{0});
    EXPECT_EQ(r.pa(base + 4 * MiB + 11 * kPageSize), ~uint64_t{0});
    EXPECT_TRUE(r.unmap(base, 2 * MiB).ok());
    EXPECT_TRUE(r.unmap(base + 4 * MiB + 8 * kPageSize, 3 * kPageSize).ok());
}
