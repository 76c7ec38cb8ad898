// The SMMUv2 / MMU-500 driver against the register model in tests/models. The model matches
// streams, picks the bank and walks the tables it is given, so every DMA below proves that the
// bytes land where the mapping says, or that the fault the hardware would raise is reported with
// the right stream, bank and address. The model's TLB holds translations until an invalidation
// and its sync, so a missing one shows as DMA still reaching the old page.
#include <gtest/gtest.h>

#include <string.h>

#include <memory>
#include <string>
#include <vector>

#include "arch/cache.hpp"
#include "arch/cpu.hpp"
#include "arch/mmio.hpp"
#include "common/io_domain.hpp"
#include "drivers/iommu/smmu_v2.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/mmu500_model.hpp"
#include "tests/unit/walk_expect.hpp"

using namespace moat;
using model::Mmu500Model;
namespace hw = model::mmu500;
namespace vmsa = model::vmsa;

namespace {

constexpr uintptr_t kBase = 0xfd800000;
constexpr uint64_t kPhysBase = 0x80000000;
constexpr uint32_t kClientPd = 1, kUsfcfg = 1u << 10;

// The CPU's PARange for one test (ZynqMP's A53: 40 bits), restored afterwards.
struct PaBits {
    unsigned saved = arch::pa_bits();
    explicit PaBits(unsigned bits) { arch::set_pa_bits(bits); }
    ~PaBits() { arch::set_pa_bits(saved); }
};

// Physical memory for a test: a pool over a host buffer posing as RAM at `phys`.
struct HostMem : model::HostPool {
    HostMem(uint64_t phys, size_t pages) : model::HostPool(pages, phys) { EXPECT_TRUE(ok); }
};

// One MMU-500 model mapped at `base` over `mem`, and the driver for it.
struct Smmu {
    Mmu500Model model;
    SmmuV2 drv;
    uintptr_t base;
    FaultLog log;
    Smmu(model::PhysMem& mem, const Mmu500Model::Features& f, uintptr_t b) : model(mem, f), base(b) {
        EXPECT_TRUE(mmio::attach(base, model.size(), &model));
    }
    ~Smmu() {
        EXPECT_EQ(drv.shutdown(), Status::ok);
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
    Status probe(const char* name = "iommu@fd800000", uint64_t size = 0, bool mmu500 = true) {
        SmmuV2::Config c;
        c.base = base;
        c.size = size ? size : model.size();
        c.name = name;
        c.mmu500 = mmu500;
        return drv.probe(c);
    }
    // Faults the driver reports since the last call.
    std::vector<FaultRecord> faults() {
        uint64_t from = log.total();
        drv.poll_faults(log);
        std::vector<FaultRecord> v;
        for (uint64_t i = from; i < log.total(); i++) v.push_back(log.at(static_cast<unsigned>(i - (log.total() - log.size()))));
        return v;
    }
    Mmu500Model::Dma poke(uint32_t sid, uint64_t iova, uint8_t v = 0x5a) {
        uint8_t b[16];
        memset(b, v, sizeof b);
        return model.dma_write(sid, iova, b, sizeof b);
    }
};

// What a device sees of the host memory, built before the model that reads it.
struct PhysView {
    model::PoolPhysMem mem_;
    explicit PhysView(PagePool& p) : mem_(p) {}
};

// The common case: one SMMU model at kBase over its own memory.
struct Rig : HostMem, PhysView, Smmu {
    explicit Rig(const Mmu500Model::Features& f = {}, size_t pages = 1024)
        : HostMem(kPhysBase, pages), PhysView(*HostMem::pool), Smmu(mem_, f, kBase) {}
    PagePool& pool() { return *HostMem::pool; }
    uint64_t buffer(size_t n = 1) {
        Result<uint64_t> r = pool().alloc(n);
        EXPECT_TRUE(r.ok());
        return r.value;
    }
    uint8_t* at(uint64_t pa) { return static_cast<uint8_t*>(pool().virt(pa)); }
};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>(seed + i * 7);
    return v;
}

iopt::Prot read_only() {
    iopt::Prot p;
    p.perm = iopt::kRead;
    return p;
}

constexpr StreamId sid(uint32_t id, uint32_t mask = 0) { return SmmuV2::stream(id, mask); }

bool ready(IoDomain& d, Iommu& iommu, StreamId s, uint64_t iova = 0, uint64_t pa = 0, uint64_t size = 0) {
    return d.init() == Status::ok && (!size || d.map(iova, pa, size, {}).ok()) && d.attach(iommu, s) == Status::ok;
}

void expect_fault(const FaultRecord& r, FaultKind kind, uint32_t stream, uint64_t addr, bool write, uint32_t raw) {
    EXPECT_EQ(r.kind, kind) << to_string(r.kind);
    EXPECT_EQ(r.stream, stream);
    EXPECT_EQ(r.address, addr);
    EXPECT_EQ(r.write, write);
    EXPECT_EQ(r.raw, raw);
}

}  // namespace

// ---------------------------------------------------------------- probe

TEST(SmmuV2Probe, ReadsTheLayoutAndEnablesWithEveryStreamFaulting) {
    PaBits pa(40);
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok) << r.drv.why();
    EXPECT_EQ(r.drv.page_size(), 4096u);
    EXPECT_EQ(r.drv.num_banks(), 16u);
    EXPECT_EQ(r.drv.num_smrs(), 48u);
    EXPECT_EQ(r.drv.stream_id_bits(), 15u);
    EXPECT_EQ(r.drv.stage2_input_bits(), 48u);
    EXPECT_EQ(r.drv.stage1_input_bits(), 48u);  // UBS 49 bits, capped at a 4 KiB walk's 48
    const IommuCaps& c = r.drv.caps();
    EXPECT_TRUE(c.stage1 && c.stage2);
    EXPECT_EQ(c.oas, 40u);  // ID2.OAS 48, capped by the CPU's PARange
    EXPECT_EQ(r.drv.hw_output_bits(), 48u);
    EXPECT_FALSE(c.coherent_walk);
    EXPECT_EQ(c.max_stream, 0x7fffu);

    EXPECT_EQ(r.model.scr0() & (kClientPd | kUsfcfg), kUsfcfg);
    for (unsigned i = 0; i < 48; i++) EXPECT_EQ((r.model.s2cr(i) >> 16) & 3, 2u) << i;  // fault
    EXPECT_EQ(r.model.valid_smrs(), 0u);
    EXPECT_EQ(r.model.enabled_banks(), 0u);
    EXPECT_EQ(r.model.global_syncs(), 1u);  // after TLBIALLH + TLBIALLNSNH
    EXPECT_EQ(r.model.tlbi_writes(), 2u);
    EXPECT_FALSE(r.drv.was_enabled());

    // A stream nobody attached: unidentified-stream fault, reported with stream and address.
    Mmu500Model::Dma d = r.poke(0x123, 0x4000);
    EXPECT_FALSE(d.ok);
    EXPECT_TRUE(d.global);
    EXPECT_EQ(d.fault, hw::kGfsrUsf);
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    expect_fault(f[0], FaultKind::bad_stream, 0x123, 0x4000, true, hw::kGfsrUsf);
    EXPECT_STREQ(f[0].iommu, "iommu@fd800000");
    EXPECT_EQ(r.model.gfsr(), 0u);  // written back: cleared
}

TEST(SmmuV2Probe, FirmwareLeftoversNeverOpenABypassWindow) {
    Mmu500Model::Features f;
    f.firmware_leftovers = true;  // enabled, USFCFG clear, SMR 0 -> bypass for stream 0x870
    f.leftover_stream = 0x870;
    Rig r(f);
    uint64_t buf = r.buffer();
    Mmu500Model::Dma d = r.poke(0x870, buf);
    EXPECT_TRUE(d.ok && d.bypassed);  // before moat: DMA goes straight to memory
    EXPECT_TRUE(r.poke(0x333, buf).bypassed);
    ASSERT_EQ(r.probe(), Status::ok) << r.drv.why();
    EXPECT_TRUE(r.drv.was_enabled());
    EXPECT_EQ(r.poke(0x870, buf).fault, hw::kGfsrUsf);
    EXPECT_EQ(r.poke(0x333, buf).fault, hw::kGfsrUsf);
    for (unsigned i = 0; i < 48; i++) EXPECT_EQ((r.model.s2cr(i) >> 16) & 3, 2u) << i;
    EXPECT_EQ(r.model.valid_smrs(), 0u);
    // The model records a violation had the stream map changed while unmatched streams bypassed.
}

TEST(SmmuV2Probe, RefusesWhatItCannotDriveAndEnablesNothing) {
    struct Case {
        void (*tweak)(Mmu500Model::Features&);
        Status want;
        const char* says;
    };
    const Case cases[] = {
        {[](Mmu500Model::Features& f) { f.stream_match = false; }, Status::unsupported, "stream indexing"},
        {[](Mmu500Model::Features& f) { f.ptfs4k = false; }, Status::unsupported, "4 KiB granule"},
        {[](Mmu500Model::Features& f) { f.stage1 = f.stage2 = false; }, Status::unsupported, "no translation stage"},
        {[](Mmu500Model::Features& f) { f.numcb = 0; }, Status::hw_error, "inconsistent"},
        {[](Mmu500Model::Features& f) { f.numsmrg = 0; }, Status::hw_error, "no stream match"},
    };
    for (const Case& c : cases) {
        Mmu500Model::Features f;
        c.tweak(f);
        Rig r(f);
        EXPECT_EQ(r.probe(), c.want);
        EXPECT_NE(std::string(r.drv.why()).find(c.says), std::string::npos) << r.drv.why();
        EXPECT_EQ(r.model.scr0(), kClientPd);  // untouched
        EXPECT_FALSE(r.drv.ready());
    }
    // Stage-2-only banks everywhere and no stage 2: nothing can translate either.
    Mmu500Model::Features f;
    f.nums2cb = 16;
    f.stage2 = false;
    Rig r(f);
    EXPECT_EQ(r.probe(), Status::unsupported);
}

TEST(SmmuV2Probe, RegSmallerThanTheLayoutId1DescribesIsRefused) {
    {
        Rig r;
        EXPECT_EQ(r.probe("iommu@fd800000", 0x10000), Status::bad_dt);
        EXPECT_STREQ(r.drv.why(),
                     "reg size 0x10000 is smaller than the 0x20000 ID1 describes (2 x 16 register pages of 4 KiB)");
        EXPECT_EQ(r.model.scr0(), kClientPd);
    }
    {
        Mmu500Model::Features f;
        f.page64k = true;  // 64 KiB pages: 2 x 16 x 64 KiB
        Rig r(f);
        EXPECT_EQ(r.probe("iommu@fd800000", 0x20000), Status::bad_dt);
        EXPECT_NE(std::string(r.drv.why()).find("0x200000"), std::string::npos) << r.drv.why();
        ASSERT_EQ(r.probe(), Status::ok) << r.drv.why();
        EXPECT_EQ(r.drv.page_size(), 0x10000u);
        IoDomain d(r.pool(), iopt::vmsa_s2(40, 40, false));
        uint64_t buf = r.buffer();
        ASSERT_TRUE(ready(d, r.drv, sid(0x10), 0x1000, buf, kPageSize));
        EXPECT_EQ(r.poke(0x10, 0x1000).pa, buf);  // the bank registers really are 64 KiB apart
    }
    {
        Rig r;  // too small for even the ID registers: nothing is read
        EXPECT_EQ(r.probe("iommu@fd800000", 0x800), Status::bad_dt);
        EXPECT_EQ(r.model.register_accesses(), 0u);
    }
}

TEST(SmmuV2Probe, ATlbSyncThatNeverCompletesFailsProbeCleanly) {
    Rig r;
    r.model.stall_syncs(true);
    EXPECT_EQ(r.probe(), Status::timeout);
    EXPECT_NE(std::string(r.drv.why()).find("TLB sync"), std::string::npos) << r.drv.why();
    EXPECT_EQ(r.model.scr0() & kClientPd, kClientPd);  // never enabled
    EXPECT_FALSE(r.drv.ready());
    EXPECT_EQ(r.drv.sync_timeouts(), 1u);
    r.model.stall_syncs(false);
    EXPECT_EQ(r.probe(), Status::ok) << r.drv.why();  // the instance is reusable
}

TEST(SmmuV2Probe, SizesAreCheckedAgainstTheCpuAndTheSmmu) {
    PaBits pa(40);
    Mmu500Model::Features f;
    f.ias_enc = 2;  // 40-bit IPAs
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    EXPECT_EQ(r.drv.caps().oas, 40u);
    IoDomain wide_out(r.pool(), iopt::vmsa_s2(40, 44, false));  // output beyond the CPU's 40 bits
    ASSERT_EQ(wide_out.init(), Status::ok);
    EXPECT_EQ(wide_out.attach(r.drv, sid(1)), Status::out_of_range);
    IoDomain wide_in(r.pool(), iopt::vmsa_s2(42, 40, false));  // IPA beyond ID2.IAS
    ASSERT_EQ(wide_in.init(), Status::ok);
    EXPECT_EQ(wide_in.attach(r.drv, sid(1)), Status::out_of_range);
    IoDomain ok(r.pool(), iopt::vmsa_s2(40, 40, false));
    ASSERT_EQ(ok.init(), Status::ok);
    EXPECT_EQ(ok.attach(r.drv, sid(1)), Status::ok);
    EXPECT_EQ(r.drv.smrs_in_use(), 1u);
}

// ---------------------------------------------------------------- stage 2

TEST(SmmuV2Stage2, DomainBecomesAStage2BankTheModelWalks) {
    PaBits pa(40);
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t buf = r.buffer(2), ro = r.buffer();
    memset(r.at(ro), 0x77, kPageSize);
    constexpr uint64_t kHigh = (uint64_t{1} << 39) + 0x200000;  // served by the second level-1 table
    IoDomain d(r.pool(), iopt::vmsa_s2(40, 40, false));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(iopt::vmsa_geometry(d.format()).root_tables, 2u);
    ASSERT_TRUE(d.map(kHigh, buf, 2 * kPageSize, {}).ok());
    ASSERT_TRUE(d.map(0x4000, ro, kPageSize, read_only()).ok());
    ASSERT_EQ(d.attach(r.drv, sid(0x870)), Status::ok);

    int bank = r.drv.bank_of(d);
    ASSERT_EQ(bank, 0);
    unsigned n = static_cast<unsigned>(bank);
    EXPECT_EQ((r.model.cbar(n) >> 16) & 3, 0u);     // stage 2
    EXPECT_EQ(r.model.cbar(n) & 0xff, d.tag());      // VMID = the domain's tag
    EXPECT_EQ(r.model.cba2r(n) & 1, 1u);             // VA64
    uint32_t tcr = r.model.tcr(n);
    EXPECT_EQ(tcr & 0x3f, 24u);                      // T0SZ: 40 bits
    EXPECT_EQ((tcr >> 6) & 3, 1u);                   // SL0: level 1
    EXPECT_EQ((tcr >> 16) & 7, 2u);                  // PS: 40 bits
    EXPECT_EQ((tcr >> 14) & 3, 0u);                  // 4 KiB
    EXPECT_EQ(tcr >> 31, 1u);                        // RES1
    EXPECT_EQ(r.model.ttbr0(n), d.root_pa());
    EXPECT_EQ(r.model.sctlr(n) & ((1u << 7) | 1u), 1u);  // M set, CFCFG clear (erratum 842869)
    EXPECT_EQ(r.model.smr(0), (1u << 31) | 0x870);
    EXPECT_EQ(r.model.s2cr(0), n);                   // translate, bank n

    std::vector<uint8_t> src = pattern(6000, 3), back(6000);
    Mmu500Model::Dma w = r.model.dma_write(0x870, kHigh + 0x800, src.data(), src.size());
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.pa, buf + 0x800);
    EXPECT_EQ(w.bank, 0);
    EXPECT_EQ(memcmp(r.at(buf) + 0x800, src.data(), src.size()), 0);
    EXPECT_EQ(r.at(buf)[0x7ff], 0);
    ASSERT_TRUE(r.model.dma_read(0x870, kHigh + 0x800, back.data(), back.size()).ok);
    EXPECT_EQ(back, src);

    uint8_t b[8] = {};
    EXPECT_TRUE(r.model.dma_read(0x870, 0x4010, b, sizeof b).ok);
    EXPECT_EQ(b[0], 0x77);
    EXPECT_EQ(r.poke(0x870, 0x4010).fault, hw::kFsrPf);
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    expect_fault(f[0], FaultKind::permission, 0x870, 0x4010, true, hw::kFsrPf);
    EXPECT_EQ(r.at(ro)[0x10], 0x77);
    EXPECT_EQ(r.model.dma_read(0x870, 0x9000, b, sizeof b).fault, hw::kFsrTf);
    f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    expect_fault(f[0], FaultKind::translation, 0x870, 0x9000, false, hw::kFsrTf);
}

// ---------------------------------------------------------------- stage 1

TEST(SmmuV2Stage1, DomainBecomesAStage1BankWithItsAsid) {
    PaBits pa(40);
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t buf = r.buffer();
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 40, false));
    ASSERT_TRUE(ready(d, r.drv, sid(0x874), 0x100000, buf, kPageSize));
    unsigned n = static_cast<unsigned>(r.drv.bank_of(d));
    EXPECT_EQ((r.model.cbar(n) >> 16) & 3, 1u);                   // stage 1, stage 2 bypassed
    EXPECT_EQ(r.model.ttbr0(n) >> 48, d.tag());                    // ASID
    EXPECT_EQ(r.model.ttbr0(n) & ((uint64_t{1} << 48) - 1), d.root_pa());
    EXPECT_EQ(r.model.tcr(n) & 0x3f, 25u);                         // T0SZ: 39 bits
    EXPECT_EQ(r.model.tcr(n) & (1u << 23), 1u << 23);              // EPD1: no TTBR1 walks
    EXPECT_EQ(r.model.tcr2(n) & 0xf, 2u);                          // PASize: 40 bits
    EXPECT_EQ(r.model.sctlr(n) & (1u << 12), 1u << 12);            // ASIDPNE

    Mmu500Model::Dma w = r.poke(0x874, 0x100020, 0x42);
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.pa, buf + 0x20);
    EXPECT_EQ(r.at(buf)[0x2f], 0x42);
    EXPECT_EQ(r.poke(0x874, uint64_t{1} << 39).fault, hw::kFsrTf);  // beyond the 39-bit input size
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    expect_fault(f[0], FaultKind::translation, 0x874, uint64_t{1} << 39, true, hw::kFsrTf);
}

TEST(SmmuV2Stage1, Stage1BanksComeFromAboveTheStage2OnlyOnes) {
    Mmu500Model::Features f;
    f.numcb = 4;
    f.nums2cb = 2;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    IoDomain s1a(r.pool(), iopt::vmsa_s1(39, 40, false)), s1b(r.pool(), iopt::vmsa_s1(39, 40, false)),
        s1c(r.pool(), iopt::vmsa_s1(39, 40, false)), s2(r.pool(), iopt::vmsa_s2(40, 40, false));
    ASSERT_TRUE(ready(s1a, r.drv, sid(1)));
    ASSERT_TRUE(ready(s1b, r.drv, sid(2)));
    EXPECT_EQ(r.drv.bank_of(s1a), 2);
    EXPECT_EQ(r.drv.bank_of(s1b), 3);
    ASSERT_EQ(s1c.init(), Status::ok);
    EXPECT_EQ(s1c.attach(r.drv, sid(3)), Status::no_space);  // banks 0 and 1 are stage-2 only
    ASSERT_TRUE(ready(s2, r.drv, sid(4)));
    EXPECT_EQ(r.drv.bank_of(s2), 0);
}

// ---------------------------------------------------------------- faults

TEST(SmmuV2Faults, FirstFaultKeepsItsSyndromeLaterOnesSetMultiAndReportingGoesOn) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t buf = r.buffer();
    IoDomain d(r.pool(), iopt::vmsa_s2(40, 40, false));
    ASSERT_TRUE(ready(d, r.drv, sid(0x14e8), 0x10000, buf, kPageSize));
    EXPECT_EQ(r.poke(0x14e8, 0x20000).fault, hw::kFsrTf);
    EXPECT_EQ(r.poke(0x14e8, 0x30000).fault, hw::kFsrTf);  // only MULTI: the FSR is still full
    EXPECT_EQ(r.poke(0x555, 0x40000).fault, hw::kGfsrUsf);
    EXPECT_EQ(r.poke(0x556, 0x50000).fault, hw::kGfsrUsf);
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 2u);
    expect_fault(f[0], FaultKind::bad_stream, 0x555, 0x40000, true, hw::kGfsrUsf | hw::kGfsrMulti);
    expect_fault(f[1], FaultKind::translation, 0x14e8, 0x20000, true, hw::kFsrTf | hw::kFsrMulti);
    EXPECT_EQ(r.drv.faults_lost(), 2u);
    EXPECT_EQ(r.model.fsr(0), 0u);
    EXPECT_EQ(r.model.gfsr(), 0u);

    // Cleared: the next fault is recorded with its own syndrome, and mappings still translate.
    EXPECT_TRUE(r.poke(0x14e8, 0x10000).ok);
    uint8_t b[4];
    EXPECT_EQ(r.model.dma_read(0x14e8, 0x60000, b, sizeof b).fault, hw::kFsrTf);
    f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    expect_fault(f[0], FaultKind::translation, 0x14e8, 0x60000, false, hw::kFsrTf);
    EXPECT_TRUE(r.faults().empty());
}

// ---------------------------------------------------------------- streams and banks

TEST(SmmuV2Streams, OverlappingMatchesAreRefusedAndUnknownStreamsFault) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    IoDomain a(r.pool(), iopt::vmsa_s2(40, 40, false)), b(r.pool(), iopt::vmsa_s2(40, 40, false));
    ASSERT_TRUE(ready(a, r.drv, sid(0x870)));
    ASSERT_EQ(b.init(), Status::ok);
    EXPECT_EQ(b.attach(r.drv, sid(0x870, 0xf)), Status::in_use);  // would match 0x870 too
    EXPECT_STREQ(r.drv.why(), "stream 0x870 mask 0xf overlaps stream 0x870 mask 0x0 of another domain");
    EXPECT_EQ(a.attach(r.drv, sid(0x870, 0x1)), Status::in_use);  // even for the same domain
    EXPECT_EQ(b.attach(r.drv, sid(0x8000)), Status::out_of_range); // beyond 15 stream-id bits
    EXPECT_EQ(b.attach(r.drv, sid(0x10, 0x4000)), Status::ok);     // 0x10 and 0x4010
    EXPECT_EQ(b.attach(r.drv, sid(0x871)), Status::ok);
    EXPECT_EQ(r.drv.smrs_in_use(), 3u);
    EXPECT_EQ(r.drv.banks_in_use(), 2u);

    uint64_t pa = r.buffer();
    ASSERT_TRUE(b.map(0x1000, pa, kPageSize, {}).ok());
    EXPECT_EQ(r.poke(0x4010, 0x1000, 0x31).pa, pa);  // the masked bit really is ignored
    EXPECT_EQ(r.poke(0x872, 0x1000).fault, hw::kGfsrUsf);
    ASSERT_EQ(b.detach(r.drv, sid(0x10, 0x4000)), Status::ok);
    EXPECT_EQ(r.poke(0x4010, 0x1000).fault, hw::kGfsrUsf);
    EXPECT_EQ(b.detach(r.drv, sid(0x10, 0x4000)), Status::not_found);
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 1u);  // the second USF only set MULTI
    EXPECT_EQ(f[0].stream, 0x872u);
}

TEST(SmmuV2Banks, TwoDomainsNeverShareABankAndTeardownReleasesEverything) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t pa = r.buffer(), pb = r.buffer();
    size_t pages_before = r.pool().used_pages();
    {
        IoDomain a(r.pool(), iopt::vmsa_s2(40, 40, false)), b(r.pool(), iopt::vmsa_s1(39, 40, false));
        ASSERT_TRUE(ready(a, r.drv, sid(0x4c0), 0x1000, pa, kPageSize));
        ASSERT_EQ(a.attach(r.drv, sid(0x4c1)), Status::ok);
        ASSERT_TRUE(ready(b, r.drv, sid(0x868), 0x1000, pb, kPageSize));
        ASSERT_EQ(b.attach(r.drv, sid(0x869)), Status::ok);
        EXPECT_NE(r.drv.bank_of(a), r.drv.bank_of(b));
        EXPECT_EQ(r.drv.smrs_in_use(), 4u);
        EXPECT_EQ(r.drv.banks_in_use(), 2u);
        EXPECT_EQ(r.model.valid_smrs(), 4u);
        EXPECT_EQ(r.model.enabled_banks(), 2u);
        // The same IOVA, two domains, two places.
        EXPECT_EQ(r.poke(0x4c1, 0x1000, 0xa1).pa, pa);
        EXPECT_EQ(r.poke(0x869, 0x1000, 0xb1).pa, pb);
        EXPECT_EQ(r.at(pa)[0], 0xa1);
        EXPECT_EQ(r.at(pb)[0], 0xb1);

        ASSERT_EQ(a.destroy(), Status::ok);
        EXPECT_EQ(r.drv.smrs_in_use(), 2u);
        EXPECT_EQ(r.drv.banks_in_use(), 1u);
        EXPECT_EQ(r.poke(0x4c0, 0x1000).fault, hw::kGfsrUsf);  // detached: faults, never bypasses
        EXPECT_TRUE(r.poke(0x868, 0x1000).ok);
    }
    EXPECT_EQ(r.drv.smrs_in_use(), 0u);
    EXPECT_EQ(r.drv.banks_in_use(), 0u);
    EXPECT_EQ(r.model.valid_smrs(), 0u);
    EXPECT_EQ(r.model.enabled_banks(), 0u);
    for (unsigned i = 0; i < 4; i++) EXPECT_EQ((r.model.s2cr(i) >> 16) & 3, 2u);
    EXPECT_EQ(r.pool().used_pages(), pages_before);  // every table page back
    EXPECT_EQ(r.poke(0x868, 0x1000).fault, hw::kGfsrUsf);
}

TEST(SmmuV2Banks, RunningOutOfBanksOrStreamEntriesRefusesCleanly) {
    Mmu500Model::Features f;
    f.numcb = 3;
    f.numsmrg = 5;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    std::vector<std::unique_ptr<IoDomain>> d;
    for (unsigned i = 0; i < 4; i++) {
        d.push_back(std::make_unique<IoDomain>(r.pool(), iopt::vmsa_s2(40, 40, false)));
        ASSERT_EQ(d[i]->init(), Status::ok);
    }
    for (unsigned i = 0; i < 3; i++) ASSERT_EQ(d[i]->attach(r.drv, sid(0x100 + i)), Status::ok);
    EXPECT_EQ(d[3]->attach(r.drv, sid(0x103)), Status::no_space);  // no bank left
    EXPECT_STREQ(r.drv.why(), "no free context bank for a stage-2 domain (3 banks, 0 of them stage-2 only)");
    EXPECT_EQ(r.drv.smrs_in_use(), 3u);
    EXPECT_EQ(r.model.valid_smrs(), 3u);
    EXPECT_EQ(r.poke(0x103, 0).fault, hw::kGfsrUsf);
    ASSERT_EQ(d[0]->attach(r.drv, sid(0x200)), Status::ok);         // banks are per domain:
    ASSERT_EQ(d[0]->attach(r.drv, sid(0x201)), Status::ok);         // more streams are fine
    EXPECT_EQ(d[1]->attach(r.drv, sid(0x202)), Status::no_space);    // until the SMRs run out
    EXPECT_STREQ(r.drv.why(), "all 5 stream match entries are in use");
    EXPECT_EQ(r.drv.banks_in_use(), 3u);
    EXPECT_EQ(r.model.valid_smrs(), 5u);
    ASSERT_EQ(d[2]->destroy(), Status::ok);
    EXPECT_EQ(d[3]->attach(r.drv, sid(0x103)), Status::ok);  // what was released is usable again
    EXPECT_EQ(r.drv.bank_of(*d[3]), 2);
}

// ---------------------------------------------------------------- TLB and invalidation

// The model's TLB holds a translation until an invalidation AND its sync: change a PTE behind
// the driver's back and DMA still goes to the old page until then.
TEST(Mmu500Model, TlbKeepsTranslationsUntilInvalidationAndSync) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t buf = r.buffer();
    IoDomain d(r.pool(), iopt::vmsa_s2(40, 40, false));
    ASSERT_TRUE(ready(d, r.drv, sid(7), 0x8000, buf, kPageSize));
    ASSERT_TRUE(r.poke(7, 0x8000).ok);
    vmsa::Regime reg{vmsa::Stage::s2, d.root_pa(), 40, 40, vmsa::s2_level_from_sl0(1)};
    vmsa::Walk w = vmsa::walk(r.mem_, reg, 0x8000);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(r.mem_.write64(w.desc_pa, 0));
    EXPECT_TRUE(r.poke(7, 0x8000).ok);  // stale TLB entry
    uintptr_t cb0 = kBase + 0x10000;
    mmio::write64(cb0 + 0x630, 0x8000 >> 12);  // TLBIIPAS2, no sync yet
    EXPECT_TRUE(r.poke(7, 0x8000).ok);
    EXPECT_EQ(r.model.pending_invalidations(), 1u);
    mmio::write32(cb0 + 0x7f0, 0);  // TLBSYNC
    EXPECT_EQ(r.poke(7, 0x8000).fault, hw::kFsrTf);
    EXPECT_EQ(r.model.pending_invalidations(), 0u);
    // The driver's own invalidation does the same.
    ASSERT_TRUE(r.mem_.write64(w.desc_pa, w.desc));
    EXPECT_TRUE(r.poke(7, 0x8000).ok);
    ASSERT_TRUE(r.mem_.write64(w.desc_pa, 0));
    EXPECT_TRUE(r.poke(7, 0x8000).ok);
    iopt::Gather one;  // what IoDomain hands over for a break-before-make: one range
    one.add(0x8000, kPageSize, 12, true);
    ASSERT_EQ(r.drv.flush(d, one), Status::ok);
    EXPECT_EQ(r.poke(7, 0x8000).fault, hw::kFsrTf);
    ASSERT_TRUE(r.mem_.write64(w.desc_pa, w.desc));
    r.faults();
}

void unmap_cost(iopt::FormatId id, uint64_t pages, uint64_t want_tlbis, bool want_global_sync) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t buf = r.buffer(static_cast<size_t>(pages));
    constexpr uint64_t kIova = 0x40000000;
    IoDomain d(r.pool(), iopt::Format{id, id == iopt::FormatId::vmsa_s1 ? 39u : 40u, 40, false});
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(kIova, buf, pages * kPageSize, {}, kPageSize).ok());
    ASSERT_EQ(d.attach(r.drv, sid(5)), Status::ok);
    for (uint64_t p = 0; p < pages; p += 7) ASSERT_TRUE(r.poke(5, kIova + p * kPageSize).ok);
    ASSERT_TRUE(r.poke(5, kIova + (pages - 1) * kPageSize).ok);

    IommuStats before = r.drv.stats();
    uint64_t tlbis = r.model.tlbi_writes(), gsync = r.model.global_syncs(), bsync = r.model.bank_syncs();
    ASSERT_TRUE(d.unmap(kIova, pages * kPageSize).ok());
    EXPECT_EQ(r.model.tlbi_writes() - tlbis, want_tlbis);
    EXPECT_EQ(r.model.global_syncs() - gsync, want_global_sync ? 1u : 0u);
    EXPECT_EQ(r.model.bank_syncs() - bsync, want_global_sync ? 0u : 1u);
    IommuStats after = r.drv.stats();
    EXPECT_EQ(after.syncs - before.syncs, 1u);
    EXPECT_EQ(after.commands - before.commands, want_tlbis + 1);
    for (uint64_t p = 0; p < pages; p += 7) EXPECT_EQ(r.poke(5, kIova + p * kPageSize).fault, hw::kFsrTf);
    EXPECT_EQ(r.poke(5, kIova + (pages - 1) * kPageSize).fault, hw::kFsrTf);
    r.faults();
}

// A few pages: one TLBI per page and one sync of the bank. Many: one by VMID (global sync) or
// by ASID (bank sync) is cheaper.
TEST(SmmuV2Invalidation, FewPagesByAddress) {
    unmap_cost(iopt::FormatId::vmsa_s2, 8, 8, false);
    unmap_cost(iopt::FormatId::vmsa_s1, 8, 8, false);
}
TEST(SmmuV2Invalidation, ManyPagesByVmidOrAsid) {
    unmap_cost(iopt::FormatId::vmsa_s2, 512, 1, true);
    unmap_cost(iopt::FormatId::vmsa_s1, 512, 1, false);
}

TEST(SmmuV2Invalidation, ANewDomainWithTheSameTagSeesNothingOfTheOld) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t a = r.buffer(), b = r.buffer();
    uint16_t tag = 0;
    {
        IoDomain old(r.pool(), iopt::vmsa_s2(40, 40, false));
        ASSERT_TRUE(ready(old, r.drv, sid(1), 0x10000, a, kPageSize));
        tag = old.tag();
        ASSERT_TRUE(r.poke(1, 0x10000, 0x11).ok);  // in the TLB now
    }
    IoDomain d(r.pool(), iopt::vmsa_s2(40, 40, false));
    ASSERT_TRUE(ready(d, r.drv, sid(1), 0x10000, b, kPageSize));
    EXPECT_EQ(d.tag(), tag);  // same VMID: only the release's TLBIVMID keeps the old entry out
    Mmu500Model::Dma x = r.poke(1, 0x10000, 0x22);
    ASSERT_TRUE(x.ok);
    EXPECT_EQ(x.pa, b);
    EXPECT_EQ(r.at(a)[0], 0x11);
}

TEST(SmmuV2Invalidation, ASyncThatNeverCompletesTimesOutAndTheDriverRecovers) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t buf = r.buffer(2);
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 40, false));
    ASSERT_TRUE(ready(d, r.drv, sid(9), 0x2000, buf, 2 * kPageSize));
    ASSERT_TRUE(r.poke(9, 0x2000).ok);
    r.model.stall_syncs(true);
    Progress p = d.unmap(0x2000, kPageSize);
    EXPECT_EQ(p.status, Status::timeout);
    EXPECT_EQ(p.bytes_done, kPageSize);  // the entry is gone, its invalidation unconfirmed
    EXPECT_EQ(r.drv.sync_timeouts(), 1u);
    EXPECT_TRUE(r.poke(9, 0x2000).ok);   // so the hardware may still use it, as the status says
    r.model.stall_syncs(false);
    EXPECT_EQ(r.poke(9, 0x2000).fault, hw::kFsrTf);
    EXPECT_TRUE(r.poke(9, 0x3000).ok);
    ASSERT_TRUE(d.unmap(0x3000, kPageSize).ok());  // and the next one completes
    EXPECT_EQ(r.poke(9, 0x3000).fault, hw::kFsrTf);
    r.faults();
}

// ---------------------------------------------------------------- coherency

TEST(SmmuV2Coherency, NonCoherentWalksGetCleanedTablesAndNonCacheableWalkAttributes) {
    {
        Rig r;  // ID0.CTTW clear
        ASSERT_EQ(r.probe(), Status::ok);
        EXPECT_FALSE(r.drv.caps().coherent_walk);
        IoDomain coherent(r.pool(), iopt::vmsa_s2(40, 40, true));
        ASSERT_EQ(coherent.init(), Status::ok);
        EXPECT_EQ(coherent.attach(r.drv, sid(1)), Status::invalid_argument);  // its tables would not be cleaned

        uint64_t buf = r.buffer();
        IoDomain d(r.pool(), iopt::vmsa_s2(40, 40, false));
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_EQ(d.attach(r.drv, sid(1)), Status::ok);
        cache::CleanLog before = cache::clean_log();
        ASSERT_TRUE(d.map(0x5000, buf, kPageSize, {}).ok());
        EXPECT_GT(cache::clean_log().calls, before.calls);  // every table update cleaned
        EXPECT_TRUE(r.poke(1, 0x5000).ok);
        uint32_t tcr = r.model.tcr(static_cast<unsigned>(r.drv.bank_of(d)));
        EXPECT_EQ((tcr >> 8) & 0xf, 0u);  // IRGN0/ORGN0: non-cacheable walks
        EXPECT_EQ((tcr >> 12) & 3, 2u);   // outer shareable
    }
    Mmu500Model::Features f;
    f.coherent = true;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    EXPECT_TRUE(r.drv.caps().coherent_walk);
    IoDomain d(r.pool(), iopt::vmsa_s2(40, 40, true));
    ASSERT_TRUE(ready(d, r.drv, sid(1)));
    uint32_t tcr = r.model.tcr(static_cast<unsigned>(r.drv.bank_of(d)));
    EXPECT_EQ((tcr >> 8) & 0xf, 5u);  // write-back, write-allocate
    EXPECT_EQ((tcr >> 12) & 3, 3u);   // inner shareable
}

// ---------------------------------------------------------------- MMU-500 specifics

TEST(SmmuV2Mmu500, NextPagePrefetcherIsTurnedOffInEveryBank) {
    {
        Rig r;
        ASSERT_EQ(r.probe(), Status::ok);
        EXPECT_TRUE(r.drv.prefetcher_disabled());
        EXPECT_EQ(r.model.sacr() & (1u << 26), 0u);  // CACHE_LOCK cleared first (r2p0 on)
        for (unsigned n = 0; n < 16; n++) EXPECT_EQ(r.model.actlr(n) & 2u, 0u) << n;
    }
    {
        Mmu500Model::Features f;
        f.cache_locked = true;  // the secure side keeps the lock: reported, not fatal
        Rig r(f);
        ASSERT_EQ(r.probe(), Status::ok);
        EXPECT_FALSE(r.drv.prefetcher_disabled());
        EXPECT_EQ(r.model.actlr(0) & 2u, 2u);
    }
    {
        Rig r;  // a generic arm,smmu-v2: no MMU-500 registers touched
        ASSERT_EQ(r.probe("smmu", 0, false), Status::ok);
        EXPECT_FALSE(r.drv.prefetcher_disabled());
        EXPECT_EQ(r.model.sacr() & (1u << 26), 1u << 26);
    }
}

// ---------------------------------------------------------------- several instances

TEST(SmmuV2Instances, SeveralSmmusEachWithTheirOwnResources) {
    HostMem host(kPhysBase, 512);
    model::PoolPhysMem mem(*host.pool);
    PagePool& pool = *host.pool;
    Mmu500Model::Features small;
    small.numcb = 2;
    Smmu a(mem, {}, 0xfd800000), b(mem, small, 0xfd900000);
    ASSERT_EQ(a.probe("iommu@fd800000"), Status::ok);
    ASSERT_EQ(b.probe("iommu@fd900000"), Status::ok);
    EXPECT_EQ(b.drv.num_banks(), 2u);
    uint64_t buf = pool.alloc(2).value;
    auto at = [&](uint64_t pa) { return static_cast<uint8_t*>(pool.virt(pa)); };
    {
        IoDomain d(pool, iopt::vmsa_s2(40, 40, false)), other(pool, iopt::vmsa_s2(40, 40, false));
        ASSERT_TRUE(ready(d, a.drv, sid(0x870), 0x1000, buf, 2 * kPageSize));
        ASSERT_EQ(d.attach(b.drv, sid(0x870)), Status::ok);  // the same stream id on another SMMU
        ASSERT_TRUE(ready(other, b.drv, sid(0x871)));
        EXPECT_EQ(a.drv.bank_of(d), 0);
        EXPECT_EQ(b.drv.bank_of(d), 0);
        EXPECT_EQ(b.drv.bank_of(other), 1);
        EXPECT_EQ(a.drv.banks_in_use(), 1u);
        EXPECT_EQ(b.drv.banks_in_use(), 2u);
        EXPECT_EQ(a.poke(0x870, 0x1000, 0x0a).pa, buf);
        EXPECT_EQ(b.poke(0x870, 0x1004, 0x0b).pa, buf + 4);
        EXPECT_EQ(at(buf)[0], 0x0a);
        EXPECT_EQ(at(buf)[4], 0x0b);

        // One unmap invalidates through both; a fault names the instance that saw it.
        ASSERT_TRUE(d.unmap(0x1000, kPageSize).ok());
        EXPECT_EQ(a.poke(0x870, 0x1000).fault, hw::kFsrTf);
        EXPECT_EQ(b.poke(0x870, 0x1000).fault, hw::kFsrTf);
        std::vector<FaultRecord> fb = b.faults();
        ASSERT_EQ(fb.size(), 1u);
        EXPECT_STREQ(fb[0].iommu, "iommu@fd900000");
        EXPECT_EQ(a.faults().size(), 1u);

        ASSERT_EQ(d.detach(a.drv, sid(0x870)), Status::ok);
        EXPECT_EQ(a.poke(0x870, 0x2000).fault, hw::kGfsrUsf);
        EXPECT_TRUE(b.poke(0x870, 0x2000).ok);  // still attached there
        a.faults();
    }
    EXPECT_EQ(a.drv.banks_in_use() + b.drv.banks_in_use(), 0u);
    EXPECT_EQ(a.drv.smrs_in_use() + b.drv.smrs_in_use(), 0u);
}

// The same (format, coherency) gives the same walk attributes as every other driver (walk_expect.hpp).
TEST(SmmuV2Coherency, WalkAttributesMatchEveryDriver) {
    for (bool coherent : {true, false}) {
        Mmu500Model::Features f;
        f.coherent = coherent;
        Rig r(f);
        ASSERT_EQ(r.probe(), Status::ok);
        for (DomainUse use : {DomainUse::dma, DomainUse::guest_p2m}) {
            Result<iopt::Format> fmt = r.drv.domain_format(use, 40);
            ASSERT_TRUE(fmt.ok());
            EXPECT_EQ(fmt.value.id, use == DomainUse::dma ? iopt::FormatId::vmsa_s1 : iopt::FormatId::vmsa_s2);
            IoDomain d(r.pool(), fmt.value);
            StreamId s = sid(use == DomainUse::dma ? 1 : 2);
            ASSERT_TRUE(ready(d, r.drv, s));
            uint32_t tcr = r.model.tcr(static_cast<unsigned>(r.drv.bank_of(d)));
            EXPECT_EQ(vmsa::tcr0_walk(tcr), moat::test::expected_walk(coherent)) << "coherent " << coherent;
        }
    }
}
