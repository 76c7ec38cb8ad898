// Fault interrupts, end to end: each IOMMU driver probed with a HostIrqController and a FaultLog,
// against its register model wired to that controller the way the hardware is wired to a GIC.
// A DMA to an unmapped address makes the model record the fault and signal its line; the
// controller runs the driver's handler (FaultIrqs' dispatch, then the EOI) and the fault is in the
// log with no poll_faults() from the test. What each test proves:
//  - the driver requests exactly the lines the config / tree gives, with their trigger (a
//    controller that cannot do that trigger, or has fewer lines, is refused naming the INTID and
//    leaves no line bound), enables them, and each fault is one delivery and one EOI;
//  - level lines (MMU-500, IPMMU) are lowered when the handler clears the status: no storm, no
//    second delivery;
//  - without a controller nothing is requested, the same fault waits for poll_faults(), and
//    describe() says "faults polled";
//  - shutdown leaves every line unbound;
//  - through IommuSet::probe_all with ProbeEnv.irq, the INTIDs discovery read are the ones bound.
#include <gtest/gtest.h>

#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "arch/irq.hpp"
#include "arch/mmio.hpp"
#include "common/io_domain.hpp"
#include "common/iommu_set.hpp"
#include "drivers/iommu/ipmmu_vmsa.hpp"
#include "drivers/iommu/smmu_v2.hpp"
#include "drivers/iommu/smmu_v3.hpp"
#include "dt_support.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/ipmmu_model.hpp"
#include "tests/models/mmu500_model.hpp"
#include "tests/models/smmu_v3_model.hpp"

using namespace moat;
using arch::host::HostIrqController;
using model::IpmmuModel;
using model::Mmu500Model;
using model::SmmuV3Model;

namespace {

constexpr uint32_t kEdge = 1, kLevel = 4;  // DT trigger flags
constexpr uint8_t kEdgeOnly = static_cast<uint8_t>(Trigger::edge_rising);
constexpr uint8_t kLevelOnly = static_cast<uint8_t>(Trigger::level_high);

dt::Irq spi(uint32_t n, uint32_t flags) { return dt::Irq{dt::IrqKind::spi, n, n + 32, flags}; }

std::string describe(const Iommu& i) {
    dt_test::StrSink s;
    i.describe(s);
    return s.text;
}

bool has(const std::string& s, const char* what) { return s.find(what) != std::string::npos; }

// The records logged since `from` (the log holds far more than any test makes).
std::vector<FaultRecord> since(const FaultLog& log, uint64_t from) {
    std::vector<FaultRecord> v;
    for (uint64_t i = from; i < log.total(); i++) v.push_back(log.at(static_cast<unsigned>(i - (log.total() - log.size()))));
    return v;
}

void dummy_handler(void*) {}

// A model mapped for the scope of a test, detached (and its violations reported) however it ends.
struct MapGuard {
    mmio::Device* dev;
    MapGuard(uintptr_t base, uint64_t size, mmio::Device* d) : dev(d) { EXPECT_TRUE(mmio::attach(base, size, d)); }
    ~MapGuard() { mmio::detach(dev); }
};

// ---------------------------------------------------------------- SMMUv3

constexpr uintptr_t kV3Base = 0x09050000;
const dt::Irq kEventq = spi(74, kEdge), kGerror = spi(79, kEdge);  // as QEMU virt: INTIDs 106, 111
constexpr unsigned kEventqId = 106, kGerrorId = 111;
constexpr uint32_t kEventqIrqen = 1u << 2, kGerrorIrqen = 1u << 0;

struct V3Rig {
    model::HostPool host{2048};
    model::PoolPhysMem mem{*host.pool};
    SmmuV3Model model{mem, {}};
    SmmuV3 smmu{*host.pool};
    FaultLog log;
    V3Rig() {
        EXPECT_TRUE(host.ok);
        EXPECT_TRUE(mmio::attach(kV3Base, SmmuV3Model::kRegSize, &model));
    }
    ~V3Rig() {
        smmu.shutdown();
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
    Status probe(IrqController* ic) {
        SmmuV3::Config c{kV3Base, SmmuV3Model::kRegSize, "smmuv3-model", 63, 48};
        c.irq = ic;
        c.faults = &log;
        c.eventq = kEventq;
        c.gerror = kGerror;
        return smmu.probe(c);
    }
    uint64_t buffer() { return host.pool->alloc().value; }
    SmmuV3Model::Dma poke(uint32_t sid, uint64_t iova) {
        uint8_t b[16];
        memset(b, 0x5a, sizeof b);
        return model.dma_write(sid, iova, b, sizeof b);
    }
};

TEST(FaultIrqSmmuV3, UnmappedDmaIsLoggedByTheEventqInterruptAlone) {
    HostIrqController ic;
    V3Rig r;
    r.model.connect_irq(&ic, kEventqId, kGerrorId);
    ASSERT_EQ(r.probe(&ic), Status::ok) << r.smmu.why();
    EXPECT_TRUE(ic.bound(kEventqId) && ic.enabled(kEventqId));
    EXPECT_TRUE(ic.bound(kGerrorId) && ic.enabled(kGerrorId));
    EXPECT_EQ(r.model.irq_ctrl(), kEventqIrqen | kGerrorIrqen);
    EXPECT_TRUE(r.smmu.interrupt_driven());
    EXPECT_TRUE(has(describe(r.smmu), "faults by interrupt")) << describe(r.smmu);

    uint64_t buf = r.buffer();
    IoDomain d(*r.host.pool, iopt::vmsa_s1(39, r.smmu.caps().oas, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x100000, buf, kPageSize, {}).ok());
    ASSERT_EQ(d.attach(r.smmu, 3), Status::ok);
    EXPECT_TRUE(r.poke(3, 0x100000).ok);
    EXPECT_EQ(ic.deliveries(kEventqId), 0u);  // a DMA that lands signals nothing

    EXPECT_EQ(r.poke(3, 0x300000).event, model::smmu_evt::kTranslation);
    std::vector<FaultRecord> f = since(r.log, 0);
    ASSERT_EQ(f.size(), 1u);  // no poll_faults(): the interrupt drained the event queue
    EXPECT_EQ(f[0].kind, FaultKind::translation);
    EXPECT_EQ(f[0].stream, 3u);
    EXPECT_EQ(f[0].address, 0x300000u);
    EXPECT_TRUE(f[0].write);
    EXPECT_STREQ(f[0].iommu, "smmuv3-model");
    EXPECT_EQ(r.model.eventq_cons() & 0xff, r.model.eventq_prod() & 0xff);  // consumed
    EXPECT_EQ(ic.deliveries(kEventqId), 1u);
    EXPECT_EQ(ic.eois(kEventqId), 1u);
    EXPECT_FALSE(ic.active(kEventqId));
    EXPECT_EQ(r.smmu.interrupts(), 1u);

    uint8_t b[8];
    EXPECT_EQ(r.model.dma_read(3, 0x300040, b, sizeof b).event, model::smmu_evt::kTranslation);
    f = since(r.log, 1);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].address, 0x300040u);
    EXPECT_FALSE(f[0].write);
    EXPECT_EQ(ic.deliveries(kEventqId), 2u);
    EXPECT_EQ(ic.eois(kEventqId), 2u);
    EXPECT_EQ(ic.deliveries(kGerrorId), 0u);
    EXPECT_EQ(ic.spurious(), 0u);
    EXPECT_EQ(ic.stray_eois(), 0u);
    EXPECT_EQ(r.smmu.poll_faults(r.log), 0u);  // nothing was left for a poll

    ASSERT_EQ(d.detach(r.smmu, 3), Status::ok);
    r.smmu.shutdown();
    EXPECT_FALSE(ic.bound(kEventqId));
    EXPECT_FALSE(ic.bound(kGerrorId));
    EXPECT_EQ(r.model.irq_ctrl(), 0u);
}

TEST(FaultIrqSmmuV3, ACommandErrorIsTakenByTheGerrorLine) {
    HostIrqController ic;
    V3Rig r;
    r.model.connect_irq(&ic, kEventqId, kGerrorId);
    ASSERT_EQ(r.probe(&ic), Status::ok) << r.smmu.why();
    EXPECT_EQ(r.smmu.submit_raw(0x7f, 0), Status::hw_error);  // an unknown opcode: CERROR_ILL
    EXPECT_EQ(r.model.gerror_irqs(), 1u);
    EXPECT_EQ(ic.deliveries(kGerrorId), 1u);
    EXPECT_EQ(ic.eois(kGerrorId), 1u);
    EXPECT_EQ(r.smmu.interrupts(), 1u);
    EXPECT_EQ(r.smmu.command_errors(), 1u);  // handled once, by the handler or the waiter
    EXPECT_EQ(r.model.gerror(), r.model.gerrorn());
    EXPECT_EQ(r.model.cmdq_cons() & 0x1ff, r.model.cmdq_prod() & 0x1ff);  // the queue resumed
    EXPECT_EQ(ic.deliveries(kEventqId), 0u);
}

// A command the SMMU refused must fail the call that queued it, even with the gerror line live:
// the handler leaves CMDQ_ERR to the sync() waiting for the command.
TEST(FaultIrqSmmuV3, ACommandErrorTakenByTheInterruptStillFailsTheCommand) {
    HostIrqController ic;
    V3Rig r;
    r.model.connect_irq(&ic, kEventqId, kGerrorId);
    ASSERT_EQ(r.probe(&ic), Status::ok) << r.smmu.why();
    EXPECT_EQ(r.smmu.submit_raw(0x7f, 0), Status::hw_error);
}

TEST(FaultIrqSmmuV3, WithoutAControllerTheFaultWaitsForAPoll) {
    HostIrqController ic;  // wired, but the driver is not told of it
    V3Rig r;
    r.model.connect_irq(&ic, kEventqId, kGerrorId);
    ASSERT_EQ(r.probe(nullptr), Status::ok) << r.smmu.why();
    EXPECT_FALSE(r.smmu.interrupt_driven());
    EXPECT_TRUE(has(describe(r.smmu), "faults polled")) << describe(r.smmu);
    EXPECT_EQ(r.model.irq_ctrl(), 0u);
    EXPECT_FALSE(ic.bound(kEventqId));
    IoDomain d(*r.host.pool, iopt::vmsa_s1(39, r.smmu.caps().oas, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(r.smmu, 3), Status::ok);
    EXPECT_EQ(r.poke(3, 0x300000).event, model::smmu_evt::kTranslation);
    EXPECT_EQ(r.log.total(), 0u);
    EXPECT_EQ(r.model.eventq_irqs(), 0u);  // IRQ_CTRL 0: the SMMU signals nothing
    EXPECT_EQ(ic.spurious(), 0u);
    EXPECT_EQ(r.smmu.poll_faults(r.log), 1u);
    std::vector<FaultRecord> f = since(r.log, 0);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].stream, 3u);
    EXPECT_EQ(f[0].address, 0x300000u);
    EXPECT_EQ(r.smmu.interrupts(), 0u);
    ASSERT_EQ(d.detach(r.smmu, 3), Status::ok);
}

TEST(FaultIrqSmmuV3, ARefusedLineLeavesTheSmmuPollingAndSaysWhy) {
    struct Case {
        std::unique_ptr<HostIrqController> ic;
        const char* says;
    };
    std::vector<Case> cases;
    cases.push_back({std::make_unique<HostIrqController>(100), "INTID 106"});  // too few lines
    cases.push_back({std::make_unique<HostIrqController>(HostIrqController::kMaxLines, kLevelOnly), "INTID 106"});
    auto taken = std::make_unique<HostIrqController>();
    ASSERT_EQ(taken->request(kGerrorId, Trigger::edge_rising, 0, &dummy_handler, nullptr), Status::ok);
    cases.push_back({std::move(taken), "INTID 111"});  // someone else holds the gerror line
    for (Case& c : cases) {
        V3Rig r;
        r.model.connect_irq(c.ic.get(), kEventqId, kGerrorId);
        // The SMMU still translates; it polls, and its description names the refused line.
        ASSERT_EQ(r.probe(c.ic.get()), Status::ok) << r.smmu.why();
        EXPECT_TRUE(has(describe(r.smmu), "faults polled (fault interrupt ")) << describe(r.smmu);
        EXPECT_TRUE(has(describe(r.smmu), c.says)) << describe(r.smmu);
        EXPECT_FALSE(c.ic->bound(kEventqId));  // the line granted before the refusal is given back
        EXPECT_FALSE(r.smmu.interrupt_driven());
        EXPECT_EQ(r.model.cr0(), 0xdu);  // enabled all the same
        EXPECT_EQ(r.model.irq_ctrl(), 0u);  // no line signalled
    }
    EXPECT_TRUE(cases[2].ic->bound(kGerrorId));  // the other owner's line is untouched
}


// ---------------------------------------------------------------- SMMUv2 / MMU-500

constexpr uintptr_t kV2Base = 0xfd800000;
constexpr unsigned kBanks = 16;
// One global line and one per context bank, each its own SPI: INTIDs 132 and 133..148.
constexpr unsigned kGlobalId = 132;
constexpr unsigned ctx_id(unsigned bank) { return 133 + bank; }

struct V2Rig {
    model::HostPool host{1024};
    model::PoolPhysMem mem{*host.pool};
    Mmu500Model model{mem, {}};
    SmmuV2 drv;
    FaultLog log;
    std::vector<dt::Irq> lines;
    V2Rig(uint32_t flags = kLevel) {
        EXPECT_TRUE(host.ok);
        EXPECT_TRUE(mmio::attach(kV2Base, model.size(), &model));
        lines.push_back(spi(kGlobalId - 32, flags));
        for (unsigned n = 0; n < kBanks; n++) lines.push_back(spi(ctx_id(n) - 32, flags));
    }
    ~V2Rig() {
        EXPECT_EQ(drv.shutdown(), Status::ok);
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
    void wire(HostIrqController* ic) {
        std::vector<unsigned> ctx;
        for (unsigned n = 0; n < kBanks; n++) ctx.push_back(lines[1 + n].intid);
        model.connect_irq(ic, lines[0].intid, ctx);
    }
    Status probe(IrqController* ic) {
        SmmuV2::Config c;
        c.base = kV2Base;
        c.size = model.size();
        c.name = "iommu@fd800000";
        c.mmu500 = true;
        c.cpu_pa_bits = 40;
        c.global_irqs = 1;
        c.context_irqs = kBanks;
        c.irq = ic;
        c.irqs = lines.data();
        c.faults = &log;
        return drv.probe(c);
    }
    uint64_t buffer() { return host.pool->alloc().value; }
    Mmu500Model::Dma poke(uint32_t sid, uint64_t iova) {
        uint8_t b[16];
        memset(b, 0x5a, sizeof b);
        return model.dma_write(sid, iova, b, sizeof b);
    }
};

TEST(FaultIrqSmmuV2, GlobalAndContextFaultsAreLoggedByTheirOwnLinesAlone) {
    HostIrqController ic;
    V2Rig r;
    r.wire(&ic);
    ASSERT_EQ(r.probe(&ic), Status::ok) << r.drv.why();
    for (unsigned id = kGlobalId; id <= ctx_id(kBanks - 1); id++) EXPECT_TRUE(ic.bound(id) && ic.enabled(id)) << id;
    EXPECT_TRUE(r.drv.interrupt_driven());
    EXPECT_TRUE(has(describe(r.drv), "faults by interrupt")) << describe(r.drv);

    // An unmatched stream: a global fault (USF) on the global line.
    EXPECT_EQ(r.poke(0x123, 0x4000).fault, model::mmu500::kGfsrUsf);
    std::vector<FaultRecord> f = since(r.log, 0);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].kind, FaultKind::bad_stream);
    EXPECT_EQ(f[0].stream, 0x123u);
    EXPECT_EQ(f[0].address, 0x4000u);
    EXPECT_TRUE(f[0].write);
    EXPECT_EQ(f[0].raw, model::mmu500::kGfsrUsf);
    EXPECT_EQ(r.model.gfsr(), 0u);  // cleared by the handler, so the level line went down
    EXPECT_FALSE(r.model.global_irq());
    EXPECT_FALSE(ic.pending(kGlobalId));
    EXPECT_EQ(ic.deliveries(kGlobalId), 1u);
    EXPECT_EQ(ic.eois(kGlobalId), 1u);

    // A stream attached to a stage-2 bank, DMA to a hole: a context fault on that bank's line.
    uint64_t buf = r.buffer();
    IoDomain d(*r.host.pool, iopt::vmsa_s2(40, 40, false));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x1000, buf, kPageSize, {}).ok());
    ASSERT_EQ(d.attach(r.drv, SmmuV2::stream(0x870)), Status::ok);
    int bank = r.drv.bank_of(d);
    ASSERT_GE(bank, 0);
    unsigned line = ctx_id(static_cast<unsigned>(bank));
    EXPECT_TRUE(r.poke(0x870, 0x1000).ok);
    EXPECT_EQ(ic.deliveries(line), 0u);
    EXPECT_EQ(r.poke(0x870, 0x9000).fault, model::mmu500::kFsrTf);
    f = since(r.log, 1);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].kind, FaultKind::translation);
    EXPECT_EQ(f[0].stream, 0x870u);
    EXPECT_EQ(f[0].address, 0x9000u);
    EXPECT_EQ(f[0].raw, model::mmu500::kFsrTf);
    EXPECT_EQ(r.model.fsr(static_cast<unsigned>(bank)), 0u);
    EXPECT_EQ(ic.deliveries(line), 1u);
    EXPECT_EQ(ic.eois(line), 1u);
    EXPECT_EQ(ic.deliveries(kGlobalId), 1u);  // the global line did not fire again
    // A second fault: the status was written back, so it is recorded and delivered again.
    uint8_t b[8];
    EXPECT_EQ(r.model.dma_read(0x870, 0xa000, b, sizeof b).fault, model::mmu500::kFsrTf);
    f = since(r.log, 2);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].raw, model::mmu500::kFsrTf);  // not MULTI: the first was cleared in time
    EXPECT_FALSE(f[0].write);
    EXPECT_EQ(ic.deliveries(line), 2u);
    EXPECT_EQ(ic.eois(line), 2u);
    EXPECT_EQ(ic.storms(), 0u);
    EXPECT_EQ(ic.spurious(), 0u);
    EXPECT_EQ(ic.stray_eois(), 0u);
    EXPECT_EQ(r.drv.poll_faults(r.log), 0u);

    ASSERT_EQ(d.detach(r.drv, SmmuV2::stream(0x870)), Status::ok);
    ASSERT_EQ(r.drv.shutdown(), Status::ok);
    for (unsigned id = kGlobalId; id <= ctx_id(kBanks - 1); id++) EXPECT_FALSE(ic.bound(id)) << id;
}

TEST(FaultIrqSmmuV2, WithoutAControllerTheFaultWaitsForAPoll) {
    HostIrqController ic;
    V2Rig r;
    r.wire(&ic);
    ASSERT_EQ(r.probe(nullptr), Status::ok) << r.drv.why();
    EXPECT_FALSE(r.drv.interrupt_driven());
    EXPECT_TRUE(has(describe(r.drv), "faults polled")) << describe(r.drv);
    EXPECT_FALSE(ic.bound(kGlobalId));
    EXPECT_EQ(r.poke(0x123, 0x4000).fault, model::mmu500::kGfsrUsf);
    EXPECT_EQ(r.log.total(), 0u);
    EXPECT_TRUE(r.model.global_irq());  // the SMMU asserts its line; no one listens
    EXPECT_EQ(r.drv.poll_faults(r.log), 1u);
    std::vector<FaultRecord> f = since(r.log, 0);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].stream, 0x123u);
    EXPECT_EQ(f[0].address, 0x4000u);
    EXPECT_FALSE(r.model.global_irq());
}

// A refused line leaves the SMMU polling: it still translates, and says which line and why.
TEST(FaultIrqSmmuV2, ARefusedLineLeavesTheSmmuPollingAndSaysWhy) {
    {
        HostIrqController ic(140);  // context lines from INTID 140 on do not exist
        V2Rig r;
        ASSERT_EQ(r.probe(&ic), Status::ok) << r.drv.why();
        EXPECT_TRUE(has(describe(r.drv), "faults polled (fault interrupt INTID 140 refused")) << describe(r.drv);
        for (unsigned id = kGlobalId; id < 140; id++) EXPECT_FALSE(ic.bound(id)) << id;
        EXPECT_FALSE(r.drv.interrupt_driven());
        EXPECT_TRUE(r.drv.ready());
    }
    {
        HostIrqController ic(HostIrqController::kMaxLines, kEdgeOnly);  // the tree says level
        V2Rig r;
        ASSERT_EQ(r.probe(&ic), Status::ok) << r.drv.why();
        EXPECT_TRUE(has(describe(r.drv), "INTID 132")) << describe(r.drv);
        EXPECT_FALSE(ic.bound(kGlobalId));
        EXPECT_TRUE(r.drv.ready());
    }
}

// ---------------------------------------------------------------- IPMMU-VMSA

constexpr uintptr_t kRootBase = 0xe67b0000, kDs1Base = 0xe7740000;
constexpr uint32_t kPrrH3Es30 = 0x4f20;
constexpr uint64_t kIova = 0x10000000, kHole = 0x12345678;
const dt::Irq kIpmmuIrqs[] = {spi(196, kLevel), spi(197, kLevel)};  // as r8a77951.dtsi: INTIDs 228, 229
constexpr unsigned kIpmmuId = 228, kIpmmuId2 = 229;

struct IpmmuRig {
    model::HostPool host{2048};
    model::PoolPhysMem mem{*host.pool};
    IpmmuModel mm{mem};
    IpmmuModel ds1_m{mm, 1};
    IpmmuVmsa root, ds1;
    FaultLog log;
    IpmmuRig() {
        EXPECT_TRUE(host.ok);
        EXPECT_TRUE(mmio::attach(kRootBase, IpmmuModel::kRegSize, &mm));
        EXPECT_TRUE(mmio::attach(kDs1Base, IpmmuModel::kRegSize, &ds1_m));
    }
    ~IpmmuRig() {
        root.shutdown();
        for (IpmmuModel* m : {&mm, &ds1_m}) {
            mmio::detach(m);
            for (const std::string& v : m->violations()) ADD_FAILURE() << "model: " << v;
        }
    }
    Status probe(IrqController* ic) {
        IpmmuVmsa::Config c;
        c.base = kRootBase;
        c.name = "mm";
        c.nirqs = 2;
        c.irq = ic;
        c.irqs = kIpmmuIrqs;
        c.faults = &log;
        c.compatible = "renesas,ipmmu-r8a7795";
        c.prr = kPrrH3Es30;
        c.pool = host.pool.get();
        Status st = root.probe(c);
        if (st != Status::ok) return st;
        IpmmuVmsa::Config cc;
        cc.base = kDs1Base;
        cc.name = "ds1";
        cc.root = &root;
        cc.main_bit = 1;
        cc.masters = uint64_t{0xf} << 32;  // uTLBs 32..35
        return ds1.probe(cc);
    }
    uint64_t buffer() { return host.pool->alloc().value; }
    IpmmuModel::Dma poke(unsigned utlb, uint64_t iova) {
        uint8_t b[16];
        memset(b, 0x5a, sizeof b);
        return ds1_m.dma_write(utlb, iova, b, sizeof b);
    }
};

TEST(FaultIrqIpmmu, ARootContextFaultIsLoggedByTheRootLineAlone) {
    HostIrqController ic;
    IpmmuRig r;
    r.mm.connect_irq(&ic, kIpmmuId);
    ASSERT_EQ(r.probe(&ic), Status::ok) << r.root.why() << r.ds1.why();
    EXPECT_TRUE(ic.bound(kIpmmuId) && ic.enabled(kIpmmuId));
    EXPECT_TRUE(ic.bound(kIpmmuId2) && ic.enabled(kIpmmuId2));
    EXPECT_TRUE(r.root.interrupt_driven());
    EXPECT_TRUE(r.ds1.interrupt_driven());  // a cache's faults are the root's
    EXPECT_TRUE(has(describe(r.root), "faults by interrupt")) << describe(r.root);

    auto d = std::make_unique<IoDomain>(*r.host.pool, iopt::vmsa_s2(40, 40, false));
    uint64_t buf = r.buffer();
    ASSERT_EQ(d->init(), Status::ok);
    ASSERT_TRUE(d->map(kIova, buf, kPageSize, {}).ok());
    ASSERT_EQ(d->attach(r.ds1, 33), Status::ok);
    uint8_t ctx = r.ds1.context_of(*d);
    EXPECT_TRUE(r.poke(33, kIova).ok);
    EXPECT_EQ(ic.deliveries(kIpmmuId), 0u);

    EXPECT_EQ(r.poke(33, kHole).fault, IpmmuModel::kTf);
    std::vector<FaultRecord> f = since(r.log, 0);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].kind, FaultKind::translation);
    EXPECT_EQ(f[0].stream, 33u);
    EXPECT_EQ(f[0].address, kHole);
    EXPECT_STREQ(f[0].iommu, "ds1");
    EXPECT_EQ(r.mm.imstr(ctx), 0u);  // cleared by the handler: the level line is down
    EXPECT_FALSE(r.mm.irq_pending());
    EXPECT_FALSE(ic.pending(kIpmmuId));
    EXPECT_EQ(ic.deliveries(kIpmmuId), 1u);
    EXPECT_EQ(ic.eois(kIpmmuId), 1u);
    EXPECT_EQ(r.mm.irqs_raised(), 1u);

    // A master the DT names but nobody attached: stopped by the blocking context, also reported.
    EXPECT_EQ(r.poke(32, kIova).fault, IpmmuModel::kTf);
    f = since(r.log, 1);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].address, kIova);
    EXPECT_EQ(ic.deliveries(kIpmmuId), 2u);
    EXPECT_EQ(ic.eois(kIpmmuId), 2u);
    EXPECT_EQ(ic.deliveries(kIpmmuId2), 0u);
    EXPECT_EQ(ic.storms(), 0u);
    EXPECT_EQ(ic.spurious(), 0u);
    EXPECT_EQ(ic.stray_eois(), 0u);
    EXPECT_EQ(r.root.poll_faults(r.log), 0u);

    ASSERT_EQ(d->detach(r.ds1, 33), Status::ok);
    r.root.shutdown();
    EXPECT_FALSE(ic.bound(kIpmmuId));
    EXPECT_FALSE(ic.bound(kIpmmuId2));
}

TEST(FaultIrqIpmmu, WithoutAControllerTheFaultWaitsForAPoll) {
    HostIrqController ic;
    IpmmuRig r;
    r.mm.connect_irq(&ic, kIpmmuId);
    ASSERT_EQ(r.probe(nullptr), Status::ok) << r.root.why() << r.ds1.why();
    EXPECT_FALSE(r.root.interrupt_driven());
    EXPECT_FALSE(r.ds1.interrupt_driven());
    EXPECT_TRUE(has(describe(r.root), "faults polled")) << describe(r.root);
    EXPECT_FALSE(ic.bound(kIpmmuId));
    EXPECT_EQ(r.poke(32, kIova).fault, IpmmuModel::kTf);
    EXPECT_EQ(r.log.total(), 0u);
    EXPECT_TRUE(r.mm.irq_pending());
    EXPECT_EQ(ic.spurious(), 1u);  // the IPMMU asserted a line nobody bound
    EXPECT_EQ(r.ds1.poll_faults(r.log), 1u);
    std::vector<FaultRecord> f = since(r.log, 0);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].address, kIova);
    EXPECT_FALSE(r.mm.irq_pending());
}

// A refused line leaves the root polling: it still translates, and says which line and why.
TEST(FaultIrqIpmmu, ARefusedLineLeavesTheRootPollingAndSaysWhy) {
    {
        HostIrqController ic(kIpmmuId2);  // the second line does not exist
        IpmmuRig r;
        ASSERT_EQ(r.probe(&ic), Status::ok) << r.root.why();
        EXPECT_TRUE(has(describe(r.root), "faults polled (fault interrupt INTID 229 refused")) << describe(r.root);
        EXPECT_FALSE(ic.bound(kIpmmuId));  // granted, then given back
        EXPECT_TRUE(r.root.ready());
        EXPECT_FALSE(r.root.interrupt_driven());
    }
    {
        HostIrqController ic(HostIrqController::kMaxLines, kEdgeOnly);
        IpmmuRig r;
        ASSERT_EQ(r.probe(&ic), Status::ok) << r.root.why();
        EXPECT_TRUE(has(describe(r.root), "INTID 228")) << describe(r.root);
        EXPECT_FALSE(ic.bound(kIpmmuId));
        EXPECT_TRUE(r.root.ready());
    }
}

// ---------------------------------------------------------------- from the tree

// The ZCU102 tree from dts/: one MMU-500 whose global and 16 context interrupts are all SPI 155
// (level): one wired-OR line, INTID 187, that every fault of the SMMU raises.
// FaultIrqs binds a line that several sources share once.
TEST(FaultIrqFromTree, Zcu102ProbeBindsTheSharedLineDiscoveryRead) {
    dt_test::Loaded dt("board_zcu102");
    ASSERT_EQ(dt.topo->niommus, 1u);
    const IommuInfo& io = dt.topo->iommus[0];
    ASSERT_EQ(io.nirqs, 17u);
    for (unsigned i = 0; i < io.nirqs; i++) {
        EXPECT_EQ(io.irqs[i].intid, 187u);
        EXPECT_EQ(io.irqs[i].flags & 0xf, kLevel);
    }
    model::HostPool host{512};
    model::PoolPhysMem mem{*host.pool};
    Mmu500Model m(mem, {});
    MapGuard g(static_cast<uintptr_t>(io.regs[0].addr), m.size(), &m);
    HostIrqController ic;
    m.connect_irq(&ic, 187, std::vector<unsigned>(16, 187));
    FaultLog log;
    {
        IommuSet set;
        dt_test::StrSink report;
        ProbeEnv env{dt.tree, *dt.topo, host.pool.get(), 40, &ic, &log, report, nullptr};
        EXPECT_EQ(set.probe_all(env), 0u) << report.text;
        EXPECT_TRUE(has(report.text, "faults by interrupt")) << report.text;
        EXPECT_TRUE(ic.bound(187) && ic.enabled(187));
        auto* smmu = static_cast<SmmuV2*>(set.at(0));
        ASSERT_NE(smmu, nullptr);
        EXPECT_TRUE(smmu->interrupt_driven());
        uint8_t b[16] = {};
        EXPECT_EQ(m.dma_write(0x123, 0x4000, b, sizeof b).fault, model::mmu500::kGfsrUsf);
        std::vector<FaultRecord> f = since(log, 0);
        ASSERT_EQ(f.size(), 1u);
        EXPECT_EQ(f[0].stream, 0x123u);
        EXPECT_EQ(f[0].address, 0x4000u);
        EXPECT_EQ(ic.deliveries(187), 1u);
        EXPECT_EQ(ic.eois(187), 1u);
        EXPECT_FALSE(ic.pending(187));
        set.release_all();
        EXPECT_FALSE(ic.bound(187));
    }
    for (const std::string& v : m.violations()) ADD_FAILURE() << "model: " << v;
}

// The topology tree: an SMMUv3 whose named lines are eventq SPI 74 and gerror SPI 79 (edge), an
// MMU-500 beside it (probe refused: no model there, its lines given back).
TEST(FaultIrqFromTree, SmmuV3ProbedFromTheTreeBindsItsNamedLines) {
    dt_test::Loaded dt("topology");
    model::HostPool host{2048};
    model::PoolPhysMem mem{*host.pool};
    SmmuV3Model m(mem, {});
    MapGuard g(0x09050000, SmmuV3Model::kRegSize, &m);
    HostIrqController ic;
    m.connect_irq(&ic, kEventqId, kGerrorId);
    FaultLog log;
    {
        IommuSet set;
        dt_test::StrSink report;
        ProbeEnv env{dt.tree, *dt.topo, host.pool.get(), 40, &ic, &log, report, nullptr};
        (void)set.probe_all(env);
        auto* smmu = static_cast<SmmuV3*>(set.at_node(dt.node("/soc/iommu@9050000")));
        ASSERT_NE(smmu, nullptr) << report.text;
        EXPECT_TRUE(has(report.text, "smmu_v3:  iommu@9050000 enabled: ")) << report.text;
        EXPECT_TRUE(has(report.text, "faults by interrupt")) << report.text;
        EXPECT_TRUE(ic.bound(kEventqId) && ic.enabled(kEventqId));
        EXPECT_TRUE(ic.bound(kGerrorId) && ic.enabled(kGerrorId));
        EXPECT_FALSE(ic.bound(75 + 32));  // priq: moat uses no PRI
        EXPECT_TRUE(ic.bound(77 + 32) && ic.enabled(77 + 32));  // cmdq-sync: each CMD_SYNC signals it
        EXPECT_TRUE(smmu->sync_by_interrupt());
        const MasterInfo& sd = dt.topo->masters[dt.topo->master_index(dt.node("/soc/sd@ee100000"))];
        Iommu* via = nullptr;
        StreamId sid = 0;
        Why why;
        ASSERT_EQ(set.stream(sd, 0, sd.streams[0].sid, via, sid, why), Status::ok) << why.text();
        EXPECT_EQ(via, smmu);
        IoDomain d(*host.pool, iopt::vmsa_s1(39, smmu->caps().oas, true));
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_EQ(d.attach(*smmu, sid), Status::ok);
        uint8_t b[16] = {};
        EXPECT_EQ(m.dma_write(0x20, 0x5000, b, sizeof b).event, model::smmu_evt::kTranslation);
        std::vector<FaultRecord> f = since(log, 0);
        ASSERT_EQ(f.size(), 1u);
        EXPECT_EQ(f[0].stream, 0x20u);
        EXPECT_EQ(f[0].address, 0x5000u);
        EXPECT_STREQ(f[0].iommu, "iommu@9050000");
        EXPECT_EQ(ic.deliveries(kEventqId), 1u);
        EXPECT_EQ(ic.eois(kEventqId), 1u);
        ASSERT_EQ(d.detach(*smmu, sid), Status::ok);
        set.release_all();
        EXPECT_FALSE(ic.bound(kEventqId));
        EXPECT_FALSE(ic.bound(kGerrorId));
        EXPECT_FALSE(ic.bound(155 + 32));  // the refused MMU-500 kept none of its lines
    }
    for (const std::string& v : m.violations()) ADD_FAILURE() << "model: " << v;
}

}  // namespace
