#include <libfdt.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/discovery.hpp"
#include "dt_fixture.hpp"

using namespace moat;

namespace {

class StringSink final : public Sink {
public:
    void write(const char* s, size_t n) override { text.append(s, n); }
    std::string text;
};

const MasterInfo* master(const dt::Tree& t, const Topology& topo, const char* path) {
    int n = t.find_path(path);
    for (unsigned i = 0; i < topo.nmasters; i++)
        if (topo.masters[i].node == n) return &topo.masters[i];
    return nullptr;
}

TEST(Discovery, FindsIommusAndTheirMasters) {
    auto blob = load_dtb("topology");
    dt::Tree t;
    ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok);
    static Topology topo;
    StringSink report;
    ASSERT_EQ(discover(t, topo, report), Status::ok);
    ASSERT_EQ(topo.niommus, 2u) << report.text;  // the disabled one is not an IOMMU we can use
    EXPECT_STREQ(topo.iommus[0].driver->driver(), "smmu_v3");
    EXPECT_STREQ(topo.iommus[1].driver->driver(), "smmu_v2");
    EXPECT_EQ(topo.iommus[0].nirqs, 4u);
    EXPECT_EQ(topo.iommus[1].regs[0].addr, 0xfd800000u);

    const MasterInfo* sd = master(t, topo, "/soc/sd@ee100000");
    ASSERT_NE(sd, nullptr);
    ASSERT_EQ(sd->nstreams, 1u);
    EXPECT_EQ(sd->streams[0].sid, 0x20u);

    const MasterInfo* gem = master(t, topo, "/soc/gem@ff0b0000");
    ASSERT_NE(gem, nullptr);
    EXPECT_EQ(gem->streams[0].iommu, 1u);
    EXPECT_EQ(gem->streams[0].nargs, 2u);
    EXPECT_EQ(gem->streams[0].args[1], 0x7f00u);

    EXPECT_EQ(master(t, topo, "/soc/off@ee300000"), nullptr);  // disabled master

    const MasterInfo* pcie = master(t, topo, "/pcie@10000000");
    ASSERT_NE(pcie, nullptr);
    ASSERT_EQ(pcie->nstreams, 2u);
    EXPECT_TRUE(pcie->streams[1].from_map);
    EXPECT_EQ(pcie->streams[1].rid_base, 0x100u);
    EXPECT_EQ(pcie->streams[1].sid, 0x20000u);
    EXPECT_EQ(pcie->map_mask, 0xfff8u);

    // A master behind a disabled IOMMU is not broken: that IOMMU is left at reset and passes
    // its DMA through (Linux: "no IOMMU"), so it has no stream and is no problem.
    const MasterInfo* orphan = master(t, topo, "/soc/orphan@ee400000");
    ASSERT_NE(orphan, nullptr);
    EXPECT_FALSE(orphan->blocked);
    EXPECT_EQ(orphan->nstreams, 0u);
    EXPECT_EQ(orphan->disabled_iommu, t.find_path("/soc/iommu@fe000000"));
    EXPECT_EQ(topo.problems, 0u);
    EXPECT_EQ(report.text.find("orphan"), std::string::npos) << report.text;

    StringSink out;
    print_topology(t, topo, out);
    EXPECT_NE(out.text.find("master /pcie@10000000: requester ids 0x0100-0x01ff -> stream ids 0x20000-0x200ff (iommu-map, mask 0xfff8)"),
              std::string::npos) << out.text;
    EXPECT_NE(out.text.find("master /soc/gem@ff0b0000: stream id 0x874, mask 0x7f00 (iommus)"), std::string::npos) << out.text;
    EXPECT_NE(out.text.find("irq   SPI 79 (INTID 111) edge-rising, gerror"), std::string::npos) << out.text;
}

TEST(Discovery, BrokenWiringBlocksOnlyTheBrokenMasters) {
    auto blob = load_dtb("broken");
    dt::Tree t;
    ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok);
    static Topology topo;
    StringSink report;
    ASSERT_EQ(discover(t, topo, report), Status::ok);
    const MasterInfo* good = master(t, topo, "/good@4000");
    ASSERT_NE(good, nullptr);
    EXPECT_FALSE(good->blocked);
    EXPECT_EQ(good->streams[0].sid, 7u);

    struct Case { const char* path; const char* message; } cases[] = {
        {"/nocells@5000", "/nocells@5000: iommus entry 0: /plain@2000 has no #iommu-cells"},
        {"/dangling@6000", "/dangling@6000: iommus entry 0: phandle 0xdead points to no node"},
        {"/short@7000", "/short@7000: iommus entry 0: #iommu-cells wants 1 cells, only 0 left"},
        {"/badmap@8000", "/badmap@8000: iommu-map is 12 bytes, not a multiple of 4 cells"},
        {"/zeromap@9000", "/zeromap@9000: iommu-map entry 0 has length 0"},
        {"/wrapmap@a000", "/wrapmap@a000: iommu-map entry 0: range wraps past 2^32"},
        {"/oddbytes@b000", "/oddbytes@b000: iommus is 5 bytes, not whole cells"},
    };
    for (const Case& c : cases) {
        const MasterInfo* m = master(t, topo, c.path);
        ASSERT_NE(m, nullptr) << c.path;
        EXPECT_TRUE(m->blocked) << c.path;
        EXPECT_EQ(m->nstreams, 0u) << c.path;
        EXPECT_NE(std::string(m->reason).find(c.message), std::string::npos) << m->reason;
        EXPECT_NE(report.text.find(c.message), std::string::npos) << report.text;
    }
    EXPECT_EQ(topo.problems, sizeof cases / sizeof cases[0]);
}

TEST(Discovery, UnopenedTreeIsUnusable) {
    dt::Tree t;
    static Topology topo;
    StringSink report;
    EXPECT_EQ(discover(t, topo, report), Status::bad_dt);
}

}  // namespace

// Interrupts the tree gets wrong cost the IOMMU its lines, not its masters: it is kept, polls,
// and the problem is said once, naming the node.
TEST(Discovery, WrongInterruptCellsLeaveTheIommuWithoutInterrupts) {
    auto blob = load_dtb("bad_irq");
    dt::Tree t;
    ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok);
    static Topology topo;
    StringSink report;
    ASSERT_EQ(discover(t, topo, report), Status::ok);
    ASSERT_EQ(topo.niommus, 1u);
    EXPECT_EQ(topo.iommus[0].nirqs, 0u);
    EXPECT_EQ(topo.problems, 1u);
    EXPECT_EQ(report.text, "dt: /iommu@9050000: interrupts is 20 bytes, not a multiple of #interrupt-cells (3); its "
                           "interrupts are ignored: it will poll for faults\n");
    const MasterInfo* dma = master(t, topo, "/dma@9100000");
    ASSERT_NE(dma, nullptr);
    EXPECT_FALSE(dma->blocked);
    ASSERT_EQ(dma->nstreams, 1u);
    EXPECT_EQ(dma->streams[0].sid, 0x20u);
}

// iommu-map onto an IPMMU (Linux's binding allows it for R-Car PCIe) is not supported: the bridge
// is blocked with one reason, and the protection report gives that same reason.
TEST(Discovery, IommuMapOntoAnIpmmuIsUnsupportedAndReportedAlike) {
    auto blob = load_dtb("ipmmu_pcie_map");
    dt::Tree t;
    ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok);
    static Topology topo;
    StringSink report;
    ASSERT_EQ(discover(t, topo, report), Status::ok);
    const char* why = "/soc/pcie@fe000000: iommu-map entry 0: iommu-map onto /soc/iommu@e6570000 (Renesas IPMMU-VMSA "
                      "(R-Car H3)) is not supported";
    EXPECT_EQ(report.text, std::string("dt: ") + why + "; device left blocked\n");
    const MasterInfo* pcie = master(t, topo, "/soc/pcie@fe000000");
    ASSERT_NE(pcie, nullptr);
    EXPECT_TRUE(pcie->blocked);
    EXPECT_EQ(pcie->nstreams, 0u);
    EXPECT_STREQ(pcie->reason, why);
    EXPECT_EQ(topo.problems, 1u);
}

// A tree with more masters than discovery holds: every one past the capacity is named and
// counted, including those past the walk's own pending list.
TEST(Discovery, EveryMasterPastTheCapacityIsNamedAndCounted) {
    constexpr unsigned kMasters = 4 * kMaxMasters + 10;
    std::vector<char> buf(256 * 1024);
    ASSERT_EQ(fdt_create(buf.data(), static_cast<int>(buf.size())), 0);
    ASSERT_EQ(fdt_finish_reservemap(buf.data()), 0);
    ASSERT_EQ(fdt_begin_node(buf.data(), ""), 0);
    ASSERT_EQ(fdt_property_u32(buf.data(), "#address-cells", 1), 0);
    ASSERT_EQ(fdt_property_u32(buf.data(), "#size-cells", 1), 0);
    ASSERT_EQ(fdt_begin_node(buf.data(), "iommu@1000"), 0);
    ASSERT_EQ(fdt_property_string(buf.data(), "compatible", "arm,smmu-v3"), 0);
    uint32_t reg[2] = {cpu_to_fdt32(0x1000), cpu_to_fdt32(0x20000)};
    ASSERT_EQ(fdt_property(buf.data(), "reg", reg, sizeof reg), 0);
    ASSERT_EQ(fdt_property_u32(buf.data(), "#iommu-cells", 1), 0);
    ASSERT_EQ(fdt_property_u32(buf.data(), "phandle", 1), 0);
    ASSERT_EQ(fdt_end_node(buf.data()), 0);
    for (unsigned i = 0; i < kMasters; i++) {
        char name[32];
        snprintf(name, sizeof name, "dma@%x", 0x100000 + i * 0x1000);
        ASSERT_EQ(fdt_begin_node(buf.data(), name), 0);
        uint32_t ref[2] = {cpu_to_fdt32(1), cpu_to_fdt32(i)};
        ASSERT_EQ(fdt_property(buf.data(), "iommus", ref, sizeof ref), 0);
        ASSERT_EQ(fdt_end_node(buf.data()), 0);
    }
    ASSERT_EQ(fdt_end_node(buf.data()), 0);
    ASSERT_EQ(fdt_finish(buf.data()), 0);
    dt::Tree t;
    ASSERT_EQ(t.open(buf.data(), buf.size()), Status::ok) << t.error();
    static Topology topo;
    StringSink report;
    ASSERT_EQ(discover(t, topo, report), Status::ok);
    EXPECT_EQ(topo.nmasters, kMaxMasters);
    EXPECT_EQ(topo.problems, kMasters - kMaxMasters);
    char last[64];
    snprintf(last, sizeof last, "dt: /dma@%x: more than %u DMA masters, left blocked\n", 0x100000 + (kMasters - 1) * 0x1000,
             kMaxMasters);
    EXPECT_NE(report.text.find(last), std::string::npos);
    char first_refused[64];
    snprintf(first_refused, sizeof first_refused, "dt: /dma@%x: more than", 0x100000 + kMaxMasters * 0x1000);
    EXPECT_NE(report.text.find(first_refused), std::string::npos);
}
