// ECAM enumeration behind PCI-PCI bridges against a fake config space: functions sit on buses that
// exist only through the bus numbers a bridge is given (as on real PCIe: a config cycle reaches a
// secondary bus only through a bridge whose secondary..subordinate range covers it), BARs answer
// sizing, and bridge windows, commands and bus numbers are registers the test reads back.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <vector>

#include "arch/mmio.hpp"
#include "drivers/pci/ecam.hpp"
#include "tests/unit/dt_fixture.hpp"

using namespace moat;

namespace {

struct Fn {
    uint16_t vendor, device;
    uint32_t class_code;
    bool bridge = false;
    uint64_t bar_size[6] = {};  // memory BAR sizes (32-bit), 0: not implemented
    int parent = -1;            // the bridge function it sits behind (-1: bus 0)
    unsigned dev = 0, fn = 0;
    uint32_t regs[64] = {};     // config dwords 0x00..0xff as written
};

class FakeConfig final : public mmio::Device {
public:
    std::vector<Fn> fns;
    int add(Fn f, int parent, unsigned dev, unsigned fn = 0) {
        f.parent = parent;
        f.dev = dev;
        f.fn = fn;
        f.regs[0] = uint32_t{f.device} << 16 | f.vendor;
        f.regs[2] = f.class_code << 8;
        f.regs[3] = f.bridge ? 1u << 16 : 0;
        fns.push_back(f);
        return static_cast<int>(fns.size() - 1);
    }
    // The bus number a function answers on now, or -1 when no configuration cycle reaches it.
    int bus_of(const Fn& f) const {
        if (f.parent < 0) return 0;
        const Fn& b = fns[static_cast<size_t>(f.parent)];
        int pb = bus_of(b);
        unsigned sec = (b.regs[6] >> 8) & 0xff, sub = (b.regs[6] >> 16) & 0xff;
        if (pb < 0 || sec == 0 || sec > sub) return -1;
        return static_cast<int>(sec);
    }
    Fn* at(uint64_t off) {
        unsigned bus = static_cast<unsigned>(off >> 20), dev = (off >> 15) & 31, fn = (off >> 12) & 7;
        for (Fn& f : fns)
            if (bus_of(f) == static_cast<int>(bus) && f.dev == dev && f.fn == fn) return &f;
        return nullptr;
    }
    uint64_t read(uint64_t off, unsigned) override {
        Fn* f = at(off);
        if (!f) return 0xffffffff;
        return f->regs[(off & 0xfff) / 4 % 64];
    }
    void write(uint64_t off, uint64_t v, unsigned) override {
        Fn* f = at(off);
        if (!f) return;
        unsigned r = static_cast<unsigned>((off & 0xfff) / 4 % 64);
        uint32_t val = static_cast<uint32_t>(v);
        if (r >= 4 && r < 10) {  // BARs: a sizing write reads back the size mask
            unsigned i = r - 4;
            if (f->bridge && i >= 2) { f->regs[r] = val; return; }  // type 1: 0x18.. are not BARs
            uint64_t size = f->bridge ? 0 : f->bar_size[i];
            f->regs[r] = size ? (val & ~static_cast<uint32_t>(size - 1) & ~0xfu) : 0;
            return;
        }
        if (r == 0 || r == 2 || r == 3) return;  // read-only here
        f->regs[r] = val;
    }
};

Fn endpoint(uint64_t bar0, uint64_t bar1 = 0) {
    Fn f{0x1234, 0x11e8, 0x00ff00};
    f.bar_size[0] = bar0;
    f.bar_size[1] = bar1;
    return f;
}
Fn root_port() {
    Fn f{0x1b36, 0x000c, 0x060400};
    f.bridge = true;
    return f;
}

struct Rig {
    std::vector<uint64_t> blob = load_dtb("pci_bridge");
    dt::Tree tree;
    FakeConfig cfg;
    pci::Host host;
    uintptr_t base = 0;
    explicit Rig(const char* node_path, uintptr_t ecam) : base(ecam) {
        EXPECT_EQ(tree.open(blob.data(), dtb_bytes(blob)), Status::ok);
        EXPECT_TRUE(mmio::attach(ecam, 0x1000000, &cfg));
        node = tree.find_path(node_path);
        EXPECT_GE(node, 0);
    }
    ~Rig() { mmio::detach(&cfg); }
    Status enumerate() {
        Status st = host.probe(tree, node);
        return st == Status::ok ? host.enumerate() : st;
    }
    const pci::Device* find(uint8_t bus, uint8_t dev) {
        for (unsigned i = 0; i < host.count(); i++)
            if (host.at(i).bus == bus && host.at(i).dev == dev) return &host.at(i);
        return nullptr;
    }
    int node = -1;
};

TEST(PciBridge, AnEndpointBehindARootPortGetsBusOneItsRidAndABarInThePortsWindow) {
    Rig r("/pcie@30000000", 0x30000000);
    r.cfg.add(Fn{0x1b36, 0x0008, 0x060000}, -1, 0);  // the host bridge function
    int rp = r.cfg.add(root_port(), -1, 1);
    r.cfg.add(endpoint(1 * MiB), rp, 0);
    ASSERT_EQ(r.enumerate(), Status::ok);
    ASSERT_EQ(r.host.count(), 3u);
    ASSERT_EQ(r.host.bridge_count(), 1u);
    const pci::Bridge& b = r.host.bridge(0);
    EXPECT_TRUE(b.ok);
    EXPECT_EQ(b.secondary, 1u);
    EXPECT_EQ(b.subordinate, 1u);
    EXPECT_EQ(r.cfg.fns[static_cast<size_t>(rp)].regs[6] & 0xffffff, 0x010100u);  // primary 0, secondary 1, subordinate 1
    EXPECT_EQ(b.base, 0x10000000u);
    EXPECT_EQ(b.size, 1 * MiB);
    EXPECT_EQ(r.cfg.fns[static_cast<size_t>(rp)].regs[8], 0x10001000u);  // memory base 0x100, limit 0x100 (1 MiB)
    EXPECT_EQ(r.cfg.fns[static_cast<size_t>(rp)].regs[1] & 6, 6u);      // decoding and mastering on

    pci::Device* edu = r.host.find(0x1234, 0x11e8);
    ASSERT_NE(edu, nullptr);
    EXPECT_EQ(edu->rid(), 0x0100);
    EXPECT_EQ(edu->behind, 0);
    EXPECT_FALSE(edu->blocked);
    ASSERT_EQ(r.host.enable(*edu), Status::ok);
    EXPECT_EQ(edu->bars[0].addr, 0x10000000u);
    EXPECT_EQ(r.cfg.fns[2].regs[4], 0x10000000u);
    EXPECT_EQ(r.cfg.fns[2].regs[1] & 6, 6u);
}

// A root port above a switch (upstream port, two downstream ports), each with endpoints: buses
// numbered depth first, each subordinate covering what is below it, windows nested and sized to fit.
TEST(PciBridge, NestedBridgesAreNumberedDepthFirstAndTheirWindowsNest) {
    Rig r("/pcie@30000000", 0x30000000);
    int rp = r.cfg.add(root_port(), -1, 1);
    int up = r.cfg.add(root_port(), rp, 0);
    int dn0 = r.cfg.add(root_port(), up, 0);
    int dn1 = r.cfg.add(root_port(), up, 1);
    r.cfg.add(endpoint(2 * MiB, 64 * KiB), dn0, 0);
    r.cfg.add(endpoint(1 * MiB), dn1, 0);
    r.cfg.add(endpoint(16 * KiB), -1, 2);  // on the root bus, beside the port
    ASSERT_EQ(r.enumerate(), Status::ok);
    ASSERT_EQ(r.host.bridge_count(), 4u);
    const pci::Bridge &b_rp = r.host.bridge(0), &b_up = r.host.bridge(1), &b_d0 = r.host.bridge(2), &b_d1 = r.host.bridge(3);
    EXPECT_EQ(b_rp.secondary, 1u);
    EXPECT_EQ(b_rp.subordinate, 4u);
    EXPECT_EQ(b_up.secondary, 2u);
    EXPECT_EQ(b_up.subordinate, 4u);
    EXPECT_EQ(b_d0.secondary, 3u);
    EXPECT_EQ(b_d0.subordinate, 3u);
    EXPECT_EQ(b_d1.secondary, 4u);
    EXPECT_EQ(b_d1.subordinate, 4u);
    for (unsigned i = 0; i < 4; i++) {
        const pci::Bridge& b = r.host.bridge(i);
        EXPECT_TRUE(b.ok) << i;
        EXPECT_EQ(b.base % pci::kBridgeGranule, 0u) << i;
        if (b.parent >= 0) {
            const pci::Bridge& p = r.host.bridge(static_cast<unsigned>(b.parent));
            EXPECT_GE(b.base, p.base) << i;
            EXPECT_LE(b.base + b.size, p.base + p.size) << i;
        }
    }
    EXPECT_EQ(b_d0.size, 4 * MiB);  // 2 MiB + 64 KiB, in granules of its largest alignment
    EXPECT_EQ(b_d1.size, 1 * MiB);
    // Every BAR behind the ports lands in its own port's window, and none overlaps another.
    std::vector<std::pair<uint64_t, uint64_t>> placed;
    for (unsigned i = 0; i < r.host.count(); i++) {
        pci::Device& d = r.host.at(i);
        if (d.bridge >= 0) continue;
        ASSERT_EQ(r.host.enable(d), Status::ok) << i;
        for (const pci::Bar& bar : d.bars) {
            if (!bar.size) continue;
            EXPECT_EQ(bar.addr % bar.size, 0u);
            if (d.behind >= 0) {
                const pci::Bridge& b = r.host.bridge(static_cast<unsigned>(d.behind));
                EXPECT_GE(bar.addr, b.base);
                EXPECT_LE(bar.addr + bar.size, b.base + b.size);
            }
            for (auto& [a, s] : placed) EXPECT_TRUE(bar.addr + bar.size <= a || a + s <= bar.addr);
            placed.emplace_back(bar.addr, bar.size);
        }
    }
    EXPECT_EQ(placed.size(), 4u);
    EXPECT_EQ(r.find(3, 0)->rid(), 0x0300);
    EXPECT_EQ(r.find(4, 0)->rid(), 0x0400);
}

// The window cannot hold what is behind the port: the port stays closed (no decoding, no
// mastering, window closed), it says why, and the device behind it is blocked: enable refuses it.
TEST(PciBridge, AnExhaustedWindowLeavesTheBridgeClosedAndItsDevicesBlocked) {
    Rig r("/pcie@31000000", 0x31000000);
    int rp = r.cfg.add(root_port(), -1, 1);
    r.cfg.add(endpoint(1 * MiB, 1 * MiB), rp, 0);  // 2 MiB behind a 1 MiB host window
    int ok_rp = r.cfg.add(root_port(), -1, 2);     // an empty port beside it is fine
    ASSERT_EQ(r.enumerate(), Status::ok);
    const pci::Bridge& b = r.host.bridge(0);
    EXPECT_FALSE(b.ok);
    EXPECT_NE(std::string(b.why).find("memory window exhausted: needs 0x200000, 0x100000 left"), std::string::npos) << b.why;
    const Fn& port = r.cfg.fns[static_cast<size_t>(rp)];
    EXPECT_EQ(port.regs[1] & 7, 0u);
    EXPECT_EQ(port.regs[8], 0x0000fff0u);
    pci::Device* dev = r.host.find(0x1234, 0x11e8);
    ASSERT_NE(dev, nullptr);
    EXPECT_TRUE(dev->blocked);
    EXPECT_EQ(r.host.enable(*dev), Status::denied);
    EXPECT_EQ(r.cfg.fns[1].regs[1] & 6, 0u);  // never enabled
    EXPECT_TRUE(r.host.bridge(1).ok);
    EXPECT_EQ(r.cfg.fns[static_cast<size_t>(ok_rp)].regs[1] & 2, 0u);  // nothing behind it: no memory decoding
}

TEST(PciBridge, NoBusNumberLeftLeavesTheBridgeClosedAndItsBusUnwalked) {
    Rig r("/pcie@32000000", 0x32000000);
    int rp = r.cfg.add(root_port(), -1, 1);
    r.cfg.add(endpoint(1 * MiB), rp, 0);
    ASSERT_EQ(r.enumerate(), Status::ok);
    ASSERT_EQ(r.host.bridge_count(), 1u);
    EXPECT_FALSE(r.host.bridge(0).ok);
    EXPECT_NE(std::string(r.host.bridge(0).why).find("no bus number left (bus-range ends at 0)"), std::string::npos);
    EXPECT_EQ(r.host.count(), 1u);  // the endpoint is never reached
    EXPECT_EQ(r.cfg.fns[static_cast<size_t>(rp)].regs[6] & 0xffff00, 0u);
}

TEST(PciBridge, APxbExpanderIsCountedAsRefusedAndNotWalked) {
    Rig r("/pcie@30000000", 0x30000000);
    r.cfg.add(Fn{0x1b36, 0x000b, 0x060000}, -1, 3);
    ASSERT_EQ(r.enumerate(), Status::ok);
    EXPECT_EQ(r.host.refused_hosts(), 1u);
    EXPECT_EQ(r.host.bridge_count(), 0u);
}

}  // namespace
