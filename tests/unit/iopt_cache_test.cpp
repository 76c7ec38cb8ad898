// The engine's cache of empty tables (with parking off: iopt_park_test.cpp has the parked tables):
// what goes in (tables that emptied, after the caller's invalidation), what comes out (before the
// pool, also when the pool is exhausted), and that it stays bounded and goes back to the pool
// (pressure, idleness, trim, destroy).
#include "tests/unit/iopt_rig.hpp"

using namespace iopt_test;

namespace {

constexpr uint64_t K4 = 4 * KiB;
constexpr uint64_t kHot = 0x5a5a40000000;  // a leaf table's span above 4 GiB, nothing else near
constexpr uint64_t kOther = kHot + (uint64_t{1} << 39);  // the same under the next level-0 entry
using PT = PageTable<Stage1, RecordingMemory>;

// The tables a walk to `iova` goes through below the root (level 1, 2, leaf), 0 where it stops.
std::vector<uint64_t> walk_tables(Rig<Stage1>& r, uint64_t iova) {
    std::vector<uint64_t> out;
    const uint64_t* t = r.mem.table(r.pt.root_pa());
    for (unsigned level = 0; level < 3; level++) {
        const uint64_t e = t[(iova >> level_shift(level)) & 511];
        if ((e & 3) != 3) break;
        out.push_back(e & desc::kOa);
        t = r.mem.table(e & desc::kOa);
    }
    return out;
}

TEST(IoptCache, CachedTableIsReusedOnlyAfterItsInvalidation) {
    Rig<Stage1> r(48);
    r.pt.set_park_limit(0);  // the cache alone: emptied tables are unlinked at once
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    const std::vector<uint64_t> first = walk_tables(r, kHot);
    ASSERT_EQ(first.size(), 3u);
    Gather g(hook_for(r.mem));
    ASSERT_TRUE(r.pt.unmap(kHot, K4, g).ok());
    EXPECT_EQ(g.pending_pages(), 3u);
    EXPECT_EQ(r.cached(), 0u);
    // Before the invalidation, a map that needs three tables cannot have the pending ones.
    const size_t used = r.pool().used_pages();
    ASSERT_TRUE(r.map(kOther, 0x40000000, K4).ok());
    EXPECT_EQ(r.pool().used_pages(), used + 3);
    for (uint64_t pa : walk_tables(r, kOther))
        for (uint64_t old : first) EXPECT_NE(pa, old);
    ASSERT_TRUE(r.unmap(kOther, K4).ok());  // those three are invalidated, released, cached
    EXPECT_EQ(r.cached(), 3u);
    r.flush(g);  // now the first three too: the cache is full of invalidated empty tables
    EXPECT_EQ(r.cached(), 6u);
    // A map takes cached tables, without the pool and without zeroing.
    const size_t used2 = r.pool().used_pages();
    const uint64_t zeroed = r.pool().zeroed_pages();
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    EXPECT_EQ(r.pool().used_pages(), used2);
    EXPECT_EQ(r.pool().zeroed_pages(), zeroed);
    EXPECT_EQ(r.cached(), 3u);
    EXPECT_EQ(r.pa(kHot + 0x123), 0x40000123u);
    EXPECT_EQ(r.pt.lookup(kHot + K4).status, Status::not_found);  // the reused leaf table is all zeroes
    EXPECT_TRUE(r.mem.violations.empty()) << r.mem.violations.front();
}

// The recording memory's check can fail: a table released without the invalidation and linked
// again is caught.
TEST(IoptCache, RecorderCatchesAReuseBeforeTheInvalidation) {
    Rig<Stage1> r(48);
    r.pt.set_park_limit(0);  // the cache alone: emptied tables are unlinked at once
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    Gather g(hook_for(r.mem));
    ASSERT_TRUE(r.pt.unmap(kHot, K4, g).ok());
    r.pt.release(g);  // no invalidation first: the bug this check is there for
    ASSERT_TRUE(r.map(kOther, 0x40000000, K4).ok());  // takes the three from the cache
    ASSERT_FALSE(r.mem.violations.empty());
    EXPECT_NE(r.mem.violations.front().find("before the invalidation"), std::string::npos) << r.mem.violations.front();
    r.mem.violations.clear();  // seen; ~Rig checks the rest
}

TEST(IoptCache, PoolExhaustionIsServedFromTheCache) {
    Rig<Stage1> r(48);
    r.pt.set_park_limit(0);  // the cache alone: emptied tables are unlinked at once
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    ASSERT_TRUE(r.unmap(kHot, K4).ok());
    ASSERT_EQ(r.cached(), 3u);
    r.pool().fail_after(0);  // the pool refuses everything from now on
    expect_progress(r.map(kHot + 5 * K4, 0x50000000, 2 * K4), 2 * K4, Status::ok);
    EXPECT_EQ(r.cached(), 0u);
    EXPECT_EQ(r.pa(kHot + 6 * K4), 0x50001000u);
    // With the cache used up, a walk that needs new tables fails cleanly and maps nothing.
    expect_progress(r.map(0x1234000000, 0x60000000, K4), 0, Status::no_memory);
    EXPECT_EQ(r.pt.lookup(0x1234000000).status, Status::not_found);
    r.pool().fail_after(SIZE_MAX);
    ASSERT_TRUE(r.unmap(kHot + 5 * K4, 2 * K4).ok());
}

// A split (a block cut into) also takes from the cache when the pool is exhausted.
TEST(IoptCache, SplitUnderExhaustionIsServedFromTheCache) {
    Rig<Stage1> r(48);
    r.pt.set_park_limit(0);  // the cache alone: emptied tables are unlinked at once
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    ASSERT_TRUE(r.unmap(kHot, K4).ok());
    ASSERT_TRUE(r.map(2 * MiB, 0x40000000, 2 * MiB).ok());  // uses two cached tables (levels 1, 2)
    ASSERT_EQ(r.cached(), 1u);
    r.pool().fail_after(0);
    expect_progress(r.unmap(2 * MiB + 3 * K4, K4), K4, Status::ok);  // the remainder: the last cached table
    EXPECT_EQ(r.cached(), 0u);
    EXPECT_EQ(r.level(2 * MiB), 3u);
    r.pool().fail_after(SIZE_MAX);
    ASSERT_TRUE(r.unmap(2 * MiB, 3 * K4).ok());
    ASSERT_TRUE(r.unmap(2 * MiB + 4 * K4, 2 * MiB - 4 * K4).ok());
    EXPECT_EQ(r.tables(), 0u);
}

TEST(IoptCache, CacheIsBoundedAndGoesBackWhenIdleOrShort) {
    Rig<Stage1> r(48, true, 40, 512);
    r.pt.set_park_limit(0);  // the cache alone: emptied tables are unlinked at once
    // Five separate walks emptied: 15 tables, of which the cache keeps its bound. When a table
    // finds it full, the whole cache goes back to the pool under one lock and that table starts
    // it again: 3, 6, 8 + spill + 1, 4, 7.
    for (uint64_t k = 0; k < 5; k++) ASSERT_TRUE(r.map((k + 1) << 39, 0x40000000, K4).ok());
    for (uint64_t k = 0; k < 5; k++) {
        ASSERT_TRUE(r.unmap((k + 1) << 39, K4).ok());
        EXPECT_LE(r.cached(), PT::kCacheTables);
    }
    EXPECT_EQ(r.cached(), 7u) << r.pool().free_pages() << " free of " << r.pool().total_pages();
    EXPECT_EQ(r.pool().used_pages(), r.base + 7u);
    // Idle: kCacheIdle releases in a row while nothing was taken from the cache give it back;
    // the five unmaps' own releases were the first five of them.
    for (unsigned k = 5; k < PT::kCacheIdle; k++) {
        Gather g;
        r.pt.release(g);
    }
    EXPECT_EQ(r.cached(), 7u);
    {
        Gather g;
        r.pt.release(g);
    }
    EXPECT_EQ(r.cached(), 0u);
    EXPECT_EQ(r.pool().used_pages(), r.base);
    // Short of pages: the next release gives the cache back at once.
    ASSERT_TRUE(r.map(kHot, 0x40000000, K4).ok());
    ASSERT_TRUE(r.unmap(kHot, K4).ok());
    ASSERT_EQ(r.cached(), 3u);
    r.mem.short_below = r.pool().free_pages() + 1;
    ASSERT_TRUE(r.map(0x1000, 0x40000000, K4).ok());  // takes the three, its release finds none left
    ASSERT_TRUE(r.unmap(0x1000, K4).ok());            // releases three, and the pool is short
    EXPECT_EQ(r.cached(), 0u);
    EXPECT_EQ(r.pool().used_pages(), r.base);
}

// The hot path of a DMA API, a thousand times over: after the first pair nothing comes from the
// pool, nothing is zeroed, nothing goes back, and the walk's tables are the same three pages.
TEST(IoptCache, HotPathAllocatesNothing) {
    Rig<Stage1> r(48);
    r.pt.set_park_limit(0);  // the cache alone: emptied tables are unlinked at once
    ASSERT_TRUE(r.map(kHot + 8 * K4, 0x40000000, 4 * K4).ok());
    ASSERT_TRUE(r.unmap(kHot + 8 * K4, 4 * K4).ok());
    const size_t used = r.pool().used_pages();
    const uint64_t zeroed = r.pool().zeroed_pages();
    r.mem.keep_log = false;
    for (int k = 0; k < 1000; k++) {
        ASSERT_TRUE(r.map(kHot + 8 * K4, 0x40000000, 4 * K4).ok());
        ASSERT_EQ(r.pa(kHot + 11 * K4), 0x40003000u);
        ASSERT_TRUE(r.unmap(kHot + 8 * K4, 4 * K4).ok());
    }
    EXPECT_EQ(r.pool().used_pages(), used);
    EXPECT_EQ(r.pool().zeroed_pages(), zeroed);
    EXPECT_EQ(r.cached(), 3u);
    EXPECT_EQ(r.tables(), 0u);
}

// destroy() gives cached tables back with everything else (the Rig checks the pool after it).
TEST(IoptCache, DestroyEmptiesTheCache) {
    Rig<Stage2> r(40);
    r.pt.set_park_limit(0);
    ASSERT_TRUE(r.map(0x3000, 0x40000000, K4).ok());
    ASSERT_TRUE(r.unmap(0x3000, K4).ok());
    EXPECT_EQ(r.cached(), 2u);  // level-2 and leaf table under a level-1 root
}

}  // namespace
