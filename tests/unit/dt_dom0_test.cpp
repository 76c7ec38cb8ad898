// The dom0 filter (xen-compat/dom0_dt.hpp): what it hides, what it keeps byte for byte, and
// the XENFEAT decision.
#include <libfdt.h>

#include <set>

#include "dt_support.hpp"
#include "xen-compat/dom0_dt.hpp"

using namespace moat;
using namespace moat::xen;
using namespace dt_test;

namespace {

struct Filtered : Loaded {
    std::vector<uint64_t> out;
    Dom0Result res;
    StrSink log;
    dt::Tree dom0;
    Status status;

    explicit Filtered(const std::string& name) : Loaded(name), out(blob.size() + 64) {
        status = filter_dom0(tree, *topo, registry_driven(*topo), out.data(), out.size() * 8, res, log);
        if (status == Status::ok) {
            EXPECT_EQ(dom0.open(out.data(), out.size() * 8), Status::ok) << dom0.error();
        }
    }
    std::vector<uint32_t> cells(const char* path, const char* prop) const {
        int len;
        const void* p = dom0.prop(dom0.find_path(path), prop, &len);
        std::vector<uint32_t> v;
        for (int i = 0; p && i < len / 4; i++) v.push_back(fdt32_ld(static_cast<const fdt32_t*>(p) + i));
        return v;
    }
    uint32_t ph(const char* path) const { return tree.phandle(node(path)); }
};

TEST(DtDom0, HidesDrivenIommusAndOnlyTheirReferences) {
    Filtered f("dt_dom0");
    ASSERT_EQ(f.status, Status::ok) << f.log.text;
    EXPECT_LT(f.dom0.find_path("/iommu@1000"), 0);
    EXPECT_GE(f.dom0.find_path("/iommu@2000"), 0);
    EXPECT_FALSE(f.dom0.has(f.dom0.find_path("/only-driven@4000"), "iommus"));
    EXPECT_TRUE(f.dom0.has(f.dom0.find_path("/only-driven@4000"), "dma-coherent"));
    EXPECT_EQ(f.cells("/only-other@5000", "iommus"), (std::vector<uint32_t>{f.ph("/iommu@2000"), 2}));
    EXPECT_EQ(f.cells("/mixed@6000", "iommus"), (std::vector<uint32_t>{f.ph("/iommu@2000"), 4}));
    EXPECT_FALSE(f.dom0.has(f.dom0.find_path("/disabled@7000"), "iommus"));  // disabled nodes too: no dangling phandles
    EXPECT_FALSE(f.dom0.has(f.dom0.find_path("/pcie@10000000"), "iommu-map"));
    EXPECT_FALSE(f.dom0.has(f.dom0.find_path("/pcie@10000000"), "iommu-map-mask"));
    EXPECT_EQ(f.cells("/pcie@20000000", "iommu-map"), (std::vector<uint32_t>{0x100, f.ph("/iommu@2000"), 0, 0x100}));
    EXPECT_EQ(f.cells("/pcie@20000000", "iommu-map-mask"), (std::vector<uint32_t>{0xffff}));
    EXPECT_FALSE(f.dom0.has(f.dom0.find_path("/aliases"), "smmu0"));
    EXPECT_TRUE(f.dom0.has(f.dom0.find_path("/aliases"), "serial0"));
    EXPECT_TRUE(f.dom0.has(f.dom0.find_path("/aliases"), "other0"));
    EXPECT_FALSE(f.dom0.has(f.dom0.find_path("/__symbols__"), "smmu"));

    // The unparsable reference to the hidden SMMU goes too, and is reported by path.
    EXPECT_FALSE(f.dom0.has(f.dom0.find_path("/broken@8000"), "iommus"));
    EXPECT_EQ(f.res.problems, 1u);
    EXPECT_NE(f.log.text.find("dt: /broken@8000: iommus cannot be parsed ("), std::string::npos) << f.log.text;

    EXPECT_EQ(f.cells("/dangling@8100", "iommus"), (std::vector<uint32_t>{0xdead, 1}));  // not ours to judge
    EXPECT_EQ(f.ph("/iommu@1000"), 1u);  // ... though its argument looks like the hidden SMMU's phandle

    EXPECT_EQ(f.res.removed_nodes, 1u);
    EXPECT_EQ(f.res.removed_props, 5u);  // only-driven, disabled, broken, pcie1 map + mask
    EXPECT_EQ(f.res.trimmed_props, 2u);  // mixed, pcie2
    EXPECT_EQ(f.res.removed_aliases, 2u);
    EXPECT_EQ(f.res.size, f.dom0.size());
}

// Every property the filter has no reason to touch is byte for byte the host's.
TEST(DtDom0, EverythingElseIsUntouched) {
    Filtered f("dt_dom0");
    ASSERT_EQ(f.status, Status::ok);
    const std::set<std::string> edited = {"/only-driven@4000 iommus", "/mixed@6000 iommus", "/disabled@7000 iommus",
                                          "/broken@8000 iommus", "/pcie@10000000 iommu-map", "/pcie@10000000 iommu-map-mask",
                                          "/pcie@20000000 iommu-map", "/aliases smmu0", "/__symbols__ smmu"};
    unsigned compared = 0;
    int depth = 0;
    for (int n = f.tree.next_node(-1, &depth); n >= 0; n = f.tree.next_node(n, &depth)) {
        char path[dt::kPathMax];
        f.tree.path(n, path, sizeof path);
        int m = f.dom0.find_path(path);
        if (std::string(path) == "/iommu@1000") { EXPECT_LT(m, 0); continue; }
        ASSERT_GE(m, 0) << path;
        int off;
        fdt_for_each_property_offset(off, f.tree.blob(), n) {
            const char* name;
            int len, len2;
            const void* v = fdt_getprop_by_offset(f.tree.blob(), off, &name, &len);
            if (edited.count(std::string(path) + " " + name)) continue;
            const void* v2 = f.dom0.prop(m, name, &len2);
            ASSERT_NE(v2, nullptr) << path << " lost " << name;
            EXPECT_EQ(len, len2) << path << " " << name;
            EXPECT_EQ(memcmp(v, v2, static_cast<size_t>(len)), 0) << path << " " << name;
            compared++;
        }
    }
    EXPECT_EQ(compared, 32u);  // every property of the tree but the 9 edited and the hidden node's
}

TEST(DtDom0, OutputDiscoversCleanlyAndFilteringTwiceChangesNothing) {
    Filtered f("dt_dom0");
    ASSERT_EQ(f.status, Status::ok);
    auto topo = std::make_unique<Topology>();
    StrSink report;
    ASSERT_EQ(discover(f.dom0, *topo, report), Status::ok);
    EXPECT_EQ(topo->niommus, 1u);
    EXPECT_EQ(topo->problems, 1u) << report.text;  // the host's own dangling reference, passed on as it was
    EXPECT_NE(report.text.find("/dangling@8100"), std::string::npos) << report.text;
    std::vector<uint64_t> again(f.out.size());
    Dom0Result r2;
    StrSink log;
    ASSERT_EQ(filter_dom0(f.dom0, *topo, registry_driven(*topo), again.data(), again.size() * 8, r2, log), Status::ok);
    EXPECT_EQ(r2.removed_nodes + r2.removed_props + r2.trimmed_props + r2.removed_aliases + r2.problems, 0u) << log.text;
    EXPECT_EQ(r2.size, f.res.size);
    EXPECT_EQ(memcmp(again.data(), f.out.data(), r2.size), 0);
}

TEST(DtDom0, TooSmallABufferIsReportedNotOverrun) {
    Loaded l("dt_dom0");
    std::vector<uint64_t> out(16);
    Dom0Result res;
    StrSink log;
    EXPECT_EQ(filter_dom0(l.tree, *l.topo, registry_driven(*l.topo), out.data(), out.size() * 8, res, log), Status::no_space);
    EXPECT_NE(log.text.find("cannot copy the host tree into 128 bytes"), std::string::npos) << log.text;
}

XenfeatDecision decide(const Loaded& l, std::string* why) {
    auto report = std::make_unique<ProtectionReport>();
    EXPECT_EQ(classify(l.tree, *l.topo, registry_driven(*l.topo), *report), Status::ok);
    XenfeatDecision d = decide_xenfeat(*report);
    StrSink s;
    explain_xenfeat(l.tree, *l.topo, *report, d, s);
    *why = s.text;
    return d;
}

TEST(DtDom0, Zcu102DropsTheMmu500AndDom0NeedNotBeDirectMapped) {
    Filtered f("board_zcu102");
    ASSERT_EQ(f.status, Status::ok) << f.log.text;
    EXPECT_LT(f.dom0.find_path("/axi/iommu@fd800000"), 0);
    EXPECT_EQ(f.res.removed_nodes, 1u);
    EXPECT_EQ(f.res.removed_props, 25u);
    EXPECT_EQ(f.res.problems, 0u) << f.log.text;
    std::string why;
    EXPECT_EQ(decide(f, &why).feature, kXenfeatNotDirectMapped);
    EXPECT_EQ(why, "XENFEAT_not_direct_mapped (16): all 25 DMA masters dom0 sees are translated by IOMMUs moat drives, "
                   "so dom0 needs no 1:1 memory");
}

TEST(DtDom0, SalvatorXDropsEveryIpmmuAndTheAudioDmacForcesDirectMapping) {
    Filtered f("board_salvator_x");
    ASSERT_EQ(f.status, Status::ok) << f.log.text;
    EXPECT_EQ(f.res.removed_nodes, 6u);  // the root and five caches
    EXPECT_EQ(f.res.problems, 0u) << f.log.text;
    for (const char* p : {"/soc/mmc@ee100000", "/soc/mmc@ee120000", "/soc/mmc@ee140000"})
        EXPECT_FALSE(f.dom0.has(f.dom0.find_path(p), "iommus")) << p;
    std::string why;
    XenfeatDecision d = decide(f, &why);
    EXPECT_EQ(d.feature, kXenfeatDirectMapped);
    EXPECT_EQ(d.unprotected, 2u);  // the xHCI and the audio DMAC have no IPMMU on H3
    EXPECT_EQ(why, "XENFEAT_direct_mapped (17): 2 of the 7 DMA masters dom0 sees reach memory without an IOMMU moat drives "
                   "(2 unprotected, 0 unknown), first /soc/usb@ee000000: known bus master (renesas,xhci-r8a7795) without "
                   "iommus: it reaches memory untranslated; their DMA uses the addresses dom0 programs as machine addresses, "
                   "so dom0 must be mapped 1:1 (gfn == mfn)");
}

TEST(DtDom0, KeepingAnIpmmuRootWhileHidingItsCachesIsReported) {
    Loaded l("board_salvator_x");
    DrivenSet d = registry_driven(*l.topo);
    d.driven[l.topo->iommu_index(l.node("/soc/iommu@e6570000"))] = false;  // keep ipmmu_hc for dom0
    std::vector<uint64_t> out(l.blob.size());
    Dom0Result res;
    StrSink log;
    ASSERT_EQ(filter_dom0(l.tree, *l.topo, d, out.data(), out.size() * 8, res, log), Status::ok);
    EXPECT_EQ(res.problems, 1u);
    EXPECT_NE(log.text.find("dt: /soc/iommu@e6570000: renesas,ipmmu-main names /soc/iommu@e67b0000, which moat hides"),
              std::string::npos) << log.text;
}

}  // namespace
