// `moat-dt check`'s wiring checks (xen-compat/wiring_check.hpp).
#include "dt_support.hpp"
#include "xen-compat/wiring_check.hpp"

using namespace moat;
using namespace moat::xen;
using namespace dt_test;

namespace {

TEST(DtWiring, ReportsEachProblemOnceWithTheNode) {
    Loaded l("dt_wiring");
    EXPECT_EQ(l.topo->problems, 0u) << l.report.text;  // all of it passes discovery
    StrSink out;
    unsigned n = check_wiring(l.tree, *l.topo, out);
    const char* expected[] = {
        "dt: /iommu@4000: #iommu-cells is 2, the renesas,ipmmu-r8a7795 binding needs 1\n",
        "dt: /sd9@31000: uTLB 0x30 on /iommu@2000 is out of range (at most 0x2f)\n",
        "dt: /wide@34000: stream mask 0x10000 on /iommu@10000 is out of range (at most 0xffff)\n",
        "dt: /virtio@37400: backend domid 0x7ff0 on /xen_iommu is out of range (at most 0x7fef)\n",
        "dt: /iommu@3000: renesas,ipmmu-main points at /iommu@2000, which is a cache IPMMU, not the root\n",
        "dt: /pcie@40000: iommu-map entries 0 and 1 overlap at requester id 0x80\n",
        "dt: /gem0@32000: stream 0x870 on /iommu@10000 is also claimed by /gem1@33000\n",
        "dt: /dev0@35000: stream 0x5 on /iommu@20000 is also claimed by /dev1@36000\n",
    };
    for (const char* e : expected) EXPECT_NE(out.text.find(e), std::string::npos) << "missing: " << e << "got:\n" << out.text;
    EXPECT_EQ(n, sizeof expected / sizeof expected[0]) << out.text;
    EXPECT_EQ(out.text.find("virtio@37200"), std::string::npos) << "a shared grant backend is not a conflict";
}

TEST(DtWiring, BoardTreesAreClean) {
    for (const char* name : {"board_zcu102", "board_salvator_x", "topology"}) {
        Loaded l(name);
        StrSink out;
        EXPECT_EQ(check_wiring(l.tree, *l.topo, out), 0u) << name << ":\n" << out.text;
    }
}

}  // namespace
