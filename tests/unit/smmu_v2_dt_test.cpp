// The SMMUv2 driver's device-tree side, through the driver contract (common/registry.hpp):
// discovery reads the tree, IommuSet::probe_all probes every driven IOMMU through the registry's
// kSmmuV2Ops and reports one line per instance, and check_masters runs every master's
// references through SmmuV2::xlate. What it proves:
//  - the ZCU102 tree from dts/ probes against a model of its MMU-500: 25 masters, 28 streams,
//    each translated to the SMR attach() takes, every master attached and its DMA landing;
//  - probe_all probes EVERY instance of a tree (four SMMUs in smmu_v2_bindings), says which ones
//    it refused and why, gives the instances' storage back on release, and refuses an instance
//    past that storage by name rather than dropping it;
//  - the generic binding with one and two cells and stream-match-mask, the legacy mmu-masters
//    binding, both at once (the generic one wins, said once);
//  - bad input: reg smaller than ID1's layout, wrong #iommu-cells, missing or too many
//    #global-interrupts (refused from the tree alone: no register touched), stream ids and SMR
//    masks beyond ID0.NUMSIDB (refused naming the master, the reference and the SMMU).
#include <gtest/gtest.h>

#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "arch/mmio.hpp"
#include "common/io_domain.hpp"
#include "common/iommu_set.hpp"
#include "drivers/iommu/smmu_v2.hpp"
#include "dt_support.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/mmu500_model.hpp"

using namespace moat;
using model::Mmu500Model;

namespace {

constexpr uint32_t kClientPd = 1;  // sCR0.CLIENTPD: the SMMU is not enabled

// A model mapped where the tree says an SMMU is.
struct Mapped {
    Mmu500Model model;
    Mapped(model::PhysMem& mem, uintptr_t base, const Mmu500Model::Features& f = {}) : model(mem, f) {
        EXPECT_TRUE(mmio::attach(base, model.size(), &model));
    }
    ~Mapped() {
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
};

// A tree after discovery, models at the given SMMU addresses, and the IommuSet that probes it.
// Members are destroyed in reverse: the set (releasing its instances while their models are
// still mapped) before the topology it points into, the models last.
struct Board {
    model::HostPool mem{256};
    model::PoolPhysMem phys{*mem.pool};
    std::vector<std::unique_ptr<Mapped>> models;
    std::vector<uintptr_t> bases;
    dt_test::Loaded dt;
    IommuSet set;
    dt_test::StrSink probe_report, master_report;
    unsigned refused = 0, masters_refused = 0;

    Board(const char* tree, std::initializer_list<uintptr_t> at) : dt(tree) {
        EXPECT_TRUE(mem.ok);
        for (uintptr_t b : at) {
            models.push_back(std::make_unique<Mapped>(phys, b));
            bases.push_back(b);
        }
    }
    ProbeEnv env(Sink& report) { return ProbeEnv{dt.tree, *dt.topo, mem.pool.get(), 40, nullptr, nullptr, report, nullptr}; }
    void probe() {
        ProbeEnv e = env(probe_report);
        refused = set.probe_all(e);
        masters_refused = set.check_masters(dt.tree, *dt.topo, master_report);
    }
    Mmu500Model& model_at(uintptr_t base) {
        for (size_t i = 0; i < bases.size(); i++)
            if (bases[i] == base) return models[i]->model;
        ADD_FAILURE() << "no model at " << std::hex << base;
        return models.front()->model;
    }
    SmmuV2* smmu(const char* path) { return static_cast<SmmuV2*>(set.at_node(dt.node(path))); }
    int index(const char* path) { return dt.topo->iommu_index(dt.node(path)); }
    const MasterInfo* master(const char* path) {
        int i = dt.topo->master_index(dt.tree.find_path(path));
        return i < 0 ? nullptr : &dt.topo->masters[i];
    }
    // Reference `ref` of a master as its SMMU's xlate makes it.
    Status stream(const char* path, unsigned ref, StreamId& id, Iommu** via = nullptr, Why* why_out = nullptr) {
        const MasterInfo* m = master(path);
        EXPECT_NE(m, nullptr) << path;
        if (!m) return Status::not_found;
        Iommu* inst = nullptr;
        Why why;
        Status st = set.stream(*m, ref, ref < m->nstreams ? m->streams[ref].sid : 0, inst, id, why);
        if (via) *via = inst;
        if (why_out) *why_out = why;
        return st;
    }
    // How many masters reference the IOMMU at `path`.
    unsigned masters_of(const char* path) {
        int idx = index(path);
        unsigned n = 0;
        for (unsigned k = 0; k < dt.topo->nmasters; k++)
            for (unsigned s = 0; s < dt.topo->masters[k].nstreams; s++)
                if (dt.topo->masters[k].streams[s].iommu == static_cast<unsigned>(idx)) {
                    n++;
                    break;
                }
        return n;
    }
};

// smmu_v2_bindings with a model behind each of its four good SMMUs.
constexpr uintptr_t kMasked = 0x10000000, kSmm = 0x10100000, kLegacy = 0x10200000, kBoth = 0x10300000;
struct Bindings : Board {
    Bindings() : Board("smmu_v2_bindings", {kMasked, kSmm, kLegacy, kBoth}) { probe(); }
};

const char* kMmu500Line = "enabled: MMU-500, 16 context banks (0 stage-2 only), 48 stream match entries, 15-bit stream ids, "
                          "non-coherent walks, faults polled, every stream faults until attached";
const char* kSmmuV2Line = "enabled: SMMUv2, 16 context banks (0 stage-2 only), 48 stream match entries, 15-bit stream ids, "
                          "non-coherent walks, faults polled, every stream faults until attached";

bool has(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

}  // namespace

TEST(SmmuV2Dt, Zcu102ProbesAndEveryMastersStreamsTranslate) {
    Board b("board_zcu102", {0xfd800000});  // ZynqMP ID registers (the model's defaults)
    EXPECT_EQ(b.dt.report.text, "");
    b.probe();
    EXPECT_EQ(b.refused, 0u) << b.probe_report.text;
    EXPECT_EQ(b.probe_report.text, std::string("smmu_v2:  iommu@fd800000 ") + kMmu500Line + "\n");
    EXPECT_EQ(b.masters_refused, 0u) << b.master_report.text;
    EXPECT_EQ(b.master_report.text, "");
    EXPECT_EQ(b.set.probed(), 1u);
    SmmuV2* smmu = b.smmu("/axi/iommu@fd800000");
    ASSERT_NE(smmu, nullptr);
    EXPECT_TRUE(smmu->ready());
    EXPECT_TRUE(smmu->config().mmu500);
    EXPECT_EQ(smmu->config().iommu_cells, 1u);
    EXPECT_EQ(smmu->config().global_irqs, 1u);
    EXPECT_EQ(smmu->config().context_irqs, 16u);  // one per bank, as ID1.NUMCB says
    EXPECT_EQ(smmu->num_banks(), 16u);
    EXPECT_STREQ(smmu->name(), "iommu@fd800000");
    EXPECT_EQ(b.model_at(0xfd800000).scr0() & kClientPd, 0u);  // enabled

    // 25 masters with 28 streams in all, every one through the SMMU's xlate.
    const Topology& topo = *b.dt.topo;
    EXPECT_EQ(topo.nmasters, 25u);
    EXPECT_EQ(b.masters_of("/axi/iommu@fd800000"), 25u);
    unsigned checked = 0;
    for (unsigned i = 0; i < topo.nmasters; i++)
        for (unsigned s = 0; s < topo.masters[i].nstreams; s++) {
            const StreamRef& ref = topo.masters[i].streams[s];
            EXPECT_FALSE(ref.legacy);
            Iommu* via = nullptr;
            StreamId id = 0;
            Why why;
            ASSERT_EQ(b.set.stream(topo.masters[i], s, ref.sid, via, id, why), Status::ok) << why.text();
            EXPECT_EQ(via, smmu);
            EXPECT_EQ(id, SmmuV2::stream(ref.sid));
            checked++;
        }
    EXPECT_EQ(checked, 28u);
    const MasterInfo* sata = b.master("/axi/ahci@fd0c0000");
    ASSERT_NE(sata, nullptr);
    ASSERT_EQ(sata->nstreams, 4u);
    for (unsigned k = 0; k < 4; k++) {
        StreamId id = 0;
        ASSERT_EQ(b.stream("/axi/ahci@fd0c0000", k, id), Status::ok);
        EXPECT_EQ(id, SmmuV2::stream(0x4c0 + k));
    }

    // Every master attached: SD1 to a domain of its own, the others spread over three domains
    // (an IoDomain takes up to 16 streams) that all map the same page.
    Mmu500Model& m = b.model_at(0xfd800000);
    PagePool& pool = *b.mem.pool;
    uint64_t shared = pool.alloc().value, sd1 = pool.alloc().value;
    auto at = [&](uint64_t pa) { return static_cast<uint8_t*>(pool.virt(pa)); };
    {
        std::vector<std::unique_ptr<IoDomain>> doms;
        for (unsigned i = 0; i < 4; i++) {
            doms.push_back(std::make_unique<IoDomain>(pool, iopt::vmsa_s2(40, 40, false)));
            ASSERT_EQ(doms[i]->init(), Status::ok);
            ASSERT_TRUE(doms[i]->map(0x10000, i == 3 ? sd1 : shared, kPageSize, {}).ok());
        }
        const MasterInfo* sd = b.master("/axi/mmc@ff170000");
        ASSERT_NE(sd, nullptr);
        for (unsigned i = 0; i < topo.nmasters; i++) {
            const MasterInfo& ms = topo.masters[i];
            IoDomain& d = &ms == sd ? *doms[3] : *doms[i % 3];
            for (unsigned k = 0; k < ms.nstreams; k++) {
                Iommu* via = nullptr;
                StreamId id = 0;
                Why why;
                ASSERT_EQ(b.set.stream(ms, k, ms.streams[k].sid, via, id, why), Status::ok);
                ASSERT_EQ(d.attach(*via, id), Status::ok) << "master node " << ms.node;
            }
        }
        EXPECT_EQ(smmu->smrs_in_use(), 28u);
        EXPECT_EQ(smmu->banks_in_use(), 4u);
        uint8_t v = 0x44;
        EXPECT_TRUE(m.dma_write(0x4c2, 0x10000, &v, 1).ok);  // SATA port 2
        v = 0x55;
        EXPECT_TRUE(m.dma_write(0x14ef, 0x10001, &v, 1).ok);  // FPD DMA channel 8
        v = 0x66;
        EXPECT_TRUE(m.dma_write(0x871, 0x10000, &v, 1).ok);  // SD1
        EXPECT_EQ(at(shared)[0], 0x44);
        EXPECT_EQ(at(shared)[1], 0x55);
        EXPECT_EQ(at(sd1)[0], 0x66);
        EXPECT_EQ(m.dma_write(0x4c4, 0x10000, &v, 1).fault, model::mmu500::kGfsrUsf);  // no such master
    }
    EXPECT_EQ(smmu->smrs_in_use(), 0u);
    b.set.release_all();
    EXPECT_EQ(b.set.at(0), nullptr);
    uint8_t v = 0x77;
    EXPECT_EQ(m.dma_write(0x4c2, 0x10000, &v, 1).fault, model::mmu500::kGfsrUsf);  // released: still faulting
}

// probe_all probes every instance of the tree, not the first one: four SMMUs here, each enabled
// on its own model; the bad nodes each get one line naming them. An instance past the driver's
// storage is refused by name too, and release gives the storage back for the next probe.
TEST(SmmuV2Dt, ProbeAllProbesEveryInstanceOfTheTree) {
    Board b("smmu_v2_bindings", {kMasked, kSmm, kLegacy, kBoth, 0x10400000});
    b.probe();
    const std::string want = std::string("smmu_v2:  iommu@10000000 ") + kMmu500Line + "\n" +
                             "smmu_v2:  iommu@10100000 " + kSmmuV2Line + "\n" +
                             "smmu_v2:  iommu@10200000 " + kMmu500Line + "\n" +
                             "smmu_v2:  iommu@10300000 " + kMmu500Line + "\n" +
                             "smmu_v2: /iommu@10400000: more than 4 SMMUv2 (kMaxSmmuV2) instances; its masters stay blocked\n"
                             "smmu_v2: /iommu@10500000: #iommu-cells is 3; arm,mmu-500 takes 1 (stream id) or 2 (stream id, "
                             "SMR mask); its masters stay blocked\n"
                             "smmu_v2: /iommu@10600000: no #global-interrupts (the arm,smmu-v2 binding requires it); its "
                             "masters stay blocked\n"
                             "smmu_v2: /iommu@10700000: #global-interrupts is 2 but only 1 interrupts are listed; its masters "
                             "stay blocked\n";
    EXPECT_EQ(b.probe_report.text, want);
    EXPECT_EQ(b.refused, 4u);
    EXPECT_EQ(b.set.probed(), 4u);
    const char* good[] = {"/iommu@10000000", "/iommu@10100000", "/iommu@10200000", "/iommu@10300000"};
    const uintptr_t bases[] = {kMasked, kSmm, kLegacy, kBoth};
    for (unsigned i = 0; i < 4; i++) {
        SmmuV2* s = b.smmu(good[i]);
        ASSERT_NE(s, nullptr) << good[i];
        EXPECT_TRUE(s->ready());
        EXPECT_STREQ(s->name(), good[i] + 1);
        EXPECT_EQ(b.set.status(static_cast<unsigned>(b.index(good[i]))), Status::ok);
        EXPECT_EQ(b.model_at(bases[i]).scr0() & kClientPd, 0u) << good[i];  // each one enabled
        for (unsigned j = 0; j < i; j++) EXPECT_NE(s, b.smmu(good[j]));
    }
    EXPECT_EQ(b.set.status(static_cast<unsigned>(b.index("/iommu@10400000"))), Status::no_space);
    EXPECT_EQ(b.model_at(0x10400000).scr0(), kClientPd);  // never touched
    EXPECT_EQ(b.set.status(static_cast<unsigned>(b.index("/iommu@10500000"))), Status::bad_dt);
    EXPECT_EQ(b.set.at_node(b.dt.node("/iommu@10500000")), nullptr);

    // Probing again starts from nothing: the storage came back, the same four probe.
    b.probe_report.text.clear();
    ProbeEnv e = b.env(b.probe_report);
    EXPECT_EQ(b.set.probe_all(e), 4u);
    EXPECT_EQ(b.probe_report.text, want);
    EXPECT_EQ(b.set.probed(), 4u);
}

TEST(SmmuV2Dt, TwoCellMasksAndStreamMatchMask) {
    Bindings b;
    SmmuV2* masked = b.smmu("/iommu@10000000");
    SmmuV2* smm = b.smmu("/iommu@10100000");
    ASSERT_TRUE(masked && smm) << b.probe_report.text;
    EXPECT_EQ(masked->config().iommu_cells, 2u);
    // Every reference the SMMUs cannot take, one line each naming master, reference and SMMU.
    EXPECT_EQ(b.master_report.text,
              "dt: /wide@20002000: iommus entry 0: SMR mask 0x8000 on iommu@10000000 is wider than the 15 stream-id bits "
              "ID0.NUMSIDB gives; device left blocked\n"
              "dt: /far@20004000: iommus entry 1: stream id 0x8000 on iommu@10100000 is wider than the 15 stream-id bits "
              "ID0.NUMSIDB gives; device left blocked\n"
              "dt: /bad@20007000: mmu-masters entry 0: stream id 0x9000 on iommu@10200000 is wider than the 15 stream-id "
              "bits ID0.NUMSIDB gives; device left blocked\n");
    EXPECT_EQ(b.masters_refused, 3u);
    EXPECT_EQ(b.set.problems(), b.refused + 3u);
    EXPECT_EQ(b.masters_of("/iommu@10000000"), 3u);  // dma, eth and wide

    // Two cells: the mask in the reference.
    StreamId id = 0;
    Iommu* via = nullptr;
    ASSERT_EQ(b.stream("/dma@20000000", 0, id, &via), Status::ok);
    EXPECT_EQ(via, masked);
    EXPECT_EQ(id, SmmuV2::stream(0x100, 0x3));
    StreamId dma_stream = id;
    ASSERT_EQ(b.master("/eth@20001000")->nstreams, 2u);
    ASSERT_EQ(b.stream("/eth@20001000", 0, id), Status::ok);
    EXPECT_EQ(id, SmmuV2::stream(0x200));
    ASSERT_EQ(b.stream("/eth@20001000", 1, id), Status::ok);
    EXPECT_EQ(id, SmmuV2::stream(0x201));
    Why why;
    // /wide was refused whole by check_masters; its SMMU's xlate says why.
    EXPECT_EQ(b.stream("/wide@20002000", 0, id, nullptr, &why), Status::denied);
    const MasterInfo* wide = b.master("/wide@20002000");
    ASSERT_NE(wide, nullptr);
    EXPECT_EQ(b.set.at(wide->streams[0].iommu)->xlate(wide->streams[0].args, wide->streams[0].nargs, id, why),
              Status::out_of_range);
    EXPECT_STREQ(why.text(), "SMR mask 0x8000 on iommu@10000000 is wider than the 15 stream-id bits ID0.NUMSIDB gives");

    PagePool& pool = *b.mem.pool;
    {
        Mmu500Model& m = b.model_at(kMasked);
        uint64_t buf = pool.alloc().value;
        IoDomain d(pool, iopt::vmsa_s1(39, 40, false));
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_TRUE(d.map(0x3000, buf, kPageSize, {}).ok());
        ASSERT_EQ(d.attach(*masked, dma_stream), Status::ok);
        uint8_t v = 0x12;
        EXPECT_TRUE(m.dma_write(0x103, 0x3000, &v, 1).ok);  // any of 0x100..0x103
        EXPECT_EQ(static_cast<uint8_t*>(pool.virt(buf))[0], 0x12);
        EXPECT_FALSE(m.dma_write(0x104, 0x3000, &v, 1).ok);
        ASSERT_EQ(d.destroy(), Status::ok);
    }

    // One cell on an SMMU with stream-match-mask: the node's mask applies.
    EXPECT_FALSE(smm->config().mmu500);
    EXPECT_EQ(smm->config().stream_match_mask, 0x7c00u);
    ASSERT_EQ(b.stream("/sd@20003000", 0, id, &via), Status::ok);
    EXPECT_EQ(via, smm);
    EXPECT_EQ(id, SmmuV2::stream(0x70, 0x7c00));
    // check_masters refused /far's entry 1 (the report above): its good entry 0 goes with it.
    EXPECT_EQ(b.stream("/far@20004000", 0, id, nullptr, &why), Status::denied);
    EXPECT_STREQ(why.text(), "a reference of this master was refused: it is left blocked");
    EXPECT_EQ(b.stream("/far@20004000", 1, id), Status::denied);
    {
        Mmu500Model& m = b.model_at(kSmm);
        uint64_t buf = pool.alloc().value;
        IoDomain d(pool, iopt::vmsa_s2(40, 40, false));
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_TRUE(d.map(0x3000, buf, kPageSize, {}).ok());
        ASSERT_EQ(d.attach(*smm, SmmuV2::stream(0x70, 0x7c00)), Status::ok);
        uint8_t v = 0x34;
        EXPECT_TRUE(m.dma_write(0x1470, 0x3000, &v, 1).ok);  // TBU bits ignored
        EXPECT_EQ(static_cast<uint8_t*>(pool.virt(buf))[0], 0x34);
        ASSERT_EQ(d.destroy(), Status::ok);
    }
}

TEST(SmmuV2Dt, LegacyMmuMastersBinding) {
    Bindings b;
    SmmuV2* smmu = b.smmu("/iommu@10200000");
    ASSERT_NE(smmu, nullptr);
    EXPECT_EQ(smmu->config().iommu_cells, 0u);  // no #iommu-cells: only mmu-masters names masters
    EXPECT_EQ(b.dt.topo->iommus[b.index("/iommu@10200000")].iommu_cells, 0u);
    // Three masters named (the disabled one is not a master); the one beyond NUMSIDB is refused.
    EXPECT_EQ(b.masters_of("/iommu@10200000"), 3u);
    EXPECT_EQ(b.master("/off@20008000"), nullptr);
    EXPECT_TRUE(has(b.master_report.text, "dt: /bad@20007000: mmu-masters entry 0: stream id 0x9000 on iommu@10200000 is "
                                          "wider than the 15 stream-id bits ID0.NUMSIDB gives; device left blocked\n"))
        << b.master_report.text;
    const MasterInfo* dma = b.master("/dma@20005000");
    ASSERT_TRUE(dma && dma->nstreams == 2);  // #stream-id-cells = <2>
    EXPECT_TRUE(dma->streams[0].legacy && dma->streams[1].legacy);
    StreamId ids[2] = {};
    Iommu* via = nullptr;
    ASSERT_EQ(b.stream("/dma@20005000", 0, ids[0], &via), Status::ok);
    EXPECT_EQ(via, smmu);
    ASSERT_EQ(b.stream("/dma@20005000", 1, ids[1]), Status::ok);
    EXPECT_EQ(ids[0], SmmuV2::stream(0x400));
    EXPECT_EQ(ids[1], SmmuV2::stream(0x401));
    const MasterInfo* sata = b.master("/sata@20006000");
    ASSERT_TRUE(sata && sata->nstreams == 1 && sata->streams[0].legacy);
    StreamId sid = 0;
    ASSERT_EQ(b.stream("/sata@20006000", 0, sid), Status::ok);
    EXPECT_EQ(sid, SmmuV2::stream(0x410));

    PagePool& pool = *b.mem.pool;
    Mmu500Model& m = b.model_at(kLegacy);
    uint64_t buf = pool.alloc().value;
    IoDomain d(pool, iopt::vmsa_s2(40, 40, false));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x7000, buf, kPageSize, {}).ok());
    for (StreamId s : ids) ASSERT_EQ(d.attach(*smmu, s), Status::ok);
    uint8_t v = 0x56;
    EXPECT_TRUE(m.dma_write(0x401, 0x7000, &v, 1).ok);
    EXPECT_EQ(static_cast<uint8_t*>(pool.virt(buf))[0], 0x56);
    ASSERT_EQ(d.destroy(), Status::ok);
}

TEST(SmmuV2Dt, GenericBindingWinsOverMmuMasters) {
    Bindings b;
    EXPECT_EQ(b.dt.report.text,
              "dt: /iommu@10300000: mmu-masters ignored: masters name this SMMU through iommus (the generic binding)\n");
    EXPECT_EQ(b.dt.topo->problems, 0u);  // said, not counted
    EXPECT_EQ(b.masters_of("/iommu@10300000"), 1u);
    const MasterInfo* ns = b.master("/newstyle@20009000");
    ASSERT_TRUE(ns && ns->nstreams == 1);
    EXPECT_FALSE(ns->streams[0].legacy);
    StreamId id = 0;
    Iommu* via = nullptr;
    ASSERT_EQ(b.stream("/newstyle@20009000", 0, id, &via), Status::ok);
    EXPECT_EQ(via, b.smmu("/iommu@10300000"));
    EXPECT_EQ(id, SmmuV2::stream(0x501));
    EXPECT_EQ(b.master("/old@2000a000"), nullptr);  // the mmu-masters entry is not taken
}

TEST(SmmuV2Dt, BadInputIsRefusedWithAMessageNamingTheNode) {
    // Each bad node through the registry's probe alone (probe_all's lines, which add the node's
    // path, are in ProbeAllProbesEveryInstanceOfTheTree).
    Board b("smmu_v2_bindings", {0x10400000});  // the model's ID1 describes 0x20000; the tree says 0x10000
    dt_test::StrSink report;
    ProbeEnv env = b.env(report);
    auto probe = [&](const char* path, Why& why) {
        int i = b.index(path);
        EXPECT_GE(i, 0) << path;
        const DriverOps* ops = b.dt.topo->iommus[i].driver->ops;
        EXPECT_EQ(ops, &kSmmuV2Ops);
        return ops->probe(env, static_cast<unsigned>(i), why);
    };
    {
        Why why;
        EXPECT_EQ(probe("/iommu@10400000", why), nullptr);
        EXPECT_EQ(why.status(), Status::bad_dt);
        EXPECT_STREQ(why.text(), "reg size 0x10000 is smaller than the 0x20000 ID1 describes (2 x 16 register pages of 4 KiB)");
        EXPECT_EQ(b.model_at(0x10400000).scr0(), kClientPd);  // never enabled
    }
    mmio::reset_strays();
    struct Case {
        const char* node;
        const char* why;
    };
    const Case cases[] = {
        {"/iommu@10500000", "#iommu-cells is 3; arm,mmu-500 takes 1 (stream id) or 2 (stream id, SMR mask)"},
        {"/iommu@10600000", "no #global-interrupts (the arm,smmu-v2 binding requires it)"},
        {"/iommu@10700000", "#global-interrupts is 2 but only 1 interrupts are listed"},
    };
    for (const Case& c : cases) {
        Why why;
        EXPECT_EQ(probe(c.node, why), nullptr) << c.node;
        EXPECT_EQ(why.status(), Status::bad_dt) << c.node;
        EXPECT_STREQ(why.text(), c.why);
    }
    EXPECT_EQ(mmio::stray_accesses(), 0u);  // refused from the tree alone: no register touched
    EXPECT_EQ(report.text, "");              // refusals go in `why`, not in the report

    // A probed SMMU checks every reference it is given.
    Mapped m(b.phys, kMasked);
    Why why;
    Iommu* inst = probe("/iommu@10000000", why);
    ASSERT_NE(inst, nullptr) << why.text();
    StreamId s = 0;
    const uint32_t three[] = {0x100, 0, 0};
    EXPECT_EQ(inst->xlate(three, 3, s, why), Status::bad_dt);
    EXPECT_STREQ(why.text(), "3 cells for a stream of iommu@10000000; it takes 1 (stream id) or 2 (stream id, SMR mask)");
    const uint32_t wide[] = {0x8001};
    EXPECT_EQ(inst->xlate(wide, 1, s, why), Status::out_of_range);
    EXPECT_STREQ(why.text(), "stream id 0x8001 on iommu@10000000 is wider than the 15 stream-id bits ID0.NUMSIDB gives");
    const uint32_t ok[] = {0x7fff, 0x1};
    ASSERT_EQ(inst->xlate(ok, 2, s, why), Status::ok);
    EXPECT_EQ(s, SmmuV2::stream(0x7fff, 0x1));
    kSmmuV2Ops.release(inst);
    // An instance that never probed translates nothing.
    SmmuV2 unprobed;
    EXPECT_EQ(unprobed.xlate(ok, 1, s, why), Status::not_ready);
}
