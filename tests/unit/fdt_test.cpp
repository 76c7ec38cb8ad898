#include <libfdt.h>

#include <string>

#include "dt_fixture.hpp"

using namespace moat;

namespace {

class FdtTest : public ::testing::Test {
protected:
    void SetUp() override {
        blob = load_dtb("topology");
        ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok) << t.error();
    }
    int node(const char* path) {
        int n = t.find_path(path);
        EXPECT_GE(n, 0) << path;
        return n;
    }
    std::vector<uint64_t> blob;
    dt::Tree t;
};

TEST_F(FdtTest, RegIsTranslatedThroughParentRanges) {
    dt::Reg r;
    ASSERT_EQ(t.reg(node("/soc/iommu@9050000"), 0, r), Status::ok) << t.error();
    EXPECT_EQ(r.addr, 0x09050000u);
    EXPECT_EQ(r.size, 0x20000u);
    ASSERT_EQ(t.reg(node("/pcie@10000000"), 0, r), Status::ok) << t.error();
    EXPECT_EQ(r.addr, 0x4010000000u);  // two address cells at the root
    EXPECT_EQ(t.reg(node("/pcie@10000000"), 1, r), Status::not_found);
    EXPECT_NE(std::string(t.error()).find("/pcie@10000000: reg has 1 entries, no entry 1"), std::string::npos) << t.error();
}

TEST_F(FdtTest, InterruptsGoThroughTheGic) {
    dt::Irq irqs[8];
    unsigned n = 0;
    ASSERT_EQ(t.interrupts(node("/soc/iommu@9050000"), irqs, 8, n), Status::ok) << t.error();
    ASSERT_EQ(n, 4u);
    EXPECT_EQ(irqs[0].kind, dt::IrqKind::spi);
    EXPECT_EQ(irqs[0].number, 74u);
    EXPECT_EQ(irqs[0].intid, 106u);
    EXPECT_EQ(irqs[0].flags, 1u);
    EXPECT_EQ(irqs[3].intid, 111u);
    // More lines than the caller keeps is a refusal naming the node, never a silent drop.
    EXPECT_EQ(t.interrupts(node("/soc/iommu@9050000"), irqs, 2, n), Status::no_space);
    EXPECT_STREQ(t.error(), "/soc/iommu@9050000: 4 interrupts; at most 2 are read");
}

TEST_F(FdtTest, PhandleArgsFollowTheTargetsCellCount) {
    dt::PhandleArgs a;
    int gem = node("/soc/gem@ff0b0000");
    ASSERT_EQ(t.phandle_args(gem, "iommus", "#iommu-cells", 0, a), Status::ok) << t.error();
    EXPECT_EQ(a.node, node("/soc/iommu@fd800000"));
    ASSERT_EQ(a.count, 2u);
    EXPECT_EQ(a.args[0], 0x874u);
    EXPECT_EQ(a.args[1], 0x7f00u);
    EXPECT_EQ(t.phandle_args(gem, "iommus", "#iommu-cells", 1, a), Status::not_found);

    int dual = node("/soc/dual@ee200000");
    ASSERT_EQ(t.phandle_args(dual, "iommus", "#iommu-cells", 1, a), Status::ok);
    EXPECT_EQ(a.args[0], 0x31u);
}

TEST_F(FdtTest, IommuMapTranslatesMaskedRequesterIds) {
    int pcie = node("/pcie@10000000");
    int iommu = -1;
    uint32_t sid = 0;
    ASSERT_EQ(t.map_rid(pcie, 0x0012, iommu, sid), Status::ok) << t.error();
    EXPECT_EQ(iommu, node("/soc/iommu@9050000"));
    EXPECT_EQ(sid, 0x10010u);  // 0x12 & 0xfff8 = 0x10
    ASSERT_EQ(t.map_rid(pcie, 0x0105, iommu, sid), Status::ok);
    EXPECT_EQ(sid, 0x20000u);
    EXPECT_EQ(t.map_rid(pcie, 0x0300, iommu, sid), Status::not_found);
    EXPECT_NE(std::string(t.error()).find("/pcie@10000000: requester id 0x300"), std::string::npos) << t.error();
}

TEST_F(FdtTest, ChosenAndProperties) {
    uint32_t v = 0;
    EXPECT_EQ(t.u32(node("/soc/iommu@9050000"), "#iommu-cells", v), Status::ok);
    EXPECT_EQ(v, 1u);
    EXPECT_EQ(t.u32(node("/soc/iommu@9050000"), "reg", v), Status::bad_dt);  // two cells, not one
    EXPECT_NE(std::string(t.error()).find("/soc/iommu@9050000: reg is 8 bytes, expected one cell"), std::string::npos);
    EXPECT_FALSE(t.available(node("/soc/off@ee300000")));
    EXPECT_TRUE(t.available(node("/soc/sd@ee100000")));
    EXPECT_STREQ(t.first_compatible(node("/soc/iommu@fd800000")), "arm,mmu-500");
}

// ---- malformed blobs: every one is refused with a reason, none is read past its end

TEST(FdtOpen, RefusesNullTruncatedAndCorruptBlobs) {
    auto blob = load_dtb("topology");
    dt::Tree t;
    EXPECT_EQ(t.open(nullptr, 100), Status::bad_dt);
    EXPECT_NE(std::string(t.error()).find("null"), std::string::npos);

    EXPECT_EQ(t.open(blob.data(), 16), Status::bad_dt);
    EXPECT_NE(std::string(t.error()).find("truncated"), std::string::npos) << t.error();

    size_t total = fdt_totalsize(blob.data());
    EXPECT_EQ(t.open(blob.data(), total - 1), Status::bad_dt);
    EXPECT_NE(std::string(t.error()).find("header says"), std::string::npos) << t.error();

    auto bad_magic = blob;
    reinterpret_cast<uint8_t*>(bad_magic.data())[0] ^= 0xff;
    EXPECT_EQ(t.open(bad_magic.data(), dtb_bytes(bad_magic)), Status::bad_dt);
    EXPECT_NE(std::string(t.error()).find("header invalid"), std::string::npos) << t.error();
    EXPECT_EQ(t.blob(), nullptr);
}

TEST(FdtOpen, RefusesACorruptedStructureBlock) {
    auto blob = load_dtb("topology");
    auto* h = reinterpret_cast<fdt_header*>(blob.data());
    uint32_t off = fdt32_to_cpu(h->off_dt_struct);
    // The first token must be FDT_BEGIN_NODE; make it garbage.
    reinterpret_cast<uint8_t*>(blob.data())[off + 3] = 0x7f;
    dt::Tree t;
    EXPECT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::bad_dt);
    EXPECT_NE(std::string(t.error()).find("structure invalid"), std::string::npos) << t.error();
}

TEST(FdtOpen, EveryTruncationIsRefusedCleanly) {
    auto blob = load_dtb("topology");
    size_t total = fdt_totalsize(blob.data());
    for (size_t len = 0; len < total; len += 7) {
        // Copy exactly len bytes into a buffer of that size so ASan sees any over-read.
        std::vector<uint8_t> cut(reinterpret_cast<uint8_t*>(blob.data()), reinterpret_cast<uint8_t*>(blob.data()) + len);
        dt::Tree t;
        EXPECT_EQ(t.open(cut.empty() ? nullptr : cut.data(), len), Status::bad_dt) << len;
    }
}

}  // namespace
