// The guest's GICv3 as its trapped accesses see it, and the list registers it fills: register
// semantics Linux's gic-v3 driver relies on (set/clear banks, priorities by byte, IROUTER by
// halves, GICR_TYPER's affinity and Last, WAKER), what an access of the wrong width gets, and
// interrupt flow (an edge once, a level while high, withdrawal, priority order, SGIs by
// affinity, overflow beyond the list registers), and a guest sized beyond 64 SPIs (the SPIs its
// count covers work in every bank, those beyond it are RAZ/WI, GICD_TYPER says how many).
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
        for (unsigned i = 1; i < (g.lines() + 31) / 32; i++) wr(0x80 + 4 * i, ~0u);
        for (unsigned v = 0; v < 2; v++) rwr(v, 0x10080, ~0u);
    }
    static unsigned intid(uint64_t lr) { return static_cast<unsigned>(VGic::kLrVintid.get(lr)); }
    static uint64_t state(uint64_t lr) { return VGic::kLrState.get(lr); }
    // What the hardware leaves in an LR the guest deactivated: its state cleared, the rest kept.
    static uint64_t deactivated(uint64_t lr) { return VGic::kLrState.set(lr, 0); }
};

TEST_F(VGicTest, DistributorIdentifiesAsGicV3WithAffinityRoutingAndOneSecurityState) {
    EXPECT_EQ((rd(0xffe8) >> 4) & 0xf, 3u);                      // PIDR2.ArchRev
    EXPECT_EQ(rd(0x4) & 0x1f, 2u);                               // ITLinesNumber: 64 SPIs, 96 lines
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

TEST_F(VGicTest, ADefaultGuestHas64SpisAndNothingBeyond) {
    EXPECT_EQ(g.spis(), 64u);
    EXPECT_EQ(g.lines(), 96u);
    linux_init();
    wr(0x100 + 4 * 2, ~0u);  // ISENABLER2: INTIDs 64..95
    EXPECT_EQ(rd(0x100 + 4 * 2), ~0u);
    wr(0x100 + 4 * 3, ~0u);  // ISENABLER3: INTIDs 96..127, not the guest's
    EXPECT_EQ(rd(0x100 + 4 * 3), 0u);
    EXPECT_FALSE(g.enabled(0, 96));
    g.pulse(0, 96);
    EXPECT_FALSE(g.is_pending(0, 96));
    EXPECT_FALSE(g.wants_vcpu(0));
    EXPECT_FALSE(g.set_forwarded(96, true));
}

TEST(VGicSpis, TheCountIsAMultipleOf32BetweenTheMinimumAndInterruptId1019) {
    EXPECT_EQ(VGic::spis_covering(31), 0u);
    EXPECT_EQ(VGic::spis_covering(32), 64u);
    EXPECT_EQ(VGic::spis_covering(95), 64u);
    EXPECT_EQ(VGic::spis_covering(96), 96u);
    EXPECT_EQ(VGic::spis_covering(200), 192u);  // R-Car Gen3 SDHI3: SPI 168
    EXPECT_EQ(VGic::spis_covering(1019), 992u);
    EXPECT_EQ(VGic::spis_covering(1020), 0u);  // special INTIDs: no GIC has them as SPIs
    VGic g;
    const uint64_t mpidr[1] = {0};
    struct Case {
        unsigned asked, spis, itlines;
    } cases[] = {{0, 64, 2}, {64, 64, 2}, {65, 96, 3}, {192, 192, 6}, {224, 224, 7}, {992, 988, 31}, {5000, 988, 31}};
    for (const Case& c : cases) {
        g.reset(1, mpidr, c.asked);
        EXPECT_EQ(g.spis(), c.spis) << c.asked;
        uint64_t typer = 0;
        ASSERT_TRUE(g.dist_read(0x4, 4, typer));
        EXPECT_EQ(typer & 0x1f, c.itlines) << c.asked;
    }
    // The largest reaches INTID 1019 and stops there.
    ASSERT_EQ(g.lines(), 1020u);
    EXPECT_TRUE(g.dist_write(0x100 + 4 * 31, 4, ~0u));
    uint64_t v = 0;
    ASSERT_TRUE(g.dist_read(0x100 + 4 * 31, 4, v));
    EXPECT_EQ(v, 0x0fffffffu);  // INTIDs 992..1019
    EXPECT_TRUE(g.dist_write(0x6000 + 8 * 1019, 8, 0));
    EXPECT_TRUE(g.dist_write(0x6000 + 8 * 1020, 8, 1));
    ASSERT_TRUE(g.dist_read(0x6000 + 8 * 1020, 8, v));
    EXPECT_EQ(v, 0u);
}

// A guest with 224 SPIs (INTIDs 32..255), as one holding the Salvator SDHI (INTID 200) gets.
struct VGic224Test : VGicTest {
    void SetUp() override { g.reset(2, kMpidr, 224); }
};

TEST_F(VGic224Test, EveryBankWorksUpToItsLastSpiAndIsRazWiBeyond) {
    EXPECT_EQ(g.spis(), 224u);
    EXPECT_EQ(rd(0x4) & 0x1f, 7u);  // ITLinesNumber: 32 * 8 lines
    // INTID 200: word 6, bit 8; INTID 255 the last; 256 beyond.
    wr(0x080 + 4 * 6, 1u << 8);  // IGROUPR
    EXPECT_EQ(rd(0x080 + 4 * 6), 1u << 8);
    wr(0x100 + 4 * 6, 1u << 8);  // ISENABLER
    EXPECT_TRUE(g.enabled(0, 200));
    EXPECT_EQ(rd(0x180 + 4 * 6), 1u << 8);  // ICENABLER reads the same
    wr(0x180 + 4 * 6, 1u << 8);
    EXPECT_FALSE(g.enabled(0, 200));
    wr(0x100 + 4 * 7, 1u << 31);
    EXPECT_TRUE(g.enabled(0, 255));
    wr(0x100 + 4 * 8, ~0u);  // INTIDs 256..287: not the guest's
    EXPECT_EQ(rd(0x100 + 4 * 8), 0u);
    EXPECT_FALSE(g.enabled(0, 256));
    // Priorities by byte, the configuration by two bits, the router by doubleword.
    EXPECT_TRUE(g.dist_write(0x400 + 200, 1, 0x48));
    EXPECT_EQ(rd(0x400 + 200), 0x48u);
    EXPECT_TRUE(g.dist_write(0x400 + 256, 1, 0x48));
    EXPECT_EQ(rd(0x400 + 256), 0u);
    wr(0xc00 + 4 * (200 / 16), 2u << (2 * (200 % 16)));  // ICFGR: INTID 200 edge
    EXPECT_EQ(rd(0xc00 + 4 * (200 / 16)), 2u << (2 * (200 % 16)));
    wr(0xc00 + 4 * (256 / 16), ~0u);
    EXPECT_EQ(rd(0xc00 + 4 * (256 / 16)), 0u);
    EXPECT_TRUE(g.dist_write(0x6000 + 8 * 200, 8, 1));
    EXPECT_EQ(g.spi_target(200), 1u);
    uint64_t v = 0;
    EXPECT_TRUE(g.dist_write(0x6000 + 8 * 256, 8, 1));
    EXPECT_TRUE(g.dist_read(0x6000 + 8 * 256, 8, v));
    EXPECT_EQ(v, 0u);
    // Pending and active by set/clear pairs; beyond the count nothing latches.
    wr(0x200 + 4 * 6, 1u << 8);
    EXPECT_TRUE(g.is_pending(1, 200));
    EXPECT_EQ(rd(0x280 + 4 * 6), 1u << 8);
    wr(0x280 + 4 * 6, 1u << 8);
    EXPECT_FALSE(g.is_pending(1, 200));
    wr(0x200 + 4 * 8, ~0u);
    EXPECT_EQ(rd(0x200 + 4 * 8), 0u);
    EXPECT_EQ(rd(0x300 + 4 * 8), 0u);
}

TEST_F(VGic224Test, Intid200IsPulsedAndDeliveredThroughTheListRegisters) {
    linux_init();
    wr(0x100 + 4 * 6, 1u << 8);
    EXPECT_TRUE(g.dist_write(0x400 + 200, 1, 0x20));
    EXPECT_TRUE(g.dist_write(0x6000 + 8 * 200, 8, 1));  // to vCPU 1
    g.pulse(0, 200);
    EXPECT_TRUE(g.is_pending(1, 200));
    EXPECT_TRUE(g.wants_vcpu(1));
    EXPECT_FALSE(g.wants_vcpu(0));
    uint64_t lr0[4] = {}, lr1[4] = {};
    EXPECT_FALSE(g.lr_sync(0, lr0, 4));
    EXPECT_EQ(lr0[0], 0u);
    EXPECT_FALSE(g.lr_sync(1, lr1, 4));
    ASSERT_EQ(intid(lr1[0]), 200u);
    EXPECT_EQ(VGic::kLrPrio.get(lr1[0]), 0x20u);
    EXPECT_EQ(state(lr1[0]), VGic::kStatePending);
    EXPECT_EQ(lr1[1], 0u);
    EXPECT_TRUE(g.wants_vcpu(1));  // in an LR, not yet acknowledged
    lr1[0] = VGic::kLrState.set(lr1[0], VGic::kStateActive);
    g.lr_sync(1, lr1, 4);
    EXPECT_FALSE(g.wants_vcpu(1));  // the guest has it
    lr1[0] = deactivated(lr1[0]);
    g.lr_sync(1, lr1, 4);
    EXPECT_EQ(lr1[0], 0u);
    EXPECT_FALSE(g.wants_vcpu(1));
    // A pulse beyond the guest's count is dropped.
    g.pulse(0, 256);
    g.set_level(0, 300, true);
    EXPECT_FALSE(g.wants_vcpu(0));
    EXPECT_FALSE(g.wants_vcpu(1));
}

TEST_F(VGic224Test, ForwardedLevelLineHighUpIsResampledAfterDeactivation) {
    linux_init();
    wr(0x100 + 4 * 6, 1u << 8);
    ASSERT_TRUE(g.set_forwarded(200, true));
    EXPECT_FALSE(g.set_forwarded(256, true));
    EXPECT_FALSE(g.resample_pending());
    g.set_level(0, 200, true);
    uint64_t lr[4] = {};
    g.lr_sync(0, lr, 4);
    ASSERT_EQ(intid(lr[0]), 200u);
    EXPECT_TRUE(lr[0] & VGic::kLrEoi);
    lr[0] = deactivated(lr[0]);
    g.lr_sync(0, lr, 4);
    EXPECT_EQ(lr[0], 0u);  // its virtual line lowered: not delivered again until resampled
    EXPECT_TRUE(g.resample_pending());
    EXPECT_FALSE(g.take_resample(201));
    EXPECT_TRUE(g.take_resample(200));
    EXPECT_FALSE(g.take_resample(200));
    EXPECT_FALSE(g.resample_pending());
}

// Many lines pending at once, spread over every word: delivered strictly by priority then INTID,
// each once, whatever the number of lines.
TEST(VGicSpis, ManyPendingAcrossTheWholeRangeComeOutInPriorityOrder) {
    VGic g;
    const uint64_t mpidr[1] = {0};
    g.reset(1, mpidr, VGic::kMaxSpis);
    ASSERT_TRUE(g.dist_write(0x0, 4, (1u << 4) | 2));
    for (unsigned w = 1; w < 32; w++) {
        ASSERT_TRUE(g.dist_write(0x80 + 4 * w, 4, ~0u));
        ASSERT_TRUE(g.dist_write(0x100 + 4 * w, 4, ~0u));
    }
    const unsigned ids[] = {1019, 33, 500, 64, 999, 200, 777, 95};
    const uint8_t prios[] = {0x10, 0x80, 0x10, 0x40, 0xf0, 0x08, 0x40, 0x80};
    for (unsigned i = 0; i < 8; i++) {
        ASSERT_TRUE(g.dist_write(0x400 + ids[i], 1, prios[i]));
        g.pulse(0, ids[i]);
    }
    const unsigned order[] = {200, 500, 1019, 64, 777, 33, 95, 999};
    uint64_t lr[4] = {};
    EXPECT_TRUE(g.lr_sync(0, lr, 4));  // 8 pending, 4 registers
    for (unsigned i = 0; i < 4; i++) EXPECT_EQ(VGic::kLrVintid.get(lr[i]), order[i]) << i;
    for (auto& l : lr) l = VGic::kLrState.set(l, 0);
    EXPECT_FALSE(g.lr_sync(0, lr, 4));
    for (unsigned i = 0; i < 4; i++) EXPECT_EQ(VGic::kLrVintid.get(lr[i]), order[4 + i]) << i;
    for (auto& l : lr) l = VGic::kLrState.set(l, 0);
    EXPECT_FALSE(g.lr_sync(0, lr, 4));
    EXPECT_EQ(lr[0], 0u);
    EXPECT_FALSE(g.wants_vcpu(0));
    EXPECT_EQ(g.injected(), 8u);
}

}  // namespace
