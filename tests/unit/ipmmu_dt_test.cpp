// IPMMU topology from device trees: the Salvator-X subset in dts/ (printed, probed against
// register models at the H3 addresses, its masters blocked until attached and a master's DMA
// translated through it), and trees with each binding mistake, every one refused with a
// message naming the node.
#include <stdio.h>
#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "arch/mmio.hpp"
#include "common/discovery.hpp"
#include "common/io_domain.hpp"
#include "drivers/iommu/ipmmu_vmsa_dt.hpp"
#include "drivers/serial/scif.hpp"
#include "dt_fixture.hpp"
#include "tests/models/ipmmu_model.hpp"

using namespace moat;
using model::IpmmuModel;

namespace {

constexpr uint64_t kPhysBase = 0x80000000;
constexpr uint32_t kPrrH3Es30 = 0x4f20;

class StringSink final : public Sink {
public:
    void write(const char* s, size_t n) override { text.append(s, n); }
    std::string text;
};

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

// A tree, what discovery made of it, register models wherever the tree puts an IPMMU (the first
// root found is the models' root), the product register, and the IPMMU set under test.
struct DtRig {
    std::vector<uint64_t> blob;
    dt::Tree t;
    std::unique_ptr<Topology> topo = std::make_unique<Topology>();
    std::vector<uint8_t> buf;
    std::unique_ptr<PagePool> pool;
    std::unique_ptr<model::PoolPhysMem> mem;
    std::vector<std::unique_ptr<IpmmuModel>> models;
    std::vector<uintptr_t> bases;
    std::unique_ptr<model::PrrModel> prr;
    std::unique_ptr<IpmmuSet> set;
    StringSink report;

    DtRig(const char* name, uint32_t prr_value = kPrrH3Es30, bool block_unattached = true)
        : blob(load_dtb(name)), buf(513 * kPageSize) {
        EXPECT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok) << t.error();
        EXPECT_EQ(discover(t, *topo, report), Status::ok);
        uintptr_t host = align_up(reinterpret_cast<uintptr_t>(buf.data()), kPageSize);
        pool = std::make_unique<PagePool>(host - kPhysBase);
        EXPECT_EQ(pool->add_region(kPhysBase, 512 * kPageSize), Status::ok);
        mem = std::make_unique<model::PoolPhysMem>(*pool);
        set = std::make_unique<IpmmuSet>(*pool, block_unattached);
        IpmmuModel* root = nullptr;
        for (unsigned i = 0; i < topo->niommus; i++)
            if (!t.has(topo->iommus[i].node, "renesas,ipmmu-main") && !root) {
                models.push_back(std::make_unique<IpmmuModel>(*mem));
                root = models.back().get();
                bases.push_back(static_cast<uintptr_t>(topo->iommus[i].regs[0].addr));
                EXPECT_TRUE(mmio::attach(bases.back(), IpmmuModel::kRegSize, root));
            }
        for (unsigned i = 0; i < topo->niommus; i++)
            if (t.has(topo->iommus[i].node, "renesas,ipmmu-main")) {
                models.push_back(std::make_unique<IpmmuModel>(*root, 0));
                bases.push_back(static_cast<uintptr_t>(topo->iommus[i].regs[0].addr));
                EXPECT_TRUE(mmio::attach(bases.back(), IpmmuModel::kRegSize, models.back().get()));
            }
        prr = std::make_unique<model::PrrModel>(prr_value);
        EXPECT_TRUE(mmio::attach(0xfff00044, 4, prr.get()));
    }
    ~DtRig() {
        set->shutdown();
        for (auto& m : models) {
            mmio::detach(m.get());
            for (const std::string& v : m->violations()) ADD_FAILURE() << "model: " << v;
        }
        mmio::detach(prr.get());
    }
    IpmmuModel& model_at(uintptr_t base) {
        for (size_t i = 0; i < models.size(); i++)
            if (bases[i] == base) return *models[i];
        ADD_FAILURE() << "no model at " << std::hex << base;
        return *models.front();
    }
    int index_of(const char* path) { return topo->iommu_index(t.find_path(path)); }
};

TEST(IpmmuDt, SalvatorXTopologyIsPrintedProbedAndTranslates) {
    DtRig r("board_salvator_x");
    EXPECT_TRUE(r.report.text.empty()) << r.report.text;
    uint32_t prr = 0;
    bool from_dt = true;
    ASSERT_EQ(read_prr(r.t, prr, &from_dt), Status::ok);
    EXPECT_EQ(prr, kPrrH3Es30);
    EXPECT_FALSE(from_dt);  // the subset in dts/ has no renesas,prr node: Gen3's fixed address
    ASSERT_EQ(r.set->probe_all(r.t, *r.topo, prr, r.report), Status::ok);
    EXPECT_EQ(r.set->problems(), 0u) << r.report.text;
    EXPECT_EQ(r.set->count(), 6u);

    StringSink out;
    print_topology(r.t, *r.topo, out);
    r.set->print(r.t, out);
    printf("%s", out.text.c_str());  // the topology, as the image prints it
    EXPECT_TRUE(has(out.text, "compatible renesas,ipmmu-r8a7795, #iommu-cells 1, driver ipmmu_vmsa\n")) << out.text;
    EXPECT_FALSE(has(out.text, "not implemented"));
    EXPECT_TRUE(has(out.text, "ipmmu: root iommu@e67b0000: R-Car H3 ES3.0; 8 contexts, context 0 reserved, context 7 "
                              "blocks unattached masters, 6 free; stage-2 tables (IMSAUXCTLR.S2PTE, VA64)\n")) << out.text;
    EXPECT_TRUE(has(out.text, "ipmmu: cache iommu@e7740000 -> root iommu@e67b0000 bit 1; masters: /soc/mmc@ee100000 uTLB 32, "
                              "/soc/mmc@ee120000 uTLB 33, /soc/mmc@ee140000 uTLB 34, /soc/mmc@ee160000 uTLB 35\n"))
        << out.text;
    EXPECT_TRUE(has(out.text, "ipmmu: cache iommu@e6570000 -> root iommu@e67b0000 bit 2; masters: /soc/usb@ee000000 uTLB 0\n"));
    EXPECT_TRUE(has(out.text, "ipmmu: cache iommu@fd800000 -> root iommu@e67b0000 bit 6; masters: none\n"));
    EXPECT_TRUE(has(out.text, "ipmmu: cache iommu@ff8b0000 -> root iommu@e67b0000 bit 3; masters: none\n"));

    // SDHI2 through IPMMU-DS1: the uTLB its `iommus` names, a domain, and a DMA that lands.
    int sdhi2 = r.t.find_path("/soc/mmc@ee140000");
    uint32_t utlb = 0;
    IpmmuVmsa* ds1 = r.set->iommu_of(sdhi2, 0, utlb);
    ASSERT_NE(ds1, nullptr);
    EXPECT_EQ(utlb, 34u);
    EXPECT_STREQ(ds1->name(), "iommu@e7740000");
    // Every master the tree names is blocked from probe on: SDHI0..3 on DS1, USB on HC.
    IpmmuModel& ds1_m = r.model_at(0xe7740000);
    for (unsigned u = 0; u < 48; u++) EXPECT_EQ(ds1_m.imuctr(u), u >= 32 && u <= 35 ? 0x71u : 0u) << u;
    EXPECT_EQ(r.model_at(0xe6570000).imuctr(0), 0x71u);
    Result<uint64_t> page = r.pool->alloc();
    ASSERT_TRUE(page.ok());
    // SDHI2's DMA before it is attached, at an address that is real memory: a fault, reported.
    uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    IpmmuModel::Dma w = ds1_m.dma_write(34, page.value + 0x10, b, sizeof b);
    EXPECT_FALSE(w.ok || w.bypassed);
    EXPECT_EQ(w.fault, IpmmuModel::kTf);
    EXPECT_EQ(static_cast<uint8_t*>(r.pool->virt(page.value))[0x10], 0);
    FaultLog log;
    ASSERT_EQ(ds1->poll_faults(log), 1u);
    EXPECT_EQ(log.at(0).address, page.value + 0x10);
    EXPECT_EQ(log.at(0).kind, FaultKind::stream_disabled);
    EXPECT_STREQ(log.at(0).iommu, "iommu@e67b0000");  // five masters share the blocking context
    IoDomain d(*r.pool, iopt::vmsa_s2(40, 40, false));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x20000000, page.value, kPageSize, {}).ok());
    ASSERT_EQ(d.attach(*ds1, utlb), Status::ok);
    ASSERT_TRUE(ds1_m.dma_write(34, 0x20000010, b, sizeof b).ok);
    EXPECT_EQ(memcmp(static_cast<uint8_t*>(r.pool->virt(page.value)) + 0x10, b, sizeof b), 0);
    ASSERT_EQ(d.destroy(), Status::ok);
    // Blocked again once its domain is gone.
    w = ds1_m.dma_write(34, 0x20000010, b, sizeof b);
    EXPECT_FALSE(w.ok || w.bypassed);
    EXPECT_EQ(ds1_m.imuctr(34), 0x71u);
    ASSERT_EQ(ds1->poll_faults(log), 1u);
    EXPECT_EQ(log.at(1).address, 0x20000010u);
}

// The integrator's choice for masters known to be quiesced: one more context, the masters not
// attached bypass, and the driver says so once per root.
TEST(IpmmuDt, BlockUnattachedOffIsSaidOnceAtProbe) {
    DtRig r("board_salvator_x", kPrrH3Es30, false);
    ASSERT_EQ(r.set->probe_all(r.t, *r.topo, kPrrH3Es30, r.report), Status::ok);
    EXPECT_EQ(r.set->problems(), 0u) << r.report.text;
    EXPECT_EQ(r.report.text, "ipmmu: /soc/iommu@e67b0000: block_unattached is off: uTLBs of unattached masters pass DMA "
                             "untranslated\n");
    StringSink out;
    r.set->print(r.t, out);
    EXPECT_TRUE(has(out.text, "ipmmu: root iommu@e67b0000: R-Car H3 ES3.0; 8 contexts, context 0 reserved, 7 free; "
                              "stage-2 tables")) << out.text;
    EXPECT_EQ(r.model_at(0xe7740000).imuctr(34), 0u);
    uint8_t b = 0x42;
    EXPECT_TRUE(r.model_at(0xe7740000).dma_write(34, 0x20000010, &b, 1).bypassed);
}

// A set built without a page pool cannot block: its roots are refused rather than left open
// while claiming otherwise (the image must build its IpmmuSet with the pool).
TEST(IpmmuDt, SetWithoutAPoolRefusesItsRoot) {
    DtRig r("board_salvator_x");
    IpmmuSet bare;
    StringSink out;
    EXPECT_GT(probe_ipmmus(r.t, *r.topo, bare, 40, out), 0u);
    EXPECT_TRUE(has(out.text, "ipmmu: /soc/iommu@e67b0000: block_unattached without a page pool for the blocking table; "
                              "refused")) << out.text;
    for (auto& m : r.models) EXPECT_EQ(m->register_writes(), 0u);
}

TEST(IpmmuDt, ImageHookProbesAndPrintsOnlyWhenThereAreIpmmus) {
    DtRig r("board_salvator_x");
    // Without IPMMUs (QEMU virt): not one register read, the product register's included.
    static Topology empty;
    StringSink quiet;
    EXPECT_EQ(probe_ipmmus(r.t, empty, *r.set, 40, quiet), 0u);
    EXPECT_TRUE(quiet.text.empty());
    EXPECT_EQ(r.prr->reads(), 0u);
    StringSink out;
    EXPECT_EQ(probe_ipmmus(r.t, *r.topo, *r.set, 40, out), 0u) << out.text;
    EXPECT_TRUE(has(out.text, "ipmmu: product register 0x00004f20 (R-Car H3, Gen3 fixed address)\n")) << out.text;
    EXPECT_TRUE(has(out.text, "ipmmu: cache iommu@e7740000 -> root iommu@e67b0000 bit 1; masters: /soc/mmc@ee100000 uTLB 32"));
}

TEST(IpmmuDt, CacheProbedBeforeItsRootWaits) {
    DtRig r("board_salvator_x");
    int ds1 = r.index_of("/soc/iommu@e7740000"), mm = r.index_of("/soc/iommu@e67b0000");
    ASSERT_GE(ds1, 0);
    ASSERT_GE(mm, 0);
    EXPECT_EQ(r.set->probe_node(r.t, *r.topo, static_cast<unsigned>(ds1), kPrrH3Es30, r.report), Status::not_ready);
    EXPECT_TRUE(has(r.report.text, "ipmmu: /soc/iommu@e7740000: waits for its root iommu@e67b0000, which has not probed\n"))
        << r.report.text;
    EXPECT_EQ(r.set->probe_node(r.t, *r.topo, static_cast<unsigned>(mm), kPrrH3Es30, r.report), Status::ok);
    EXPECT_EQ(r.set->probe_node(r.t, *r.topo, static_cast<unsigned>(ds1), kPrrH3Es30, r.report), Status::ok);
    EXPECT_TRUE(r.set->find(r.t.find_path("/soc/iommu@e7740000"))->iommu.ready());
}

TEST(IpmmuDt, BindingMistakesAreRefusedNamingTheNode) {
    DtRig r("ipmmu_bad");
    uint32_t prr = 0;
    bool from_dt = false;
    ASSERT_EQ(read_prr(r.t, prr, &from_dt), Status::ok);
    EXPECT_TRUE(from_dt);
    ASSERT_EQ(r.set->probe_all(r.t, *r.topo, prr, r.report), Status::ok);
    const std::string& rep = r.report.text;
    EXPECT_TRUE(has(rep, "ipmmu: /soc/iommu@e6570000: #iommu-cells is 2; the IPMMU binding has exactly one cell (the uTLB); "
                         "refused, its masters are left untranslated\n")) << rep;
    EXPECT_TRUE(has(rep, "ipmmu: /soc/iommu@ec670000: renesas,ipmmu-main names /soc/iommu@e7740000, which is not a root "
                         "IPMMU (it has renesas,ipmmu-main itself); refused")) << rep;
    EXPECT_TRUE(has(rep, "ipmmu: /soc/mmc@ee120000: iommus entry 0: uTLB 48 on /soc/iommu@e7740000 is out of range "
                         "(R-Car Gen3 has 48); entry ignored\n")) << rep;
    EXPECT_EQ(r.set->problems(), 3u) << rep;
    // What was right still probed and keeps its good master.
    const IpmmuSet::Unit* good = r.set->find(r.t.find_path("/soc/iommu@e7740000"));
    ASSERT_NE(good, nullptr);
    EXPECT_EQ(good->status, Status::ok);
    ASSERT_EQ(good->nmasters, 1u);
    EXPECT_EQ(good->masters[0].utlb, 32u);
    EXPECT_EQ(r.set->find(r.t.find_path("/soc/iommu@e6570000"))->status, Status::bad_dt);
    EXPECT_EQ(r.set->find(r.t.find_path("/soc/iommu@ec670000"))->status, Status::bad_dt);
    uint32_t utlb;
    EXPECT_EQ(r.set->iommu_of(r.t.find_path("/soc/usb@ee020000"), 0, utlb), nullptr);
}

TEST(IpmmuDt, RootWithoutInterruptsIsRefused) {
    DtRig r("ipmmu_noirq", 0x5510);
    ASSERT_EQ(r.set->probe_all(r.t, *r.topo, 0x5510, r.report), Status::ok);
    EXPECT_TRUE(has(r.report.text, "ipmmu: /soc/iommu@e67b0000: root IPMMU without interrupts: its faults could never be "
                                   "reported; refused")) << r.report.text;
    EXPECT_TRUE(has(r.report.text, "ipmmu: /soc/iommu@e7740000: waits for its root iommu@e67b0000")) << r.report.text;
    EXPECT_EQ(r.set->problems(), 2u);
    StringSink out;
    r.set->print(r.t, out);
    EXPECT_TRUE(has(out.text, "ipmmu: root iommu@e67b0000: refused (bad device tree)")) << out.text;
    EXPECT_TRUE(has(out.text, "ipmmu: cache iommu@e7740000: waiting for its root")) << out.text;
}

TEST(IpmmuDt, UnsupportedSocRevisionIsRefusedNamingTheRoot) {
    DtRig r("board_salvator_x", 0x4f10);
    ASSERT_EQ(r.set->probe_all(r.t, *r.topo, 0x4f10, r.report), Status::ok);
    EXPECT_TRUE(has(r.report.text, "ipmmu: /soc/iommu@e67b0000: R-Car H3 ES2.0: its IPMMU cannot share stage-2 tables "
                                   "before ES3.0; refused")) << r.report.text;
    // Its five caches wait: one line each, and nothing was written to any IPMMU.
    EXPECT_EQ(r.set->problems(), 6u) << r.report.text;
    for (auto& m : r.models) EXPECT_EQ(m->register_writes(), 0u);
    EXPECT_EQ(r.pool->used_pages(), 0u);  // no blocking table taken for a refused root
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
