// The protection report: every rule of xen-compat/protection.hpp on a tree made for it, then
// the real board subsets in dts/.
#include "dt_support.hpp"
#include "xen-compat/protection.hpp"

using namespace moat;
using namespace moat::xen;
using namespace dt_test;

namespace {

struct Classified : Loaded {
    std::unique_ptr<ProtectionReport> report = std::make_unique<ProtectionReport>();
    explicit Classified(const std::string& name) : Loaded(name) {
        EXPECT_EQ(classify(tree, *topo, registry_driven(*topo), *report), Status::ok);
    }
    const DeviceEntry* entry(const char* path) const { return report->find(node(path)); }
    std::string reason(const char* path) const {
        StrSink s;
        describe_reason(tree, *topo, *entry(path), s);
        return s.text;
    }
    std::string streams(const char* path) const {
        StrSink s;
        describe_streams(*topo, *entry(path), s);
        return s.text;
    }
};

void expect_class(const Classified& c, const char* path, Dma dma, Basis basis, Cause why) {
    const DeviceEntry* e = c.entry(path);
    ASSERT_NE(e, nullptr) << path << " is not listed";
    EXPECT_EQ(to_string(e->dma), std::string(to_string(dma))) << path;
    EXPECT_EQ(to_string(e->basis), std::string(to_string(basis))) << path;
    EXPECT_EQ(static_cast<int>(e->why), static_cast<int>(why)) << path;
}

TEST(DtProtection, ClassifiesEveryKindOfMaster) {
    Classified c("dt_protection");
    expect_class(c, "/protected@5000", Dma::protected_dma, Basis::iommus, Cause::driven_iommu);
    expect_class(c, "/soc/sd@1000", Dma::protected_dma, Basis::iommus, Cause::driven_iommu);
    expect_class(c, "/virtio@6000", Dma::protected_dma, Basis::iommus, Cause::grant_dma);
    expect_class(c, "/behind-other@7000", Dma::unprotected, Basis::iommus, Cause::iommu_not_driven);
    expect_class(c, "/broken@8000", Dma::unknown, Basis::iommus, Cause::wiring_broken);
    expect_class(c, "/dma-controller@9000", Dma::unprotected, Basis::dma_engine, Cause::no_iommu);
    expect_class(c, "/coherent@a000", Dma::unprotected, Basis::dma_coherent, Cause::no_iommu);
    expect_class(c, "/ethernet@b000", Dma::unprotected, Basis::known_master, Cause::no_iommu);
    expect_class(c, "/mystery@c000", Dma::unknown, Basis::registers, Cause::no_heuristic);
    expect_class(c, "/soc/thing@2000", Dma::unknown, Basis::registers, Cause::no_heuristic);
    expect_class(c, "/pcie@10000000", Dma::protected_dma, Basis::iommu_map, Cause::driven_iommu);
    expect_class(c, "/pcie@20000000", Dma::unprotected, Basis::iommu_map, Cause::map_gap);
    expect_class(c, "/pcie@21000000", Dma::protected_dma, Basis::iommu_map, Cause::grant_dma);
    expect_class(c, "/pcie@30000000", Dma::unprotected, Basis::pci_host, Cause::no_iommu);
    EXPECT_EQ(c.entry("/pcie@20000000")->detail, 0x11u);  // 0x0-0xf via the SMMU, 0x10 via grants
}

TEST(DtProtection, LeavesOutWhatCannotMasterDma) {
    Classified c("dt_protection");
    for (const char* p : {"/cpus/cpu@0", "/memory@40000000", "/reserved-memory/buffer@48000000",
                          "/interrupt-controller@1000", "/iommu@2000", "/iommu@3000", "/xen_iommu", "/uart@4000",
                          "/serial@4100", "/gpio@4200", "/disabled@d000", "/off-bus/hidden@e000", "/i2c@f000",
                          "/i2c@f000/eeprom@50", "/soc"})
        EXPECT_EQ(c.entry(p), nullptr) << p << " should not be listed";
    EXPECT_EQ(c.report->count, 14u);
    EXPECT_EQ(c.report->totals[0], 5u);  // protected
    EXPECT_EQ(c.report->totals[1], 6u);  // unprotected
    EXPECT_EQ(c.report->totals[2], 3u);  // unknown
}

TEST(DtProtection, ANodeWithoutCompatibleIsNoDeviceWhateverItsName) {
    // R-Car Gen4's PFC has a group node named "mmc": a configuration, not a device. It must not
    // be a master, nor push dom0 into direct mapping.
    Classified c("dt_protection");
    for (const char* p : {"/pin-controller@f100/mmc", "/pin-controller@f100/ethernet", "/pin-controller@f100/usb",
                          "/pin-controller@f100", "/flash@18000000/partitions/partition@0"})
        EXPECT_EQ(c.entry(p), nullptr) << p << " should not be listed";
    // The same generic name on a device still lists it.
    expect_class(c, "/ethernet@b000", Dma::unprotected, Basis::known_master, Cause::no_iommu);
}

TEST(DtProtection, ReasonsNameTheIommuAndTheEvidence) {
    Classified c("dt_protection");
    EXPECT_EQ(c.reason("/protected@5000"), "every stream goes through /iommu@2000, which moat drives (smmu_v3)");
    EXPECT_EQ(c.reason("/virtio@6000"),
              "Xen grant DMA through /xen_iommu: backend domain 1 only reaches pages granted to it");
    EXPECT_NE(c.reason("/behind-other@7000").find("behind /iommu@3000 (vendor,private-iommu), which moat does not drive"),
              std::string::npos);
    EXPECT_NE(c.reason("/broken@8000").find("/broken@8000: iommus entry 0: phandle 0xdead points to no node"),
              std::string::npos) << c.reason("/broken@8000");
    EXPECT_NE(c.reason("/pcie@20000000").find("requester id 0x0011 (00:02.1)"), std::string::npos);
    EXPECT_NE(c.reason("/pcie@30000000").find("PCI host bridge without iommu-map"), std::string::npos);
    EXPECT_NE(c.reason("/mystery@c000").find("registers at 0xc000 but no evidence either way (compatible 'vendor,mystery')"),
              std::string::npos);
    EXPECT_NE(c.reason("/soc/thing@2000").find("registers at 0x80002000"), std::string::npos);  // through ranges
    EXPECT_EQ(c.streams("/protected@5000"), "0x5-0x7");
    EXPECT_EQ(c.streams("/pcie@10000000"), "rid 0x0-0xffff->0x0-0xffff");
    EXPECT_EQ(c.streams("/coherent@a000"), "-");
}

TEST(DtProtection, ExplicitDrivenSetChangesTheVerdict) {
    Classified c("dt_protection");
    DrivenSet none;  // moat drives nothing: the SMMU's masters are its owner's business
    auto r = std::make_unique<ProtectionReport>();
    ASSERT_EQ(classify(c.tree, *c.topo, none, *r), Status::ok);
    EXPECT_EQ(r->find(c.node("/protected@5000"))->dma, Dma::unprotected);
    EXPECT_EQ(r->find(c.node("/virtio@6000"))->dma, Dma::protected_dma);  // grants need no driver
}

TEST(DtProtection, Zcu102EveryMasterBehindTheMmu500) {
    Classified c("board_zcu102");
    EXPECT_EQ(c.report->totals[0], 25u);  // SATA, 2 SD, NAND, QSPI, 4 GEM, 16 DMA channels
    EXPECT_EQ(c.report->totals[1] + c.report->totals[2], 0u);
    EXPECT_EQ(c.streams("/axi/ahci@fd0c0000"), "0x4c0-0x4c3");
    EXPECT_EQ(c.streams("/axi/dma-controller@fd570000"), "0x14ef");
    EXPECT_EQ(c.streams("/axi/spi@ff0f0000"), "0x873");
    EXPECT_EQ(c.entry("/axi/spi@ff0f0000/flash@0"), nullptr);
    EXPECT_EQ(c.entry("/axi/serial@ff000000"), nullptr);
}

TEST(DtProtection, SalvatorXSdhiBehindIpmmuDs1AndAudioDmacUnprotected) {
    Classified c("board_salvator_x");
    for (const char* p : {"/soc/mmc@ee100000", "/soc/mmc@ee120000", "/soc/mmc@ee140000", "/soc/sata@ee300000"})
        expect_class(c, p, Dma::protected_dma, Basis::iommus, Cause::driven_iommu);
    EXPECT_EQ(c.streams("/soc/mmc@ee140000"), "0x22");  // uTLB 34
    EXPECT_EQ(c.streams("/soc/sata@ee300000"), "0x2");   // HC's uTLB 2, as in Linux's r8a7795 tree
    expect_class(c, "/soc/dma-controller@ec700000", Dma::unprotected, Basis::dma_engine, Cause::no_iommu);
    // The xHCI has no IPMMU in Linux's tree: a known bus master without one.
    ASSERT_NE(c.entry("/soc/usb@ee000000"), nullptr);
    EXPECT_EQ(c.entry("/soc/usb@ee000000")->dma, Dma::unprotected);
    EXPECT_EQ(c.entry("/soc/usb@ee000000")->why, Cause::no_iommu);
    EXPECT_EQ(c.report->count, 7u);
}

}  // namespace
