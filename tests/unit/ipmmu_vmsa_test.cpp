// The IPMMU-VMSA driver against the register model in tests/models: one root (IPMMU-MM) and
// three cache IPMMUs. The model walks the tables it is pointed at with the independent VMSA
// walker, so every DMA below proves the bytes land where the mapping says, or the fault the
// hardware would latch; its TLBs keep translations until a FLUSH, so a missing flush shows.
// Its disabled uTLBs let DMA through untranslated, as the hardware does: the tests of the
// blocking context prove that no master the driver knows of ever gets there.
#include <gtest/gtest.h>

#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "arch/cache.hpp"
#include "arch/mmio.hpp"
#include "arch/time.hpp"
#include "common/io_domain.hpp"
#include "drivers/iommu/ipmmu_vmsa.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/ipmmu_model.hpp"
#include "tests/unit/walk_expect.hpp"

using namespace moat;
using model::IpmmuModel;
using Format = IpmmuVmsa::Format;

namespace {

// The generation under test. Every TEST_P runs on R-Car H3 (Gen3) and on R-Car S4 (Gen4), each
// at its SoC's addresses (docs/hardware.md §1.6, §1.10) and with its register map; the rig's
// three caches are named after H3's (ds1, hc, mp) whatever the SoC calls them.
struct GenCase {
    const char* name;
    const IpmmuModel::Layout* layout;   // the model's map, written from docs/hardware.md
    const ipmmu::Generation* gen;       // what the driver is told
    const char* compatible;
    uint32_t prr, bad_prr;              // a product register the driver accepts, and one it refuses
    const char* soc;                    // what the root says it is with `prr`
    const char* refusal;                // part of why `bad_prr` is refused
    uintptr_t root, ds1, hc, mp;        // where the rig's four IPMMUs sit
};
const GenCase kGens[] = {
    {"Gen3_H3", &IpmmuModel::kGen3, &ipmmu::kGen3, "renesas,ipmmu-r8a7795", 0x4f20, 0x4f10, "R-Car H3 ES3.0", "before ES3.0",
     0xe67b0000, 0xe7740000, 0xe6570000, 0xec670000},
    // IPMMU-MM, -DS0, -HC and -RT0 of Linux's r8a779f0.dtsi.
    {"Gen4_S4", &IpmmuModel::kGen4, &ipmmu::kGen4, "renesas,ipmmu-r8a779f0", 0x5a00, 0x4f20, "R-Car S4 ES1.0",
     "product register says R-Car H3 (0x4f) but the node is renesas,ipmmu-r8a779f0", 0xeefc0000, 0xeed00000, 0xeed40000, 0xee480000},
};
const GenCase* G = &kGens[0];  // set by the fixtures below, before each test body
void PrintTo(const GenCase& g, std::ostream* os) { *os << g.name; }

constexpr uint64_t kPhysBase = 0x80000000;
constexpr uint64_t kIova = 0x10000000;
// Register offsets, written out here from docs/hardware.md §1.2, §1.3 and §1.9 rather than taken
// from the driver's header: inside a context, and where contexts, uTLBs and controls start.
constexpr uint32_t kImctr = 0x00;
constexpr uint32_t kMmuEn = 0x1, kIntEn = 0x4, kVa64 = 1u << 29;
uint32_t ctx_off(unsigned ctx, uint32_t reg) {
    return G->layout->ctx_base + ctx * G->layout->ctx_stride + (ctx >= 8 ? 0x600 : 0) + reg;
}
uint32_t imuctr_off(unsigned utlb) { return G->layout->utlb_base + (utlb < 32 ? 0x300 + 16 * utlb : 0x600 + 16 * (utlb - 32)); }
uint32_t ctl_off(uint32_t reg) { return G->layout->control_base + reg; }
unsigned contexts() { return G->layout->contexts; }
unsigned utlbs() { return G->layout->utlbs; }
// The blocking context (the last one) and what IMUCTR holds for a uTLB pointed at it.
unsigned block() { return contexts() - 1; }
uint32_t blocked_imuctr() { return block() << 4 | kMmuEn; }
// Contexts for domains: all but the reserved context 0 and, when blocking, the blocking one.
unsigned domain_contexts(bool blocking = true) { return contexts() - (blocking ? 2 : 1); }
// The masters the rig's "DT" names, as on Salvator-X: SDHI0..3 on DS1, USB on HC, none on MP.
constexpr uint64_t kDs1Masters = uint64_t{0xf} << 32, kHcMasters = 1;

// A model mapped for the scope of a test.
struct Mapped {
    IpmmuModel& m;
    Mapped(uintptr_t base, IpmmuModel& model) : m(model) { EXPECT_TRUE(mmio::attach(base, m.size(), &m)); }
    ~Mapped() { mmio::detach(&m); }
};

struct HostMem : model::HostPool {
    HostMem(uint64_t phys, size_t pages) : model::HostPool(pages, phys) { EXPECT_TRUE(ok); }
};

// The models mapped where the drivers expect them, the drivers, and the memory both see.
struct Rig {
    HostMem host;
    model::PoolPhysMem mem;
    IpmmuModel mm;
    IpmmuModel ds1_m, hc_m, mp_m;
    IpmmuVmsa root, ds1, hc, mp;
    FaultLog log;
    Format format;
    bool block;  // block_unattached
    uint64_t ds1_masters = kDs1Masters, hc_masters = kHcMasters, mp_masters = 0;

    explicit Rig(Format f = Format::stage2, bool probe_now = true, bool block_unattached = true)
        : host(kPhysBase, 2048), mem(*host.pool), mm(mem, *G->layout), ds1_m(mm, 1), hc_m(mm, 2), mp_m(mm, 4), format(f),
          block(block_unattached) {
        for (auto [base, m] : {std::pair{G->root, &mm}, {G->ds1, &ds1_m}, {G->hc, &hc_m}, {G->mp, &mp_m}})
            EXPECT_TRUE(mmio::attach(base, m->size(), m));
        if (probe_now) {
            EXPECT_EQ(probe_root(), Status::ok) << root.why();
            EXPECT_EQ(probe_cache(ds1, G->ds1, "ds1", 1), Status::ok) << ds1.why();
            EXPECT_EQ(probe_cache(hc, G->hc, "hc", 2), Status::ok) << hc.why();
            EXPECT_EQ(probe_cache(mp, G->mp, "mp", 4), Status::ok) << mp.why();
        }
    }
    ~Rig() {
        root.shutdown();
        for (IpmmuModel* m : {&mm, &ds1_m, &hc_m, &mp_m}) {
            mmio::detach(m);
            for (const std::string& v : m->violations()) ADD_FAILURE() << "model: " << v;
        }
    }
    IpmmuVmsa::Config root_config(uint32_t prr = G->prr, unsigned nirqs = 2) {
        IpmmuVmsa::Config c;
        c.gen = G->gen;
        c.base = G->root;
        c.size = G->layout->size;
        c.name = "mm";
        c.nirqs = nirqs;
        c.compatible = G->compatible;
        c.prr = prr;
        c.format = format;
        c.block_unattached = block;
        c.pool = &pool();
        return c;
    }
    Status probe_root(uint32_t prr = G->prr, unsigned nirqs = 2) { return root.probe(root_config(prr, nirqs)); }
    Status probe_cache(IpmmuVmsa& c, uintptr_t base, const char* name, unsigned bit, IpmmuVmsa* r = nullptr) {
        IpmmuVmsa::Config cfg;
        cfg.gen = G->gen;
        cfg.base = base;
        cfg.size = G->layout->size;
        cfg.name = name;
        cfg.root = r ? r : &root;
        cfg.main_bit = bit;
        cfg.masters = base == G->ds1 ? ds1_masters : base == G->hc ? hc_masters : base == G->mp ? mp_masters : 0;
        return c.probe(cfg);
    }
    PagePool& pool() { return *host.pool; }
    uint64_t buffer(size_t n = 1) {
        Result<uint64_t> r = pool().alloc(n);
        EXPECT_TRUE(r.ok());
        return r.value;
    }
    uint8_t* at(uint64_t pa) { return static_cast<uint8_t*>(pool().virt(pa)); }
    std::unique_ptr<IoDomain> domain() {
        return format == Format::stage2 ? std::make_unique<IoDomain>(pool(), iopt::vmsa_s2(40, 40, false))
                                        : std::make_unique<IoDomain>(pool(), iopt::vmsa_s1(32, 40, false));
    }
    std::vector<FaultRecord> faults() {
        uint64_t from = log.total();
        root.poll_faults(log);
        std::vector<FaultRecord> v;
        for (uint64_t i = from; i < log.total(); i++) v.push_back(log.at(static_cast<unsigned>(i - (log.total() - log.size()))));
        return v;
    }
    uint64_t writes() const { return mm.register_writes() + ds1_m.register_writes() + hc_m.register_writes() + mp_m.register_writes(); }
};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>(seed + i * 7);
    return v;
}

IpmmuModel::Dma poke(IpmmuModel& m, unsigned utlb, uint64_t iova, uint8_t v = 0x5a) {
    uint8_t b[16];
    memset(b, v, sizeof b);
    return m.dma_write(utlb, iova, b, sizeof b);
}

bool ready(IoDomain& d, Iommu& iommu, uint32_t utlb, uint64_t iova = 0, uint64_t pa = 0, uint64_t size = 0) {
    return d.init() == Status::ok && (!size || d.map(iova, pa, size, {}).ok()) && d.attach(iommu, utlb) == Status::ok;
}

// A DMA through (cache, uTLB) that the blocking context must stop: a translation fault in that
// context, nothing moved. `iova` may be real memory: a disabled uTLB would write it.
::testing::AssertionResult blocked(IpmmuModel& m, unsigned utlb, uint64_t iova, uint8_t v = 0x5a) {
    IpmmuModel::Dma w = poke(m, utlb, iova, v);
    if (w.bypassed) return ::testing::AssertionFailure() << "uTLB " << utlb << " bypassed to PA 0x" << std::hex << w.pa;
    if (w.ok || w.done) return ::testing::AssertionFailure() << "uTLB " << utlb << " moved " << w.done << " bytes";
    if (w.fault != IpmmuModel::kTf || w.context != block())
        return ::testing::AssertionFailure() << "uTLB " << utlb << ": fault " << w.fault << " in context " << w.context;
    return ::testing::AssertionSuccess();
}

// Each test below runs once per generation (INSTANTIATE at the end).
class IpmmuVmsaGen : public ::testing::TestWithParam<GenCase> {
protected:
    void SetUp() override { G = &GetParam(); }
};
using IpmmuModelGen = IpmmuVmsaGen;

// ---------------------------------------------------------------- the model on its own

TEST_P(IpmmuModelGen, RegisterSemantics) {
    HostMem h(kPhysBase, 4);
    model::PoolPhysMem mem(*h.pool);
    IpmmuModel root(mem, *G->layout), cache(root, 1);
    // FLUSH: the root's reads back set for the configured number of reads, then clears.
    root.set_flush_latency(2);
    root.write(ctx_off(3, kImctr), 0x2 | 0x1, 4);
    EXPECT_EQ(root.read(ctx_off(3, kImctr), 4) & 2, 2u);
    EXPECT_EQ(root.read(ctx_off(3, kImctr), 4) & 2, 2u);
    EXPECT_EQ(root.read(ctx_off(3, kImctr), 4), 1u);
    EXPECT_EQ(root.flush_requests(3), 1u);
    // A cache's FLUSH clears at once, and its IMCTR keeps bits [2:0] only (VA64 is the root's).
    cache.write(ctx_off(3, kImctr), 1u << 29 | 0x7, 4);
    EXPECT_EQ(cache.read(ctx_off(3, kImctr), 4), 0x5u);
    EXPECT_EQ(cache.flush_requests(3), 1u);
    // IMSTR latches the first fault's address; software cannot set a status bit; writing 0 clears
    // the status and the address with it.
    root.inject_fault(2, 0x1 | 2u << 12, 0x1234567890ull);
    root.inject_fault(2, 0x2, 0x42);
    EXPECT_EQ(root.read(ctx_off(2, 0x20), 4), 0x2003u);
    EXPECT_EQ(root.read(ctx_off(2, 0x30), 4), 0x34567890u);
    EXPECT_EQ(root.read(ctx_off(2, 0x34), 4), 0x12u);
    root.write(ctx_off(2, 0x30), 0, 4);  // IMELAR is read-only
    EXPECT_EQ(root.read(ctx_off(2, 0x30), 4), 0x34567890u);
    root.write(ctx_off(2, 0x20), 0x1 | 0x10, 4);  // keeps TF, cannot set MHIT, clears PF
    EXPECT_EQ(root.imstr(2), 0x2001u);
    root.write(ctx_off(2, 0x20), 0, 4);
    EXPECT_EQ(root.imstr(2), 0u);
    EXPECT_EQ(root.read(ctx_off(2, 0x30), 4), 0u);
    EXPECT_EQ(root.read(ctx_off(2, 0x34), 4), 0u);
    // uTLBs 32 and up live in the second window.
    cache.write(imuctr_off(47), 0x71 | 0x2, 4);
    EXPECT_EQ(cache.imuctr(47), 0x71u);
    EXPECT_EQ(cache.utlb_flushes(47), 1u);
    cache.write(imuctr_off(utlbs() - 1), 0x31, 4);
    EXPECT_EQ(cache.imuctr(utlbs() - 1), 0x31u);
    EXPECT_TRUE(root.violations().empty() && cache.violations().empty());
    // What the architecture of the part leaves undefined is recorded.
    root.write(ctx_off(1, kImctr), 1, 4);
    root.write(ctx_off(1, 0x08), 0x80000000u, 4);  // table registers of an enabled context
    cache.write(ctx_off(1, 0x10), 0, 4);           // table registers on a cache
    root.write(0x100c, 0, 4);
    root.read(ctx_off(1, kImctr), 8);
    EXPECT_EQ(root.violations().size(), 3u);
    EXPECT_EQ(cache.violations().size(), 1u);
}

// The Gen4 map with its offsets written out as docs/hardware.md §1.9 gives them: controls at
// 0x1500, uTLBs from 0x3300 (32..63 from 0x3600), contexts from 0x10000 every 0x1040, contexts
// 8..15 another 0x600 on, a five-bit TTSEL. Where Gen3 has its registers, a Gen4 IPMMU has none.
TEST(IpmmuModel, Gen4RegisterMapAtItsOffsets) {
    HostMem h(kPhysBase, 4);
    model::PoolPhysMem mem(*h.pool);
    IpmmuModel root(mem, IpmmuModel::kGen4), cache(root, 0);
    EXPECT_EQ(root.size(), 0x20000u);
    EXPECT_EQ(cache.layout().contexts, 16u);
    root.write(0x1504, 0x8, 4);
    EXPECT_EQ(root.imsauxctlr(), 0x8u);
    root.write(0x1500, 1u << 28, 4);
    EXPECT_EQ(root.imsctlr(), 1u << 28);
    cache.write(0x3300, 0xf1, 4);
    EXPECT_EQ(cache.imuctr(0), 0xf1u);
    cache.write(0x3300 + 16 * 31 + 8, 0x5, 4);
    EXPECT_EQ(cache.imuasid(31), 0x5u);
    cache.write(0x3600, 0x1f3, 4);  // TTSEL bit 8 exists here; FLUSH self-clears
    EXPECT_EQ(cache.imuctr(32), 0x1f1u);
    EXPECT_EQ(cache.utlb_flushes(32), 1u);
    cache.write(0x37f0, 0x91, 4);
    EXPECT_EQ(cache.imuctr(63), 0x91u);
    root.write(0x10000 + 0x08, 0x80000000u, 4);
    EXPECT_EQ(root.imttbcr(0), 0x80000000u);
    root.write(0x10000 + 7 * 0x1040 + 0x10, 0x12345000, 4);
    EXPECT_EQ(root.ttbr0(7), 0x12345000u);
    root.write(0x18800 + 0x10, 0xabcde000, 4);
    EXPECT_EQ(root.ttbr0(8), 0xabcde000u);
    root.write(0x10000 + 0x600 + 15 * 0x1040 + 0x14, 0x7f, 4);
    EXPECT_EQ(root.ttbr0(15) >> 32, 0x7fu);
    cache.write(0x10000 + 9 * 0x1040 + 0x600, 0x5, 4);
    EXPECT_EQ(cache.imctr(9), 0x5u);
    EXPECT_TRUE(root.violations().empty() && cache.violations().empty());
    root.write(0x504, 0x8, 4);                       // Gen3's IMSAUXCTLR
    root.write(0x10, 0, 4);                          // Gen3's context 0 IMTTLBR0
    root.write(0x10000 + 8 * 0x1040 + 0x10, 0, 4);   // context 8 without the 0x600: between contexts
    cache.write(0x300, 0x1, 4);                      // Gen3's IMUCTR(0)
    EXPECT_EQ(root.violations().size(), 3u);
    EXPECT_EQ(cache.violations().size(), 1u);
    EXPECT_EQ(root.imsauxctlr(), 0x8u);
    EXPECT_EQ(cache.imuctr(0), 0xf1u);
}

// What the blocking context relies on, without the driver: an enabled uTLB whose context walks
// a table of invalid entries takes a translation fault at the start level (latched with its
// address), wherever in the input range; a disabled uTLB sends the address out as it is.
TEST_P(IpmmuModelGen, EmptyTableFaultsAndDisabledUtlbBypasses) {
    HostMem h(kPhysBase, 8);
    model::PoolPhysMem mem(*h.pool);
    IpmmuModel root(mem, *G->layout), cache(root, 1);
    Result<uint64_t> table = h.pool->alloc(2, 2), victim = h.pool->alloc();
    ASSERT_TRUE(table.ok() && victim.ok());
    root.write(ctl_off(0x504), 0x8, 4);                                      // S2PTE
    root.write(ctx_off(5, 0x08), 0x80000000u | 0x40000000u | 1u << 6 | 24u, 4);  // 40-bit IPA, level 1
    root.write(ctx_off(5, 0x10), static_cast<uint32_t>(table.value), 4);
    root.write(ctx_off(5, 0x14), static_cast<uint32_t>(table.value >> 32), 4);
    root.write(ctx_off(5, kImctr), kVa64 | kIntEn | kMmuEn, 4);
    cache.write(ctx_off(5, kImctr), kIntEn | kMmuEn, 4);
    cache.write(imuctr_off(9), 5u << 4 | kMmuEn, 4);
    uint8_t b = 0x42;
    for (uint64_t a : {victim.value, uint64_t{0}, (uint64_t{1} << 40) - 1}) {
        IpmmuModel::Dma w = cache.dma_write(9, a, &b, 1);
        EXPECT_FALSE(w.ok || w.bypassed) << a;
        EXPECT_EQ(w.fault, IpmmuModel::kTf) << a;
        EXPECT_EQ(w.context, 5u);
    }
    EXPECT_EQ(root.imstr(5), 0x1u | 1u << 12);  // TF at level 1, the first address kept
    EXPECT_EQ(root.read(ctx_off(5, 0x30), 4), static_cast<uint32_t>(victim.value));
    EXPECT_TRUE(root.irq_pending());
    EXPECT_EQ(static_cast<uint8_t*>(h.pool->virt(victim.value))[0], 0);
    cache.write(imuctr_off(9), 0, 4);
    IpmmuModel::Dma w = cache.dma_write(9, victim.value, &b, 1);
    EXPECT_TRUE(w.ok && w.bypassed);
    EXPECT_EQ(static_cast<uint8_t*>(h.pool->virt(victim.value))[0], 0x42);
    EXPECT_TRUE(root.violations().empty() && cache.violations().empty());
}

// ---------------------------------------------------------------- probe

TEST_P(IpmmuVmsaGen, ProbeResetsEverythingAndSelectsTheTableFormat) {
    Rig r(Format::stage2, false);
    // What firmware may leave behind: a live context, an enabled uTLB, the security group function.
    r.mm.poke(ctx_off(5, kImctr), 0x1);
    r.mm.poke(ctl_off(0x500), 1u << 28 | 0x100);
    r.ds1_m.poke(imuctr_off(40), 0x31);
    r.ds1_m.poke(ctx_off(3, kImctr), 0x5);
    ASSERT_EQ(r.probe_root(), Status::ok) << r.root.why();
    ASSERT_EQ(r.probe_cache(r.ds1, G->ds1, "ds1", 1), Status::ok);
    EXPECT_EQ(r.mm.imctr(5), 0u);
    EXPECT_EQ(r.mm.imsctlr(), 0x100u);  // USE_SECGRP cleared, the rest kept
    EXPECT_EQ(r.mm.imsauxctlr(), 0x8u);  // S2PTE
    EXPECT_EQ(r.ds1_m.imuctr(40), 0u);
    EXPECT_EQ(r.ds1_m.imctr(3), 0u);
    EXPECT_STREQ(r.root.soc(), G->soc);
    EXPECT_STREQ(r.root.why(), "");  // nothing refused
    const IommuCaps& c = r.ds1.caps();
    EXPECT_TRUE(c.stage2 && !c.stage1 && !c.coherent_walk && !c.range_invalidation);
    EXPECT_EQ(c.ias, 40u);
    EXPECT_EQ(c.oas, 40u);
    EXPECT_EQ(c.max_stream, utlbs() - 1);
    EXPECT_EQ(r.root.contexts_free(), domain_contexts());  // context 0 is reserved, the last one blocks
    EXPECT_EQ(&r.ds1.generation(), G->gen);
}

TEST_P(IpmmuVmsaGen, Stage1FormatLeavesS2pteClear) {
    Rig s1(Format::stage1, false);
    s1.mm.poke(ctl_off(0x504), 0x8);
    ASSERT_EQ(s1.probe_root(), Status::ok);
    ASSERT_EQ(s1.probe_cache(s1.ds1, G->ds1, "ds1", 1), Status::ok);
    EXPECT_EQ(s1.mm.imsauxctlr(), 0u);
    EXPECT_TRUE(s1.ds1.caps().stage1 && !s1.ds1.caps().stage2);
    EXPECT_EQ(s1.ds1.caps().ias, 32u);
}

TEST_P(IpmmuVmsaGen, CacheWaitsForItsRootAndBadTopologiesAreRefused) {
    Rig r(Format::stage2, false);
    // The cache first: not_ready, nothing touched, retried once the root is there.
    EXPECT_EQ(r.probe_cache(r.ds1, G->ds1, "ds1", 1), Status::not_ready);
    EXPECT_NE(std::string(r.ds1.why()).find("root"), std::string::npos);
    EXPECT_FALSE(r.ds1.ready() || r.ds1.is_root());  // is_root() on an instance without a device is false
    EXPECT_EQ(r.writes(), 0u);
    // A root without interrupts could never report a fault.
    EXPECT_EQ(r.probe_root(G->prr, 0), Status::invalid_argument);
    EXPECT_STREQ(r.root.why(), "root IPMMU without interrupts");
    // A root told the other generation than its compatible's, or a window too small for its own.
    const ipmmu::Generation* other = G->gen == &ipmmu::kGen3 ? &ipmmu::kGen4 : &ipmmu::kGen3;
    IpmmuVmsa::Config wrong = r.root_config();
    wrong.gen = other;
    wrong.size = 0x20000;
    EXPECT_EQ(r.root.probe(wrong), Status::invalid_argument);
    EXPECT_NE(std::string(r.root.why()).find(std::string("configured as ") + other->name), std::string::npos) << r.root.why();
    wrong = r.root_config();
    wrong.size = G->layout->size / 2;
    EXPECT_EQ(r.root.probe(wrong), Status::invalid_argument);
    EXPECT_NE(std::string(r.root.why()).find("register window smaller"), std::string::npos) << r.root.why();
    EXPECT_EQ(r.writes(), 0u);
    ASSERT_EQ(r.probe_root(), Status::ok);
    EXPECT_EQ(r.probe_root(), Status::in_use);
    ASSERT_EQ(r.probe_cache(r.ds1, G->ds1, "ds1", 1), Status::ok);
    // A cache that names a cache as its root, and two caches on one IMSSTR bit.
    EXPECT_EQ(r.probe_cache(r.hc, G->hc, "hc", 2, &r.ds1), Status::invalid_argument);
    EXPECT_EQ(r.probe_cache(r.hc, G->hc, "hc", 1), Status::in_use);
    EXPECT_EQ(r.probe_cache(r.hc, G->hc, "hc", 2), Status::ok);
    // A cache of the other generation in front of this root.
    IpmmuVmsa::Config stranger;
    stranger.gen = other;
    stranger.base = G->mp;
    stranger.size = 0x20000;
    stranger.root = &r.root;
    stranger.main_bit = 4;
    uint64_t writes = r.writes();
    EXPECT_EQ(r.mp.probe(stranger), Status::invalid_argument);
    EXPECT_NE(std::string(r.mp.why()).find("cache in front of"), std::string::npos) << r.mp.why();
    EXPECT_EQ(r.writes(), writes);
    // The root takes no masters: they all sit behind caches.
    auto d = r.domain();
    ASSERT_EQ(d->init(), Status::ok);
    EXPECT_EQ(d->attach(r.root, 0), Status::unsupported);
}

TEST(IpmmuVmsa, OnlySupportedSocRevisionsProbe) {
    char why[200];
    struct Case {
        const char* compat;
        uint32_t prr;
        bool ok;
        const char* says;
    } cases[] = {
        {"renesas,ipmmu-r8a7795", 0x4f20, true, "R-Car H3 ES3.0"},
        {"renesas,ipmmu-r8a7795", 0x4f21, true, "R-Car H3 ES3.1"},
        {"renesas,ipmmu-r8a7795", 0x4f10, false, "R-Car H3 ES2.0: its IPMMU cannot share stage-2 tables before ES3.0"},
        {"renesas,ipmmu-r8a7795", 0x4f00, false, "R-Car H3 ES1.0"},
        {"renesas,ipmmu-r8a7796", 0x5210, false, "R-Car M3-W ES2.0"},
        {"renesas,ipmmu-r8a7796", 0x5220, true, "R-Car M3-W ES3.0"},
        {"renesas,ipmmu-r8a77961", 0x5220, true, "R-Car M3-W ES3.0"},
        {"renesas,ipmmu-r8a77965", 0x5500, true, "R-Car M3-N ES1.0"},
        {"renesas,ipmmu-r8a77965", 0x5511, true, "R-Car M3-N ES2.1"},
        {"renesas,ipmmu-r8a77965", 0x4f20, false, "product register says R-Car H3 (0x4f) but the node is renesas,ipmmu-r8a77965"},
        // Gen4: S4 on every cut, as Xen; V3U (driven with stage-1 tables) likewise.
        {"renesas,ipmmu-r8a779f0", 0x5a00, true, "R-Car S4 ES1.0"},
        {"renesas,ipmmu-r8a779f0", 0x5a11, true, "R-Car S4 ES2.1"},
        {"renesas,ipmmu-r8a779a0", 0x5900, true, "R-Car V3U ES1.0"},
        {"renesas,ipmmu-r8a779a0", 0x5a00, false, "product register says R-Car S4 (0x5a) but the node is renesas,ipmmu-r8a779a0"},
        {"renesas,ipmmu-r8a7795", 0x5a00, false, "product register says R-Car S4 (0x5a) but the node is renesas,ipmmu-r8a7795"},
        {"renesas,ipmmu-r8a779f0", 0x4f20, false, "product register says R-Car H3 (0x4f) but the node is renesas,ipmmu-r8a779f0"},
        {"renesas,ipmmu-r8a7795", 0x5b00, false, "names product 0x5b, not an R-Car this driver supports"},
        // V4H: recognised, not driven (no tree of it in Linux 6.1 to test against).
        {"renesas,ipmmu-r8a779g0", 0x5c00, false, "renesas,ipmmu-r8a779g0 is not an R-Car IPMMU this driver supports"},
        {"renesas,ipmmu-r8a7795", 0xffff4f20, true, "R-Car H3 ES3.0"},  // bits outside the mask do not count
    };
    for (const Case& c : cases) {
        Status st = IpmmuVmsa::check_soc(c.compat, c.prr, why, sizeof why);
        EXPECT_EQ(st == Status::ok, c.ok) << c.compat << " 0x" << std::hex << c.prr << ": " << why;
        EXPECT_NE(std::string(why).find(c.says), std::string::npos) << why;
    }
}

// Through probe: refused before a single register is written.
TEST_P(IpmmuVmsaGen, UnsupportedSiliconIsRefusedBeforeAnyRegisterIsWritten) {
    Rig r(Format::stage2, false);
    EXPECT_EQ(r.probe_root(G->bad_prr), Status::unsupported);
    EXPECT_NE(std::string(r.root.why()).find(G->refusal), std::string::npos) << r.root.why();
    EXPECT_EQ(r.writes(), 0u);
    EXPECT_FALSE(r.root.ready());
}

// V3U: no public driver shares stage-2 tables on it, so its root refuses them and takes
// Linux's 32-bit stage-1 tables, with the Gen4 register map.
TEST(IpmmuVmsa, V3uTakesStage1TablesOnly) {
    HostMem h(kPhysBase, 64);
    model::PoolPhysMem mem(*h.pool);
    IpmmuModel mm(mem, IpmmuModel::kGen4), ds0_m(mm, 0);
    Mapped gm(0xeefc0000, mm), gd(0xeed00000, ds0_m);
    IpmmuVmsa root, ds0;
    IpmmuVmsa::Config c;
    c.gen = &ipmmu::kGen4;
    c.base = 0xeefc0000;
    c.size = 0x20000;
    c.name = "mm";
    c.nirqs = 2;
    c.compatible = "renesas,ipmmu-r8a779a0";
    c.prr = 0x5900;
    c.pool = h.pool.get();
    EXPECT_EQ(root.probe(c), Status::unsupported);
    EXPECT_STREQ(root.why(), "R-Car V3U: stage-2 tables are not known to work on its IPMMU (32-bit stage-1 tables are)");
    EXPECT_EQ(mm.register_writes(), 0u);
    c.format = Format::stage1;
    ASSERT_EQ(root.probe(c), Status::ok) << root.why();
    EXPECT_STREQ(root.soc(), "R-Car V3U ES1.0");
    IpmmuVmsa::Config cc;
    cc.gen = &ipmmu::kGen4;
    cc.base = 0xeed00000;
    cc.size = 0x20000;
    cc.name = "ds0";
    cc.root = &root;
    cc.masters = uint64_t{1} << 32;  // SDHI0, as in Linux's Falcon tree
    ASSERT_EQ(ds0.probe(cc), Status::ok) << ds0.why();
    EXPECT_EQ(ds0_m.imuctr(32), 15u << 4 | kMmuEn);  // blocked in context 15
    IoDomain d(*h.pool, iopt::vmsa_s1(32, 40, false));
    Result<uint64_t> buf = h.pool->alloc();
    ASSERT_TRUE(buf.ok());
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(kIova, buf.value, kPageSize, {}).ok());
    ASSERT_EQ(d.attach(ds0, 32), Status::ok);
    EXPECT_EQ(mm.imttbcr(1), 0x80000000u | 2u << 12 | 2u << 6);  // LPAE, start level 1
    EXPECT_EQ(mm.imsauxctlr(), 0u);
    uint8_t b = 0x3c;
    ASSERT_TRUE(ds0_m.dma_write(32, kIova + 5, &b, 1).ok);
    EXPECT_EQ(static_cast<uint8_t*>(h.pool->virt(buf.value))[5], 0x3c);
    ASSERT_EQ(d.destroy(), Status::ok);
    root.shutdown();
    for (IpmmuModel* m : {&mm, &ds0_m})
        for (const std::string& v : m->violations()) ADD_FAILURE() << "model: " << v;
}

// ---------------------------------------------------------------- translation

TEST_P(IpmmuVmsaGen, Stage2TablesAreSharedAndDmaLandsWhereTheMappingSays) {
    Rig r;
    auto d = r.domain();
    uint64_t buf = r.buffer(2);
    ASSERT_TRUE(ready(*d, r.ds1, 32, kIova, buf, 2 * kPageSize));
    uint8_t ctx = r.ds1.context_of(*d);
    ASSERT_EQ(ctx, 1u);  // the first context after the reserved one
    // Context programmed as Xen shares a P2M: EAE | PMB | SL0 = 1 (level 1) | TSZ0 = 64 - 40, and
    // the non-coherent walk attributes every driver programs: IRGN0/ORGN0 0, SH0 2 (outer).
    EXPECT_EQ(r.mm.imttbcr(ctx), 0x80000000u | 0x40000000u | 2u << 12 | 1u << 6 | 24u);
    EXPECT_EQ(r.mm.ttbr0(ctx), d->root_pa());
    EXPECT_EQ(r.mm.imctr(ctx), 1u << 29 | 0x4 | 0x1);  // VA64 | INTEN | MMUEN
    EXPECT_EQ(r.ds1_m.imctr(ctx), 0x5u);              // the cache's copy: INTEN | MMUEN
    EXPECT_EQ(r.ds1_m.imuctr(32), uint32_t{ctx} << 4 | 1);
    EXPECT_EQ(r.ds1_m.imuasid(32), 0u);
    EXPECT_EQ(r.hc_m.imctr(ctx), 0u);  // a cache the domain does not use keeps the context off

    // Two pages, crossing the page boundary, byte for byte; then read back through the IPMMU.
    auto data = pattern(6000, 3);
    IpmmuModel::Dma w = r.ds1_m.dma_write(32, kIova + 100, data.data(), data.size());
    ASSERT_TRUE(w.ok);
    EXPECT_FALSE(w.bypassed);
    EXPECT_EQ(w.pa, buf + 100);
    EXPECT_EQ(memcmp(r.at(buf) + 100, data.data(), data.size()), 0);
    std::vector<uint8_t> back(data.size());
    ASSERT_TRUE(r.ds1_m.dma_read(32, kIova + 100, back.data(), back.size()).ok);
    EXPECT_EQ(back, data);
    EXPECT_TRUE(r.faults().empty());
    // A 2 MiB block, walked to level 2.
    Result<uint64_t> big = r.pool().alloc(512, 512);
    ASSERT_TRUE(big.ok());
    ASSERT_TRUE(d->map(kIova + 2 * MiB, big.value, 2 * MiB, {}).ok());
    ASSERT_TRUE(poke(r.ds1_m, 32, kIova + 2 * MiB + 0x12345, 0x99).ok);
    EXPECT_EQ(r.at(big.value)[0x12345], 0x99);
}

TEST_P(IpmmuVmsaGen, Stage1LpaeTablesOfItsOwnWithMair) {
    Rig r(Format::stage1);
    auto d = r.domain();
    uint64_t buf = r.buffer(), ro = r.buffer();
    ASSERT_EQ(d->init(), Status::ok);
    ASSERT_TRUE(d->map(kIova, buf, kPageSize, {}).ok());
    iopt::Prot read_only;
    read_only.perm = iopt::kRead;
    ASSERT_TRUE(d->map(kIova + kPageSize, ro, kPageSize, read_only).ok());
    ASSERT_EQ(d->attach(r.hc, 5), Status::ok);
    uint8_t ctx = r.hc.context_of(*d);
    // LPAE: EAE | SH0 outer | SL0 = 2 (level 1 in the two-bit encoding) | TSZ0 = 0 (32 bits), no VA64.
    EXPECT_EQ(r.mm.imttbcr(ctx), 0x80000000u | 2u << 12 | 2u << 6);
    EXPECT_EQ(r.mm.imctr(ctx), 0x5u);
    EXPECT_EQ(r.mm.immair0(ctx), static_cast<uint32_t>(iopt::Stage1::kMair));
    EXPECT_EQ(r.mm.imsauxctlr() & 0x8, 0u);

    ASSERT_TRUE(poke(r.hc_m, 5, kIova + 8, 0x11).ok);
    EXPECT_EQ(r.at(buf)[8], 0x11);
    uint8_t b[4];
    EXPECT_TRUE(r.hc_m.dma_read(5, kIova + kPageSize, b, sizeof b).ok);
    IpmmuModel::Dma w = poke(r.hc_m, 5, kIova + kPageSize + 16);
    EXPECT_FALSE(w.ok);
    EXPECT_EQ(w.fault, IpmmuModel::kPf);
    auto f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].kind, FaultKind::permission);
    EXPECT_EQ(f[0].address, kIova + kPageSize + 16);
    EXPECT_EQ(f[0].stream, 5u);
    EXPECT_STREQ(f[0].iommu, "hc");
    EXPECT_STREQ(f[0].detail, "PF (permission fault), level 3");
    EXPECT_EQ(r.at(ro)[16], 0);
    // Stage-1 tables cover 32 bits: a domain asking for more cannot be walked by this context.
    IoDomain wide(r.pool(), iopt::vmsa_s1(36, 40, false));
    ASSERT_EQ(wide.init(), Status::ok);
    EXPECT_EQ(wide.attach(r.hc, 6), Status::out_of_range);
}

TEST_P(IpmmuVmsaGen, UnmappedAddressFaultsWithTheAddressAndStatus) {
    Rig r;
    auto d = r.domain();
    uint64_t buf = r.buffer();
    ASSERT_TRUE(ready(*d, r.ds1, 33, kIova, buf, kPageSize));
    uint8_t ctx = r.ds1.context_of(*d);
    constexpr uint64_t kHole = 0x12345678;  // same level-1 entry as kIova, no level-2 entry
    IpmmuModel::Dma w = poke(r.ds1_m, 33, kHole);
    EXPECT_FALSE(w.ok);
    EXPECT_EQ(w.fault, IpmmuModel::kTf);
    EXPECT_EQ(r.mm.imstr(ctx), 0x1u | 2u << 12);
    EXPECT_TRUE(r.mm.irq_pending());
    auto f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].kind, FaultKind::translation);
    EXPECT_EQ(f[0].address, kHole);  // read before IMSTR was cleared (the model zeroes it then)
    EXPECT_EQ(f[0].stream, 33u);
    EXPECT_STREQ(f[0].iommu, "ds1");
    EXPECT_EQ(f[0].raw, 0x2001u);
    EXPECT_STREQ(f[0].detail, "TF (translation fault), level 2");
    EXPECT_EQ(r.mm.imstr(ctx), 0u);
    EXPECT_FALSE(r.mm.irq_pending());
    EXPECT_TRUE(r.faults().empty());
    // Beyond the 40-bit input: a level-1 translation fault, still recorded with its address.
    EXPECT_FALSE(poke(r.ds1_m, 33, uint64_t{1} << 41).ok);
    f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].address, uint64_t{1} << 41);
    // The device stays usable for its other mappings; a cache's poll drains the root's contexts.
    EXPECT_TRUE(poke(r.ds1_m, 33, kIova).ok);
    EXPECT_FALSE(poke(r.ds1_m, 33, kHole).ok);
    FaultLog log;
    EXPECT_EQ(r.hc.poll_faults(log), 1u);
    EXPECT_EQ(r.root.poll_faults(log), 0u);
}

TEST_P(IpmmuVmsaGen, FaultStatusIsDecodedWithErrorCodeAndLevel) {
    Rig r;
    auto a = r.domain(), b = r.domain();
    ASSERT_TRUE(ready(*a, r.ds1, 1));
    ASSERT_TRUE(ready(*b, r.ds1, 2));
    ASSERT_TRUE(b->attach(r.hc, 2) == Status::ok);  // b's context is shared by two uTLBs
    uint8_t ca = r.ds1.context_of(*a), cb = r.ds1.context_of(*b);
    r.mm.inject_fault(ca, 0x10 | 5u << 8 | 3u << 12, 0xabc000);  // MHIT, error code 5, level 3
    r.mm.inject_fault(cb, 0x4 | 1u << 12, 0xdef000);             // ABORT at level 1
    auto f = r.faults();
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(f[0].kind, FaultKind::tlb_conflict);
    EXPECT_STREQ(f[0].detail, "MHIT (multiple TLB hits), level 3");
    EXPECT_EQ(IpmmuVmsa::decode(f[0].raw).errcode, 5u);
    EXPECT_EQ(f[0].stream, 1u);
    EXPECT_EQ(f[1].kind, FaultKind::walk_abort);
    EXPECT_EQ(f[1].address, 0xdef000u);
    EXPECT_EQ(f[1].stream, IpmmuVmsa::kStreamUnknown);  // two uTLBs use that context
    EXPECT_STREQ(f[1].iommu, "mm");
    IpmmuVmsa::FaultInfo i = IpmmuVmsa::decode(0x3 | 1u << 12);
    EXPECT_EQ(i.kind, FaultKind::translation);  // TF first when several bits are latched
    EXPECT_EQ(i.level, 1u);
    EXPECT_EQ(IpmmuVmsa::decode(0x2).kind, FaultKind::permission);
    EXPECT_EQ(IpmmuVmsa::decode(0).kind, FaultKind::other);
}

// ---------------------------------------------------------------- contexts and uTLBs

// Without blocking: every context but the reserved one goes to a domain (7 on Gen3, 15 on Gen4),
// and one domain more is refused cleanly.
TEST_P(IpmmuVmsaGen, EveryContextButTheReservedOneGoesToADomainAndOneMoreIsRefused) {
    Rig r(Format::stage2, true, false);  // block_unattached off: no blocking context
    const unsigned fit = domain_contexts(false), late = fit;
    ASSERT_EQ(fit, contexts() - 1);
    std::vector<std::unique_ptr<IoDomain>> d;
    std::vector<uint64_t> pa;
    for (unsigned i = 0; i <= fit; i++) {
        d.push_back(r.domain());
        pa.push_back(r.buffer());
        ASSERT_EQ(d[i]->init(), Status::ok);
        ASSERT_TRUE(d[i]->map(kIova, pa[i], kPageSize, {}).ok());
    }
    std::vector<bool> used(contexts());
    for (unsigned i = 0; i < fit; i++) {
        ASSERT_EQ(d[i]->attach(r.ds1, i), Status::ok) << i;
        uint8_t c = r.ds1.context_of(*d[i]);
        ASSERT_TRUE(c >= 1 && c < contexts() && !used[c]) << unsigned{c};
        used[c] = true;
        EXPECT_EQ(r.mm.imctr(c), kVa64 | kIntEn | kMmuEn) << unsigned{c};
        EXPECT_EQ(r.ds1_m.imctr(c), kIntEn | kMmuEn) << unsigned{c};
    }
    EXPECT_EQ(r.root.contexts_free(), 0u);
    uint64_t before = r.writes();
    EXPECT_EQ(d[late]->attach(r.ds1, late), Status::no_space);
    EXPECT_EQ(r.writes(), before);  // nothing touched: no context, no uTLB
    EXPECT_EQ(r.ds1.context_of(*d[late]), IpmmuVmsa::kNoContext);
    EXPECT_EQ(r.ds1_m.imuctr(late), 0u);
    // Every domain's DMA lands in its own page (on Gen4 also through contexts 8..15, past the
    // 0x600 step in the register map).
    for (unsigned i = 0; i < fit; i++) {
        ASSERT_TRUE(poke(r.ds1_m, i, kIova + 4, static_cast<uint8_t>(0x30 + i)).ok);
        EXPECT_EQ(r.at(pa[i])[4], 0x30 + i);
    }
    // A context given back is flushed before the next domain gets it: the late domain's DMA
    // reaches its own page, not the page the previous owner's TLB entries point at.
    uint8_t freed = r.ds1.context_of(*d[3]);
    ASSERT_EQ(d[3]->detach(r.ds1, 3), Status::ok);
    ASSERT_EQ(d[late]->attach(r.ds1, late), Status::ok);
    EXPECT_EQ(r.ds1.context_of(*d[late]), freed);
    ASSERT_TRUE(poke(r.ds1_m, late, kIova + 4, 0x77).ok);
    EXPECT_EQ(r.at(pa[late])[4], 0x77);
    EXPECT_EQ(r.at(pa[3])[4], 0x33);
}

// Seed review of the first Xen port: a context allocation that failed must leave the context id
// invalid, and a flush for that domain must not touch any context, let alone someone else's.
TEST_P(IpmmuVmsaGen, FailedAllocationCannotFlushAForeignContext) {
    Rig r;
    std::vector<std::unique_ptr<IoDomain>> d;
    unsigned fit = r.root.contexts_free();
    ASSERT_EQ(fit, domain_contexts());
    for (unsigned i = 0; i <= fit; i++) {
        d.push_back(r.domain());
        ASSERT_EQ(d[i]->init(), Status::ok);
    }
    for (unsigned i = 0; i < fit; i++) ASSERT_EQ(d[i]->attach(r.hc, 10 + i), Status::ok);
    IoDomain& loser = *d[fit];
    ASSERT_EQ(loser.attach(r.hc, 40), Status::no_space);
    uint64_t flushes[16], before = r.writes();
    for (unsigned c = 0; c < contexts(); c++) flushes[c] = r.mm.flush_requests(c);
    iopt::Gather g;
    g.add(0, kPageSize, 12, true);
    EXPECT_EQ(r.hc.flush(loser, g), Status::ok);
    EXPECT_EQ(r.root.flush(loser, g), Status::ok);
    EXPECT_EQ(loser.detach(r.hc, 40), Status::not_found);
    EXPECT_EQ(r.hc.detach(loser, 40), Status::not_found);
    EXPECT_EQ(r.writes(), before);
    for (unsigned c = 0; c < contexts(); c++) EXPECT_EQ(r.mm.flush_requests(c), flushes[c]) << c;
    // Its map and unmap flush nothing either: no IOMMU is attached.
    uint64_t buf = r.buffer();
    EXPECT_TRUE(loser.map(kIova, buf, kPageSize, {}).ok());
    EXPECT_TRUE(loser.unmap(kIova, kPageSize).ok());
    EXPECT_EQ(r.writes(), before);
}

TEST_P(IpmmuVmsaGen, UtlbOfAnotherDomainIsRefused) {
    Rig r;
    auto a = r.domain(), b = r.domain();
    uint64_t pa = r.buffer(), pb = r.buffer();
    ASSERT_TRUE(ready(*a, r.ds1, 32, kIova, pa, kPageSize));
    ASSERT_EQ(b->init(), Status::ok);
    ASSERT_TRUE(b->map(kIova, pb, kPageSize, {}).ok());
    unsigned free_before = r.root.contexts_free();
    EXPECT_EQ(b->attach(r.ds1, 32), Status::in_use);  // the system-wide stream check
    EXPECT_EQ(r.ds1.attach(*b, 32), Status::in_use);  // and the driver's own, uTLB by uTLB
    EXPECT_EQ(r.root.contexts_free(), free_before);
    ASSERT_TRUE(poke(r.ds1_m, 32, kIova, 0xaa).ok);
    EXPECT_EQ(r.at(pa)[0], 0xaa);
    EXPECT_EQ(r.at(pb)[0], 0);
    // The same number on another cache is another uTLB.
    ASSERT_EQ(b->attach(r.hc, 32), Status::ok);
    ASSERT_TRUE(poke(r.hc_m, 32, kIova, 0xbb).ok);
    EXPECT_EQ(r.at(pb)[0], 0xbb);
    // A uTLB someone enabled behind the driver's back is not taken over.
    r.mp_m.poke(imuctr_off(40), 0x31);
    EXPECT_EQ(b->attach(r.mp, 40), Status::in_use);
    EXPECT_EQ(r.mp_m.imuctr(40), 0x31u);
    // Out of range: 48 on Gen3, 64 on Gen4; the last one there is exists.
    EXPECT_EQ(b->attach(r.mp, utlbs()), Status::out_of_range);
    ASSERT_EQ(b->attach(r.mp, utlbs() - 1), Status::ok);
    EXPECT_EQ(r.mp_m.imuctr(utlbs() - 1), uint32_t{r.mp.context_of(*b)} << 4 | kMmuEn);
    ASSERT_TRUE(poke(r.mp_m, utlbs() - 1, kIova + 1, 0xcc).ok);
    EXPECT_EQ(r.at(pb)[1], 0xcc);
}

TEST_P(IpmmuVmsaGen, UtlbIsReferenceCountedWithinADomain) {
    Rig r;
    auto d = r.domain();
    uint64_t buf = r.buffer();
    ASSERT_TRUE(ready(*d, r.ds1, 33, kIova, buf, kPageSize));
    // Two masters on one uTLB (the driver's API: IoDomain lets one stream in once).
    ASSERT_EQ(r.ds1.attach(*d, 33), Status::ok);
    EXPECT_EQ(r.ds1.utlb_refs(33), 2u);
    ASSERT_EQ(r.ds1.detach(*d, 33), Status::ok);
    EXPECT_TRUE(poke(r.ds1_m, 33, kIova).ok);
    EXPECT_FALSE(poke(r.ds1_m, 33, kIova).bypassed);
    ASSERT_EQ(d->detach(r.ds1, 33), Status::ok);
    IpmmuModel::Dma w = poke(r.ds1_m, 33, kIova);
    EXPECT_FALSE(w.bypassed);
    EXPECT_EQ(w.fault, IpmmuModel::kTf);
    EXPECT_EQ(w.context, block());
    EXPECT_EQ(r.ds1.detach(*d, 33), Status::not_found);
    (void)r.faults();
}

TEST_P(IpmmuVmsaGen, DetachBlocksTheMasterAndFreesTheContext) {
    Rig r;
    auto d = r.domain();
    uint64_t buf = r.buffer(), victim = r.buffer();
    ASSERT_TRUE(ready(*d, r.ds1, 34, kIova, buf, kPageSize));
    uint8_t ctx = r.ds1.context_of(*d);
    ASSERT_TRUE(poke(r.ds1_m, 34, kIova, 0x44).ok);
    EXPECT_EQ(r.at(buf)[0], 0x44);
    ASSERT_EQ(d->detach(r.ds1, 34), Status::ok);
    // Back in the blocking context: neither the domain's page nor the page at the physical
    // address the master names (where a disabled uTLB would send it) is written.
    EXPECT_TRUE(blocked(r.ds1_m, 34, kIova, 0x55));
    EXPECT_TRUE(blocked(r.ds1_m, 34, victim + 0x80, 0x55));
    EXPECT_EQ(r.at(buf)[0], 0x44);
    EXPECT_EQ(r.at(victim)[0x80], 0);
    EXPECT_EQ(r.ds1_m.imuctr(34), blocked_imuctr());
    EXPECT_TRUE(r.ds1.utlb_blocked(34));
    EXPECT_EQ(r.ds1_m.imctr(ctx), 0u);
    EXPECT_EQ(r.mm.imctr(ctx), 0u);
    EXPECT_EQ(r.root.contexts_free(), domain_contexts());
    EXPECT_EQ(r.ds1.context_of(*d), IpmmuVmsa::kNoContext);
    // Both reported, with their addresses (the first latched; the second after the first was cleared).
    auto f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].address, kIova);
    EXPECT_EQ(f[0].kind, FaultKind::stream_disabled);
    EXPECT_EQ(f[0].raw & 0x1, 0x1u);  // the hardware's TF
    // Five masters share the blocking context (four on DS1, one on HC): the uTLB is not known.
    EXPECT_EQ(f[0].stream, IpmmuVmsa::kStreamUnknown);
    EXPECT_STREQ(f[0].iommu, "mm");
    EXPECT_TRUE(blocked(r.ds1_m, 34, victim + 0x80, 0x55));
    f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].address, victim + 0x80);
    // Teardown gives every table page back.
    size_t used = r.pool().used_pages();
    ASSERT_EQ(d->destroy(), Status::ok);
    EXPECT_LT(r.pool().used_pages(), used);
}

// block_unattached = false: the context comes back to domains, and a detached master's addresses
// go out as they are (the IPMMU has no per-uTLB abort), as under Linux and Xen.
TEST_P(IpmmuVmsaGen, WithoutBlockingDetachedAndUnattachedMastersBypass) {
    Rig r(Format::stage2, true, false);
    EXPECT_EQ(r.root.blocking_context(), IpmmuVmsa::kNoContext);
    EXPECT_EQ(r.root.blocking_table(), 0u);
    EXPECT_EQ(r.root.contexts_free(), domain_contexts(false));
    EXPECT_EQ(r.mm.imctr(block()), 0u);
    EXPECT_EQ(r.ds1_m.imuctr(32), 0u);  // a master the DT names, never attached
    EXPECT_FALSE(r.ds1.utlb_blocked(32));
    uint64_t victim = r.buffer();
    IpmmuModel::Dma w = poke(r.ds1_m, 32, victim, 0x11);
    EXPECT_TRUE(w.ok && w.bypassed);
    EXPECT_EQ(r.at(victim)[0], 0x11);
    auto d = r.domain();
    uint64_t buf = r.buffer();
    ASSERT_TRUE(ready(*d, r.ds1, 34, kIova, buf, kPageSize));
    uint8_t ctx = r.ds1.context_of(*d);
    ASSERT_TRUE(poke(r.ds1_m, 34, kIova, 0x44).ok);
    ASSERT_EQ(d->detach(r.ds1, 34), Status::ok);
    w = poke(r.ds1_m, 34, kIova, 0x55);
    EXPECT_TRUE(w.bypassed);
    EXPECT_EQ(w.pa, kIova);
    EXPECT_FALSE(w.ok);  // nothing at 0x10000000 in this test's memory
    EXPECT_EQ(r.at(buf)[0], 0x44);
    EXPECT_EQ(r.ds1_m.imuctr(34), 0u);
    EXPECT_EQ(r.ds1_m.imctr(ctx), 0u);
    EXPECT_EQ(r.mm.imctr(ctx), 0u);
    EXPECT_EQ(r.root.contexts_free(), domain_contexts(false));
    EXPECT_TRUE(r.faults().empty());
}

TEST_P(IpmmuVmsaGen, OneContextIsSharedByEveryCacheServingTheDomain) {
    Rig r;
    auto d = r.domain();
    uint64_t buf = r.buffer(2);
    ASSERT_TRUE(ready(*d, r.ds1, 32, kIova, buf, 2 * kPageSize));
    ASSERT_EQ(d->attach(r.hc, 0), Status::ok);
    uint8_t ctx = r.ds1.context_of(*d);
    EXPECT_EQ(r.hc.context_of(*d), ctx);
    EXPECT_EQ(r.root.contexts_free(), domain_contexts() - 1);
    EXPECT_EQ(r.hc_m.imuctr(0), uint32_t{ctx} << 4 | 1);
    ASSERT_TRUE(poke(r.ds1_m, 32, kIova, 1).ok);
    ASSERT_TRUE(poke(r.hc_m, 0, kIova + kPageSize, 2).ok);
    EXPECT_EQ(r.at(buf)[0], 1);
    EXPECT_EQ(r.at(buf + kPageSize)[0], 2);
    uint64_t root_f = r.mm.flush_requests(ctx), ds1_f = r.ds1_m.flush_requests(ctx), hc_f = r.hc_m.flush_requests(ctx);
    ASSERT_TRUE(d->unmap(kIova, 2 * kPageSize).ok());
    EXPECT_GT(r.mm.flush_requests(ctx), root_f);
    EXPECT_GT(r.ds1_m.flush_requests(ctx), ds1_f);
    EXPECT_GT(r.hc_m.flush_requests(ctx), hc_f);
    EXPECT_EQ(r.mp_m.flush_requests(ctx), 0u);  // a cache the domain does not use is left alone
    EXPECT_EQ(poke(r.ds1_m, 32, kIova).fault, IpmmuModel::kTf);
    EXPECT_EQ(poke(r.hc_m, 0, kIova + kPageSize).fault, IpmmuModel::kTf);
    // The context stays while one cache still uses it.
    ASSERT_EQ(d->detach(r.ds1, 32), Status::ok);
    EXPECT_EQ(r.hc.context_of(*d), ctx);
    EXPECT_EQ(r.ds1_m.imctr(ctx), 0u);
    EXPECT_EQ(r.hc_m.imctr(ctx), 0x5u);
}

// With blocking: 6 domains on Gen3, 14 on Gen4, and the next one is refused cleanly.
TEST_P(IpmmuVmsaGen, AllButTwoContextsGoToDomainsAndOneMoreIsRefusedWhileBlocking) {
    Rig r;
    const unsigned fit = domain_contexts();
    std::vector<std::unique_ptr<IoDomain>> d;
    std::vector<uint64_t> pa;
    for (unsigned i = 0; i <= fit; i++) {
        d.push_back(r.domain());
        pa.push_back(r.buffer());
        ASSERT_EQ(d[i]->init(), Status::ok);
        ASSERT_TRUE(d[i]->map(kIova, pa[i], kPageSize, {}).ok());
    }
    for (unsigned i = 0; i < fit; i++) {
        ASSERT_EQ(d[i]->attach(r.mp, i), Status::ok) << i;
        uint8_t c = r.mp.context_of(*d[i]);
        EXPECT_TRUE(c >= 1 && c < block()) << unsigned{c};  // never context 0, never the blocking one
    }
    EXPECT_EQ(r.root.contexts_free(), 0u);
    uint64_t before = r.writes();
    EXPECT_EQ(d[fit]->attach(r.mp, fit), Status::no_space);
    EXPECT_EQ(r.mp.context_of(*d[fit]), IpmmuVmsa::kNoContext);
    EXPECT_EQ(r.mp_m.imuctr(fit), blocked_imuctr());  // the master asked for a domain: blocked from now on
    EXPECT_TRUE(blocked(r.mp_m, fit, pa[fit]));
    EXPECT_EQ(r.at(pa[fit])[0], 0);
    EXPECT_GT(r.writes(), before);
    (void)r.faults();
    for (unsigned i = 0; i < fit; i++) {
        ASSERT_TRUE(poke(r.mp_m, i, kIova + 4, static_cast<uint8_t>(0x30 + i)).ok);
        EXPECT_EQ(r.at(pa[i])[4], 0x30 + i);
    }
}

// ---------------------------------------------------------------- unattached masters

TEST_P(IpmmuVmsaGen, BlockingContextIsAnEmptyTableWithFaultReporting) {
    for (Format f : {Format::stage2, Format::stage1}) {
        SCOPED_TRACE(f == Format::stage2 ? "stage2" : "stage1");
        cache::CleanLog before = cache::clean_log();
        Rig r(f);
        ASSERT_EQ(r.root.blocking_context(), block());
        EXPECT_EQ(r.ds1.blocking_context(), block());
        // Its root table spans what the context walks (stage 2: two concatenated level-1 tables
        // for 40 bits; LPAE: one), every entry invalid, cleaned for the non-coherent walker.
        uint64_t table = r.root.blocking_table();
        size_t pages = f == Format::stage2 ? 2 : 1;
        ASSERT_NE(table, 0u);
        EXPECT_EQ(r.root.blocking_table_pages(), pages);
        EXPECT_EQ(table % (pages * kPageSize), 0u);
        for (size_t i = 0; i < pages * kPageSize; i++) ASSERT_EQ(r.at(table)[i], 0) << i;
        EXPECT_GE(cache::clean_log().bytes - before.bytes, pages * kPageSize);
        EXPECT_EQ(r.mm.ttbr0(block()), table);
        if (f == Format::stage2) {
            EXPECT_EQ(r.mm.imttbcr(block()), 0x80000000u | 0x40000000u | 2u << 12 | 1u << 6 | 24u);
            EXPECT_EQ(r.mm.imctr(block()), kVa64 | kIntEn | kMmuEn);
        } else {
            EXPECT_EQ(r.mm.imttbcr(block()), 0x80000000u | 2u << 12 | 2u << 6);
            EXPECT_EQ(r.mm.imctr(block()), kIntEn | kMmuEn);
        }
        EXPECT_EQ(r.mm.flush_requests(block()), 1u);  // enabled with a flush, like any context
        for (IpmmuModel* c : {&r.ds1_m, &r.hc_m, &r.mp_m}) EXPECT_EQ(c->imctr(block()), kIntEn | kMmuEn);
        // Every master the DT names points at it; the other uTLBs are disabled.
        for (unsigned u = 0; u < utlbs(); u++) {
            EXPECT_EQ(r.ds1_m.imuctr(u), (kDs1Masters >> u & 1) ? blocked_imuctr() : 0u) << u;
            EXPECT_EQ(r.hc_m.imuctr(u), (kHcMasters >> u & 1) ? blocked_imuctr() : 0u) << u;
            EXPECT_EQ(r.mp_m.imuctr(u), 0u) << u;
        }
        EXPECT_EQ(r.ds1_m.imuasid(32), 0u);
        EXPECT_TRUE(r.ds1.utlb_blocked(35) && r.hc.utlb_blocked(0));
        EXPECT_FALSE(r.hc.utlb_blocked(1) || r.mp.utlb_blocked(0));
    }
}

TEST_P(IpmmuVmsaGen, MastersFaultBeforeAnyAttach) {
    for (Format f : {Format::stage2, Format::stage1}) {
        SCOPED_TRACE(f == Format::stage2 ? "stage2" : "stage1");
        Rig r(f);
        uint64_t victim = r.buffer();  // real memory at the address the masters name
        for (unsigned u : {32u, 33u, 34u, 35u}) EXPECT_TRUE(blocked(r.ds1_m, u, victim + u)) << u;
        EXPECT_TRUE(blocked(r.hc_m, 0, 0));
        EXPECT_TRUE(blocked(r.hc_m, 0, (uint64_t{1} << (f == Format::stage2 ? 40 : 32)) - 16));  // top of the input
        for (size_t i = 0; i < kPageSize; i++) ASSERT_EQ(r.at(victim)[i], 0) << i;
        EXPECT_TRUE(r.mm.irq_pending());
        // IMSTR keeps the first fault's address until poll_faults() clears it.
        auto faults = r.faults();
        ASSERT_EQ(faults.size(), 1u);
        EXPECT_EQ(faults[0].address, victim + 32);
        EXPECT_EQ(faults[0].kind, FaultKind::stream_disabled);
        EXPECT_EQ(faults[0].raw & 0x1f, 0x1u);  // TF
        EXPECT_STREQ(faults[0].detail, "TF (translation fault) in the blocking context: the master has no domain");
        EXPECT_EQ(faults[0].stream, IpmmuVmsa::kStreamUnknown);  // five masters share it
        EXPECT_STREQ(faults[0].iommu, "mm");
        EXPECT_FALSE(r.mm.irq_pending());
        EXPECT_TRUE(blocked(r.hc_m, 0, victim + 0x100));
        faults = r.faults();
        ASSERT_EQ(faults.size(), 1u);
        EXPECT_EQ(faults[0].address, victim + 0x100);
        // A uTLB no master in the DT names is left disabled, as before probe (a master without
        // `iommus`, e.g. one dom0 drives with physical addresses, must keep working): the
        // driver blocks the masters it knows of, and any it is asked to attach.
        EXPECT_TRUE(poke(r.mp_m, 3, victim + 0x200, 0x77).bypassed);
        EXPECT_EQ(r.at(victim)[0x200], 0x77);
    }
}

TEST_P(IpmmuVmsaGen, TheOnlyBlockedMasterIsNamedInItsFault) {
    Rig r(Format::stage2, false);
    r.ds1_masters = uint64_t{1} << 33;
    r.hc_masters = 0;
    ASSERT_EQ(r.probe_root(), Status::ok);
    ASSERT_EQ(r.probe_cache(r.ds1, G->ds1, "ds1", 1), Status::ok);
    ASSERT_EQ(r.probe_cache(r.hc, G->hc, "hc", 2), Status::ok);
    EXPECT_TRUE(blocked(r.ds1_m, 33, 0x1234));
    auto f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].stream, 33u);
    EXPECT_STREQ(f[0].iommu, "ds1");
    EXPECT_EQ(f[0].address, 0x1234u);
    // Attached, it leaves the blocking context: a second master blocked there (after a failed
    // attach) is then the only one.
    auto d = r.domain(), bad = r.domain();
    ASSERT_TRUE(ready(*d, r.ds1, 33));
    IoDomain coherent(r.pool(), iopt::vmsa_s2(40, 40, true));
    ASSERT_EQ(coherent.init(), Status::ok);
    EXPECT_EQ(coherent.attach(r.hc, 9), Status::invalid_argument);
    EXPECT_TRUE(blocked(r.hc_m, 9, 0x5678));
    f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].stream, 9u);
    EXPECT_STREQ(f[0].iommu, "hc");
}

TEST_P(IpmmuVmsaGen, MastersFaultAfterDomainDestruction) {
    Rig r;
    auto d = r.domain();
    uint64_t buf = r.buffer(2);
    ASSERT_TRUE(ready(*d, r.ds1, 32, kIova, buf, 2 * kPageSize));
    ASSERT_EQ(d->attach(r.ds1, 35), Status::ok);
    ASSERT_EQ(d->attach(r.hc, 0), Status::ok);
    ASSERT_EQ(d->attach(r.mp, 7), Status::ok);  // a uTLB no DT master names: blocked once attached
    for (unsigned u : {32u, 35u}) ASSERT_TRUE(poke(r.ds1_m, u, kIova + u, 0x10).ok);
    ASSERT_TRUE(poke(r.hc_m, 0, kIova + kPageSize, 0x20).ok);
    ASSERT_TRUE(poke(r.mp_m, 7, kIova + 7, 0x30).ok);
    uint8_t ctx = r.ds1.context_of(*d);
    ASSERT_EQ(d->destroy(), Status::ok);
    EXPECT_EQ(r.root.contexts_free(), domain_contexts());
    EXPECT_EQ(r.mm.imctr(ctx), 0u);
    // The domain's pages are back in the pool; the masters' DMA reaches neither them nor the
    // physical addresses they name.
    for (unsigned u : {32u, 35u}) EXPECT_TRUE(blocked(r.ds1_m, u, kIova + u)) << u;
    EXPECT_TRUE(blocked(r.ds1_m, 32, buf + 0x40));
    EXPECT_TRUE(blocked(r.hc_m, 0, kIova + kPageSize));
    EXPECT_TRUE(blocked(r.mp_m, 7, buf + 0x80));
    EXPECT_EQ(r.at(buf)[0x40], 0);
    EXPECT_EQ(r.at(buf)[0x80], 0);
    EXPECT_EQ(r.mp_m.imuctr(7), blocked_imuctr());
    auto f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].address, kIova + 32);
    EXPECT_EQ(f[0].kind, FaultKind::stream_disabled);
}

TEST_P(IpmmuVmsaGen, MastersFaultAfterAFailedAttach) {
    Rig r;
    std::vector<std::unique_ptr<IoDomain>> d;
    const unsigned last = domain_contexts() - 1;
    for (unsigned i = 0; i <= last; i++) {
        d.push_back(r.domain());
        ASSERT_TRUE(ready(*d[i], r.mp, 20 + i));
    }
    // No context left: SDHI1 (a DT master) stays blocked, and so is a uTLB the DT does not name
    // once a master on it has asked for a domain.
    auto late = r.domain();
    uint64_t buf = r.buffer();
    ASSERT_EQ(late->init(), Status::ok);
    ASSERT_TRUE(late->map(kIova, buf, kPageSize, {}).ok());
    EXPECT_EQ(late->attach(r.ds1, 33), Status::no_space);
    EXPECT_EQ(late->attach(r.ds1, 3), Status::no_space);
    EXPECT_TRUE(blocked(r.ds1_m, 33, kIova));
    EXPECT_TRUE(blocked(r.ds1_m, 3, buf));
    EXPECT_EQ(r.ds1_m.imuctr(3), blocked_imuctr());
    EXPECT_EQ(r.at(buf)[0], 0);
    auto f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].address, kIova);
    // A context whose enabling flush never completes: the attach fails, the master is blocked.
    ASSERT_EQ(d[last]->destroy(), Status::ok);
    r.mm.hang_flush(true);
    EXPECT_EQ(late->attach(r.hc, 4), Status::timeout);
    r.mm.hang_flush(false);
    EXPECT_EQ(r.hc_m.imuctr(4), blocked_imuctr());
    EXPECT_TRUE(blocked(r.hc_m, 4, buf + 8));
    EXPECT_TRUE(blocked(r.mp_m, 20 + last, buf + 16));  // and the last domain's master after its destruction
    f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].address, buf + 8);
    // A uTLB of another domain, or enabled behind the driver's back, is not touched by a refusal.
    r.mp_m.poke(imuctr_off(40), 0x31);
    EXPECT_EQ(late->attach(r.mp, 40), Status::in_use);
    EXPECT_EQ(r.mp_m.imuctr(40), 0x31u);
    EXPECT_EQ(r.mp.attach(*late, 20), Status::in_use);
    EXPECT_EQ(r.mp_m.imuctr(20), uint32_t{r.mp.context_of(*d[0])} << 4 | kMmuEn);
}

// The blocking context maps nothing, so nothing is ever cached for it: no domain gets it and
// no domain's flush touches it, on the root or on any cache.
TEST_P(IpmmuVmsaGen, BlockingContextIsNeverADomainsAndNeverFlushed) {
    Rig r;
    auto flushes = [&] {
        return std::vector<uint64_t>{r.mm.flush_requests(block()), r.ds1_m.flush_requests(block()),
                                     r.hc_m.flush_requests(block()), r.mp_m.flush_requests(block())};
    };
    std::vector<uint64_t> at_probe = flushes();
    EXPECT_EQ(at_probe, (std::vector<uint64_t>{1, 1, 1, 1}));
    for (unsigned round = 0; round < 3; round++) {
        std::vector<std::unique_ptr<IoDomain>> d;
        for (unsigned i = 0; i <= domain_contexts(); i++) {
            d.push_back(r.domain());
            uint64_t buf = r.buffer();
            ASSERT_EQ(d[i]->init(), Status::ok);
            ASSERT_TRUE(d[i]->map(kIova, buf, kPageSize, {}).ok());
            Status st = d[i]->attach(i < 4 ? r.ds1 : r.hc, i < 4 ? 32 + i : i - 4);
            EXPECT_EQ(st, i < domain_contexts() ? Status::ok : Status::no_space) << i;
            EXPECT_NE(r.ds1.context_of(*d[i]), block());
            if (st == Status::ok) {
                ASSERT_TRUE(poke(i < 4 ? r.ds1_m : r.hc_m, i < 4 ? 32 + i : i - 4, kIova).ok);
            }
            ASSERT_TRUE(d[i]->unmap(kIova, kPageSize).ok());
            iopt::Gather g;
            g.add(0, uint64_t{1} << 39, 12, true);
            EXPECT_EQ(r.ds1.flush(*d[i], g), Status::ok);
            EXPECT_EQ(r.hc.flush(*d[i], g), Status::ok);
        }
        for (auto& x : d) ASSERT_EQ(x->destroy(), Status::ok);
        EXPECT_EQ(r.root.contexts_free(), domain_contexts());
    }
    EXPECT_EQ(flushes(), at_probe);
    EXPECT_EQ(r.mm.imctr(block()), kVa64 | kIntEn | kMmuEn);
    (void)r.faults();
}

TEST_P(IpmmuVmsaGen, BlockingContextEnablingIsBoundedAndFailedProbesGiveItsTableBack) {
    Rig r(Format::stage2, false);
    size_t used = r.pool().used_pages();
    // Its enabling flush never completes: refused in bounded time, the table page back in the pool.
    r.mm.hang_flush(true);
    uint64_t t0 = arch::now_ns();
    EXPECT_EQ(r.probe_root(), Status::timeout);
    uint64_t spent = arch::now_ns() - t0;
    EXPECT_GE(spent, IpmmuVmsa::kFlushTimeoutNs);
    EXPECT_LT(spent, 10 * IpmmuVmsa::kFlushTimeoutNs);
    EXPECT_NE(std::string(r.root.why()).find("blocking context"), std::string::npos) << r.root.why();
    EXPECT_FALSE(r.root.ready());
    EXPECT_EQ(r.mm.imctr(block()) & kMmuEn, 0u);
    EXPECT_EQ(r.pool().used_pages(), used);
    EXPECT_EQ(r.probe_cache(r.ds1, G->ds1, "ds1", 1), Status::not_ready);
    r.mm.hang_flush(false);
    // No page to be had: refused before a single register is written.
    uint64_t writes = r.writes();
    r.pool().fail_after(0);
    EXPECT_EQ(r.probe_root(), Status::no_memory);
    r.pool().fail_after(SIZE_MAX);
    EXPECT_EQ(r.writes(), writes);
    EXPECT_EQ(r.pool().used_pages(), used);
    // Blocking without a pool is a configuration mistake, refused the same way.
    IpmmuVmsa::Config c = r.root_config();
    c.pool = nullptr;
    EXPECT_EQ(r.root.probe(c), Status::invalid_argument);
    EXPECT_NE(std::string(r.root.why()).find("page pool"), std::string::npos) << r.root.why();
    EXPECT_EQ(r.writes(), writes);
    // Refused for the SoC: nothing taken either.
    EXPECT_EQ(r.probe_root(G->bad_prr), Status::unsupported);
    EXPECT_EQ(r.pool().used_pages(), used);
    // And then it probes, with its two pages.
    ASSERT_EQ(r.probe_root(), Status::ok) << r.root.why();
    EXPECT_EQ(r.pool().used_pages(), used + 2);
    EXPECT_EQ(r.root.blocking_context(), block());
}

// Shutdown leaves the masters blocked (the context, and so its table page, stay); probing the
// root again blocks with a fresh page and gives the old one back once its context is off.
TEST_P(IpmmuVmsaGen, ShutdownKeepsMastersBlocked) {
    // The domain's stream ends quarantined (its detach after the shutdown is not confirmed), and
    // the quarantine is keyed by the instance, whose address the next generation's run of this
    // test reuses: each generation takes a uTLB of its own, one the "DT" names.
    const unsigned u = G->gen == &ipmmu::kGen3 ? 34 : 44;
    Rig r(Format::stage2, false);
    r.ds1_masters |= uint64_t{1} << u;
    ASSERT_EQ(r.probe_root(), Status::ok);
    ASSERT_EQ(r.probe_cache(r.ds1, G->ds1, "ds1", 1), Status::ok);
    auto d = r.domain();
    uint64_t buf = r.buffer();
    ASSERT_TRUE(ready(*d, r.ds1, u, kIova, buf, kPageSize));
    uint64_t table = r.root.blocking_table();
    size_t used = r.pool().used_pages();
    r.root.shutdown();
    EXPECT_FALSE(r.root.ready() || r.ds1.ready());
    EXPECT_EQ(r.ds1_m.imuctr(u), blocked_imuctr());
    EXPECT_EQ(r.ds1_m.imuctr(32), blocked_imuctr());
    EXPECT_EQ(r.mm.imctr(block()), kVa64 | kIntEn | kMmuEn);
    EXPECT_EQ(r.ds1_m.imctr(block()), kIntEn | kMmuEn);
    EXPECT_TRUE(blocked(r.ds1_m, u, kIova));
    EXPECT_EQ(r.at(buf)[0], 0);
    r.mm.poke(ctx_off(block(), 0x20), 0);  // nobody polls any more: clear the latched fault by hand
    ASSERT_EQ(r.probe_root(), Status::ok);
    ASSERT_EQ(r.probe_cache(r.ds1, G->ds1, "ds1", 1), Status::ok);
    EXPECT_EQ(r.pool().used_pages(), used);  // the old table went back, a new one replaced it
    EXPECT_EQ(r.mm.ttbr0(block()), r.root.blocking_table());
    EXPECT_NE(r.root.blocking_table(), table);  // taken while the old one was still walked
    EXPECT_TRUE(blocked(r.ds1_m, u, kIova));
    (void)r.faults();
}

// ---------------------------------------------------------------- flushing

TEST_P(IpmmuVmsaGen, EveryUnmapIsFollowedByAFlush) {
    Rig r;
    auto d = r.domain();
    constexpr unsigned kPages = 6;
    uint64_t buf = r.buffer(kPages);
    ASSERT_TRUE(ready(*d, r.ds1, 35));
    uint8_t ctx = r.ds1.context_of(*d);
    uint64_t f0 = r.mm.flush_requests(ctx);
    ASSERT_TRUE(d->map(kIova, buf, kPages * kPageSize, {}).ok());
    EXPECT_EQ(r.mm.flush_requests(ctx), f0);  // a map only fills invalid entries: nothing cached to drop
    for (unsigned i = 0; i < kPages; i++) {
        uint64_t iova = kIova + i * kPageSize;
        ASSERT_TRUE(poke(r.ds1_m, 35, iova).ok);  // cached in both TLBs now
        uint64_t root_before = r.mm.flush_requests(ctx), cache_before = r.ds1_m.flush_requests(ctx);
        ASSERT_TRUE(d->unmap(iova, kPageSize).ok());
        EXPECT_EQ(r.mm.flush_requests(ctx), root_before + 1) << i;
        EXPECT_EQ(r.ds1_m.flush_requests(ctx), cache_before + 1) << i;
        EXPECT_EQ(poke(r.ds1_m, 35, iova).fault, IpmmuModel::kTf) << i;
    }
    EXPECT_EQ(d->flushes(), kPages);
    EXPECT_EQ(r.ds1.flushes(), kPages);
    EXPECT_GT(r.ds1.stats().syncs, 0u);
}

TEST_P(IpmmuVmsaGen, ModelTlbKeepsTranslationsUntilFlush) {
    Rig r;
    auto d = r.domain();
    uint64_t buf = r.buffer();
    ASSERT_TRUE(ready(*d, r.ds1, 36, kIova, buf, kPageSize));
    uint8_t ctx = r.ds1.context_of(*d);
    ASSERT_TRUE(poke(r.ds1_m, 36, kIova).ok);
    // Take the leaf away behind the driver's back: the TLBs still translate.
    model::vmsa::Regime reg{model::vmsa::Stage::s2, d->root_pa(), 40, 40, 1};
    model::vmsa::Walk w = model::vmsa::walk(r.mem, reg, kIova);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(r.mem.write64(w.desc_pa, 0));
    EXPECT_TRUE(poke(r.ds1_m, 36, kIova, 0x66).ok);
    EXPECT_EQ(r.at(buf)[0], 0x66);
    // Flushing the root alone is not enough: the cache keeps its own copy.
    mmio::write32(G->root + ctx_off(ctx, kImctr), r.mm.imctr(ctx) | 0x2);
    EXPECT_TRUE(poke(r.ds1_m, 36, kIova, 0x67).ok);
    EXPECT_EQ(r.at(buf)[0], 0x67);
    // The driver's flush reaches both.
    iopt::Gather g;
    g.add(kIova, kPageSize, 12, true);
    ASSERT_EQ(r.ds1.flush(*d, g), Status::ok);
    EXPECT_EQ(poke(r.ds1_m, 36, kIova, 0x68).fault, IpmmuModel::kTf);
    EXPECT_EQ(r.at(buf)[0], 0x67);
    (void)r.faults();
}

TEST_P(IpmmuVmsaGen, FlushThatNeverCompletesTimesOutCleanly) {
    Rig r;
    auto d = r.domain();
    uint64_t buf = r.buffer();
    ASSERT_TRUE(ready(*d, r.ds1, 37, kIova, buf, kPageSize));
    r.mm.hang_flush(true);
    uint64_t t0 = arch::now_ns();
    Progress p = d->unmap(kIova, kPageSize);
    uint64_t spent = arch::now_ns() - t0;
    EXPECT_EQ(p.status, Status::timeout);
    EXPECT_EQ(p.bytes_done, kPageSize);  // the entry is gone; only its invalidation is unconfirmed
    EXPECT_EQ(r.ds1.flush_timeouts(), 1u);
    EXPECT_GE(spent, IpmmuVmsa::kFlushTimeoutNs);
    EXPECT_LT(spent, 10 * IpmmuVmsa::kFlushTimeoutNs);
    // A new context whose enabling flush never completes is not handed out: the attach fails and
    // the context is never used again.
    auto e = r.domain();
    ASSERT_EQ(e->init(), Status::ok);
    unsigned free_before = r.root.contexts_free();
    EXPECT_EQ(e->attach(r.hc, 1), Status::timeout);
    EXPECT_EQ(r.root.contexts_free(), free_before - 1);
    EXPECT_EQ(r.hc.context_of(*e), IpmmuVmsa::kNoContext);
    EXPECT_EQ(r.hc_m.imuctr(1), blocked_imuctr());  // the master asked for a domain: blocked, not bypassing
    r.mm.hang_flush(false);
    ASSERT_EQ(e->attach(r.hc, 1), Status::ok);
    EXPECT_EQ(r.root.contexts_free(), free_before - 2);
}

TEST_P(IpmmuVmsaGen, TablesAreCleanedForTheNonCoherentWalker) {
    Rig r;
    auto d = r.domain();
    ASSERT_TRUE(ready(*d, r.ds1, 38));
    cache::CleanLog before = cache::clean_log();
    uint64_t buf = r.buffer();
    ASSERT_TRUE(d->map(kIova, buf, kPageSize, {}).ok());
    EXPECT_GT(cache::clean_log().calls, before.calls);
    EXPECT_GE(cache::clean_log().bytes - before.bytes, 8u);
    // A domain that would skip the cleaning is refused.
    IoDomain coherent(r.pool(), iopt::vmsa_s2(40, 40, true));
    ASSERT_EQ(coherent.init(), Status::ok);
    EXPECT_EQ(coherent.attach(r.ds1, 39), Status::invalid_argument);
}

TEST_P(IpmmuVmsaGen, RefusesDomainsItsContextsCannotWalk) {
    Rig r;
    IoDomain s1(r.pool(), iopt::vmsa_s1(32, 40, false));
    IoDomain narrow(r.pool(), iopt::vmsa_s2(32, 40, false));  // TSZ0 would be 32: five bits hold 31
    IoDomain wide(r.pool(), iopt::vmsa_s2(42, 40, false));    // the context walks at most 40 bits
    IoDomain far(r.pool(), iopt::vmsa_s2(40, 44, false));     // output beyond 40 bits
    IoDomain ok33(r.pool(), iopt::vmsa_s2(33, 40, false));
    for (IoDomain* d : {&s1, &narrow, &wide, &far, &ok33}) ASSERT_EQ(d->init(), Status::ok);
    EXPECT_EQ(s1.attach(r.ds1, 1), Status::unsupported);
    EXPECT_EQ(narrow.attach(r.ds1, 1), Status::out_of_range);
    EXPECT_EQ(wide.attach(r.ds1, 1), Status::out_of_range);
    EXPECT_EQ(far.attach(r.ds1, 1), Status::out_of_range);
    EXPECT_EQ(r.root.contexts_free(), domain_contexts());
    ASSERT_EQ(ok33.attach(r.ds1, 1), Status::ok);
    EXPECT_EQ(r.mm.imttbcr(r.ds1.context_of(ok33)) & 0xff, 1u << 6 | 31u);
    uint64_t buf = r.buffer();
    ASSERT_TRUE(ok33.map(uint64_t{1} << 32, buf, kPageSize, {}).ok());
    EXPECT_TRUE(poke(r.ds1_m, 1, uint64_t{1} << 32).ok);
}

// The IPMMU walks non-coherently: its format says so, and IMTTBCR carries the same walk attributes
// as any driver's for a non-coherent walker (walk_expect.hpp); before the table seam SH0 was 0.
TEST_P(IpmmuVmsaGen, WalkAttributesMatchEveryDriver) {
    Rig r;
    for (DomainUse use : {DomainUse::dma, DomainUse::guest_p2m}) {
        Result<iopt::Format> fmt = r.ds1.domain_format(use, 40);
        ASSERT_TRUE(fmt.ok());
        EXPECT_EQ(fmt.value, iopt::vmsa_s2(40, 40, false));
    }
    Result<iopt::Format> fmt = r.ds1.domain_format(DomainUse::dma, 40);
    IoDomain d(r.pool(), fmt.value);
    ASSERT_TRUE(ready(d, r.ds1, 1));
    EXPECT_EQ(model::vmsa::tcr0_walk(r.mm.imttbcr(r.ds1.context_of(d))), moat::test::expected_walk(false));
}

INSTANTIATE_TEST_SUITE_P(Ipmmu, IpmmuVmsaGen, ::testing::ValuesIn(kGens),
                         [](const ::testing::TestParamInfo<GenCase>& p) { return std::string(p.param.name); });
INSTANTIATE_TEST_SUITE_P(Ipmmu, IpmmuModelGen, ::testing::ValuesIn(kGens),
                         [](const ::testing::TestParamInfo<GenCase>& p) { return std::string(p.param.name); });

}  // namespace
