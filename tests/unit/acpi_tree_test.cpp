// The boot tree an ACPI platform becomes: the same discovery, memory planning and iommu-map
// translation the arm64 trees go through read it, so these tests run it through them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "arch/x86_64/exception_decode.hpp"
#include "common/acpi_tree.hpp"
#include "common/boot_memory.hpp"
#include "common/discovery.hpp"

using namespace moat;
using namespace moat::acpi;

namespace {

class CaptureSink final : public Sink {
public:
    void write(const char* s, size_t n) override { text.append(s, n); }
    std::string text;
};

FirmwareDesc q35_desc() {
    FirmwareDesc d;
    d.model = "test q35";
    d.bootargs = "moat.selftest=fault";
    d.nram = 2;
    d.ram[0] = {0x100000, 0x1fedf000};
    d.ram[1] = {0x100000000ull, 0x40000000};
    d.nreserved = 1;
    d.reserved[0] = {0x1ff00000, 0x1000};
    d.necam = 1;
    d.ecam[0] = McfgEntry{0xb0000000, 0, 0, 255};
    d.pci_window_base = 0xe0000000;
    d.pci_window_size = 0x1ec00000;
    return d;
}

IommuUnit unit(uint64_t base, bool all, std::vector<uint16_t> ids) {
    IommuUnit u{};
    u.base = base;
    u.size = 0x1000;
    u.compatible = "moat,test-iommu";
    u.all_devices = all;
    u.nids = static_cast<unsigned>(ids.size());
    for (size_t i = 0; i < ids.size(); i++) u.ids[i] = ids[i];
    return u;
}

TEST(AcpiTree, RamBootargsAndReservedRangesReachMemoryPlanning) {
    FirmwareDesc d = q35_desc();
    std::vector<uint8_t> buf(16384);
    Why why;
    ASSERT_EQ(build_tree(d, buf.data(), buf.size(), why), Status::ok) << why.text();
    dt::Tree t;
    ASSERT_EQ(t.open(buf.data(), buf.size()), Status::ok) << t.error();
    int chosen = t.find_path("/chosen");
    ASSERT_GE(chosen, 0);
    int len;
    EXPECT_STREQ(static_cast<const char*>(t.prop(chosen, "bootargs", &len)), "moat.selftest=fault");
    MemoryPlan plan;
    ASSERT_EQ(plan_memory(t, {0x200000, 0xc7000}, {0x239000, 0x1000}, plan), Status::ok) << t.error();
    EXPECT_EQ(plan.nram, 2u);
    EXPECT_EQ(plan.ram_bytes(), 0x1fedf000ull + 0x40000000ull);
    uint64_t withheld = 0xc7000 + 0x1000;  // the image (the tree lies inside it) and the table page
    EXPECT_EQ(plan.free_bytes(), plan.ram_bytes() - withheld);
    for (unsigned i = 0; i < plan.nfree; i++)
        EXPECT_FALSE(plan.free[i].base < 0x1ff01000 && plan.free[i].end() > 0x1ff00000) << "the ACPI page went to the pool";
}

TEST(AcpiTree, TheHostBridgeCarriesEcamBusRangeAndTheWindow) {
    FirmwareDesc d = q35_desc();
    std::vector<uint8_t> buf(16384);
    Why why;
    ASSERT_EQ(build_tree(d, buf.data(), buf.size(), why), Status::ok) << why.text();
    dt::Tree t;
    ASSERT_EQ(t.open(buf.data(), buf.size()), Status::ok);
    int pcie = t.find_path("/pcie@b0000000");
    ASSERT_GE(pcie, 0);
    EXPECT_TRUE(t.compatible(pcie, "pci-host-ecam-generic"));
    dt::Reg r;
    ASSERT_EQ(t.reg(pcie, 0, r), Status::ok);
    EXPECT_EQ(r.addr, 0xb0000000u);
    EXPECT_EQ(r.size, 256 * MiB);
    EXPECT_FALSE(t.has(pcie, "iommu-map"));  // no IOMMU unit: nothing translates
}

TEST(AcpiTree, ListedDevicesGoToTheirUnitAndTheRestToTheCatchAll) {
    FirmwareDesc d = q35_desc();
    d.nunits = 2;
    d.units[0] = unit(0xfed90000, true, {});
    d.units[1] = unit(0xfed91000, false, {0x0010, 0x0100});
    std::vector<uint8_t> buf(16384);
    Why why;
    ASSERT_EQ(build_tree(d, buf.data(), buf.size(), why), Status::ok) << why.text();
    dt::Tree t;
    ASSERT_EQ(t.open(buf.data(), buf.size()), Status::ok);
    int pcie = t.find_path("/pcie@b0000000");
    int all = t.find_path("/iommu@fed90000"), listed = t.find_path("/iommu@fed91000");
    ASSERT_GE(all, 0);
    ASSERT_GE(listed, 0);
    int node;
    uint32_t sid;
    ASSERT_EQ(t.map_rid(pcie, 0x0010, node, sid), Status::ok) << t.error();
    EXPECT_EQ(node, listed);
    EXPECT_EQ(sid, 0x10u);
    ASSERT_EQ(t.map_rid(pcie, 0x0100, node, sid), Status::ok);
    EXPECT_EQ(node, listed);
    ASSERT_EQ(t.map_rid(pcie, 0x0008, node, sid), Status::ok);
    EXPECT_EQ(node, all);
    EXPECT_EQ(sid, 0x8u);
    ASSERT_EQ(t.map_rid(pcie, 0xffff, node, sid), Status::ok);
    EXPECT_EQ(node, all);
    // Discovery sees both units and the bridge as a master of both.
    Topology topo;
    CaptureSink report;
    ASSERT_EQ(discover(t, topo, report), Status::ok) << report.text;
    EXPECT_EQ(topo.niommus, 2u);
    ASSERT_EQ(topo.nmasters, 1u);
    EXPECT_EQ(topo.masters[0].nstreams, 3u);
    EXPECT_EQ(topo.problems, 0u);
}

TEST(AcpiTree, AUnitWithoutScopeOrCatchAllTranslatesNothing) {
    FirmwareDesc d = q35_desc();
    d.nunits = 1;
    d.units[0] = unit(0xfed90000, false, {});
    std::vector<uint8_t> buf(16384);
    Why why;
    ASSERT_EQ(build_tree(d, buf.data(), buf.size(), why), Status::ok) << why.text();
    dt::Tree t;
    ASSERT_EQ(t.open(buf.data(), buf.size()), Status::ok);
    EXPECT_FALSE(t.has(t.find_path("/pcie@b0000000"), "iommu-map"));
}

TEST(AcpiTree, RefusesWhatItCannotWrite) {
    FirmwareDesc d = q35_desc();
    std::vector<uint8_t> buf(16384);
    Why why;
    EXPECT_EQ(build_tree(d, buf.data(), 200, why), Status::no_space);
    EXPECT_NE(std::string(why.text()).find("firmware tree:"), std::string::npos);
    d.nram = 0;
    EXPECT_EQ(build_tree(d, buf.data(), buf.size(), why), Status::invalid_argument);
    d = q35_desc();
    d.nunits = 1;
    d.units[0] = unit(0xfed90000, true, {});
    d.units[0].size = 0;
    EXPECT_EQ(build_tree(d, buf.data(), buf.size(), why), Status::invalid_argument);
    EXPECT_NE(std::string(why.text()).find("IOMMU unit 0 at 0xfed90000 is incomplete"), std::string::npos);
}

// The x86 exception report's decoding (header-only, so checked here on the host).
TEST(X86Exception, NamesVectorsAndDecodesPageFaultsAndSelectors) {
    using namespace moat::arch::x86;
    EXPECT_STREQ(vector_info(14).mnemonic, "#PF");
    EXPECT_TRUE(vector_info(14).has_error_code);
    EXPECT_STREQ(vector_info(13).name, "general protection");
    EXPECT_FALSE(vector_info(6).has_error_code);
    EXPECT_STREQ(vector_info(40).name, "external interrupt");
    EXPECT_STREQ(pf_cause(0), "page not present");
    EXPECT_STREQ(pf_cause(kPfPresent | kPfWrite), "protection violation");
    EXPECT_STREQ(pf_cause(kPfPresent | kPfReserved), "reserved bit set in a paging entry");
    EXPECT_STREQ(pf_access(kPfWrite), "write");
    EXPECT_STREQ(pf_access(kPfFetch), "instruction fetch");
    EXPECT_STREQ(pf_access(0), "read");
    EXPECT_STREQ(pf_mode(kPfUser), "user");
    EXPECT_STREQ(pf_mode(0), "supervisor");
    EXPECT_EQ(sel_index(0x10 << 3 | 4), 0x10u);
    EXPECT_STREQ(sel_table(4), "LDT");
    EXPECT_STREQ(sel_table(2), "IDT");
    EXPECT_STREQ(sel_table(0), "GDT");
    EXPECT_TRUE(sel_external(1));
    EXPECT_TRUE(has_selector_code(13));
    EXPECT_FALSE(has_selector_code(14));
}

}  // namespace
