#include <memory>
#include <string>
#include <vector>

#include "common/boot_memory.hpp"
#include <libfdt.h>

#include "dt_fixture.hpp"

using namespace moat;

namespace {

bool overlaps(const MemRange& a, const MemRange& b) { return a.base < b.end() && b.base < a.end(); }

TEST(BootMemory, PoolGetsRamMinusEverythingReserved) {
    auto blob = load_dtb("topology");
    dt::Tree t;
    ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok);
    MemoryPlan plan;
    MemRange image{0x40200000, 0x50000}, dtb{0x48000000, 0x1234};
    ASSERT_EQ(plan_memory(t, image, dtb, plan), Status::ok) << t.error();
    ASSERT_EQ(plan.nram, 2u);
    EXPECT_EQ(plan.ram_bytes(), 0x40000000ull + 0x10000000ull);
    ASSERT_EQ(plan.nreserved, 4u);  // image, dtb, /memreserve/, secmon (the pool without reg is skipped)
    MemRange memreserve{0x40100000, 0x2000}, secmon{0x40800000, 0x200000};
    MemRange dtb_pages{0x48000000, 0x2000};  // the tree's pages are withheld whole
    for (unsigned i = 0; i < plan.nfree; i++) {
        const MemRange& f = plan.free[i];
        EXPECT_FALSE(overlaps(f, image));
        EXPECT_FALSE(overlaps(f, dtb_pages));
        EXPECT_FALSE(overlaps(f, memreserve));
        EXPECT_FALSE(overlaps(f, secmon));
        EXPECT_EQ(f.base % kPageSize, 0u);
        EXPECT_EQ(f.size % kPageSize, 0u);
    }
    uint64_t withheld = 0x50000 + 0x2000 + 0x2000 + 0x200000;
    EXPECT_EQ(plan.free_bytes(), plan.ram_bytes() - withheld);
}

TEST(BootMemory, ABootModuleReservedAfterPlanningLeavesThePoolWholePages) {
    auto blob = load_dtb("topology");
    dt::Tree t;
    ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok);
    MemoryPlan plan;
    ASSERT_EQ(plan_memory(t, {0x40200000, 0x50000}, {0x48000000, 0x1234}, plan), Status::ok) << t.error();
    uint64_t before = plan.free_bytes();
    unsigned nres = plan.nreserved;
    MemRange module{0x50000010, 0x1f6dfc0};  // a kernel a loader put at an odd offset
    ASSERT_EQ(reserve_range(t, plan, module, "dom0less boot module"), Status::ok) << t.error();
    EXPECT_EQ(plan.nreserved, nres + 1);
    EXPECT_STREQ(plan.reserved_why[nres], "dom0less boot module");
    MemRange pages{0x50000000, align_up(module.end(), kPageSize) - 0x50000000};
    for (unsigned i = 0; i < plan.nfree; i++) {
        EXPECT_FALSE(overlaps(plan.free[i], pages));
        EXPECT_EQ(plan.free[i].base % kPageSize, 0u);
    }
    EXPECT_EQ(plan.free_bytes(), before - pages.size);
}

TEST(BootMemory, FillPoolCountsEveryFreePage) {
    // Pretend physical memory: only the plan arithmetic is under test, so the pool is given
    // a tiny plan it can really back.
    MemoryPlan plan;
    std::vector<uint8_t> backing(16 * kPageSize + kPageSize);
    uintptr_t host = align_up(reinterpret_cast<uintptr_t>(backing.data()), kPageSize);
    plan.nfree = 2;
    plan.free[0] = {0x1000, 0x3000};
    plan.free[1] = {0x8000, 0x2000};
    auto pool = std::make_unique<PagePool>(host);
    ASSERT_EQ(fill_pool(plan, *pool), Status::ok);
    EXPECT_EQ(pool->total_pages(), 3u);  // 3 + 2 pages, less one page of owner words per region
    EXPECT_EQ(pool->region_count(), 2u);
}

TEST(BootMemory, TreeWithoutRamIsUnusable) {
    auto blob = load_dtb("topology");
    // Drop device_type from both memory nodes by renaming the property in a copy.
    std::vector<uint64_t> copy(blob.size() + 512);
    ASSERT_EQ(fdt_open_into(blob.data(), copy.data(), static_cast<int>(copy.size() * 8)), 0);
    ASSERT_EQ(fdt_delprop(copy.data(), fdt_path_offset(copy.data(), "/memory@40000000"), "device_type"), 0);
    ASSERT_EQ(fdt_delprop(copy.data(), fdt_path_offset(copy.data(), "/memory@100000000"), "device_type"), 0);
    dt::Tree t;
    ASSERT_EQ(t.open(copy.data(), copy.size() * 8), Status::ok);
    MemoryPlan plan;
    EXPECT_EQ(plan_memory(t, {0, 0}, {0, 0}, plan), Status::bad_dt);
    EXPECT_NE(std::string(t.error()).find("no /memory node with RAM"), std::string::npos) << t.error();
}

}  // namespace
