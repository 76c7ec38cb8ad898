// The guest's PL011 (registers and the TX interrupt Linux's amba-pl011 driver waits for) and
// PSCI (every argument checked, power states kept, the action the hypervisor must take).
#include <gtest/gtest.h>

#include <string>

#include "hyp/vpl011.hpp"
#include "hyp/vpsci.hpp"

using namespace moat;
using hyp::VPl011;
using hyp::VPsci;

namespace {

struct StrSink final : Sink {
    void write(const char* s, size_t n) override { text.append(s, n); }
    std::string text;
};

uint32_t rd(VPl011& u, uint64_t off) {
    uint64_t v = ~uint64_t{0};
    EXPECT_TRUE(u.read(off, 4, v));
    return static_cast<uint32_t>(v);
}

TEST(VPl011, IdentifiesAsAPl011AndPrintsThroughTheGuestConsole) {
    StrSink out;
    hyp::GuestConsole con("domU1", out);
    VPl011 u(con);
    EXPECT_EQ(rd(u, 0xfe0), 0x11u);
    EXPECT_EQ(rd(u, 0xfe8), 0x24u);  // revision 2: a 16-entry FIFO for Linux
    EXPECT_EQ(rd(u, 0xff0), 0x0du);
    EXPECT_EQ(rd(u, 0xffc), 0xb1u);
    for (char c : std::string("hi\n")) EXPECT_TRUE(u.write(VPl011::DR, 4, static_cast<uint8_t>(c)));
    EXPECT_EQ(out.text, "(domU1) hi\n");
    EXPECT_EQ(rd(u, VPl011::FR) & VPl011::kFrRxfe, VPl011::kFrRxfe);  // nothing to receive
    uint64_t v;
    EXPECT_FALSE(u.read(0x1000, 4, v));
    EXPECT_FALSE(u.read(0x2, 4, v));
    EXPECT_FALSE(u.write(VPl011::DR, 8, 'x'));
}

TEST(VPl011, TheFifoFillsAndAPollerFindsItFullOnce) {
    StrSink out;
    hyp::GuestConsole con("g", out);
    VPl011 u(con);
    EXPECT_EQ(rd(u, VPl011::FR) & VPl011::kFrTxfe, VPl011::kFrTxfe);
    for (unsigned i = 0; i < VPl011::kFifo; i++) {
        EXPECT_EQ(rd(u, VPl011::FR) & (VPl011::kFrTxff | VPl011::kFrBusy), 0u) << i;
        u.write(VPl011::DR, 4, 'a');
    }
    EXPECT_EQ(rd(u, VPl011::FR) & (VPl011::kFrTxff | VPl011::kFrBusy), VPl011::kFrTxff | VPl011::kFrBusy);
    EXPECT_EQ(rd(u, VPl011::FR) & VPl011::kFrTxff, 0u);  // drained while it polled
    EXPECT_EQ(u.level(), 0u);
}

TEST(VPl011, TxInterruptFollowsTheFifoLevelAndTheMask) {
    StrSink out;
    hyp::GuestConsole con("g", out);
    VPl011 u(con);
    EXPECT_EQ(rd(u, VPl011::RIS) & VPl011::kIntTx, VPl011::kIntTx);  // empty FIFO: TX raw interrupt high
    EXPECT_FALSE(u.irq());                                             // but masked
    u.write(VPl011::IMSC, 4, VPl011::kIntTx);
    EXPECT_TRUE(u.irq());
    EXPECT_EQ(rd(u, VPl011::MIS), VPl011::kIntTx);
    for (unsigned i = 0; i <= VPl011::kFifo / 2; i++) u.write(VPl011::DR, 4, 'a');
    EXPECT_FALSE(u.irq());  // above the trigger level: the driver waits
    EXPECT_EQ(rd(u, VPl011::MIS), 0u);  // the handler is told so once,
    EXPECT_TRUE(u.irq());               // and by its next look the wire has caught up
    EXPECT_EQ(u.level(), 0u);
    u.write(VPl011::ICR, 4, VPl011::kIntAll);
    EXPECT_TRUE(u.irq());    // TX is a level of the FIFO, not a latch
    u.write(VPl011::IMSC, 4, 0);
    EXPECT_FALSE(u.irq());
    EXPECT_EQ(rd(u, VPl011::RIS) & (VPl011::kIntRx | VPl011::kIntRt), 0u);  // no input, no RX interrupts
}

// What Linux's amba-pl011 does, step by step: the same writes give the same interrupts, since
// the FIFO moves with the guest's own accesses and never with time.
unsigned linux_like_tx_interrupts(VPl011& u, unsigned chars) {
    unsigned irqs = 0, sent = 0;
    // start_tx: characters while FR says not full; if some are left, TXIM on and wait.
    while (sent < chars && !(rd(u, VPl011::FR) & VPl011::kFrTxff)) u.write(VPl011::DR, 4, 'x'), sent++;
    if (sent == chars) return 0;
    u.write(VPl011::IMSC, 4, VPl011::kIntTx);
    for (unsigned guard = 0; u.irq() && guard < 1000; guard++) {
        irqs++;  // the handler: while MIS says TX, half a FIFO per pass; TXIM off when all is sent
        while (rd(u, VPl011::MIS) & VPl011::kIntTx) {
            for (unsigned k = 0; k < VPl011::kFifo / 2 && sent < chars; k++) u.write(VPl011::DR, 4, 'x'), sent++;
            if (sent == chars) u.write(VPl011::IMSC, 4, 0);
        }
    }
    EXPECT_EQ(sent, chars);
    return irqs;
}

TEST(VPl011, TheSameWritesGiveTheSameInterruptsWhateverTheScheduling) {
    StrSink out;
    hyp::GuestConsole con("g", out);
    VPl011 a(con), b(con);
    EXPECT_EQ(linux_like_tx_interrupts(a, 10), 0u);  // fits the FIFO: no interrupt
    EXPECT_EQ(linux_like_tx_interrupts(a, 100), 1u) << "one interrupt sends the rest";
    // The guest waiting (WFI) between bursts changes nothing: Linux's driver never waits for TX
    // with the FIFO above the trigger level.
    b.idle();
    EXPECT_EQ(linux_like_tx_interrupts(b, 10), 0u);
    b.idle();
    EXPECT_EQ(linux_like_tx_interrupts(b, 100), 1u);
    EXPECT_EQ(a.level(), b.level());
    // A driver that does wait for TX above the trigger level is woken by its WFI.
    VPl011 c(con);
    for (unsigned i = 0; i < VPl011::kFifo; i++) c.write(VPl011::DR, 4, 'x');
    c.write(VPl011::IMSC, 4, VPl011::kIntTx);
    EXPECT_FALSE(c.irq());
    c.idle();
    EXPECT_TRUE(c.irq());
    EXPECT_EQ(c.level(), 0u);
}

const uint64_t kMpidr[2] = {0x0, 0x1};
constexpr uint64_t kRam = 0x40000000, kRamSize = 128 * MiB;
int64_t s(uint64_t v) { return static_cast<int64_t>(v); }

TEST(VPsci, VersionFeaturesAndSmcccDiscovery) {
    VPsci p;
    p.reset(2, kMpidr, kRam, kRamSize);
    EXPECT_EQ(p.call(0, hyp::psci::kVersion, 0, 0, 0).x0, 0x10001u);
    EXPECT_EQ(p.call(0, hyp::psci::kFeatures, hyp::psci::kCpuOn64, 0, 0).x0, 0u);
    EXPECT_EQ(p.call(0, hyp::psci::kFeatures, hyp::psci::kSystemOff, 0, 0).x0, 0u);
    EXPECT_EQ(s(p.call(0, hyp::psci::kFeatures, hyp::psci::kCpuSuspend64, 0, 0).x0), -1);
    EXPECT_EQ(s(p.call(0, hyp::psci::kFeatures, 0xc4000012, 0, 0).x0), -1);  // SYSTEM_RESET2
    EXPECT_EQ(p.call(0, hyp::psci::kSmcccVersion, 0, 0, 0).x0, 0x10001u);
    EXPECT_EQ(s(p.call(0, hyp::psci::kSmcccArchFeatures, 0x80008000, 0, 0).x0), -1);  // WORKAROUND_1
    EXPECT_EQ(p.call(0, hyp::psci::kMigrateInfoType, 0, 0, 0).x0, 2u);
    EXPECT_EQ(s(p.call(0, 0x8400ff00, 0, 0, 0).x0), -1);
    EXPECT_EQ(s(p.call(0, uint64_t{1} << 32 | hyp::psci::kVersion, 0, 0, 0).x0), -1);  // upper bits of the id
}

TEST(VPsci, CpuOnChecksTargetStateAndEntry) {
    VPsci p;
    p.reset(2, kMpidr, kRam, kRamSize);
    EXPECT_EQ(s(p.call(0, hyp::psci::kCpuOn64, 0x2, kRam, 0).x0), hyp::psci::kInvalidParameters);  // no such vCPU
    EXPECT_EQ(s(p.call(0, hyp::psci::kCpuOn64, 0x1 | uint64_t{1} << 31, kRam, 0).x0), hyp::psci::kInvalidParameters);
    EXPECT_EQ(s(p.call(0, hyp::psci::kCpuOn64, 0x0, kRam, 0).x0), hyp::psci::kAlreadyOn);
    EXPECT_EQ(s(p.call(0, hyp::psci::kCpuOn64, 0x1, kRam + kRamSize, 0).x0), hyp::psci::kInvalidAddress);
    EXPECT_EQ(s(p.call(0, hyp::psci::kCpuOn64, 0x1, kRam - 4, 0).x0), hyp::psci::kInvalidAddress);
    EXPECT_EQ(s(p.call(0, hyp::psci::kCpuOn64, 0x1, kRam + 2, 0).x0), hyp::psci::kInvalidAddress);
    EXPECT_FALSE(p.on(1));  // none of that changed anything
    EXPECT_EQ(p.call(0, hyp::psci::kAffinityInfo64, 0x1, 0, 0).x0, 1u);  // OFF
    VPsci::Result r = p.call(0, hyp::psci::kCpuOn64, 0x1, kRam + 0x1000, 0x1234);
    EXPECT_EQ(r.x0, 0u);
    EXPECT_EQ(r.action, VPsci::Action::start_vcpu);
    EXPECT_EQ(r.target, 1u);
    EXPECT_EQ(r.entry, kRam + 0x1000);
    EXPECT_EQ(r.context, 0x1234u);
    EXPECT_EQ(p.call(0, hyp::psci::kAffinityInfo64, 0x1, 0, 0).x0, 0u);  // ON
    EXPECT_EQ(s(p.call(0, hyp::psci::kCpuOn64, 0x1, kRam, 0).x0), hyp::psci::kAlreadyOn);
    EXPECT_EQ(s(p.call(0, hyp::psci::kAffinityInfo64, 0x1, 1, 0).x0), hyp::psci::kInvalidParameters);
}

TEST(VPsci, Smc32CallsSeeOnlyTheLowWords) {
    VPsci p;
    p.reset(2, kMpidr, kRam, kRamSize);
    VPsci::Result r = p.call(0, hyp::psci::kCpuOn, uint64_t{0xdead} << 32 | 0x1, uint64_t{0xbeef} << 32 | (kRam + 0x2000), 7);
    EXPECT_EQ(r.action, VPsci::Action::start_vcpu);
    EXPECT_EQ(r.entry, kRam + 0x2000);
    VPsci q;
    q.reset(2, kMpidr, kRam, kRamSize);
    EXPECT_EQ(s(q.call(0, hyp::psci::kCpuOn64, uint64_t{0xdead} << 32 | 0x1, kRam, 0).x0), hyp::psci::kInvalidParameters);
}

TEST(VPsci, CpuOffAndTheSystemCalls) {
    VPsci p;
    p.reset(2, kMpidr, kRam, kRamSize);
    p.call(0, hyp::psci::kCpuOn64, 0x1, kRam, 0);
    EXPECT_EQ(p.vcpus_on(), 2u);
    EXPECT_EQ(p.call(1, hyp::psci::kCpuOff, 0, 0, 0).action, VPsci::Action::stop_caller);
    EXPECT_FALSE(p.on(1));
    EXPECT_EQ(p.vcpus_on(), 1u);
    EXPECT_EQ(p.call(0, hyp::psci::kSystemOff, 0, 0, 0).action, VPsci::Action::system_off);
    EXPECT_EQ(p.call(0, hyp::psci::kSystemReset, 0, 0, 0).action, VPsci::Action::system_reset);
}

}  // namespace
