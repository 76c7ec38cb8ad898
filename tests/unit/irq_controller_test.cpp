// The host interrupt controller: the seam drivers bind their lines through, and the model
// their interrupt paths are tested against.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "arch/console.hpp"
#include "arch/irq.hpp"

using namespace moat;
using arch::HostIrqController;

namespace {

// A handler's view: how often it ran, and optionally what it does each time.
struct Probe {
    HostIrqController* c = nullptr;
    unsigned intid = 0;
    int calls = 0;
    bool eoi = true;          // EOI at the end, as a driver does
    int lower_after = 0;      // lower the (level) line on this call, as quieting the device
    bool saw_masked = false;  // interrupts were masked while the handler ran
    std::vector<unsigned>* order = nullptr;
};

void on_irq(void* ctx) {
    auto* p = static_cast<Probe*>(ctx);
    p->calls++;
    p->saw_masked = arch::irqs_masked();
    if (p->order) p->order->push_back(p->intid);
    if (p->lower_after && p->calls == p->lower_after) p->c->lower(p->intid);
    if (p->eoi) p->c->eoi(p->intid);
}

size_t occurrences(const std::string& hay, const std::string& needle) {
    size_t n = 0;
    for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) n++;
    return n;
}

TEST(HostIrq, LineStaysMaskedUntilEnable) {
    HostIrqController c;
    Probe p{&c, 40};
    ASSERT_EQ(c.request(40, Trigger::edge_rising, 0xa0, on_irq, &p), Status::ok);
    EXPECT_TRUE(c.bound(40));
    EXPECT_FALSE(c.enabled(40));
    c.raise(40);
    EXPECT_EQ(p.calls, 0);
    EXPECT_TRUE(c.pending(40));
    c.enable(40);
    EXPECT_EQ(p.calls, 1);
    EXPECT_FALSE(c.pending(40));
    EXPECT_FALSE(c.active(40));
    EXPECT_EQ(c.eois(40), 1u);
    EXPECT_TRUE(p.saw_masked);  // as on exception entry
}

TEST(HostIrq, RequestRefusesWhatItCannotDo) {
    HostIrqController c;
    Probe p{&c, 33};
    EXPECT_EQ(c.request(HostIrqController::kMaxLines, Trigger::level_high, 0, on_irq, &p), Status::out_of_range);
    EXPECT_EQ(c.request(5000, Trigger::level_high, 0, on_irq, &p), Status::out_of_range);
    EXPECT_EQ(c.request(33, Trigger::level_high, 0, nullptr, &p), Status::invalid_argument);
    EXPECT_EQ(c.request(33, Trigger::level_low, 0, on_irq, &p), Status::invalid_argument);     // not on a GIC
    EXPECT_EQ(c.request(33, Trigger::edge_falling, 0, on_irq, &p), Status::invalid_argument);  // nor this
    EXPECT_EQ(c.request(33, static_cast<Trigger>(3), 0, on_irq, &p), Status::invalid_argument);  // both edges
    EXPECT_EQ(c.request(33, Trigger::level_high, 256, on_irq, &p), Status::invalid_argument);
    EXPECT_FALSE(c.bound(33));
    EXPECT_EQ(c.request(33, Trigger::level_high, 255, on_irq, &p), Status::ok);
    EXPECT_EQ(c.request(33, Trigger::edge_rising, 0, on_irq, &p), Status::in_use);

    HostIrqController small(64);
    EXPECT_EQ(small.request(63, Trigger::edge_rising, 0, on_irq, &p), Status::ok);
    EXPECT_EQ(small.request(64, Trigger::edge_rising, 0, on_irq, &p), Status::out_of_range);

    HostIrqController any(64, 0xf);
    EXPECT_EQ(any.request(40, Trigger::level_low, 0, on_irq, &p), Status::ok);
}

TEST(HostIrq, ReleaseUnbindsAndForgetsPending) {
    HostIrqController c;
    Probe p{&c, 50};
    EXPECT_EQ(c.release(50), Status::not_found);
    EXPECT_EQ(c.release(2000), Status::out_of_range);
    ASSERT_EQ(c.request(50, Trigger::edge_rising, 0, on_irq, &p), Status::ok);
    c.raise(50);  // pending while masked
    ASSERT_EQ(c.release(50), Status::ok);
    EXPECT_FALSE(c.bound(50));
    EXPECT_EQ(c.release(50), Status::not_found);
    ASSERT_EQ(c.request(50, Trigger::edge_rising, 0, on_irq, &p), Status::ok);
    c.enable(50);
    EXPECT_EQ(p.calls, 0);  // the old edge belonged to the old binding
    c.raise(50);
    EXPECT_EQ(p.calls, 1);
}

TEST(HostIrq, MaskHoldsDeliveryUntilEnabledAgain) {
    HostIrqController c;
    Probe p{&c, 34};
    ASSERT_EQ(c.request(34, Trigger::edge_rising, 0, on_irq, &p), Status::ok);
    c.enable(34);
    c.raise(34);
    EXPECT_EQ(p.calls, 1);
    c.mask(34);
    c.raise(34);
    c.raise(34);  // edges coalesce while pending
    EXPECT_EQ(p.calls, 1);
    c.enable(34);
    EXPECT_EQ(p.calls, 2);
    EXPECT_EQ(c.deliveries(34), 2u);
}

TEST(HostIrq, EdgeDuringHandlerIsLatchedAndTakenAfterEoi) {
    HostIrqController c;
    Probe p{&c, 35};
    p.eoi = false;  // the test plays the driver's EOI itself
    ASSERT_EQ(c.request(35, Trigger::edge_rising, 0, on_irq, &p), Status::ok);
    c.enable(35);
    c.raise(35);
    EXPECT_EQ(p.calls, 1);
    EXPECT_TRUE(c.active(35));
    c.raise(35);  // active and pending: not taken again before the EOI
    EXPECT_EQ(p.calls, 1);
    EXPECT_TRUE(c.pending(35));
    c.eoi(35);
    EXPECT_EQ(p.calls, 2);
    EXPECT_EQ(c.eois(35), 1u);
}

TEST(HostIrq, LevelPulseWhileMaskedIsLostButEdgeIsNot) {
    HostIrqController c;
    Probe level{&c, 36}, edge{&c, 37};
    ASSERT_EQ(c.request(36, Trigger::level_high, 0, on_irq, &level), Status::ok);
    ASSERT_EQ(c.request(37, Trigger::edge_rising, 0, on_irq, &edge), Status::ok);
    c.raise(36);
    c.raise(37);
    EXPECT_TRUE(c.pending(36));
    c.lower(36);
    c.lower(37);  // means nothing to an edge
    EXPECT_FALSE(c.pending(36));
    c.enable(36);
    c.enable(37);
    EXPECT_EQ(level.calls, 0);
    EXPECT_EQ(edge.calls, 1);
}

TEST(HostIrq, LevelIsTakenAgainWhileAssertedAtEoi) {
    HostIrqController c;
    Probe p{&c, 38};
    p.lower_after = 3;  // the device is quiet only after the third pass
    ASSERT_EQ(c.request(38, Trigger::level_high, 0, on_irq, &p), Status::ok);
    c.raise(38);
    c.enable(38);
    EXPECT_EQ(p.calls, 3);
    EXPECT_EQ(c.eois(38), 3u);
    EXPECT_FALSE(c.pending(38));
    EXPECT_EQ(c.storms(), 0u);
}

TEST(HostIrq, LevelStormIsMaskedNotHung) {
    HostIrqController c;
    Probe p{&c, 39};  // EOIs but never quiets its device
    ASSERT_EQ(c.request(39, Trigger::level_high, 0, on_irq, &p), Status::ok);
    arch::console_clear();
    c.enable(39);
    c.raise(39);
    EXPECT_EQ(p.calls, static_cast<int>(HostIrqController::kStormLimit));
    EXPECT_EQ(c.storms(), 1u);
    EXPECT_FALSE(c.enabled(39));
    EXPECT_TRUE(c.pending(39));
    EXPECT_EQ(occurrences(arch::console_captured(), "interrupt storm"), 1u);
}

TEST(HostIrq, SpuriousAndStrayEoiAreCountedAndReportedOnce) {
    HostIrqController c;
    arch::console_clear();
    c.raise(41);    // nothing bound
    c.raise(41);
    c.raise(9999);  // beyond the controller
    c.eoi(41);
    c.eoi(9999);
    EXPECT_EQ(c.spurious(), 3u);
    EXPECT_EQ(c.stray_eois(), 2u);
    std::string out = arch::console_captured();
    EXPECT_EQ(occurrences(out, "spurious INTID"), 1u);
    EXPECT_EQ(occurrences(out, "not active"), 1u);
}

TEST(HostIrq, PendingLinesGoInPriorityOrderThenIntid) {
    HostIrqController c;
    std::vector<unsigned> order;
    Probe a{&c, 60}, b{&c, 45}, d{&c, 70};
    a.order = b.order = d.order = &order;
    ASSERT_EQ(c.request(60, Trigger::edge_rising, 0x40, on_irq, &a), Status::ok);
    ASSERT_EQ(c.request(45, Trigger::edge_rising, 0x80, on_irq, &b), Status::ok);
    ASSERT_EQ(c.request(70, Trigger::edge_rising, 0x40, on_irq, &d), Status::ok);
    for (unsigned i : {60u, 45u, 70u}) c.enable(i);
    arch::IrqFlags f = arch::irq_save();
    for (unsigned i : {45u, 70u, 60u}) c.raise(i);
    EXPECT_TRUE(order.empty());
    arch::irq_restore(f);
    EXPECT_EQ(order, (std::vector<unsigned>{60, 70, 45}));
}

// A handler that raises another line: taken after it returns, never nested inside it.
struct Chain {
    HostIrqController* c;
    int depth = 0, max_depth = 0;
    std::vector<unsigned> order;
};
void chain_first(void* ctx) {
    auto* ch = static_cast<Chain*>(ctx);
    ch->max_depth = std::max(ch->max_depth, ++ch->depth);
    ch->order.push_back(42);
    ch->c->raise(43);
    ch->order.push_back(420);  // still in the first handler
    ch->c->eoi(42);
    ch->depth--;
}
void chain_second(void* ctx) {
    auto* ch = static_cast<Chain*>(ctx);
    ch->max_depth = std::max(ch->max_depth, ++ch->depth);
    ch->order.push_back(43);
    ch->c->eoi(43);
    ch->depth--;
}

TEST(HostIrq, HandlersNeverNest) {
    HostIrqController c;
    Chain ch{&c};
    ASSERT_EQ(c.request(42, Trigger::edge_rising, 0x80, chain_first, &ch), Status::ok);
    ASSERT_EQ(c.request(43, Trigger::edge_rising, 0x00, chain_second, &ch), Status::ok);  // more urgent, still waits
    c.enable(42);
    c.enable(43);
    c.raise(42);
    EXPECT_EQ(ch.order, (std::vector<unsigned>{42, 420, 43}));
    EXPECT_EQ(ch.max_depth, 1);
    EXPECT_FALSE(arch::irqs_masked());
}

TEST(HostIrq, PlatformControllerIsNullUntilSet) {
    EXPECT_EQ(arch::irq_controller(), nullptr);
    {
        HostIrqController c;
        arch::host::set_irq_controller(&c);
        EXPECT_EQ(arch::irq_controller(), static_cast<IrqController*>(&c));
        EXPECT_STREQ(arch::irq_controller()->name(), "host-irq");
    }
    EXPECT_EQ(arch::irq_controller(), nullptr);  // a dead controller is never handed out
}

}  // namespace
