// The device trees Linux ships for the boards moat supports (fetched from Debian's archive into
// .deps/trees by tools/install-deps.sh: ZCU102 DTBs from linux-image-*-arm64, Salvator-X/XS
// (R-Car Gen3), Spider (S4) and Falcon (V3U) (R-Car Gen4) compiled from linux-source-6.1,
// whose arm64 kernel package ships none of them). The expectations below were read off the trees with
// `dtc -I dtb -O dts` by hand, not computed by moat: counts plus exact entries per tree.
// Each tree goes through discovery, the host tool's protection decision (xen::settle +
// classify) and the image's probe (IommuSet against register models, with the SoC's product
// register), and the image and the host tool must agree on every IOMMU.
// A missing tree FAILS: the tier never passes without its input.
#include <libfdt.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "ipmmu_rig.hpp"
#include "tests/models/mmu500_model.hpp"
#include "xen-compat/protection.hpp"

using namespace moat;

namespace {

std::string tree_path(const char* name) {
    const char* dir = getenv("MOAT_TREES");
    return std::string(dir ? dir : ".deps/trees") + "/" + name + ".dtb";
}

bool present(const char* name) {
    FILE* f = fopen(tree_path(name).c_str(), "rb");
    if (f) return fclose(f), true;
    ADD_FAILURE() << tree_path(name) << " is missing: run tools/install-deps.sh (it needs Debian's archive)";
    return false;
}

struct Cache { const char* path; uint32_t bit; };
struct Master { const char* path; const char* iommu; uint32_t first; unsigned count; };

struct RcarTree {
    const char* name;
    const char* root;      // the root IPMMU's path
    unsigned niommus, nmasters;
    uint32_t prr;          // the product register of the board this tree is for
    bool probes;           // whether the driver accepts that silicon
    bool conditional;      // whether the host tool, told nothing, must say "only on ES3.0 or later"
    std::vector<Cache> caches;
    std::vector<Master> masters;
    std::vector<const char*> not_masters;  // disabled in the tree, or no IPMMU
    bool every = false;    // caches and masters list every one of the tree's (Gen4: all of them by hand)
    unsigned contexts = 8, utlbs = 48;  // what the image's root reports
};

constexpr const char* kGen3Root = "/soc/iommu@e67b0000";
constexpr const char* kGen4Root = "/soc/iommu@eefc0000";

const RcarTree kRcar[] = {
    {"r8a77950-salvator-x", kGen3Root, 14, 22, 0x4f01, false, true,
     {{"/soc/iommu@ec680000", 5}, {"/soc/iommu@e7730000", 8}, {"/soc/iommu@fe990000", 12}, {"/soc/iommu@fd800000", 6}},
     {{"/soc/dma-controller@ec700000", "/soc/iommu@ec680000", 0, 16}, {"/soc/fcp@fe9cf000", "/soc/iommu@fe990000", 10, 1},
      {"/soc/sata@ee300000", "/soc/iommu@e6570000", 2, 1}, {"/soc/fcp@fea3f000", "/soc/iommu@febd0000", 11, 1}},
     {"/soc/mmc@ee120000"}},
    {"r8a77951-salvator-x", kGen3Root, 17, 19, 0x4f20, true, true,
     {{"/soc/iommu@fe980000", 17}, {"/soc/iommu@fd800000", 6}, {"/soc/iommu@fe990000", 16}, {"/soc/iommu@febe0000", 15}},
     {{"/soc/fcp@fe951000", "/soc/iommu@fe980000", 1, 1}, {"/soc/fcp@fe92f000", "/soc/iommu@fe980000", 7, 1},
      {"/soc/fcp@fe9bf000", "/soc/iommu@fe980000", 9, 1}, {"/soc/sata@ee300000", "/soc/iommu@e6570000", 2, 1},
      {"/soc/dma-controller@e7310000", "/soc/iommu@e7740000", 0x10, 16}},
     {"/soc/mmc@ee120000"}},
    {"r8a77951-salvator-xs", kGen3Root, 17, 19, 0x4f20, true, true,
     {{"/soc/iommu@fe980000", 17}, {"/soc/iommu@fd800000", 6}},
     {{"/soc/fcp@fe951000", "/soc/iommu@fe980000", 1, 1}, {"/soc/fcp@fea37000", "/soc/iommu@febe0000", 10, 1}},
     {"/soc/mmc@ee120000"}},
    {"r8a77960-salvator-x", kGen3Root, 11, 13, 0x5200, false, true,
     {{"/soc/iommu@fd800000", 5}, {"/soc/iommu@febd0000", 9}},
     {{"/soc/fcp@fe9af000", "/soc/iommu@fe6b0000", 0x13, 1}, {"/soc/ethernet@e6800000", "/soc/iommu@e6740000", 0x10, 1}},
     {"/soc/mmc@ee120000"}},
    {"r8a77960-salvator-xs", kGen3Root, 11, 13, 0x5210, false, true,
     {{"/soc/iommu@fd800000", 5}},
     {{"/soc/fcp@fe9af000", "/soc/iommu@fe6b0000", 0x13, 1}},
     {"/soc/mmc@ee120000"}},
    {"r8a77961-salvator-xs", kGen3Root, 11, 13, 0x5220, true, false,
     {{"/soc/iommu@fd800000", 5}, {"/soc/iommu@fd950000", 6}},
     {{"/soc/fcp@fe9af000", "/soc/iommu@fe6b0000", 0x13, 1}, {"/soc/mmc@ee160000", "/soc/iommu@e7740000", 0x23, 1}},
     {"/soc/mmc@ee120000"}},
    {"r8a77965-salvator-x", kGen3Root, 10, 7, 0x5510, true, false,
     {{"/soc/iommu@fe990000", 16}, {"/soc/iommu@ffc80000", 10}, {"/soc/iommu@fd800000", 6}},
     {{"/soc/ethernet@e6800000", "/soc/iommu@e6740000", 0x10, 1}, {"/soc/dma-controller@e7310000", "/soc/iommu@e7740000", 0x10, 16}},
     {"/soc/mmc@ee120000"}},
    {"r8a77965-salvator-xs", kGen3Root, 10, 7, 0x5510, true, false,
     {{"/soc/iommu@febd0000", 14}},
     {{"/soc/mmc@ee100000", "/soc/iommu@e7740000", 0x20, 1}},
     {"/soc/mmc@ee120000"}},
    // R-Car S4 Spider (Gen4): the root IPMMU-MM and four caches; the two DMACs on IPMMU-DS0, 16 uTLBs
    // each. SDHI0 (the eMMC) has no `iommus` in Linux 6.1's tree.
    {"r8a779f0-spider", kGen4Root, 5, 2, 0x5a00, true, false,
     {{"/soc/iommu@ee480000", 10}, {"/soc/iommu@ee4c0000", 19}, {"/soc/iommu@eed00000", 0}, {"/soc/iommu@eed40000", 2}},
     {{"/soc/dma-controller@e7350000", "/soc/iommu@eed00000", 0, 16}, {"/soc/dma-controller@e7351000", "/soc/iommu@eed00000", 16, 16}},
     {"/soc/mmc@ee140000"}, true, 16, 64},
    // R-Car V3U Falcon (Gen4): the root and eleven caches; SDHI0 on IPMMU-DS0 uTLB 32 is the one master.
    {"r8a779a0-falcon", kGen4Root, 12, 1, 0x5900, true, false,
     {{"/soc/iommu@ee480000", 10}, {"/soc/iommu@ee4c0000", 19}, {"/soc/iommu@eed00000", 0}, {"/soc/iommu@eed40000", 1},
      {"/soc/iommu@eed80000", 3}, {"/soc/iommu@eedc0000", 12}, {"/soc/iommu@eee00000", 6}, {"/soc/iommu@eee80000", 14},
      {"/soc/iommu@eeec0000", 15}, {"/soc/iommu@eef00000", 5}, {"/soc/iommu@eef40000", 11}},
     {{"/soc/mmc@ee140000", "/soc/iommu@eed00000", 32, 1}},
     {"/soc/dma-controller@e7350000"}, true, 16, 64},
};

void expect_master(const dt_test::Loaded& dt, const Master& w) {
    const Topology& topo = *dt.topo;
    int mi = topo.master_index(dt.tree.find_path(w.path));
    ASSERT_GE(mi, 0) << w.path;
    const MasterInfo& m = topo.masters[mi];
    EXPECT_FALSE(m.blocked) << w.path << ": " << m.reason;
    ASSERT_EQ(m.nstreams, w.count) << w.path;
    for (unsigned s = 0; s < m.nstreams; s++) {
        EXPECT_EQ(m.streams[s].sid, w.first + s) << w.path;
        EXPECT_EQ(topo.iommus[m.streams[s].iommu].node, dt.tree.find_path(w.iommu)) << w.path;
    }
}

class RealRcar : public ::testing::TestWithParam<RcarTree> {};

TEST_P(RealRcar, TopologyProtectionAndTheImageAgree) {
    const RcarTree& x = GetParam();
    if (!present(x.name)) return;
    ipmmu_test::DtRig r(tree_path(x.name).c_str(), x.prr);
    const Topology& topo = *r.dt.topo;
    EXPECT_EQ(r.dt.report.text, "");
    EXPECT_EQ(topo.problems, 0u);
    // Every IOMMU: one root (no renesas,ipmmu-main), every other a cache of it.
    ASSERT_EQ(topo.niommus, x.niommus);
    int root = r.dt.tree.find_path(x.root);
    ASSERT_GE(root, 0) << x.root;
    for (unsigned i = 0; i < topo.niommus; i++) {
        ASSERT_TRUE(topo.iommus[i].driven());
        EXPECT_EQ(topo.iommus[i].upstream_node, topo.iommus[i].node == root ? -1 : root) << r.dt.tree.name(topo.iommus[i].node);
    }
    for (const Cache& c : x.caches) {
        int i = topo.iommu_index(r.dt.tree.find_path(c.path));
        ASSERT_GE(i, 0) << c.path;
        EXPECT_EQ(topo.iommus[i].upstream_arg, c.bit) << c.path;
    }
    if (x.every) {
        EXPECT_EQ(x.caches.size() + 1, x.niommus);  // every cache, and the root
        EXPECT_EQ(x.masters.size(), x.nmasters);
    }
    // Every enabled master, with its uTLBs; disabled ones are not masters.
    EXPECT_EQ(topo.nmasters, x.nmasters);
    for (const Master& w : x.masters) expect_master(r.dt, w);
    for (const char* p : x.not_masters) EXPECT_LT(topo.master_index(r.dt.tree.find_path(p)), 0) << p;

    // The host tool, told nothing about the silicon.
    dt_test::StrSink notes;
    xen::DrivenSet told_nothing = xen::registry_driven(topo);
    EXPECT_EQ(xen::settle(r.dt.tree, topo, Silicon{}, told_nothing, notes), 0u);
    auto rep = std::make_unique<xen::ProtectionReport>();
    ASSERT_EQ(xen::classify(r.dt.tree, topo, told_nothing, *rep), Status::ok);
    unsigned wired = 0;
    for (unsigned i = 0; i < rep->count; i++) {
        const xen::DeviceEntry& e = rep->devices[i];
        if (e.master < 0) continue;
        wired++;
        EXPECT_STREQ(xen::state_name(e), "protected (moat drives the IOMMU)");
        EXPECT_EQ(e.conditional, x.conditional) << r.dt.tree.name(e.node);
    }
    EXPECT_EQ(wired, x.nmasters);

    // The host tool told the board's cut, and the image on that board: the same IOMMUs driven.
    xen::DrivenSet told = xen::registry_driven(topo);
    (void)xen::settle(r.dt.tree, topo, Silicon{true, x.prr & 0xff}, told, notes);
    unsigned problems = r.probe();
    for (unsigned i = 0; i < topo.niommus; i++) {
        EXPECT_EQ(told.has(i), x.probes) << r.dt.tree.name(topo.iommus[i].node);
        EXPECT_EQ(r.set.at(i) != nullptr, told.has(i)) << r.dt.tree.name(topo.iommus[i].node) << "\n" << r.report.text;
    }
    EXPECT_EQ(r.set.probed(), x.probes ? x.niommus : 0u) << r.report.text;
    if (x.probes) {
        // The image's root, of the tree's generation, and every master's uTLBs through xlate to
        // the cache the tree names, blocked there until attached.
        auto* mm = static_cast<IpmmuVmsa*>(r.set.at(static_cast<unsigned>(topo.iommu_index(root))));
        ASSERT_NE(mm, nullptr);
        EXPECT_EQ(mm->generation().contexts, x.contexts);
        EXPECT_EQ(mm->generation().utlbs, x.utlbs);
        EXPECT_EQ(mm->blocking_context(), x.contexts - 1);
        EXPECT_EQ(mm->contexts_free(), x.contexts - 2);
        for (const Master& w : x.masters) {
            const MasterInfo& m = r.master(w.path);
            for (unsigned s = 0; s < m.nstreams; s++) {
                Iommu* via = nullptr;
                StreamId utlb = 0;
                Why why;
                ASSERT_EQ(r.set.stream(m, s, 0, via, utlb, why), Status::ok) << w.path << ": " << why.text();
                EXPECT_EQ(via, r.ipmmu(w.iommu)) << w.path;
                EXPECT_EQ(utlb, w.first + s) << w.path;
                EXPECT_TRUE(static_cast<IpmmuVmsa*>(via)->utlb_blocked(utlb)) << w.path << " uTLB " << utlb;
            }
        }
    }
    EXPECT_EQ(problems, x.probes ? 0u : x.niommus) << r.report.text;  // a refused root, and every cache waiting on it
    ASSERT_EQ(xen::classify(r.dt.tree, topo, told, *rep), Status::ok);
    for (unsigned i = 0; i < rep->count; i++) {
        if (rep->devices[i].master < 0) continue;
        EXPECT_STREQ(xen::state_name(rep->devices[i]), x.probes ? "protected (moat drives the IOMMU)" : "IOMMU refused on this silicon");
    }
}

INSTANTIATE_TEST_SUITE_P(RealTrees, RealRcar, ::testing::ValuesIn(kRcar),
                         [](const ::testing::TestParamInfo<RcarTree>& p) {
                             std::string n = p.param.name;
                             for (char& c : n) c = c == '-' ? '_' : c;
                             return n;
                         });

// ZCU102 rev1.0/rev1.1: the MMU-500 is disabled, so its 14 enabled masters are unprotected
// (not broken, not counted); usb@fe300000 sits under a disabled usb@ff9e0000 and is no master.
// With the SMMU enabled (as firmware may do), every stream id, and the image probes it.
const char* const kZcu102[] = {"zynqmp-zcu102-rev1.0", "zynqmp-zcu102-rev1.1"};

class RealZcu102 : public ::testing::TestWithParam<const char*> {};

TEST_P(RealZcu102, DisabledSmmuIsUnprotectedNotBroken) {
    if (!present(GetParam())) return;
    dt_test::Loaded dt(tree_path(GetParam()));
    const Topology& topo = *dt.topo;
    EXPECT_EQ(dt.report.text, "");
    EXPECT_EQ(topo.problems, 0u);
    EXPECT_EQ(topo.niommus, 0u);
    EXPECT_EQ(topo.nmasters, 14u);
    int smmu = dt.tree.find_path("/axi/iommu@fd800000");
    for (unsigned k = 0; k < topo.nmasters; k++) {
        EXPECT_FALSE(topo.masters[k].blocked) << topo.masters[k].reason;
        EXPECT_EQ(topo.masters[k].disabled_iommu, smmu);
    }
    EXPECT_LT(topo.master_index(dt.tree.find_path("/axi/usb@ff9e0000/usb@fe300000")), 0);
    EXPECT_GE(topo.master_index(dt.tree.find_path("/axi/usb@ff9d0000/usb@fe200000")), 0);
    EXPECT_LT(topo.master_index(dt.tree.find_path("/axi/mmc@ff160000")), 0);

    xen::DrivenSet d = xen::registry_driven(topo);
    dt_test::StrSink notes;
    EXPECT_EQ(xen::settle(dt.tree, topo, Silicon{}, d, notes), 0u);
    auto rep = std::make_unique<xen::ProtectionReport>();
    ASSERT_EQ(xen::classify(dt.tree, topo, d, *rep), Status::ok);
    unsigned disabled = 0;
    for (unsigned i = 0; i < rep->count; i++)
        disabled += strcmp(xen::state_name(rep->devices[i]), "unprotected: IOMMU disabled in the tree") == 0;
    EXPECT_EQ(disabled, 14u);
    EXPECT_EQ(rep->find(dt.tree.find_path("/axi/usb@ff9e0000/usb@fe300000")), nullptr);

    // The image: nothing to probe, nothing refused.
    IommuSet set;
    dt_test::StrSink report;
    ProbeEnv env{dt.tree, topo, nullptr, 40, nullptr, nullptr, report, nullptr};
    EXPECT_EQ(set.probe_all(env) + set.check_masters(dt.tree, topo, report), 0u) << report.text;
}

TEST_P(RealZcu102, EnabledSmmuHasEveryStreamIdAndProbes) {
    if (!present(GetParam())) return;
    dt_test::Loaded orig(tree_path(GetParam()));
    std::vector<uint64_t> blob(orig.blob.size() + 128);
    ASSERT_EQ(fdt_open_into(orig.blob.data(), blob.data(), static_cast<int>(blob.size() * 8)), 0);
    int n = fdt_path_offset(blob.data(), "/axi/iommu@fd800000");
    ASSERT_GE(n, 0);
    ASSERT_EQ(fdt_setprop_string(blob.data(), n, "status", "okay"), 0);
    model::HostPool mem{256};
    model::PoolPhysMem phys{*mem.pool};
    model::Mmu500Model smmu(phys, {});
    ASSERT_TRUE(mmio::attach(0xfd800000, smmu.size(), &smmu));
    {
        dt::Tree t;
        ASSERT_EQ(t.open(blob.data(), blob.size() * 8), Status::ok);
        auto topo = std::make_unique<Topology>();
        dt_test::StrSink report;
        ASSERT_EQ(discover(t, *topo, report), Status::ok);
        EXPECT_EQ(report.text, "");
        ASSERT_EQ(topo->niommus, 1u);
        EXPECT_EQ(topo->nmasters, 14u);
        struct { const char* path; uint32_t first; unsigned count; } want[] = {
            {"/axi/ahci@fd0c0000", 0x4c0, 4}, {"/axi/usb@ff9d0000/usb@fe200000", 0x860, 1}, {"/axi/mmc@ff170000", 0x871, 1},
            {"/axi/dma-controller@fd500000", 0x14e8, 1}, {"/axi/dma-controller@fd570000", 0x14ef, 1},
            {"/axi/ethernet@ff0e0000", 0x877, 1}, {"/axi/pcie@fd0e0000", 0x4d0, 1}, {"/axi/spi@ff0f0000", 0x873, 1}};
        for (const auto& w : want) {
            int mi = topo->master_index(t.find_path(w.path));
            ASSERT_GE(mi, 0) << w.path;
            ASSERT_EQ(topo->masters[mi].nstreams, w.count) << w.path;
            for (unsigned s = 0; s < w.count; s++) EXPECT_EQ(topo->masters[mi].streams[s].sid, w.first + s) << w.path;
        }
        IommuSet set;
        ProbeEnv env{t, *topo, mem.pool.get(), 40, nullptr, nullptr, report, nullptr};
        EXPECT_EQ(set.probe_all(env) + set.check_masters(t, *topo, report), 0u) << report.text;
        EXPECT_EQ(set.probed(), 1u);
        set.release_all();
    }
    mmio::detach(&smmu);
}

INSTANTIATE_TEST_SUITE_P(RealTrees, RealZcu102, ::testing::ValuesIn(kZcu102), [](const ::testing::TestParamInfo<const char*>& p) {
    std::string n = p.param;
    for (char& c : n) c = c == '-' || c == '.' ? '_' : c;
    return n;
});

}  // namespace
