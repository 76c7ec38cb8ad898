// The SMMUv2 driver's device-tree side: the ZCU102 tree from dts/ probed against a model of its
// MMU-500, every master's stream accepted and translated; the generic binding with one and two
// cells and stream-match-mask, the legacy mmu-masters binding, both at once; and bad input
// (reg smaller than ID1's layout, wrong #iommu-cells, stream ids beyond ID0.NUMSIDB...), each
// refused with a message naming the node.
#include <gtest/gtest.h>

#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "arch/mmio.hpp"
#include "common/io_domain.hpp"
#include "drivers/iommu/smmu_v2.hpp"
#include "dt_support.hpp"
#include "tests/models/mmu500_model.hpp"

using namespace moat;
using model::Mmu500Model;

namespace {

constexpr uint64_t kPhysBase = 0x80000000;

struct Memory {
    std::vector<uint8_t> buf;
    std::unique_ptr<PagePool> pool;
    std::unique_ptr<model::PoolPhysMem> phys;
    explicit Memory(size_t pages = 256) : buf((pages + 1) * kPageSize) {
        uintptr_t host = align_up(reinterpret_cast<uintptr_t>(buf.data()), kPageSize);
        pool = std::make_unique<PagePool>(host - kPhysBase);
        EXPECT_EQ(pool->add_region(kPhysBase, pages * kPageSize), Status::ok);
        phys = std::make_unique<model::PoolPhysMem>(*pool);
    }
    uint64_t page() { return pool->alloc().value; }
    uint8_t* at(uint64_t pa) { return static_cast<uint8_t*>(pool->virt(pa)); }
};

// A model mapped where the tree says the SMMU is.
struct Mapped {
    Mmu500Model model;
    Mapped(Memory& m, uintptr_t base, const Mmu500Model::Features& f = {}) : model(*m.phys, f) {
        EXPECT_TRUE(mmio::attach(base, model.size(), &model));
    }
    ~Mapped() {
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
};

struct Tree {
    std::vector<uint64_t> blob;
    dt::Tree t;
    explicit Tree(const char* name) : blob(load_dtb(name)) { EXPECT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok); }
    int node(const char* path) const {
        int n = t.find_path(path);
        EXPECT_GE(n, 0) << path;
        return n;
    }
};

const SmmuV2::Master* find(const SmmuV2::MasterList& l, const dt::Tree& t, const char* path) {
    for (unsigned i = 0; i < l.count; i++)
        if (l.masters[i].node == t.find_path(path)) return &l.masters[i];
    return nullptr;
}

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST(SmmuV2Dt, Zcu102ProbesAndEveryMastersStreamsTranslate) {
    Tree tr("board_zcu102");
    const dt::Tree& t = tr.t;
    int node = tr.node("/axi/iommu@fd800000");
    Memory mem;
    Mapped m(mem, 0xfd800000);  // ZynqMP ID registers (the model's defaults)
    SmmuV2 smmu;
    ASSERT_EQ(smmu.probe_dt(t, node), Status::ok) << t.error();
    EXPECT_TRUE(smmu.config().mmu500);
    EXPECT_EQ(smmu.config().iommu_cells, 1u);
    EXPECT_EQ(smmu.config().global_irqs, 1u);
    EXPECT_EQ(smmu.config().context_irqs, 16u);  // one per bank, as ID1.NUMCB says
    EXPECT_EQ(smmu.num_banks(), 16u);
    EXPECT_STREQ(smmu.name(), "iommu@fd800000");

    auto list = std::make_unique<SmmuV2::MasterList>();
    dt_test::StrSink report;
    ASSERT_EQ(smmu.masters(t, *list, report), Status::ok);
    EXPECT_EQ(report.text, "");
    EXPECT_EQ(list->count, 25u);
    EXPECT_EQ(list->problems, 0u);
    unsigned streams = 0;
    for (unsigned i = 0; i < list->count; i++) streams += list->masters[i].nstreams;
    EXPECT_EQ(streams, 28u);
    const SmmuV2::Master* sata = find(*list, t, "/axi/ahci@fd0c0000");
    ASSERT_NE(sata, nullptr);
    ASSERT_EQ(sata->nstreams, 4u);
    for (unsigned k = 0; k < 4; k++) EXPECT_EQ(sata->streams[k], SmmuV2::stream(0x4c0 + k));
    EXPECT_FALSE(sata->legacy);

    // Discovery's view of the same tree decodes to the same streams.
    auto topo = std::make_unique<Topology>();
    dt_test::StrSink disc;
    ASSERT_EQ(discover(t, *topo, disc), Status::ok);
    unsigned checked = 0;
    for (unsigned i = 0; i < topo->nmasters; i++)
        for (unsigned s = 0; s < topo->masters[i].nstreams; s++) {
            const StreamRef& ref = topo->masters[i].streams[s];
            StreamId id = 0;
            ASSERT_EQ(smmu.stream_from_dt(t, topo->masters[i].node, ref.args, ref.nargs, id), Status::ok) << t.error();
            EXPECT_EQ(id, SmmuV2::stream(ref.sid));
            checked++;
        }
    EXPECT_EQ(checked, 28u);

    // Every master attached: SD1 to a domain of its own, the others spread over three domains
    // (an IoDomain takes up to 16 streams) that all map the same page.
    uint64_t shared = mem.page(), sd1 = mem.page();
    {
        std::vector<std::unique_ptr<IoDomain>> doms;
        for (unsigned i = 0; i < 4; i++) {
            doms.push_back(std::make_unique<IoDomain>(*mem.pool, iopt::vmsa_s2(40, 40, false)));
            ASSERT_EQ(doms[i]->init(), Status::ok);
            ASSERT_TRUE(doms[i]->map(0x10000, i == 3 ? sd1 : shared, kPageSize, {}).ok());
        }
        const SmmuV2::Master* sd = find(*list, t, "/axi/mmc@ff170000");
        ASSERT_NE(sd, nullptr);
        for (unsigned i = 0; i < list->count; i++) {
            const SmmuV2::Master& ms = list->masters[i];
            IoDomain& d = &ms == sd ? *doms[3] : *doms[i % 3];
            for (unsigned k = 0; k < ms.nstreams; k++) ASSERT_EQ(d.attach(smmu, ms.streams[k]), Status::ok) << "master node " << ms.node;
        }
        EXPECT_EQ(smmu.smrs_in_use(), 28u);
        EXPECT_EQ(smmu.banks_in_use(), 4u);
        uint8_t v = 0x44;
        EXPECT_TRUE(m.model.dma_write(0x4c2, 0x10000, &v, 1).ok);  // SATA port 2
        v = 0x55;
        EXPECT_TRUE(m.model.dma_write(0x14ef, 0x10001, &v, 1).ok);  // FPD DMA channel 8
        v = 0x66;
        EXPECT_TRUE(m.model.dma_write(0x871, 0x10000, &v, 1).ok);  // SD1
        EXPECT_EQ(mem.at(shared)[0], 0x44);
        EXPECT_EQ(mem.at(shared)[1], 0x55);
        EXPECT_EQ(mem.at(sd1)[0], 0x66);
        EXPECT_EQ(m.model.dma_write(0x4c4, 0x10000, &v, 1).fault, model::mmu500::kGfsrUsf);  // no such master
    }
    EXPECT_EQ(smmu.smrs_in_use(), 0u);
    EXPECT_EQ(smmu.shutdown(), Status::ok);
}

TEST(SmmuV2Dt, TwoCellMasksAndStreamMatchMask) {
    Tree tr("smmu_v2_bindings");
    const dt::Tree& t = tr.t;
    Memory mem;
    {
        Mapped m(mem, 0x10000000);
        SmmuV2 smmu;
        ASSERT_EQ(smmu.probe_dt(t, tr.node("/iommu@10000000")), Status::ok) << t.error();
        EXPECT_EQ(smmu.config().iommu_cells, 2u);
        auto list = std::make_unique<SmmuV2::MasterList>();
        dt_test::StrSink report;
        ASSERT_EQ(smmu.masters(t, *list, report), Status::ok);
        EXPECT_EQ(list->count, 2u);
        EXPECT_EQ(list->problems, 1u);
        EXPECT_EQ(report.text,
                  "dt: /wide@20002000: SMR mask 0x8000 on /iommu@10000000 is wider than the 15 stream-id bits ID0.NUMSIDB "
                  "gives; device left blocked\n");
        const SmmuV2::Master* dma = find(*list, t, "/dma@20000000");
        ASSERT_TRUE(dma && dma->nstreams == 1);
        EXPECT_EQ(dma->streams[0], SmmuV2::stream(0x100, 0x3));
        const SmmuV2::Master* eth = find(*list, t, "/eth@20001000");
        ASSERT_TRUE(eth && eth->nstreams == 2);
        EXPECT_EQ(eth->streams[1], SmmuV2::stream(0x201));
        EXPECT_EQ(find(*list, t, "/wide@20002000"), nullptr);

        uint64_t buf = mem.page();
        IoDomain d(*mem.pool, iopt::vmsa_s1(39, 40, false));
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_TRUE(d.map(0x3000, buf, kPageSize, {}).ok());
        ASSERT_EQ(d.attach(smmu, dma->streams[0]), Status::ok);
        uint8_t v = 0x12;
        EXPECT_TRUE(m.model.dma_write(0x103, 0x3000, &v, 1).ok);  // any of 0x100..0x103
        EXPECT_EQ(mem.at(buf)[0], 0x12);
        EXPECT_FALSE(m.model.dma_write(0x104, 0x3000, &v, 1).ok);
        ASSERT_EQ(d.destroy(), Status::ok);
        EXPECT_EQ(smmu.shutdown(), Status::ok);
    }
    {
        Mapped m(mem, 0x10100000);
        SmmuV2 smmu;
        ASSERT_EQ(smmu.probe_dt(t, tr.node("/iommu@10100000")), Status::ok) << t.error();
        EXPECT_FALSE(smmu.config().mmu500);
        EXPECT_EQ(smmu.config().stream_match_mask, 0x7c00u);
        auto list = std::make_unique<SmmuV2::MasterList>();
        dt_test::StrSink report;
        ASSERT_EQ(smmu.masters(t, *list, report), Status::ok);
        EXPECT_EQ(list->count, 1u);
        EXPECT_EQ(report.text,
                  "dt: /far@20004000: stream id 0x8000 on /iommu@10100000 is wider than the 15 stream-id bits ID0.NUMSIDB "
                  "gives; device left blocked\n");
        const SmmuV2::Master* sd = find(*list, t, "/sd@20003000");
        ASSERT_TRUE(sd && sd->nstreams == 1);
        EXPECT_EQ(sd->streams[0], SmmuV2::stream(0x70, 0x7c00));
        EXPECT_EQ(find(*list, t, "/far@20004000"), nullptr);  // its good reference goes with the bad one

        uint64_t buf = mem.page();
        IoDomain d(*mem.pool, iopt::vmsa_s2(40, 40, false));
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_TRUE(d.map(0x3000, buf, kPageSize, {}).ok());
        ASSERT_EQ(d.attach(smmu, sd->streams[0]), Status::ok);
        uint8_t v = 0x34;
        EXPECT_TRUE(m.model.dma_write(0x1470, 0x3000, &v, 1).ok);  // TBU bits ignored
        EXPECT_EQ(mem.at(buf)[0], 0x34);
        ASSERT_EQ(d.destroy(), Status::ok);
        EXPECT_EQ(smmu.shutdown(), Status::ok);
    }
}

TEST(SmmuV2Dt, LegacyMmuMastersBinding) {
    Tree tr("smmu_v2_bindings");
    const dt::Tree& t = tr.t;
    Memory mem;
    Mapped m(mem, 0x10200000);
    SmmuV2 smmu;
    ASSERT_EQ(smmu.probe_dt(t, tr.node("/iommu@10200000")), Status::ok) << t.error();
    EXPECT_EQ(smmu.config().iommu_cells, 0u);  // no #iommu-cells: only mmu-masters names masters
    auto list = std::make_unique<SmmuV2::MasterList>();
    dt_test::StrSink report;
    ASSERT_EQ(smmu.masters(t, *list, report), Status::ok);
    EXPECT_EQ(list->count, 2u);  // the disabled master is not one
    EXPECT_EQ(list->problems, 1u);
    EXPECT_EQ(report.text,
              "dt: /bad@20007000: stream id 0x9000 on /iommu@10200000 is wider than the 15 stream-id bits ID0.NUMSIDB gives; "
              "device left blocked\n");
    const SmmuV2::Master* dma = find(*list, t, "/dma@20005000");
    ASSERT_TRUE(dma && dma->nstreams == 2 && dma->legacy);
    EXPECT_EQ(dma->streams[0], SmmuV2::stream(0x400));
    EXPECT_EQ(dma->streams[1], SmmuV2::stream(0x401));
    const SmmuV2::Master* sata = find(*list, t, "/sata@20006000");
    ASSERT_TRUE(sata && sata->nstreams == 1);

    uint64_t buf = mem.page();
    IoDomain d(*mem.pool, iopt::vmsa_s2(40, 40, false));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x7000, buf, kPageSize, {}).ok());
    for (unsigned k = 0; k < dma->nstreams; k++) ASSERT_EQ(d.attach(smmu, dma->streams[k]), Status::ok);
    uint8_t v = 0x56;
    EXPECT_TRUE(m.model.dma_write(0x401, 0x7000, &v, 1).ok);
    EXPECT_EQ(mem.at(buf)[0], 0x56);
    ASSERT_EQ(d.destroy(), Status::ok);
    EXPECT_EQ(smmu.shutdown(), Status::ok);
}

TEST(SmmuV2Dt, GenericBindingWinsOverMmuMasters) {
    Tree tr("smmu_v2_bindings");
    const dt::Tree& t = tr.t;
    Memory mem;
    Mapped m(mem, 0x10300000);
    SmmuV2 smmu;
    ASSERT_EQ(smmu.probe_dt(t, tr.node("/iommu@10300000")), Status::ok) << t.error();
    auto list = std::make_unique<SmmuV2::MasterList>();
    dt_test::StrSink report;
    ASSERT_EQ(smmu.masters(t, *list, report), Status::ok);
    EXPECT_TRUE(list->legacy_ignored);
    EXPECT_EQ(report.text,
              "dt: /iommu@10300000: mmu-masters ignored: masters name this SMMU through iommus (the generic binding)\n");
    ASSERT_EQ(list->count, 1u);
    EXPECT_EQ(list->masters[0].node, t.find_path("/newstyle@20009000"));
    EXPECT_EQ(list->masters[0].streams[0], SmmuV2::stream(0x501));
    EXPECT_EQ(find(*list, t, "/old@2000a000"), nullptr);
    EXPECT_EQ(smmu.shutdown(), Status::ok);
}

TEST(SmmuV2Dt, BadInputIsRefusedWithAMessageNamingTheNode) {
    Tree tr("smmu_v2_bindings");
    const dt::Tree& t = tr.t;
    Memory mem;
    {
        Mapped m(mem, 0x10400000);  // the model's ID1 describes 0x20000; the tree says 0x10000
        SmmuV2 smmu;
        EXPECT_EQ(smmu.probe_dt(t, tr.node("/iommu@10400000")), Status::bad_dt);
        EXPECT_STREQ(t.error(),
                     "/iommu@10400000: reg size 0x10000 is smaller than the 0x20000 ID1 describes (2 x 16 register pages of "
                     "4 KiB)");
        EXPECT_EQ(m.model.scr0(), 1u);  // never enabled
    }
    mmio::reset_strays();
    struct Case {
        const char* node;
        const char* error;
    };
    const Case cases[] = {
        {"/iommu@10500000", "/iommu@10500000: #iommu-cells is 3; arm,mmu-500 takes 1 (stream id) or 2 (stream id, SMR mask)"},
        {"/iommu@10600000", "/iommu@10600000: no #global-interrupts (the arm,smmu-v2 binding requires it)"},
        {"/iommu@10700000", "/iommu@10700000: #global-interrupts is 2 but only 1 interrupts are listed"},
    };
    for (const Case& c : cases) {
        SmmuV2 smmu;
        EXPECT_EQ(smmu.probe_dt(t, tr.node(c.node)), Status::bad_dt);
        EXPECT_STREQ(t.error(), c.error);
        EXPECT_FALSE(smmu.ready());
    }
    EXPECT_EQ(mmio::stray_accesses(), 0u);  // refused from the tree alone: no register touched

    // A probed SMMU checks every reference it is given.
    Mapped m(mem, 0x10000000);
    SmmuV2 smmu;
    ASSERT_EQ(smmu.probe_dt(t, tr.node("/iommu@10000000")), Status::ok) << t.error();
    int master = tr.node("/dma@20000000");
    StreamId s = 0;
    const uint32_t three[] = {0x100, 0, 0};
    EXPECT_EQ(smmu.stream_from_dt(t, master, three, 3, s), Status::bad_dt);
    EXPECT_STREQ(t.error(), "/dma@20000000: 3 cells for a stream of /iommu@10000000; it takes 1 (stream id) or 2 (stream id, SMR mask)");
    const uint32_t wide[] = {0x8001};
    EXPECT_EQ(smmu.stream_from_dt(t, master, wide, 1, s), Status::out_of_range);
    EXPECT_TRUE(contains(t.error(), "/dma@20000000: stream id 0x8001 on /iommu@10000000")) << t.error();
    EXPECT_EQ(smmu.shutdown(), Status::ok);
}
