// More than one SMMUv3 in a tree (tests/unit/data/two_smmuv3.dts): two register models at the
// addresses the tree gives, probed through IommuSet::probe_all with a HostIrqController and a
// FaultLog. What it proves:
//  - both instances probe, each reported on its own line, each binding its own named lines
//    (interrupt-names in a different order on the second);
//  - a master's stream resolves to the instance its `iommus` / `iommu-map` names, even with the
//    same stream id on both;
//  - DMA through each SMMU walks only that SMMU's tables, and a fault on one is reported by that
//    SMMU's event-queue line, named after it, with nothing on the other;
//  - a fifth instance (five_smmuv3.dts) is refused by name: more than kMaxSmmuV3 instances.
#include <gtest/gtest.h>

#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "arch/irq.hpp"
#include "arch/mmio.hpp"
#include "common/io_domain.hpp"
#include "common/iommu_set.hpp"
#include "drivers/iommu/smmu_v3.hpp"
#include "dt_support.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/smmu_v3_model.hpp"

using namespace moat;
using arch::host::HostIrqController;
using model::SmmuV3Model;

namespace {

struct Mapped {
    SmmuV3Model model;
    Mapped(model::PhysMem& mem, uintptr_t base) : model(mem, {}) {
        EXPECT_TRUE(mmio::attach(base, SmmuV3Model::kRegSize, &model));
    }
    ~Mapped() {
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
};

// A tree, a model at each given address, the controller and the log; the set is destroyed first
// (its instances shut down while their models are still mapped).
struct Board {
    model::HostPool mem{4096};
    model::PoolPhysMem phys{*mem.pool};
    HostIrqController ic;
    FaultLog log;
    std::vector<std::unique_ptr<Mapped>> models;
    dt_test::Loaded dt;
    IommuSet set;
    dt_test::StrSink report;
    unsigned refused = 0;

    Board(const char* tree, std::vector<uintptr_t> at) : dt(tree) {
        EXPECT_TRUE(mem.ok);
        for (uintptr_t b : at) models.push_back(std::make_unique<Mapped>(phys, b));
    }
    ~Board() { set.release_all(); }
    void probe() {
        ProbeEnv e{dt.tree, *dt.topo, mem.pool.get(), 40, &ic, &log, report, nullptr};
        refused = set.probe_all(e);
        refused += set.check_masters(dt.tree, *dt.topo, report);
    }
    SmmuV3* smmu(const char* path) { return static_cast<SmmuV3*>(set.at_node(dt.node(path))); }
    const MasterInfo& master(const char* path) {
        int i = dt.topo->master_index(dt.node(path));
        EXPECT_GE(i, 0) << path;
        return dt.topo->masters[i < 0 ? 0 : i];
    }
    std::string describe(const Iommu* i) {
        dt_test::StrSink s;
        if (i) i->describe(s);
        return s.text;
    }
};

constexpr uintptr_t kBase0 = 0x09050000, kBase1 = 0x09100000;
constexpr unsigned kEvtq0 = 74 + 32, kGerr0 = 79 + 32, kEvtq1 = 84 + 32, kGerr1 = 89 + 32;
const char* kSmmu0 = "/soc/iommu@9050000";
const char* kSmmu1 = "/soc/iommu@9100000";

struct TwoSmmus : Board {
    TwoSmmus() : Board("two_smmuv3", {kBase0, kBase1}) {
        models[0]->model.connect_irq(&ic, kEvtq0, kGerr0);
        models[1]->model.connect_irq(&ic, kEvtq1, kGerr1);
        probe();
    }
    SmmuV3Model& m0() { return models[0]->model; }
    SmmuV3Model& m1() { return models[1]->model; }
};

std::vector<uint8_t> fill(size_t n, uint8_t v) { return std::vector<uint8_t>(n, v); }

TEST(SmmuV3Multi, BothInstancesProbeFromTheTreeWithTheirOwnLines) {
    TwoSmmus b;
    EXPECT_EQ(b.refused, 0u) << b.report.text;
    SmmuV3* s0 = b.smmu(kSmmu0);
    SmmuV3* s1 = b.smmu(kSmmu1);
    ASSERT_NE(s0, nullptr) << b.report.text;
    ASSERT_NE(s1, nullptr) << b.report.text;
    EXPECT_NE(s0, s1);
    EXPECT_EQ(b.set.probed(), 2u);
    // Exactly one line each, in tree order, with what describe() says.
    EXPECT_EQ(b.report.text, "smmu_v3:  iommu@9050000 " + b.describe(s0) + "\nsmmu_v3:  iommu@9100000 " + b.describe(s1) + "\n");
    for (SmmuV3* s : {s0, s1}) {
        std::string d = b.describe(s);
        EXPECT_EQ(d.rfind("enabled: stage 1 yes, stage 2 no, OAS 40 bits, coherent walks, range invalidation, ", 0), 0u) << d;
        EXPECT_NE(d.find(", faults by interrupt, every stream aborts until attached"), std::string::npos) << d;
        EXPECT_TRUE(s->interrupt_driven());
    }
    // Each bound its own lines, by name (the second lists gerror first).
    for (unsigned id : {kEvtq0, kGerr0, kEvtq1, kGerr1}) EXPECT_TRUE(b.ic.bound(id) && b.ic.enabled(id)) << id;
    EXPECT_EQ(b.m0().irq_ctrl(), 5u);
    EXPECT_EQ(b.m1().irq_ctrl(), 5u);
    // Each model was programmed by its own instance only.
    EXPECT_NE(b.m0().commands_total(), 0u);
    EXPECT_EQ(b.m0().commands_total(), s0->commands_issued());
    EXPECT_EQ(b.m1().commands_total(), s1->commands_issued());
    EXPECT_NE(b.m0().strtab_base_cfg(), 0u);
    b.set.release_all();
    for (unsigned id : {kEvtq0, kGerr0, kEvtq1, kGerr1}) EXPECT_FALSE(b.ic.bound(id)) << id;
}

TEST(SmmuV3Multi, StreamsResolveToTheirOwnInstanceAndDmaUsesOnlyItsTables) {
    TwoSmmus b;
    ASSERT_EQ(b.refused, 0u) << b.report.text;
    SmmuV3* s0 = b.smmu(kSmmu0);
    SmmuV3* s1 = b.smmu(kSmmu1);
    ASSERT_TRUE(s0 && s1);
    Iommu* via = nullptr;
    StreamId sd = 0, eth = 0, pci = 0;
    Why why;
    ASSERT_EQ(b.set.stream(b.master("/soc/sd@ee100000"), 0, 5, via, sd, why), Status::ok) << why.text();
    EXPECT_EQ(via, s0);
    EXPECT_EQ(sd, 5u);
    ASSERT_EQ(b.set.stream(b.master("/soc/eth@ee200000"), 0, 5, via, eth, why), Status::ok) << why.text();
    EXPECT_EQ(via, s1);  // the same stream id, on the other SMMU
    EXPECT_EQ(eth, 5u);
    ASSERT_EQ(b.set.stream_of_rid(b.dt.tree, b.master("/pcie@10000000"), 0x8, via, pci, why), Status::ok) << why.text();
    EXPECT_EQ(via, s1);
    EXPECT_EQ(pci, 0x108u);

    // The same IOVA mapped to a different page on each SMMU.
    PagePool& pool = *b.mem.pool;
    uint64_t page0 = pool.alloc().value, page1 = pool.alloc().value, only0 = pool.alloc().value;
    IoDomain d0(pool, iopt::vmsa_s1(39, s0->caps().oas, true)), d1(pool, iopt::vmsa_s1(39, s1->caps().oas, true));
    ASSERT_EQ(d0.init(), Status::ok);
    ASSERT_EQ(d1.init(), Status::ok);
    ASSERT_TRUE(d0.map(0x1000, page0, kPageSize, {}).ok());
    ASSERT_TRUE(d0.map(0x2000, only0, kPageSize, {}).ok());  // on the first SMMU only
    ASSERT_TRUE(d1.map(0x1000, page1, kPageSize, {}).ok());
    ASSERT_EQ(d0.attach(*s0, sd), Status::ok);
    ASSERT_EQ(d1.attach(*s1, eth), Status::ok);
    ASSERT_EQ(d1.attach(*s1, pci), Status::ok);
    auto* p0 = static_cast<uint8_t*>(pool.virt(page0));
    auto* p1 = static_cast<uint8_t*>(pool.virt(page1));
    auto* o0 = static_cast<uint8_t*>(pool.virt(only0));

    std::vector<uint8_t> a = fill(64, 0xa0), c = fill(64, 0xc1), e = fill(64, 0xe2);
    SmmuV3Model::Dma w = b.m0().dma_write(5, 0x1000, a.data(), a.size());
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.pa, page0);
    w = b.m1().dma_write(5, 0x1000, c.data(), c.size());
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.pa, page1);
    EXPECT_EQ(memcmp(p0, a.data(), a.size()), 0);
    EXPECT_EQ(memcmp(p1, c.data(), c.size()), 0);
    w = b.m1().dma_write(0x108, 0x1040, e.data(), e.size());  // PCI RID 0x8 through the second
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.pa, page1 + 0x40);
    EXPECT_EQ(p0[0x40], 0);
    // 0x2000 exists in the first SMMU's tables only: through the second it faults, nothing moves.
    EXPECT_TRUE(b.m0().dma_write(5, 0x2000, a.data(), 16).ok);
    EXPECT_EQ(o0[0], 0xa0);
    memset(o0, 0, 16);
    EXPECT_EQ(b.m1().dma_write(5, 0x2000, c.data(), 16).event, model::smmu_evt::kTranslation);
    EXPECT_EQ(o0[0], 0);
    // The second SMMU's stream 0x108 is not the first's: there it was never attached.
    EXPECT_FALSE(b.m0().dma_write(0x108, 0x1000, e.data(), 16).ok);

    ASSERT_EQ(d0.detach(*s0, sd), Status::ok);
    ASSERT_EQ(d1.detach(*s1, eth), Status::ok);
    ASSERT_EQ(d1.detach(*s1, pci), Status::ok);
}

TEST(SmmuV3Multi, AFaultIsReportedByTheSmmuItHappenedOnOnly) {
    TwoSmmus b;
    ASSERT_EQ(b.refused, 0u) << b.report.text;
    SmmuV3* s0 = b.smmu(kSmmu0);
    SmmuV3* s1 = b.smmu(kSmmu1);
    ASSERT_TRUE(s0 && s1);
    PagePool& pool = *b.mem.pool;
    IoDomain d0(pool, iopt::vmsa_s1(39, s0->caps().oas, true)), d1(pool, iopt::vmsa_s1(39, s1->caps().oas, true));
    ASSERT_EQ(d0.init(), Status::ok);
    ASSERT_EQ(d1.init(), Status::ok);
    ASSERT_EQ(d0.attach(*s0, 5), Status::ok);
    ASSERT_EQ(d1.attach(*s1, 5), Status::ok);

    uint8_t buf[16] = {};
    EXPECT_EQ(b.m1().dma_write(5, 0x7000, buf, sizeof buf).event, model::smmu_evt::kTranslation);
    ASSERT_EQ(b.log.total(), 1u);  // by the interrupt: nobody polled
    const FaultRecord& f = b.log.at(0);
    EXPECT_STREQ(f.iommu, "iommu@9100000");
    EXPECT_EQ(f.stream, 5u);
    EXPECT_EQ(f.address, 0x7000u);
    EXPECT_EQ(f.kind, FaultKind::translation);
    EXPECT_EQ(b.ic.deliveries(kEvtq1), 1u);
    EXPECT_EQ(b.ic.eois(kEvtq1), 1u);
    EXPECT_EQ(b.ic.deliveries(kEvtq0), 0u);
    EXPECT_EQ(s1->interrupts(), 1u);
    EXPECT_EQ(s0->interrupts(), 0u);
    EXPECT_TRUE(b.m0().events().empty());
    EXPECT_EQ(s0->poll_faults(b.log), 0u);  // the first SMMU has nothing to say

    // And the other way round.
    EXPECT_EQ(b.m0().dma_write(5, 0x8000, buf, sizeof buf).event, model::smmu_evt::kTranslation);
    ASSERT_EQ(b.log.total(), 2u);
    EXPECT_STREQ(b.log.at(1).iommu, "iommu@9050000");
    EXPECT_EQ(b.log.at(1).address, 0x8000u);
    EXPECT_EQ(b.ic.deliveries(kEvtq0), 1u);
    EXPECT_EQ(b.ic.deliveries(kEvtq1), 1u);
    EXPECT_EQ(b.ic.spurious(), 0u);

    ASSERT_EQ(d0.detach(*s0, 5), Status::ok);
    ASSERT_EQ(d1.detach(*s1, 5), Status::ok);
}

TEST(SmmuV3Multi, AFifthInstanceIsRefusedByName) {
    std::vector<uintptr_t> at;
    for (unsigned i = 0; i < 5; i++) at.push_back(0x09100000 + i * 0x100000);
    Board b("five_smmuv3", at);
    b.probe();
    EXPECT_EQ(b.set.probed(), 4u) << b.report.text;
    EXPECT_EQ(b.set.at_node(b.dt.node("/soc/iommu@9500000")), nullptr);
    EXPECT_NE(b.report.text.find("smmu_v3: /soc/iommu@9500000: more than 4 SMMUv3 (kMaxSmmuV3) instances; its masters stay blocked\n"),
              std::string::npos)
        << b.report.text;
    // The refused instance was never enabled and bound no line; the four others bound theirs.
    EXPECT_EQ(b.models[4]->model.cr0(), 0u);
    EXPECT_EQ(b.models[4]->model.commands_total(), 0u);
    EXPECT_FALSE(b.ic.bound(108 + 32));
    EXPECT_FALSE(b.ic.bound(109 + 32));
    for (unsigned i = 0; i < 4; i++) EXPECT_TRUE(b.ic.bound(100 + 2 * i + 32)) << i;
    // Its master is refused with it; the others' resolve.
    Iommu* via = nullptr;
    StreamId id = 0;
    Why why;
    EXPECT_NE(b.set.stream(b.master("/soc/dev@ee140000"), 0, 5, via, id, why), Status::ok);
    EXPECT_EQ(b.set.stream(b.master("/soc/dev@ee130000"), 0, 4, via, id, why), Status::ok) << why.text();
    EXPECT_EQ(via, b.set.at_node(b.dt.node("/soc/iommu@9400000")));
}

}  // namespace
