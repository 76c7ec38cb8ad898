// The guest's GICv3 as its trapped accesses see it, and the list registers it fills: register
// semantics Linux's gic-v3 driver relies on (set/clear banks, priorities by byte, IROUTER by
// halves, GICR_TYPER's affinity and Last, WAKER), what an access of the wrong width gets, and
// interrupt flow (an edge once, a level while high, withdrawal, priority order, SGIs by
// affinity, overflow beyond the list registers).
#include <gtest/gtest.h>

#include "hyp/vgic.hpp"

using namespace moat;
using hyp::VGic;

namespace {

constexpr uint64_t kMpidr[2] = {0x0, 0x1};

struct VGicTest : ::testing::Test {
    VGic g;
    void SetUp() override { g.reset(2, kMpidr); }
    uint32_t rd(uint64_t off) {
        uint64_t v = ~uint64_t{0};
        EXPECT_TRUE(g.dist_read(off, 4, v)) << std::hex << off;
        return static_cast<uint32_t>(v);
    }
    void wr(uint64_t off, uint32_t v) { EXPECT_TRUE(g.dist_write(off, 4, v)) << std::hex << off; }
    uint64_t rrd(unsigned vcpu, uint64_t off, unsigned bytes = 4) {
        uint64_t v = ~uint64_t{0};
        EXPECT_TRUE(g.redist_read(vcpu * VGic::kRedistStride + off, bytes, v)) << std::hex << off;
        return v;
    }
    void rwr(unsigned vcpu, uint64_t off, uint32_t v) { EXPECT_TRUE(g.redist_write(vcpu * VGic::kRedistStride + off, 4, v)); }
    // What Linux does before any interrupt can arrive: distributor and both CPUs' Group 1 on.
    void linux_init() {
        wr(0x0, (1u << 4) | 3);  // ARE_NS | EnableGrp1A | EnableGrp1
        for (unsigned i = 1; i < VGic::kLines / 32; i++) wr(0x80 + 4 * i, ~0u);
        for (unsigned v = 0; v < 2; v++) rwr(v, 0x10080, ~0u);
    }
    static unsigned intid(uint64_t lr) { return static_cast<unsigned>(VGic::kLrVintid.get(lr)); }
    static uint64_t state(uint64_t lr) { return VGic::kLrState.get(lr); }
    // What the hardware leaves in an LR the guest deactivated: its state cleared, the rest kept.
    static uint64_t deactivated(uint64_t lr) { return VGic::kLrState.set(lr, 0); }
};

TEST_F(VGicTest, DistributorIdentifiesAsGicV3WithAffinityRoutingAndOneSecurityState) {
    EXPECT_EQ((rd(0xffe8) >> 4) & 0xf, 3u);                      // PIDR2.ArchRev
    EXPECT_EQ(rd(0x4) & 0x1f, VGic::kLines / 32 - 1);            // ITLinesNumber
    EXPECT_EQ((rd(0x4) >> 19) & 0x1f, 9u);                       // IDbits: 10
    EXPECT_EQ(rd(0x0) & (1u << 4 | 1u << 6), 1u << 4 | 1u << 6);  // ARE and DS read as one
    EXPECT_EQ(rd(0x0) & (1u << 31), 0u);                          // RWP never set
    wr(0x0, 0);
    EXPECT_EQ(rd(0x0) & 3u, 0u);
    wr(0x0, 3);
    EXPECT_EQ(rd(0x0) & 3u, 3u);
}

TEST_F(VGicTest, SetAndClearEnableRegistersAreOneBitPerInterrupt) {
    wr(0x100 + 4, 0x5);  // ISENABLER1: INTIDs 32 and 34
    EXPECT_TRUE(g.enabled(0, 32));
    EXPECT_FALSE(g.enabled(0, 33));
    EXPECT_TRUE(g.enabled(0, 34));
    EXPECT_EQ(rd(0x180 + 4), 0x5u);  // ICENABLER reads the same state
    wr(0x180 + 4, 0x1);
    EXPECT_FALSE(g.enabled(0, 32));
    EXPECT_TRUE(g.enabled(0, 34));
    EXPECT_EQ(rd(0x100 + 4), 0x4u);
    // SGIs and PPIs live in the redistributors: the distributor's first word is RAZ/WI.
    wr(0x100, ~0u);
    EXPECT_EQ(rd(0x100), 0u);
    EXPECT_FALSE(g.enabled(0, 27));
}

TEST_F(VGicTest, PrioritiesAreByteAccessibleWithFiveBitsImplemented) {
    EXPECT_TRUE(g.dist_write(0x400 + 33, 1, 0xa7));
    uint64_t v;
    EXPECT_TRUE(g.dist_read(0x400 + 32, 4, v));
    EXPECT_EQ(v, 0xa0u << 8);
    EXPECT_FALSE(g.dist_write(0x400 + 33, 2, 0));  // halfwords are not an access it takes
    EXPECT_FALSE(g.dist_write(0x100 + 4, 1, 1));   // nor bytes on a bit bank
    EXPECT_FALSE(g.dist_read(0x102, 4, v));        // nor a misaligned word
}

TEST_F(VGicTest, IrouterTakesDoublewordsAndHalvesAndRoutesSpis) {
    EXPECT_TRUE(g.dist_write(0x6000 + 8 * 40, 8, 0x1));
    EXPECT_EQ(g.spi_target(40), 1u);
    uint64_t v;
    EXPECT_TRUE(g.dist_read(0x6000 + 8 * 40, 8, v));
    EXPECT_EQ(v, 0x1u);
    EXPECT_TRUE(g.dist_write(0x6000 + 8 * 40, 4, 0x0));
    EXPECT_EQ(g.spi_target(40), 0u);
    EXPECT_TRUE(g.dist_write(0x6000 + 8 * 40 + 4, 4, 0xff));  // Aff3 of nobody: falls back to vCPU 0
    EXPECT_EQ(g.spi_target(40), 0u);
    EXPECT_TRUE(g.dist_read(0x6000 + 8 * 40 + 4, 4, v));
    EXPECT_EQ(v, 0xffu);
}

TEST_F(VGicTest, RedistributorsAreFoundByAffinityAndTheLastSaysSo) {
    EXPECT_EQ((rrd(0, 0xffe8) >> 4) & 0xf, 3u);
    uint64_t t0 = rrd(0, 0x8, 8), t1 = rrd(1, 0x8, 8);
    EXPECT_EQ(t0 >> 32, 0u);
    EXPECT_EQ(t1 >> 32, 1u);
    EXPECT_EQ((t0 >> 8) & 0xffff, 0u);  // Processor_Number
    EXPECT_EQ((t1 >> 8) & 0xffff, 1u);
    EXPECT_EQ(t0 & (1u << 4), 0u);
    EXPECT_EQ(t1 & (1u << 4), 1u << 4);  // Last
    EXPECT_EQ(t0 & 1u, 0u);              // PLPIS: no LPIs
    uint64_t v;
    EXPECT_FALSE(g.redist_read(2 * VGic::kRedistStride, 4, v));  // no third vCPU
}

TEST_F(VGicTest, WakerSleepsUntilTheGuestWakesItsRedistributor) {
    EXPECT_EQ(rrd(0, 0x14), 6u);  // ProcessorSleep | ChildrenAsleep
    rwr(0, 0x14, 0);
    EXPECT_EQ(rrd(0, 0x14), 0u);
    EXPECT_EQ(rrd(1, 0x14), 6u);  // each vCPU's own
}

TEST_F(VGicTest, NothingIsDeliveredUntilGroupAndEnableAllowIt) {
    uint64_t lr[4] = {};
    g.pulse(0, 27);
    EXPECT_FALSE(g.lr_sync(0, lr, 4));
    EXPECT_EQ(lr[0], 0u);
    linux_init();
    rwr(0, 0x10100, 1u << 27);  // GICR_ISENABLER0
    g.lr_sync(0, lr, 4);
    EXPECT_EQ(intid(lr[0]), 27u);
    EXPECT_EQ(state(lr[0]), VGic::kStatePending);
    EXPECT_TRUE(lr[0] & VGic::kLrGroup1);
    EXPECT_EQ(lr[0] & VGic::kLrHw, 0u);
}

TEST_F(VGicTest, AnEdgeIsDeliveredOnceAndAgainAfterItsDeactivation) {
    linux_init();
    rwr(0, 0x10100, 1u << 27);
    uint64_t lr[4] = {};
    g.pulse(0, 27);
    g.lr_sync(0, lr, 4);
    ASSERT_EQ(intid(lr[0]), 27u);
    g.lr_sync(0, lr, 4);  // nothing new: still one LR
    EXPECT_EQ(lr[1], 0u);
    lr[0] = VGic::kLrState.set(lr[0], VGic::kStateActive);  // the guest acknowledged it
    g.pulse(0, 27);                                          // and it fires again meanwhile
    g.lr_sync(0, lr, 4);
    EXPECT_EQ(state(lr[0]), VGic::kStatePending | VGic::kStateActive);
    EXPECT_EQ(lr[1], 0u);
    lr[0] = deactivated(lr[0]);
    g.lr_sync(0, lr, 4);
    EXPECT_EQ(lr[0], 0u);
    EXPECT_FALSE(g.wants_vcpu(0));
}

TEST_F(VGicTest, ALevelStaysWhileHighAndIsWithdrawnWhenItDropsUntaken) {
    linux_init();
    wr(0x100 + 4, 1);  // SPI INTID 32
    uint64_t lr[4] = {};
    g.set_level(0, 32, true);
    g.lr_sync(0, lr, 4);
    ASSERT_EQ(intid(lr[0]), 32u);
    EXPECT_TRUE(lr[0] & VGic::kLrEoi);  // its deactivation brings a maintenance interrupt
    lr[0] = deactivated(lr[0]);         // handled, but the line is still high
    g.lr_sync(0, lr, 4);
    EXPECT_EQ(intid(lr[0]), 32u);
    g.set_level(0, 32, false);  // dropped before the guest took it
    g.lr_sync(0, lr, 4);
    EXPECT_EQ(lr[0], 0u);
    EXPECT_FALSE(g.wants_vcpu(0));
    uint64_t pend;
    EXPECT_TRUE(g.dist_read(0x200 + 4, 4, pend));
    EXPECT_EQ(pend & 1u, 0u);
}

TEST_F(VGicTest, MostUrgentFirstAndOverflowIsReported) {
    linux_init();
    rwr(0, 0x10100, 0xffffu);  // SGIs 0..15
    for (unsigned i = 0; i < 6; i++) EXPECT_TRUE(g.redist_write(0x10400 + i, 1, 0x80));
    EXPECT_TRUE(g.redist_write(0x10400 + 5, 1, 0x10));  // SGI 5 most urgent
    for (unsigned i = 0; i < 6; i++) g.pulse(0, i);
    uint64_t lr[4] = {};
    EXPECT_TRUE(g.lr_sync(0, lr, 4));  // 6 pending, 4 registers
    EXPECT_EQ(intid(lr[0]), 5u);
    EXPECT_EQ(VGic::kLrPrio.get(lr[0]), 0x10u);
    EXPECT_EQ(intid(lr[1]), 0u);
    for (auto& l : lr) l = deactivated(l);
    EXPECT_FALSE(g.lr_sync(0, lr, 4));  // the last two fit now
    EXPECT_EQ(intid(lr[0]), 3u);
    EXPECT_EQ(intid(lr[1]), 4u);
    EXPECT_EQ(lr[2], 0u);
}

TEST_F(VGicTest, Sgi1rTargetsByAffinityOrEveryoneElse) {
    linux_init();
    rwr(0, 0x10100, 0xffffu);
    rwr(1, 0x10100, 0xffffu);
    EXPECT_EQ(g.sgi1r(0, uint64_t{3} << 24 | 0x2), 0x2u);  // SGI 3 to Aff0 1
    EXPECT_TRUE(g.is_pending(1, 3));
    EXPECT_FALSE(g.is_pending(0, 3));
    EXPECT_EQ(g.sgi1r(0, uint64_t{1} << 40 | uint64_t{1} << 24), 0x2u);  // IRM: all but self
    EXPECT_EQ(g.sgi1r(1, uint64_t{1} << 40 | uint64_t{1} << 24), 0x1u);
    EXPECT_EQ(g.sgi1r(0, uint64_t{1} << 16 | 0x1), 0u);  // Aff1 1: nobody there
    EXPECT_TRUE(g.wants_vcpu(1));
}

TEST_F(VGicTest, ASpiGoesToTheVcpuItsRouterNames) {
    linux_init();
    wr(0x100 + 4, 1);
    EXPECT_TRUE(g.dist_write(0x6000 + 8 * 32, 8, 1));
    g.pulse(0, 32);
    uint64_t lr0[4] = {}, lr1[4] = {};
    g.lr_sync(0, lr0, 4);
    g.lr_sync(1, lr1, 4);
    EXPECT_EQ(lr0[0], 0u);
    EXPECT_EQ(intid(lr1[0]), 32u);
}

}  // namespace
