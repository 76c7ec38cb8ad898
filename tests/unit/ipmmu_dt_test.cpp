// IPMMU topology from device trees, through the driver contract (common/registry.hpp): discovery
// reads the tree (and each cache's renesas,ipmmu-main), IommuSet::probe_all probes every IPMMU
// through the registry's kIpmmuOps, retrying a cache whose root has not probed yet, and
// check_masters runs every master's uTLB through IpmmuVmsa::xlate. What it proves:
//  - the Salvator-X subset in dts/, against register models at the H3 addresses: the product
//    register read once for the root and printed, root + five caches probed and described, the
//    masters blocked until attached, a master's DMA translated once it is;
//  - every instance probes, caches before their roots wait and are retried (two roots, caches
//    first in the tree), each cache on its own root;
//  - block_unattached off is said once; an env without a page pool refuses the root and writes
//    no register; no register at all (not even the PRR) is read when there is no IPMMU;
//  - binding mistakes (#iommu-cells, reg too small, renesas,ipmmu-main naming a cache, a node
//    that is no IPMMU, or malformed, a uTLB beyond 47, a root without interrupts, an unsupported
//    SoC revision) refused with one line naming the node, leaving what was right probed.
//  - the Spider subset in dts/ (R-Car S4, Gen4), against Gen4 register models at the S4
//    addresses: the product register from its node, root + four caches probed with 16 contexts
//    and 64 uTLBs, both DMACs' 32 uTLBs blocked until attached, a DMA translated once it is; a
//    Gen4 tree without the product register's node is refused (no fixed address to assume), and
//    Gen4 binding mistakes (Gen3's window size, a Gen3 cache on the Gen4 root, uTLB 64) each
//    refused naming the node;
// Plus the boards' consoles (SalvatorXConsole, SpiderConsole).
#include <libfdt.h>
#include <stdio.h>
#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "arch/mmio.hpp"
#include "common/discovery.hpp"
#include "common/io_domain.hpp"
#include "common/iommu_set.hpp"
#include "drivers/iommu/ipmmu_vmsa_dt.hpp"
#include "drivers/serial/scif.hpp"
#include "dt_support.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/ipmmu_model.hpp"
#include "ipmmu_rig.hpp"

using namespace moat;
using model::IpmmuModel;
using ipmmu_test::DtRig;
using ipmmu_test::kPrrH3Es30;

namespace {

constexpr uint32_t kUtlbBlocked = 0x71;  // IMUCTR: TTSEL 7 (the blocking context), FLUSH, MMUEN

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }
unsigned occurrences(const std::string& text, const std::string& what) {
    unsigned n = 0;
    for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) n++;
    return n;
}

// The line probe_all writes for a refused or still-waiting IPMMU.
std::string refused(const char* path, const char* why) {
    return std::string("ipmmu_vmsa: ") + path + ": " + why + "; its masters stay blocked\n";
}
std::string waits(const char* path, const char* root = "iommu@e67b0000") {
    return refused(path, (std::string("waits for its root ") + root + ", which has not probed").c_str());
}
const char* kRootH3 = "root: R-Car H3 ES3.0; 8 contexts, context 0 reserved, context 7 blocks unattached masters, 6 free; "
                      "stage-2 tables (IMSAUXCTLR.S2PTE, VA64); faults polled";  // no interrupt controller in the env

TEST(IpmmuDt, SalvatorXTopologyIsPrintedProbedAndTranslates) {
    DtRig r("board_salvator_x");
    EXPECT_TRUE(r.dt.report.text.empty()) << r.dt.report.text;
    uint32_t prr = 0;
    bool from_dt = true;
    ASSERT_EQ(read_prr(r.dt.tree, ipmmu::kGen3, prr, &from_dt), Status::ok);
    EXPECT_EQ(prr, kPrrH3Es30);
    EXPECT_FALSE(from_dt);  // the subset in dts/ has no renesas,prr node: Gen3's fixed address
    ASSERT_EQ(r.probe(), 0u) << r.report.text;
    EXPECT_EQ(r.set.problems(), 0u);
    EXPECT_EQ(r.set.probed(), 6u);
    EXPECT_EQ(r.report.text, std::string("ipmmu_vmsa: product register 0x00004f20 (R-Car H3, Gen3 fixed address)\n") +
                                 "ipmmu_vmsa: iommu@e67b0000 " + kRootH3 + "\n" +
                                 "ipmmu_vmsa: iommu@e6570000 cache -> root iommu@e67b0000 bit 2; masters on uTLBs 2\n"
                                 "ipmmu_vmsa: iommu@e7740000 cache -> root iommu@e67b0000 bit 1; masters on uTLBs 32, 33, "
                                 "34, 35\n"
                                 "ipmmu_vmsa: iommu@ec670000 cache -> root iommu@e67b0000 bit 4; masters on uTLBs none\n"
                                 "ipmmu_vmsa: iommu@fd800000 cache -> root iommu@e67b0000 bit 6; masters on uTLBs none\n"
                                 "ipmmu_vmsa: iommu@ff8b0000 cache -> root iommu@e67b0000 bit 3; masters on uTLBs none\n");

    dt_test::StrSink out;
    print_topology(r.dt.tree, *r.dt.topo, out);
    printf("%s%s", out.text.c_str(), r.report.text.c_str());  // the topology, as the image prints it
    EXPECT_TRUE(has(out.text, "compatible renesas,ipmmu-r8a7795, #iommu-cells 1, driver ipmmu_vmsa\n")) << out.text;
    EXPECT_FALSE(has(out.text, "not driven"));

    IpmmuVmsa* mm = r.ipmmu("/soc/iommu@e67b0000");
    IpmmuVmsa* ds1 = r.ipmmu("/soc/iommu@e7740000");
    ASSERT_TRUE(mm && ds1);
    EXPECT_TRUE(mm->is_root());
    EXPECT_EQ(ds1->root(), mm);
    EXPECT_EQ(ds1->main_bit(), 1u);

    // SDHI2 through IPMMU-DS1: the uTLB its `iommus` names, a domain, and a DMA that lands.
    Iommu* via = nullptr;
    StreamId utlb = 0;
    Why why;
    ASSERT_EQ(r.set.stream(r.master("/soc/mmc@ee140000"), 0, 0, via, utlb, why), Status::ok) << why.text();
    EXPECT_EQ(via, ds1);
    EXPECT_EQ(utlb, 34u);
    EXPECT_STREQ(via->name(), "iommu@e7740000");
    // Every master the tree names is blocked from probe on: SDHI0..3 on DS1, SATA on HC.
    IpmmuModel& ds1_m = r.model_at(0xe7740000);
    for (unsigned u = 0; u < 48; u++) EXPECT_EQ(ds1_m.imuctr(u), u >= 32 && u <= 35 ? kUtlbBlocked : 0u) << u;
    EXPECT_EQ(r.model_at(0xe6570000).imuctr(2), kUtlbBlocked);
    EXPECT_EQ(r.model_at(0xe6570000).imuctr(0), 0u);  // no master there: disabled
    PagePool& pool = *r.mem.pool;
    Result<uint64_t> page = pool.alloc();
    ASSERT_TRUE(page.ok());
    // SDHI2's DMA before it is attached, at an address that is real memory: a fault, reported.
    uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    IpmmuModel::Dma w = ds1_m.dma_write(34, page.value + 0x10, b, sizeof b);
    EXPECT_FALSE(w.ok || w.bypassed);
    EXPECT_EQ(w.fault, IpmmuModel::kTf);
    EXPECT_EQ(static_cast<uint8_t*>(pool.virt(page.value))[0x10], 0);
    FaultLog log;
    ASSERT_EQ(ds1->poll_faults(log), 1u);
    EXPECT_EQ(log.at(0).address, page.value + 0x10);
    EXPECT_EQ(log.at(0).kind, FaultKind::stream_disabled);
    EXPECT_STREQ(log.at(0).iommu, "iommu@e67b0000");  // five masters share the blocking context
    IoDomain d(pool, iopt::vmsa_s2(40, 40, false));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x20000000, page.value, kPageSize, {}).ok());
    ASSERT_EQ(d.attach(*via, utlb), Status::ok);
    ASSERT_TRUE(ds1_m.dma_write(34, 0x20000010, b, sizeof b).ok);
    EXPECT_EQ(memcmp(static_cast<uint8_t*>(pool.virt(page.value)) + 0x10, b, sizeof b), 0);
    ASSERT_EQ(d.destroy(), Status::ok);
    // Blocked again once its domain is gone.
    w = ds1_m.dma_write(34, 0x20000010, b, sizeof b);
    EXPECT_FALSE(w.ok || w.bypassed);
    EXPECT_EQ(ds1_m.imuctr(34), kUtlbBlocked);
    ASSERT_EQ(ds1->poll_faults(log), 1u);
    EXPECT_EQ(log.at(1).address, 0x20000010u);
}

// probe_all probes every instance, whatever the order of the tree: the caches come first here,
// find their roots not probed, and are probed again once both roots have, each on its own root.
TEST(IpmmuDt, CachesBeforeTheirRootsAreRetriedAndEveryRootProbes) {
    DtRig r("ipmmu_two_roots");
    ASSERT_EQ(r.dt.topo->niommus, 4u);
    EXPECT_EQ(r.dt.topo->iommus[0].upstream_node, r.dt.node("/soc/iommu@e67b0000"));  // discovery's link
    EXPECT_EQ(r.dt.topo->iommus[1].upstream_node, r.dt.node("/soc/iommu@e6800000"));
    ASSERT_EQ(r.probe(), 0u) << r.report.text;
    // Round 1: both caches wait (said nowhere yet), both roots probe; round 2: both caches.
    const std::string prr = "ipmmu_vmsa: product register 0x00004f20 (R-Car H3, Gen3 fixed address)\n";
    EXPECT_EQ(r.report.text, prr + "ipmmu_vmsa: iommu@e67b0000 " + kRootH3 + "\n" + prr + "ipmmu_vmsa: iommu@e6800000 " +
                                 kRootH3 + "\n" +
                                 "ipmmu_vmsa: iommu@e7740000 cache -> root iommu@e67b0000 bit 1; masters on uTLBs 32\n"
                                 "ipmmu_vmsa: iommu@e6570000 cache -> root iommu@e6800000 bit 2; masters on uTLBs 5\n");
    EXPECT_EQ(r.prr->reads(), 2u);  // once per root
    EXPECT_EQ(r.set.probed(), 4u);
    IpmmuVmsa* root_a = r.ipmmu("/soc/iommu@e67b0000");
    IpmmuVmsa* root_b = r.ipmmu("/soc/iommu@e6800000");
    IpmmuVmsa* cache_a = r.ipmmu("/soc/iommu@e7740000");
    IpmmuVmsa* cache_b = r.ipmmu("/soc/iommu@e6570000");
    ASSERT_TRUE(root_a && root_b && cache_a && cache_b);
    EXPECT_NE(root_a, root_b);
    EXPECT_TRUE(root_a->is_root() && root_b->is_root());
    EXPECT_EQ(cache_a->root(), root_a);
    EXPECT_EQ(cache_b->root(), root_b);
    EXPECT_NE(root_a->blocking_table(), root_b->blocking_table());  // a blocking table each
    EXPECT_EQ(r.mem.pool->used_pages(), root_a->blocking_table_pages() + root_b->blocking_table_pages());
    for (unsigned i = 0; i < 4; i++) EXPECT_EQ(r.set.status(i), Status::ok);

    // Each master blocked on its own cache; a fault behind cache B is root B's, not root A's.
    EXPECT_EQ(r.model_at(0xe7740000).imuctr(32), kUtlbBlocked);
    EXPECT_EQ(r.model_at(0xe6570000).imuctr(5), kUtlbBlocked);
    uint8_t v = 0x5a;
    IpmmuModel::Dma w = r.model_at(0xe6570000).dma_write(5, 0x1000, &v, 1);
    EXPECT_FALSE(w.ok || w.bypassed);
    FaultLog log;
    EXPECT_EQ(root_a->poll_faults(log), 0u);
    ASSERT_EQ(root_b->poll_faults(log), 1u);
    EXPECT_STREQ(log.at(0).iommu, "iommu@e6570000");  // the only master on root B's blocking context
    EXPECT_EQ(log.at(0).stream, 5u);

    // Released caches first, then roots; probing again gives the same four.
    r.set.release_all();
    EXPECT_EQ(r.set.probed(), 0u);
    EXPECT_EQ(r.ipmmu("/soc/iommu@e7740000"), nullptr);
    r.report.text.clear();
    ASSERT_EQ(r.probe(), 0u) << r.report.text;
    EXPECT_EQ(r.set.probed(), 4u);
}

// The integrator's choice for masters known to be quiesced: one more context, the masters not
// attached bypass, and the driver says so once per root.
TEST(IpmmuDt, BlockUnattachedOffIsSaidOnceAtProbe) {
    DtRig r("board_salvator_x", kPrrH3Es30, false);
    ASSERT_EQ(r.probe(), 0u) << r.report.text;
    const char* off = "ipmmu_vmsa: /soc/iommu@e67b0000: block_unattached is off: uTLBs of unattached masters pass DMA "
                      "untranslated\n";
    EXPECT_EQ(occurrences(r.report.text, off), 1u) << r.report.text;
    EXPECT_EQ(occurrences(r.report.text, "block_unattached"), 1u) << r.report.text;
    EXPECT_TRUE(has(r.report.text, "ipmmu_vmsa: iommu@e67b0000 root: R-Car H3 ES3.0; 8 contexts, context 0 reserved, 7 free; "
                                   "stage-2 tables (IMSAUXCTLR.S2PTE, VA64); faults polled\n"))
        << r.report.text;
    EXPECT_EQ(r.mem.pool->used_pages(), 0u);  // no blocking table
    EXPECT_EQ(r.model_at(0xe7740000).imuctr(34), 0u);
    uint8_t b = 0x42;
    EXPECT_TRUE(r.model_at(0xe7740000).dma_write(34, 0x20000010, &b, 1).bypassed);
}

// An env without a page pool cannot block: its roots are refused rather than left open while
// claiming otherwise (the image must give probe_all its pool), and no register is written.
TEST(IpmmuDt, EnvWithoutAPoolRefusesItsRootAndWritesNoRegister) {
    DtRig r("board_salvator_x");
    EXPECT_EQ(r.probe(nullptr), 6u);
    EXPECT_EQ(r.report.text,
              std::string("ipmmu_vmsa: product register 0x00004f20 (R-Car H3, Gen3 fixed address)\n") +
                  refused("/soc/iommu@e67b0000", "block_unattached without a page pool for the blocking table") +
                  waits("/soc/iommu@e6570000") + waits("/soc/iommu@e7740000") + waits("/soc/iommu@ec670000") +
                  waits("/soc/iommu@fd800000") + waits("/soc/iommu@ff8b0000"));
    EXPECT_EQ(r.set.status(r.index_of("/soc/iommu@e67b0000")), Status::invalid_argument);
    EXPECT_EQ(r.set.status(r.index_of("/soc/iommu@e7740000")), Status::not_ready);
    EXPECT_EQ(r.set.probed(), 0u);
    EXPECT_EQ(r.register_writes(), 0u);
    // The masters stay as they were (the models' uTLBs were never written) and are not translated.
    Iommu* via = nullptr;
    StreamId id = 0;
    Why why;
    EXPECT_EQ(r.set.stream(r.master("/soc/mmc@ee140000"), 0, 0, via, id, why), Status::not_ready);
    EXPECT_EQ(via, nullptr);
}

// Without IPMMUs (QEMU virt): not one register read, the product register's included. With
// them, the product register is read once, for the root, and said once.
TEST(IpmmuDt, ProductRegisterIsReadOncePerRootAndNeverWithoutIpmmus) {
    DtRig r("board_salvator_x");
    auto empty = std::make_unique<Topology>();
    dt_test::StrSink quiet;
    {
        IommuSet none;
        ProbeEnv e{r.dt.tree, *empty, r.mem.pool.get(), 40, nullptr, nullptr, quiet, nullptr};
        EXPECT_EQ(none.probe_all(e), 0u);
        EXPECT_EQ(none.check_masters(r.dt.tree, *empty, quiet), 0u);
        EXPECT_EQ(none.probed(), 0u);
    }
    EXPECT_TRUE(quiet.text.empty()) << quiet.text;
    EXPECT_EQ(r.prr->reads(), 0u);
    for (auto& m : r.models) EXPECT_EQ(m->register_reads() + m->register_writes(), 0u);

    ASSERT_EQ(r.probe(), 0u) << r.report.text;
    EXPECT_EQ(r.prr->reads(), 1u);
    EXPECT_EQ(occurrences(r.report.text, "product register"), 1u) << r.report.text;
}

// Through the registry's probe alone: a cache whose root has not probed asks to be probed again
// later (not_ready, the way Linux defers), having touched nothing.
TEST(IpmmuDt, CacheProbedBeforeItsRootWaits) {
    DtRig r("board_salvator_x");
    unsigned ds1 = r.index_of("/soc/iommu@e7740000");
    const DriverOps* ops = r.dt.topo->iommus[ds1].driver->ops;
    ASSERT_EQ(ops, &kIpmmuOps);
    ProbeEnv e = r.env(r.mem.pool.get());
    e.probed = &r.set;  // nothing probed yet
    Why why;
    EXPECT_EQ(ops->probe(e, ds1, why), nullptr);
    EXPECT_EQ(why.status(), Status::not_ready);
    EXPECT_STREQ(why.text(), "waits for its root iommu@e67b0000, which has not probed");
    EXPECT_EQ(r.register_writes(), 0u);
    EXPECT_EQ(r.prr->reads(), 0u);  // a cache never reads the product register
    EXPECT_TRUE(r.report.text.empty()) << r.report.text;
    // probe_all gets the root first and the cache after it.
    ASSERT_EQ(r.probe(), 0u) << r.report.text;
    IpmmuVmsa* cache = r.ipmmu("/soc/iommu@e7740000");
    ASSERT_NE(cache, nullptr);
    EXPECT_TRUE(cache->ready());
    EXPECT_EQ(cache->root(), r.ipmmu("/soc/iommu@e67b0000"));
}

TEST(IpmmuDt, BindingMistakesAreRefusedNamingTheNode) {
    DtRig r("ipmmu_bad");
    uint32_t prr = 0;
    bool from_dt = false;
    ASSERT_EQ(read_prr(r.dt.tree, ipmmu::kGen3, prr, &from_dt), Status::ok);
    EXPECT_TRUE(from_dt);
    EXPECT_EQ(r.probe(), 3u);
    EXPECT_EQ(r.set.problems(), 3u);
    EXPECT_EQ(r.report.text,
              std::string("ipmmu_vmsa: product register 0x00004f20 (R-Car H3, renesas,prr)\n") + "ipmmu_vmsa: iommu@e67b0000 " +
                  kRootH3 + "\n" + "ipmmu_vmsa: iommu@e7740000 cache -> root iommu@e67b0000 bit 1; masters on uTLBs 32\n" +
                  refused("/soc/iommu@e6570000", "#iommu-cells is 2; the IPMMU binding has exactly one cell (the uTLB)") +
                  refused("/soc/iommu@ec670000", "renesas,ipmmu-main names /soc/iommu@e7740000, which is not a root IPMMU "
                                                 "(it has renesas,ipmmu-main itself)") +
                  "dt: /soc/mmc@ee120000: iommus entry 0: uTLB 48 on iommu@e7740000 is out of range (R-Car Gen3 has 48); "
                  "device left blocked\n");
    // What was right still probed and keeps its good master.
    EXPECT_EQ(r.set.status(r.index_of("/soc/iommu@e7740000")), Status::ok);
    EXPECT_EQ(r.set.status(r.index_of("/soc/iommu@e6570000")), Status::bad_dt);
    EXPECT_EQ(r.set.status(r.index_of("/soc/iommu@ec670000")), Status::bad_dt);
    EXPECT_EQ(r.model_at(0xe6570000).register_writes(), 0u);
    EXPECT_EQ(r.model_at(0xec670000).register_writes(), 0u);
    IpmmuVmsa* good = r.ipmmu("/soc/iommu@e7740000");
    ASSERT_NE(good, nullptr);
    EXPECT_TRUE(good->utlb_blocked(32));
    EXPECT_FALSE(good->utlb_blocked(47));
    Iommu* via = nullptr;
    StreamId utlb = 0;
    Why why;
    ASSERT_EQ(r.set.stream(r.master("/soc/mmc@ee100000"), 0, 0, via, utlb, why), Status::ok) << why.text();
    EXPECT_EQ(via, good);
    EXPECT_EQ(utlb, 32u);
    // Refused whole by check_masters; the IPMMU's xlate says why.
    EXPECT_EQ(r.set.stream(r.master("/soc/mmc@ee120000"), 0, 0, via, utlb, why), Status::denied);
    const uint32_t utlb48 = 48;
    EXPECT_EQ(good->xlate(&utlb48, 1, utlb, why), Status::out_of_range);
    EXPECT_STREQ(why.text(), "uTLB 48 on iommu@e7740000 is out of range (R-Car Gen3 has 48)");
    EXPECT_EQ(r.set.stream(r.master("/soc/usb@ee020000"), 0, 0, via, utlb, why), Status::not_ready);
    EXPECT_EQ(via, nullptr);
}

TEST(IpmmuDt, MoreBindingMistakesAreRefusedNamingTheNode) {
    DtRig r("ipmmu_binding");
    EXPECT_EQ(r.probe(), 4u);
    EXPECT_EQ(r.report.text,
              std::string("ipmmu_vmsa: product register 0x00004f20 (R-Car H3, Gen3 fixed address)\n") +
                  "ipmmu_vmsa: iommu@e67b0000 " + kRootH3 + "\n" +
                  "ipmmu_vmsa: iommu@e7740000 cache -> root iommu@e67b0000 bit 1; masters on uTLBs 32\n" +
                  refused("/soc/iommu@e6570000", "reg must give the 0x1000-byte register window of an R-Car Gen3 IPMMU") +
                  refused("/soc/iommu@ec670000",
                          "renesas,ipmmu-main names /interrupt-controller@f1010000, which is not an IPMMU") +
                  refused("/soc/iommu@fd800000", "renesas,ipmmu-main is 4 bytes, expected <&root bit> (8)") +
                  refused("/soc/iommu@ff8b0000", "renesas,ipmmu-main bit 40 is beyond IMSSTR's 32 bits"));
    // Discovery parsed the link once and kept what was wrong with it.
    const IommuInfo& bit40 = r.dt.topo->iommus[r.index_of("/soc/iommu@ff8b0000")];
    EXPECT_EQ(bit40.upstream_node, -1);
    EXPECT_STREQ(bit40.upstream_problem, "renesas,ipmmu-main bit 40 is beyond IMSSTR's 32 bits");
    for (uintptr_t refused_at : {0xe6570000ul, 0xec670000ul, 0xfd800000ul, 0xff8b0000ul})
        EXPECT_EQ(r.model_at(refused_at).register_writes(), 0u) << std::hex << refused_at;
    EXPECT_EQ(r.set.probed(), 2u);
}

TEST(IpmmuDt, RootWithoutInterruptsIsRefused) {
    DtRig r("ipmmu_noirq", 0x5510);
    EXPECT_EQ(r.probe(), 2u);
    EXPECT_EQ(r.report.text,
              refused("/soc/iommu@e67b0000", "root IPMMU without interrupts: its faults could never be reported") +
                  waits("/soc/iommu@e7740000"));
    EXPECT_EQ(r.set.status(r.index_of("/soc/iommu@e67b0000")), Status::bad_dt);
    EXPECT_EQ(r.set.status(r.index_of("/soc/iommu@e7740000")), Status::not_ready);
    EXPECT_EQ(r.prr->reads(), 0u);  // refused from the tree alone
    EXPECT_EQ(r.register_writes(), 0u);
}

TEST(IpmmuDt, UnsupportedSocRevisionIsRefusedNamingTheRoot) {
    DtRig r("board_salvator_x", 0x4f10);
    // Its five caches wait: one line each, and nothing was written to any IPMMU.
    EXPECT_EQ(r.probe(), 6u);
    EXPECT_EQ(r.report.text,
              std::string("ipmmu_vmsa: product register 0x00004f10 (R-Car H3, Gen3 fixed address)\n") +
                  refused("/soc/iommu@e67b0000", "R-Car H3 ES2.0: its IPMMU cannot share stage-2 tables before ES3.0") +
                  waits("/soc/iommu@e6570000") + waits("/soc/iommu@e7740000") + waits("/soc/iommu@ec670000") +
                  waits("/soc/iommu@fd800000") + waits("/soc/iommu@ff8b0000"));
    EXPECT_EQ(r.set.status(r.index_of("/soc/iommu@e67b0000")), Status::unsupported);
    EXPECT_EQ(r.register_writes(), 0u);
    EXPECT_EQ(r.mem.pool->used_pages(), 0u);  // no blocking table taken for a refused root
}

// ---------------------------------------------------------------- R-Car S4 Spider (Gen4)

constexpr uint32_t kPrrS4 = 0x5a00;

TEST(IpmmuDt, SpiderTopologyIsProbedOnGen4ModelsAndTranslates) {
    DtRig r("board_spider", kPrrS4);
    EXPECT_TRUE(r.dt.report.text.empty()) << r.dt.report.text;
    ASSERT_EQ(r.dt.topo->niommus, 5u);
    ASSERT_EQ(r.dt.topo->nmasters, 2u);  // the two DMACs; SDHI0 has no IPMMU
    uint32_t prr = 0;
    bool from_dt = false;
    ASSERT_EQ(read_prr(r.dt.tree, ipmmu::kGen4, prr, &from_dt), Status::ok);
    EXPECT_EQ(prr, kPrrS4);
    EXPECT_TRUE(from_dt);
    ASSERT_EQ(r.probe(), 0u) << r.report.text;
    EXPECT_EQ(r.set.probed(), 5u);
    EXPECT_EQ(r.report.text,
              std::string("ipmmu_vmsa: product register 0x00005a00 (R-Car S4, renesas,prr)\n") +
                  "ipmmu_vmsa: iommu@eefc0000 root: R-Car S4 ES1.0; 16 contexts, context 0 reserved, context 15 blocks "
                  "unattached masters, 14 free; stage-2 tables (IMSAUXCTLR.S2PTE, VA64); faults polled\n"
                  "ipmmu_vmsa: iommu@ee480000 cache -> root iommu@eefc0000 bit 10; masters on uTLBs none\n"
                  "ipmmu_vmsa: iommu@ee4c0000 cache -> root iommu@eefc0000 bit 19; masters on uTLBs none\n"
                  "ipmmu_vmsa: iommu@eed00000 cache -> root iommu@eefc0000 bit 0; masters on uTLBs 0, 1, 2, 3, 4, 5, 6, 7, 8, "
                  "9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31\n"
                  "ipmmu_vmsa: iommu@eed40000 cache -> root iommu@eefc0000 bit 2; masters on uTLBs none\n");
    IpmmuVmsa* mm = r.ipmmu("/soc/iommu@eefc0000");
    IpmmuVmsa* ds0 = r.ipmmu("/soc/iommu@eed00000");
    ASSERT_TRUE(mm && ds0);
    EXPECT_EQ(&mm->generation(), &ipmmu::kGen4);
    EXPECT_EQ(ds0->root(), mm);
    EXPECT_EQ(ds0->caps().max_stream, 63u);
    // The root's controls at the Gen4 offsets: S2PTE in IMSAUXCTLR (0x1504), the blocking context
    // 15 enabled past the 0x600 step (0x10000 + 0x600 + 15 * 0x1040).
    IpmmuModel& mm_m = r.model_at(0xeefc0000);
    EXPECT_EQ(mmio::read32(0xeefc0000 + 0x1504) & 0x8, 0x8u);
    EXPECT_EQ(mmio::read32(0xeefc0000 + 0x10000 + 0x600 + 15 * 0x1040) & 0x1, 0x1u);
    EXPECT_EQ(mm_m.imctr(15), 1u << 29 | 0x4 | 0x1);
    // Both DMACs' uTLBs point at context 15 (TTSEL 15, MMUEN), read at 0x3300 + 16n.
    IpmmuModel& ds0_m = r.model_at(0xeed00000);
    for (unsigned u = 0; u < 64; u++) EXPECT_EQ(ds0_m.imuctr(u), u < 32 ? 0xf1u : 0u) << u;
    EXPECT_EQ(mmio::read32(0xeed00000 + 0x3300 + 16 * 17), 0xf1u);

    // DMAC1 channel 1 (uTLB 17): blocked, then translated once attached.
    Iommu* via = nullptr;
    StreamId utlb = 0;
    Why why;
    ASSERT_EQ(r.set.stream(r.master("/soc/dma-controller@e7351000"), 1, 0, via, utlb, why), Status::ok) << why.text();
    EXPECT_EQ(via, ds0);
    EXPECT_EQ(utlb, 17u);
    PagePool& pool = *r.mem.pool;
    Result<uint64_t> page = pool.alloc();
    ASSERT_TRUE(page.ok());
    uint8_t b[8] = {8, 7, 6, 5, 4, 3, 2, 1};
    IpmmuModel::Dma w = ds0_m.dma_write(17, page.value, b, sizeof b);
    EXPECT_FALSE(w.ok || w.bypassed);
    EXPECT_EQ(w.context, 15u);
    EXPECT_EQ(static_cast<uint8_t*>(pool.virt(page.value))[0], 0);
    FaultLog log;
    ASSERT_EQ(mm->poll_faults(log), 1u);
    EXPECT_EQ(log.at(0).kind, FaultKind::stream_disabled);
    EXPECT_EQ(log.at(0).address, page.value);
    IoDomain d(pool, iopt::vmsa_s2(40, 40, false));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x30000000, page.value, kPageSize, {}).ok());
    ASSERT_EQ(d.attach(*via, utlb), Status::ok);
    EXPECT_EQ(ds0_m.imuctr(17), 1u << 4 | 0x1);
    ASSERT_TRUE(ds0_m.dma_write(17, 0x30000008, b, sizeof b).ok);
    EXPECT_EQ(memcmp(static_cast<uint8_t*>(pool.virt(page.value)) + 8, b, sizeof b), 0);
    ASSERT_EQ(d.destroy(), Status::ok);
    EXPECT_EQ(ds0_m.imuctr(17), 0xf1u);
    // SDHI0 has no IPMMU: no master of any.
    EXPECT_LT(r.dt.topo->master_index(r.dt.node("/soc/mmc@ee140000")), 0);
}

// Gen4 has no product register at a fixed address in Linux: a tree without the node is refused
// at the root, naming it, before any register (the product register's included) is touched.
TEST(IpmmuDt, Gen4TreeWithoutTheProductRegisterNodeIsRefused) {
    std::vector<uint64_t> blob = load_dtb("board_spider");
    int n = fdt_path_offset(blob.data(), "/soc/chipid@fff00044");
    ASSERT_GE(n, 0);
    ASSERT_EQ(fdt_nop_node(blob.data(), n), 0);
    std::string path = std::string(::testing::TempDir()) + "spider_no_prr.dtb";
    FILE* f = fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(fwrite(blob.data(), 1, dtb_bytes(blob), f), dtb_bytes(blob));
    fclose(f);
    DtRig r(path.c_str(), kPrrS4);
    EXPECT_EQ(r.probe(), 5u);
    EXPECT_TRUE(has(r.report.text, refused("/soc/iommu@eefc0000",
                                           "no renesas,prr node: R-Car Gen4 has no product register at a fixed address moat may assume")))
        << r.report.text;
    EXPECT_EQ(occurrences(r.report.text, "waits for its root iommu@eefc0000"), 4u) << r.report.text;
    EXPECT_EQ(r.prr->reads(), 0u);
    EXPECT_EQ(r.register_writes(), 0u) << r.report.text;
}

// Gen4 binding mistakes, each refused alone naming its node: Gen3's window size, a Gen3 cache in
// front of the Gen4 root, a uTLB beyond Gen4's 64. What was right probes, uTLB 63 included.
TEST(IpmmuDt, Gen4BindingMistakesAreRefusedNamingTheNode) {
    DtRig r("ipmmu_gen4_bad", kPrrS4);
    EXPECT_EQ(r.probe(), 3u) << r.report.text;
    EXPECT_TRUE(has(r.report.text, refused("/soc/iommu@eed40000",
                                           "reg must give the 0x20000-byte register window of an R-Car Gen4 IPMMU")))
        << r.report.text;
    EXPECT_TRUE(has(r.report.text, refused("/soc/iommu@ee480000", "renesas,ipmmu-main names /soc/iommu@eefc0000, which is not "
                                                                  "an R-Car Gen3 IPMMU like this one")))
        << r.report.text;
    EXPECT_TRUE(has(r.report.text, "dt: /soc/mmc@ee160000: iommus entry 0: uTLB 64 on iommu@eed00000 is out of range "
                                   "(R-Car Gen4 has 64); device left blocked\n"))
        << r.report.text;
    EXPECT_EQ(r.set.probed(), 2u);
    EXPECT_EQ(r.model_at(0xeed40000).register_writes(), 0u);
    EXPECT_EQ(r.model_at(0xee480000).register_writes(), 0u);
    IpmmuVmsa* ds0 = r.ipmmu("/soc/iommu@eed00000");
    ASSERT_NE(ds0, nullptr);
    Iommu* via = nullptr;
    StreamId utlb = 0;
    Why why;
    ASSERT_EQ(r.set.stream(r.master("/soc/mmc@ee140000"), 0, 0, via, utlb, why), Status::ok) << why.text();
    EXPECT_EQ(via, ds0);
    EXPECT_EQ(utlb, 63u);
    EXPECT_TRUE(ds0->utlb_blocked(63));
    EXPECT_EQ(r.model_at(0xeed00000).imuctr(63), 0xf1u);  // at 0x37f0
    EXPECT_EQ(r.set.stream(r.master("/soc/mmc@ee160000"), 0, 0, via, utlb, why), Status::denied);
}

TEST(SpiderConsole, StdoutPathSelectsScif3) {
    auto blob = load_dtb("board_spider");
    dt::Tree t;
    ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok);
    Serial* s = serial_from_dt(t);  // serial0 -> scif3, compatible "renesas,scif"
    ASSERT_NE(s, nullptr);
    EXPECT_STREQ(s->name(), "scif");
}

// ---------------------------------------------------------------- the board's console

TEST(SalvatorXConsole, StdoutPathSelectsTheScif) {
    auto blob = load_dtb("board_salvator_x");
    dt::Tree t;
    ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok);
    Serial* s = serial_from_dt(t);  // serial0 -> scif2, compatible "renesas,scif"
    ASSERT_NE(s, nullptr);
    EXPECT_STREQ(s->name(), "scif");
}

// The transmit protocol on a register block in ordinary memory, which never sets TDFE again by
// itself: the first character goes out and clears TDFE and TEND (and nothing else), the next
// ones wait their bounded time and are counted as dropped.
TEST(SalvatorXConsole, ScifTransmitsWithBoundedWaits) {
    alignas(8) static uint8_t regs[0x40];
    memset(regs, 0, sizeof regs);
    auto fsr = [&] { uint16_t v; memcpy(&v, regs + 0x10, 2); return v; };
    uint16_t ready = Scif::kFsrTdfe | Scif::kFsrTend | Scif::kFsrDr;
    memcpy(regs + 0x10, &ready, 2);
    Scif scif(reinterpret_cast<uintptr_t>(regs));
    scif.write("A", 1);
    EXPECT_EQ(regs[0x0c], 'A');
    EXPECT_EQ(fsr(), Scif::kFsrDr);  // TDFE and TEND cleared by writing 0, DR untouched
    EXPECT_EQ(scif.dropped(), 0u);
    scif.write("\n", 1);  // "\r\n": neither finds room in the FIFO
    EXPECT_EQ(scif.dropped(), 2u);
    EXPECT_EQ(regs[0x0c], 'A');
}

}  // namespace
