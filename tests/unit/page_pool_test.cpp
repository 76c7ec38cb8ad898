#include <gtest/gtest.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/page_pool.hpp"

using namespace moat;

namespace {

// A pool over a host buffer posing as physical memory at `phys_base`.
struct HostPool {
    std::vector<uint8_t> mem;
    std::unique_ptr<PagePool> pool;
    HostPool(uint64_t phys_base, size_t pages) : mem((pages + 1) * kPageSize) {
        uintptr_t host = align_up(reinterpret_cast<uintptr_t>(mem.data()), kPageSize);
        pool = std::make_unique<PagePool>(host - phys_base);
        EXPECT_EQ(pool->add_region(phys_base, pages * kPageSize), Status::ok);
    }
};

TEST(PagePool, CountsAllocationsAndFrees) {
    HostPool h(0x40000000, 8);
    PagePool& p = *h.pool;
    EXPECT_EQ(p.total_pages(), 7u);  // the last page holds the owner words
    auto a = p.alloc();
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a.value, 0x40000000u);
    EXPECT_EQ(p.used_pages(), 1u);
    auto b = p.alloc();
    ASSERT_TRUE(b.ok());
    EXPECT_NE(a.value, b.value);
    EXPECT_EQ(p.free(a.value), Status::ok);
    EXPECT_EQ(p.free(b.value), Status::ok);
    EXPECT_EQ(p.used_pages(), 0u);
}

TEST(PagePool, AllocatedPagesAreZeroed) {
    HostPool h(0x80000000, 2);
    auto a = h.pool->alloc();
    ASSERT_TRUE(a.ok());
    auto* bytes = static_cast<uint8_t*>(h.pool->virt(a.value));
    bytes[100] = 0xaa;
    ASSERT_EQ(h.pool->free(a.value), Status::ok);
    auto again = h.pool->alloc();
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(static_cast<uint8_t*>(h.pool->virt(again.value))[100], 0);
}

TEST(PagePool, ExhaustionIsAnOrdinaryResult) {
    HostPool h(0x1000, 4);
    ASSERT_EQ(h.pool->total_pages(), 3u);
    for (int i = 0; i < 3; i++) ASSERT_TRUE(h.pool->alloc().ok());
    auto r = h.pool->alloc();
    EXPECT_EQ(r.status, Status::no_memory);
    EXPECT_EQ(h.pool->used_pages(), 3u);
}

TEST(PagePool, DoubleFreeAndForeignAddressesAreRefused) {
    HostPool h(0x100000, 4);
    auto a = h.pool->alloc();
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(h.pool->free(a.value), Status::ok);
    EXPECT_EQ(h.pool->free(a.value), Status::invalid_argument);
    EXPECT_EQ(h.pool->free(0x5000), Status::invalid_argument);       // below the region
    EXPECT_EQ(h.pool->free(0x100000 + 1), Status::invalid_argument); // unaligned
    EXPECT_EQ(h.pool->used_pages(), 0u);
}

TEST(PagePool, ContiguousAlignedRuns) {
    HostPool h(0x40001000, 32);  // region starts 4 KiB past a 16 KiB boundary
    auto r = h.pool->alloc(4, 4);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value % (4 * kPageSize), 0u);
    EXPECT_EQ(h.pool->used_pages(), 4u);
    EXPECT_EQ(h.pool->alloc(64).status, Status::no_memory);
    EXPECT_EQ(h.pool->alloc(2, 3).status, Status::invalid_argument);  // alignment not a power of two
    EXPECT_EQ(h.pool->free(r.value, 4), Status::ok);
}

TEST(PagePool, RegionsMustNotOverlap) {
    HostPool h(0x200000, 16);
    EXPECT_EQ(h.pool->add_region(0x200000 + 8 * kPageSize, 2 * kPageSize), Status::in_use);
    EXPECT_EQ(h.pool->add_region(0x200000 + 15 * kPageSize, 2 * kPageSize), Status::in_use);  // its owner words
    EXPECT_EQ(h.pool->add_region(~0ull - 10, 100), Status::invalid_argument);
    EXPECT_EQ(h.pool->total_pages(), 15u);
}

TEST(PagePool, PhysicalPageZeroIsNeverHandedOut) {
    std::vector<uint8_t> mem(9 * kPageSize);
    uintptr_t host = align_up(reinterpret_cast<uintptr_t>(mem.data()), kPageSize);
    PagePool* pool = new PagePool(host);  // RAM at physical 0, as on ZynqMP
    ASSERT_EQ(pool->add_region(0, 8 * kPageSize), Status::ok);
    EXPECT_EQ(pool->total_pages(), 6u);  // pages 1..6; page 7 holds their owner words
    for (int i = 0; i < 6; i++) {
        auto r = pool->alloc();
        ASSERT_TRUE(r.ok());
        EXPECT_NE(r.value, 0u);
    }
    EXPECT_EQ(pool->alloc().status, Status::no_memory);
    delete pool;
}

// Many single pages back under one lock: what free() would refuse is skipped and not counted.
TEST(PagePool, FreeEachGivesBackWhatFreeWould) {
    HostPool h(0x40000000, 16);
    std::vector<uint64_t> pas;
    for (int i = 0; i < 5; i++) pas.push_back(h.pool->alloc().value);
    ASSERT_EQ(h.pool->used_pages(), 5u);
    ASSERT_EQ(h.pool->free(pas[2]), Status::ok);  // already back: skipped below
    pas.push_back(0x5000);                         // not a pool page: skipped
    pas.push_back(pas[0] + 8);                     // unaligned: skipped
    EXPECT_EQ(h.pool->free_each(pas.data(), pas.size()), 4u);
    EXPECT_EQ(h.pool->used_pages(), 0u);
    EXPECT_EQ(h.pool->free(pas[1]), Status::invalid_argument);  // really free
    EXPECT_EQ(h.pool->alloc().value, pas[0]);                    // and handed out again
}

// Many single pages under one lock: distinct pages of the pool, counted, each given back by
// free(); fewer only when the pool (or the injected exhaustion) runs out, and then nothing is lost.
TEST(PagePool, AllocEachTakesDistinctPagesUntilThePoolRunsOut) {
    HostPool h(0x40000000, 100);  // 99 pages and one page of owner words
    const size_t total = h.pool->total_pages();
    ASSERT_EQ(total, 99u);
    ASSERT_TRUE(h.pool->alloc().ok());  // a hole at the start: the batch starts after it
    std::vector<uint64_t> pas(total);
    EXPECT_EQ(h.pool->alloc_each(pas.data(), 70), 70u);
    EXPECT_EQ(h.pool->used_pages(), 71u);
    EXPECT_EQ(h.pool->alloc_each(pas.data() + 70, 70), total - 71);  // only what is left
    EXPECT_EQ(h.pool->free_pages(), 0u);
    EXPECT_EQ(h.pool->alloc_each(pas.data(), 1), 0u);
    EXPECT_EQ(h.pool->alloc().status, Status::no_memory);
    std::vector<uint64_t> got(pas.begin(), pas.begin() + static_cast<long>(total - 1));
    std::sort(got.begin(), got.end());
    EXPECT_EQ(std::adjacent_find(got.begin(), got.end()), got.end());  // no page twice
    for (uint64_t pa : got) {
        EXPECT_TRUE(pa >= 0x40000000 && pa < 0x40000000 + total * kPageSize && is_aligned(pa, kPageSize));
        EXPECT_EQ(h.pool->free(pa), Status::ok);  // each was really taken
    }
    EXPECT_EQ(h.pool->used_pages(), 1u);
    h.pool->fail_after(3);
    EXPECT_EQ(h.pool->alloc_each(pas.data(), 10), 3u);  // the injected exhaustion counts pages
    EXPECT_EQ(h.pool->alloc().status, Status::no_memory);
    h.pool->fail_after(SIZE_MAX);
    EXPECT_EQ(h.pool->free_each(pas.data(), 3), 3u);
    EXPECT_EQ(h.pool->used_pages(), 1u);
}

TEST(PagePool, FailAfterInjectsExhaustion) {
    HostPool h(0x10000, 8);
    h.pool->fail_after(2);
    EXPECT_TRUE(h.pool->alloc().ok());
    EXPECT_TRUE(h.pool->alloc().ok());
    EXPECT_EQ(h.pool->alloc().status, Status::no_memory);
}

// The owner words come from each region's own last pages (one per 1024 pages), not from the
// image: the pool object stays small whatever the pool's size, every page's word is its own, and
// no word lies in a page the pool hands out.
TEST(PagePool, OwnerWordsLiveInEachRegionsLastPages) {
    static_assert(sizeof(PagePool) < 256 * KiB, "the owner words are not in the pool object");
    EXPECT_EQ(PagePool::meta_pages(1), 1u);
    EXPECT_EQ(PagePool::meta_pages(1025), 1u);
    EXPECT_EQ(PagePool::meta_pages(1026), 2u);
    const size_t n1 = 2100, n2 = 5;
    std::vector<uint8_t> mem((n1 + n2 + 8) * kPageSize);
    const uintptr_t host = align_up(reinterpret_cast<uintptr_t>(mem.data()), kPageSize);
    const uint64_t base1 = 0x40000000, base2 = base1 + (n1 + 2) * kPageSize;  // a gap between them
    PagePool pool(host - base1);
    ASSERT_EQ(pool.add_region(base1, n1 * kPageSize), Status::ok);
    ASSERT_EQ(pool.add_region(base2, n2 * kPageSize), Status::ok);
    EXPECT_EQ(pool.total_pages(), (n1 - 3) + (n2 - 1));
    EXPECT_EQ(pool.region(0).pages, n1 - 3);
    // Every page handed out is filled with a pattern; then every page's word is written.
    std::vector<uint64_t> pages;
    for (Result<uint64_t> r = pool.alloc(); r.ok(); r = pool.alloc()) {
        memset(pool.virt(r.value), 0x5a, kPageSize);
        pages.push_back(r.value);
    }
    ASSERT_EQ(pages.size(), pool.total_pages());
    for (uint64_t pa : pages) pool.owner_word(pa) = static_cast<uint32_t>(pa >> kPageShift);
    for (uint64_t pa : pages) {
        EXPECT_EQ(pool.owner_word(pa), static_cast<uint32_t>(pa >> kPageShift));
        const auto* b = static_cast<const uint8_t*>(pool.virt(pa));
        for (size_t i = 0; i < kPageSize; i += 512) ASSERT_EQ(b[i], 0x5a) << "an owner word landed in a pool page";
        // The word is in the region's metadata pages, right after its pool pages.
        const PagePool::Region& rg = pool.region(pa < base2 ? 0 : 1);
        const uintptr_t w = reinterpret_cast<uintptr_t>(&pool.owner_word(pa));
        const uintptr_t meta = reinterpret_cast<uintptr_t>(pool.virt(rg.base + rg.pages * kPageSize));
        EXPECT_GE(w, meta);
        EXPECT_LT(w, meta + rg.meta * kPageSize);
    }
    for (uint64_t pa : pages) EXPECT_EQ(pool.free(pa), Status::ok);
    // Not a pool page: a sink that holds nobody's word.
    pool.owner_word(0x1000) = 7;
    EXPECT_EQ(pool.owner_word(base1), static_cast<uint32_t>(base1 >> kPageShift));
}

}  // namespace
