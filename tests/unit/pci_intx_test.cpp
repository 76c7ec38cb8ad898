// A function's INTx pin through its host bridge's interrupt-map (hyp/pci_intx.hpp): QEMU virt's
// swizzle, an unmasked map, and what moat refuses (malformed, missing, PPI, edge-falling or
// level-low triggers, a parent that is not a GIC), each naming the bridge.
#include <gtest/gtest.h>

#include <string>

#include "dt_fixture.hpp"
#include "hyp/pci_intx.hpp"

using namespace moat;
using hyp::IntxLine;

namespace {

struct PciIntx : ::testing::Test {
    std::vector<uint64_t> blob = load_dtb("pci_intx");
    dt::Tree t;
    Why why;
    void SetUp() override { ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok) << t.error(); }
    Status line(const char* bridge, unsigned dev, unsigned pin, IntxLine& out, unsigned fn = 0) {
        int n = t.find_path(bridge);
        EXPECT_GE(n, 0) << bridge;
        xen::PciBdf f;
        f.dev = static_cast<uint8_t>(dev);
        f.fn = static_cast<uint8_t>(fn);
        why.clear();
        return hyp::pci_intx_line(t, n, f, pin, out, why);
    }
    bool says(const char* text) const { return std::string(why.text()).find(text) != std::string::npos; }
};

TEST_F(PciIntx, QemuVirtSwizzlesEachSlotsPinsOntoFourSpis) {
    for (unsigned dev = 0; dev < 8; dev++)  // the mask keeps two slot bits: slot 4 is wired as slot 0
        for (unsigned pin = 1; pin <= 4; pin++) {
            IntxLine l;
            ASSERT_EQ(line("/pcie@10000000", dev, pin, l), Status::ok) << why.text();
            EXPECT_EQ(l.intid, 32 + 3 + (dev + pin - 1) % 4) << dev << " " << pin;
            EXPECT_TRUE(l.level);
        }
    IntxLine l;
    ASSERT_EQ(line("/pcie@10000000", 3, 1, l, 5), Status::ok);  // the function number is masked off
    EXPECT_EQ(l.intid, 38u);
}

TEST_F(PciIntx, WithoutAMaskTheAddressMustMatchExactly) {
    IntxLine l;
    ASSERT_EQ(line("/pcie@20000000", 1, 1, l), Status::ok) << why.text();
    EXPECT_EQ(l.intid, 72u);
    EXPECT_FALSE(l.level);
    EXPECT_EQ(line("/pcie@20000000", 1, 2, l), Status::not_found);
    EXPECT_TRUE(says("/pcie@20000000: interrupt-map has no entry for 00:01.0 INTB")) << why.text();
    EXPECT_EQ(line("/pcie@20000000", 1, 1, l, 1), Status::not_found);
}

TEST_F(PciIntx, WhatMoatCannotForwardIsRefusedNamingTheBridge) {
    IntxLine l{7, false};
    EXPECT_EQ(line("/pcie@20000000", 2, 1, l), Status::unsupported);
    EXPECT_TRUE(says("/pcie@20000000: interrupt-map sends 00:02.0 INTA to /intc@8000000 PPI 7, not an SPI")) << why.text();
    EXPECT_EQ(line("/pcie@20000000", 3, 1, l), Status::unsupported);
    EXPECT_TRUE(says("trigger flags 0x8")) << why.text();
    EXPECT_EQ(line("/pcie@20000000", 4, 1, l), Status::unsupported);
    EXPECT_TRUE(says("to /intc@9000000, not a GIC")) << why.text();
    EXPECT_EQ(line("/pcie@30000000", 1, 1, l), Status::bad_dt);
    EXPECT_TRUE(says("/pcie@30000000: interrupt-map entry 1 is cut short")) << why.text();
    EXPECT_EQ(line("/pcie@40000000", 1, 1, l), Status::not_found);
    EXPECT_TRUE(says("/pcie@40000000 has no interrupt-map")) << why.text();
    EXPECT_EQ(line("/pcie@10000000", 1, 0, l), Status::invalid_argument);
    EXPECT_EQ(line("/pcie@10000000", 1, 5, l), Status::invalid_argument);
    EXPECT_EQ(l.intid, 7u) << "nothing written on a refusal";
}

}  // namespace
