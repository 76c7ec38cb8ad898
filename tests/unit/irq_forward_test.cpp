// Physical SPIs forwarded to a guest's virtual GIC (hyp/irq_forward.hpp), against the host's
// GIC-like controller model (the physical side) and the vGIC's list registers (the guest's):
// a level line is injected once per assertion, stays masked while the guest handles it, comes
// back after the guest's deactivation while still high and not when it dropped; edges pulse;
// ownership between guests and moat; teardown.
#include <gtest/gtest.h>

#include <string>

#include "arch/irq.hpp"
#include "hyp/irq_forward.hpp"

using namespace moat;
using arch::HostIrqController;
using hyp::IrqForwarder;
using hyp::VGic;

namespace {

constexpr uint64_t kMpidr[1] = {0};
constexpr unsigned kNlr = 4;
constexpr uint32_t kP = 36, kV = 37;  // a host SPI and the guest's line for it (different on purpose)

void moat_handler(void*) {}

struct Guest {
    VGic vgic;
    uint64_t lrs[kNlr] = {};
    Guest() {
        vgic.reset(1, kMpidr);
        // What Linux does: distributor Group 1 on, every SPI Group 1 and enabled.
        EXPECT_TRUE(vgic.dist_write(0x0, 4, (1u << 4) | 2));
        for (unsigned i = 1; i < vgic.lines() / 32; i++) {
            EXPECT_TRUE(vgic.dist_write(0x80 + 4 * i, 4, ~0u));
            EXPECT_TRUE(vgic.dist_write(0x100 + 4 * i, 4, ~0u));
        }
    }
    // One guest exit: the LRs as the hardware left them, synced, then the forwarder resampled
    // (what the arch does after every lr_sync).
    void sync(IrqForwarder& f) {
        (void)vgic.lr_sync(0, lrs, kNlr);
        f.resample(vgic);
    }
    int lr_of(unsigned intid) const {
        for (unsigned i = 0; i < kNlr; i++)
            if (lrs[i] && VGic::kLrVintid.get(lrs[i]) == intid) return static_cast<int>(i);
        return -1;
    }
    // The guest acknowledges (pending -> active) / deactivates (state cleared) its LR for intid.
    void ack(unsigned intid) {
        int i = lr_of(intid);
        ASSERT_GE(i, 0);
        lrs[i] = VGic::kLrState.set(lrs[i], VGic::kStateActive);
    }
    void deactivate(unsigned intid) {
        int i = lr_of(intid);
        ASSERT_GE(i, 0);
        lrs[i] = VGic::kLrState.set(lrs[i], 0);
    }
};

struct IrqForwardTest : ::testing::Test {
    HostIrqController ic;
    IrqForwarder fwd;
    Guest a, b;
    Why why;
    void SetUp() override { fwd.set_controller(&ic); }
};

TEST_F(IrqForwardTest, LevelLineIsInjectedOnceWhileTheGuestHandlesIt) {
    ASSERT_EQ(fwd.forward_spi(a.vgic, "a", kP, kV, true, why), Status::ok) << why.text();
    EXPECT_TRUE(ic.enabled(kP));
    EXPECT_TRUE(a.vgic.forwarded(kV));
    ic.raise(kP);  // the device asserts its line
    EXPECT_EQ(fwd.arrivals_on(kP), 1u);
    EXPECT_FALSE(ic.enabled(kP)) << "masked at the distributor while the guest has it";
    EXPECT_FALSE(ic.active(kP)) << "and EOIed";
    EXPECT_TRUE(a.vgic.is_pending(0, kV));
    a.sync(fwd);
    int i = a.lr_of(kV);
    ASSERT_GE(i, 0);
    EXPECT_EQ(a.vgic.injected(), 1u);
    EXPECT_TRUE(a.lrs[i] & VGic::kLrEoi) << "its deactivation must reach moat (EOI maintenance interrupt)";
    // Line still high, guest in its handler: exits come and go, nothing more is injected.
    a.ack(kV);
    for (int k = 0; k < 5; k++) a.sync(fwd);
    ic.raise(kP);  // the device keeps asserting: a level line, still masked
    a.sync(fwd);
    EXPECT_EQ(fwd.arrivals_on(kP), 1u);
    EXPECT_EQ(a.vgic.injected(), 1u);
    EXPECT_EQ(a.lr_of(kV), i);
    EXPECT_EQ(VGic::kLrState.get(a.lrs[i]), VGic::kStateActive);
}

TEST_F(IrqForwardTest, DeactivationWithTheLineStillHighInjectsAgain) {
    ASSERT_EQ(fwd.forward_spi(a.vgic, "a", kP, kV, true, why), Status::ok) << why.text();
    ic.raise(kP);
    a.sync(fwd);
    a.ack(kV);
    a.sync(fwd);
    a.deactivate(kV);  // the guest's handler did not quiet the device
    a.sync(fwd);       // lowers V, unmasks P: the line is still high, so P fires again
    EXPECT_EQ(fwd.arrivals_on(kP), 2u);
    EXPECT_FALSE(ic.enabled(kP));
    EXPECT_TRUE(a.vgic.is_pending(0, kV));
    a.sync(fwd);
    ASSERT_GE(a.lr_of(kV), 0);
    EXPECT_EQ(VGic::kLrState.get(a.lrs[a.lr_of(kV)]), VGic::kStatePending);
    EXPECT_EQ(a.vgic.injected(), 2u);
    EXPECT_EQ(fwd.arrivals(a.vgic), 2u);
    EXPECT_EQ(fwd.total(), 2u);
}

TEST_F(IrqForwardTest, DeactivationAfterTheLineDroppedInjectsNothing) {
    ASSERT_EQ(fwd.forward_spi(a.vgic, "a", kP, kV, true, why), Status::ok) << why.text();
    ic.raise(kP);
    a.sync(fwd);
    a.ack(kV);
    ic.lower(kP);  // the guest's driver quieted the device
    a.deactivate(kV);
    a.sync(fwd);
    EXPECT_TRUE(ic.enabled(kP)) << "unmasked for the next assertion";
    EXPECT_FALSE(ic.pending(kP));
    EXPECT_FALSE(a.vgic.is_pending(0, kV));
    EXPECT_LT(a.lr_of(kV), 0);
    for (int k = 0; k < 3; k++) a.sync(fwd);
    EXPECT_EQ(fwd.arrivals_on(kP), 1u);
    EXPECT_EQ(a.vgic.injected(), 1u);
    // The next assertion is forwarded as the first was.
    ic.raise(kP);
    a.sync(fwd);
    EXPECT_EQ(fwd.arrivals_on(kP), 2u);
    EXPECT_EQ(a.vgic.injected(), 2u);
    EXPECT_EQ(ic.eois(kP), 2u);
}

TEST_F(IrqForwardTest, AGuestThatDisablesItsLineKeepsThePhysicalOneMasked) {
    ASSERT_EQ(fwd.forward_spi(a.vgic, "a", kP, kV, true, why), Status::ok) << why.text();
    ic.raise(kP);
    a.sync(fwd);
    ASSERT_TRUE(a.vgic.dist_write(0x180 + 4 * (kV / 32), 4, 1u << (kV % 32)));  // ICENABLER
    a.sync(fwd);  // withdrawn from its LR before the guest took it: not a deactivation
    EXPECT_LT(a.lr_of(kV), 0);
    EXPECT_FALSE(ic.enabled(kP));
    for (int k = 0; k < 3; k++) a.sync(fwd);
    EXPECT_EQ(fwd.arrivals_on(kP), 1u);
    ASSERT_TRUE(a.vgic.dist_write(0x100 + 4 * (kV / 32), 4, 1u << (kV % 32)));  // enabled again: it is still there
    a.sync(fwd);
    EXPECT_GE(a.lr_of(kV), 0);
    EXPECT_EQ(a.vgic.injected(), 2u);
}

TEST_F(IrqForwardTest, EdgeLinePulsesAndStaysUnmasked) {
    ASSERT_EQ(fwd.forward_spi(a.vgic, "a", 40, 41, false, why), Status::ok) << why.text();
    EXPECT_FALSE(a.vgic.forwarded(41)) << "only level lines wait for the guest";
    ic.raise(40);
    EXPECT_TRUE(ic.enabled(40));
    EXPECT_TRUE(a.vgic.is_pending(0, 41));
    a.sync(fwd);
    EXPECT_GE(a.lr_of(41), 0);
    EXPECT_FALSE(a.lrs[a.lr_of(41)] & VGic::kLrEoi);
    a.ack(41);
    ic.raise(40);  // a second edge while the guest handles the first: pending again behind it
    a.sync(fwd);
    EXPECT_EQ(VGic::kLrState.get(a.lrs[a.lr_of(41)]), VGic::kStatePending | VGic::kStateActive);
    EXPECT_EQ(fwd.arrivals_on(40), 2u);
}

TEST_F(IrqForwardTest, OneLineOneGuestAndNotMoatsOwn) {
    ASSERT_EQ(fwd.forward_spi(a.vgic, "a", kP, kV, true, why), Status::ok) << why.text();
    // Two of a's functions on the same line: one more user of the same binding.
    EXPECT_EQ(fwd.forward_spi(a.vgic, "a", kP, kV, true, why), Status::ok) << why.text();
    EXPECT_EQ(fwd.lines(a.vgic), 1u);
    why.clear();
    EXPECT_EQ(fwd.forward_spi(b.vgic, "b", kP, kV, true, why), Status::denied);
    EXPECT_NE(std::string(why.text()).find("guest b: SPI 4 (INTID 36) is already forwarded to guest a"), std::string::npos)
        << why.text();
    EXPECT_EQ(fwd.owner(kP), &a.vgic);
    EXPECT_EQ(fwd.forward_spi(a.vgic, "a", kP, kV + 1, true, why), Status::in_use) << "the same line as two";
    EXPECT_EQ(fwd.forward_spi(a.vgic, "a", kP, kV, false, why), Status::in_use) << "nor with another trigger";
    EXPECT_EQ(fwd.forward_spi(a.vgic, "a", kP + 1, kV, true, why), Status::in_use) << "two lines onto one";
    EXPECT_NE(std::string(why.text()).find("INTID 37 already carries physical INTID 36"), std::string::npos) << why.text();
    // A line moat requested for itself (an IOMMU's, the UART's) is not a guest's.
    ASSERT_EQ(ic.request(74, Trigger::edge_rising, 0x80, moat_handler, nullptr), Status::ok);
    why.clear();
    EXPECT_EQ(fwd.forward_spi(b.vgic, "b", 74, 74, false, why), Status::in_use);
    EXPECT_NE(std::string(why.text()).find("guest b: SPI 42 (INTID 74) is one moat itself uses"), std::string::npos)
        << why.text();
    EXPECT_EQ(fwd.owner(74), nullptr);
    // A line moat owns without a handler (the console UART it polls) is refused as well.
    EXPECT_EQ(fwd.reserve(33, "/pl011@9000000"), Status::ok);
    EXPECT_EQ(fwd.reserve(33, "/pl011@9000000"), Status::ok);
    why.clear();
    EXPECT_EQ(fwd.forward_spi(b.vgic, "b", 33, 40, true, why), Status::in_use);
    EXPECT_NE(std::string(why.text()).find("guest b: SPI 1 (INTID 33) is /pl011@9000000's, which moat itself uses"),
              std::string::npos)
        << why.text();
    EXPECT_FALSE(ic.bound(33));
    for (unsigned k = 1; k < IrqForwarder::kMaxReserved; k++) EXPECT_EQ(fwd.reserve(600 + k, "x"), Status::ok);
    EXPECT_EQ(fwd.reserve(700, "x"), Status::no_space);
    // Not SPIs.
    EXPECT_EQ(fwd.forward_spi(b.vgic, "b", 27, 40, true, why), Status::out_of_range);
    EXPECT_EQ(fwd.forward_spi(b.vgic, "b", 1020, 40, true, why), Status::out_of_range);
    EXPECT_EQ(fwd.forward_spi(b.vgic, "b", 50, 31, true, why), Status::out_of_range);
    EXPECT_EQ(fwd.forward_spi(b.vgic, "b", 50, b.vgic.lines(), true, why), Status::out_of_range);
    EXPECT_NE(std::string(why.text()).find("guest b: virtual INTID 96"), std::string::npos) << why.text();
    EXPECT_FALSE(ic.bound(50));
    // b's own line works beside a's.
    EXPECT_EQ(fwd.forward_spi(b.vgic, "b", 50, kV, true, why), Status::ok) << why.text();
    ic.raise(50);
    EXPECT_TRUE(b.vgic.is_pending(0, kV));
    EXPECT_FALSE(a.vgic.is_pending(0, kV));
}

TEST_F(IrqForwardTest, UnbindMasksAndReleasesEveryLineOfTheGuest) {
    ASSERT_EQ(fwd.forward_spi(a.vgic, "a", kP, kV, true, why), Status::ok) << why.text();
    ASSERT_EQ(fwd.forward_spi(a.vgic, "a", 40, 41, false, why), Status::ok) << why.text();
    ASSERT_EQ(fwd.forward_spi(b.vgic, "b", 50, 50, true, why), Status::ok) << why.text();
    ic.raise(kP);  // a ends with its line masked and V pending
    EXPECT_EQ(fwd.unbind(a.vgic), 2u);
    EXPECT_FALSE(ic.bound(kP));
    EXPECT_FALSE(ic.bound(40));
    EXPECT_FALSE(a.vgic.forwarded(kV));
    EXPECT_EQ(fwd.lines(a.vgic), 0u);
    EXPECT_EQ(fwd.owner(kP), nullptr);
    uint64_t spurious = ic.spurious();
    ic.raise(40);  // nobody's any more: the controller counts it, the old guest sees nothing
    EXPECT_EQ(ic.spurious(), spurious + 1);
    EXPECT_FALSE(a.vgic.is_pending(0, 41));
    EXPECT_TRUE(ic.bound(50)) << "b keeps its line";
    // The line can go to another guest now.
    EXPECT_EQ(fwd.forward_spi(b.vgic, "b", kP, kV, true, why), Status::ok) << why.text();
    EXPECT_EQ(fwd.unbind(a.vgic), 0u);
}

TEST_F(IrqForwardTest, WithoutAControllerNothingIsForwarded) {
    IrqForwarder none;
    EXPECT_EQ(none.forward_spi(a.vgic, "a", kP, kV, true, why), Status::not_ready);
    EXPECT_NE(std::string(why.text()).find("guest a: no interrupt controller"), std::string::npos) << why.text();
    EXPECT_EQ(none.lines(a.vgic), 0u);
    EXPECT_FALSE(a.vgic.forwarded(kV));
}

TEST_F(IrqForwardTest, RunsOutOfLinesCleanly) {
    for (unsigned k = 0; k < IrqForwarder::kMaxLines; k++)
        ASSERT_EQ(fwd.forward_spi(a.vgic, "a", 100 + k, 32 + k, false, why), Status::ok) << k << why.text();
    EXPECT_EQ(fwd.forward_spi(a.vgic, "a", 200, 90, false, why), Status::no_space);
    EXPECT_FALSE(ic.bound(200));
    EXPECT_EQ(fwd.unbind(a.vgic), IrqForwarder::kMaxLines);
    EXPECT_EQ(fwd.forward_spi(a.vgic, "a", 200, 90, false, why), Status::ok) << why.text();
}

}  // namespace
