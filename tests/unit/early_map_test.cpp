// The EL2 identity map: Normal memory exactly over the board's RAM window, Device elsewhere.
#include <gtest/gtest.h>

#include <memory>

#include "arch/arm64/early_map.hpp"

using namespace moat;
using namespace moat::arch::early_map;

namespace {

// Walks the tables for one address: true and the descriptor for a block, false for none.
bool walk(const Tables& t, uint64_t va, uint64_t& leaf) {
    uint64_t e0 = t.l0[(va >> 39) & 511];
    if ((e0 & 3) != kTable) return false;
    const uint64_t* l1 = reinterpret_cast<const uint64_t*>(e0 & bits(47, 12));
    uint64_t e1 = l1[(va >> 30) & 511];
    if ((e1 & 3) == kBlock) return leaf = e1, true;
    if ((e1 & 3) != kTable) return false;
    const uint64_t* l2 = reinterpret_cast<const uint64_t*>(e1 & bits(47, 12));
    uint64_t e2 = l2[(va >> 21) & 511];
    if ((e2 & 3) != kBlock) return false;
    leaf = e2;
    return true;
}

bool normal(const Tables& t, uint64_t va) {
    uint64_t leaf = 0;
    EXPECT_TRUE(walk(t, va, leaf)) << std::hex << va;
    return (leaf & (7 << 2)) == kAttrIdxNormal && !(leaf & kXn);
}

auto host_phys = [](const uint64_t* p) { return uint64_t{reinterpret_cast<uintptr_t>(p)}; };

TEST(EarlyMap, QemuVirtWindowIsWholeGiBs) {
    auto t = std::make_unique<Tables>();
    build(*t, 0x40000000, 0x4000000000, host_phys);
    EXPECT_FALSE(normal(*t, 0x09000000));   // PL011
    EXPECT_TRUE(normal(*t, 0x40000000));
    EXPECT_TRUE(normal(*t, 0x3fffe00000));
    EXPECT_FALSE(normal(*t, 0x4010000000));  // high ECAM
    EXPECT_FALSE(normal(*t, 0xff00000000));
    uint64_t leaf;
    ASSERT_TRUE(walk(*t, 0x7fffffff, leaf));
    EXPECT_EQ(leaf & bits(47, 30), 0x40000000u);  // a 1 GiB block, identity
}

TEST(EarlyMap, SalvatorXFirmwareBelowTheWindowStaysDevice) {
    auto t = std::make_unique<Tables>();
    build(*t, 0x48000000, 0x80000000, host_phys);
    EXPECT_FALSE(normal(*t, 0x40000000));
    EXPECT_FALSE(normal(*t, 0x47ffffff));
    EXPECT_TRUE(normal(*t, 0x48000000));
    EXPECT_TRUE(normal(*t, 0x7fffffff));
    EXPECT_FALSE(normal(*t, 0xe6e88000));  // SCIF2
    uint64_t leaf;
    ASSERT_TRUE(walk(*t, 0x48200000 + 0x1234, leaf));
    EXPECT_EQ(leaf & bits(47, 21), 0x48200000u);  // a 2 MiB block, identity
}

TEST(EarlyMap, UnalignedWindowIsRoundedInward) {
    auto t = std::make_unique<Tables>();
    build(*t, 0x40100000, 0x40500000, host_phys);  // 1 MiB into a 2 MiB block, ends mid-block
    EXPECT_FALSE(normal(*t, 0x40100000));
    EXPECT_TRUE(normal(*t, 0x40200000));
    EXPECT_FALSE(normal(*t, 0x40400000));
}

TEST(EarlyMap, Zcu102RamFromZero) {
    auto t = std::make_unique<Tables>();
    build(*t, 0, 0x80000000, host_phys);
    EXPECT_TRUE(normal(*t, 0));
    EXPECT_TRUE(normal(*t, 0x7fffffff));
    EXPECT_FALSE(normal(*t, 0xff000000));  // UART0
    EXPECT_FALSE(normal(*t, 0xfd800000));  // MMU-500
}

}  // namespace
