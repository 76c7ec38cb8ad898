// The SMMUv3 driver against the register model in tests/models, for what QEMU 7.2 cannot show:
// stage-2 STEs, sparse 2-level stream tables, command errors, event-queue overflow, invalidation
// counts and non-coherent walkers. The model walks the tables it is given, so every DMA below
// proves the bytes land where the mapping says (or the fault the hardware would report).
#include <gtest/gtest.h>

#include <string.h>

#include <memory>
#include <vector>

#include "arch/cache.hpp"
#include "arch/mmio.hpp"
#include "common/io_domain.hpp"
#include "drivers/iommu/smmu_v3.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/smmu_v3_model.hpp"
#include "tests/unit/walk_expect.hpp"

using namespace moat;
using model::SmmuV3Model;
namespace ev = model::smmu_evt;
namespace vmsa = model::vmsa;

namespace {

constexpr uintptr_t kBase = 0x09050000;
constexpr uint64_t kPhysBase = 0x80000000;
constexpr uint8_t kOpCfgiSte = 0x03, kOpNhAsid = 0x11, kOpNhVa = 0x12, kOpEl2All = 0x20, kOpS12Vmall = 0x28,
                  kOpS2Ipa = 0x2a, kOpSync = 0x46;

// Physical memory for a test: a pool over a host buffer posing as RAM at `phys`.
struct HostMem : model::HostPool {
    HostMem(uint64_t phys, size_t pages) : model::HostPool(pages, phys) { EXPECT_TRUE(ok); }
};

// An SMMU model mapped where the driver expects it, the driver, and the memory both see.
struct Rig {
    HostMem host;
    model::PoolPhysMem mem;
    SmmuV3Model model;
    SmmuV3 smmu;
    FaultLog log;
    size_t pool_before;  // pages in use before probe

    explicit Rig(SmmuV3Model::Features f = {}, uint64_t phys = kPhysBase, size_t pages = 2048)
        : host(phys, pages), mem(*host.pool), model(mem, f), smmu(*host.pool) {
        EXPECT_TRUE(mmio::attach(kBase, SmmuV3Model::kRegSize, &model));
        pool_before = pool().used_pages();
    }
    ~Rig() {
        smmu.shutdown();
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
    PagePool& pool() { return *host.pool; }
    Status probe(uint32_t max_sid = 63, bool two_level = false, uint64_t size = SmmuV3Model::kRegSize) {
        return smmu.probe(SmmuV3::Config{kBase, size, "smmuv3-model", max_sid, 48, two_level});
    }
    // `n` zeroed pages for DMA buffers.
    uint64_t buffer(size_t n = 1) {
        Result<uint64_t> r = pool().alloc(n);
        EXPECT_TRUE(r.ok());
        return r.value;
    }
    uint8_t* at(uint64_t pa) { return static_cast<uint8_t*>(pool().virt(pa)); }
    // Faults the driver reports since the last call.
    std::vector<FaultRecord> faults() {
        uint64_t from = log.total();
        smmu.poll_faults(log);
        std::vector<FaultRecord> v;
        for (uint64_t i = from; i < log.total(); i++) v.push_back(log.at(static_cast<unsigned>(i - (log.total() - log.size()))));
        return v;
    }
    // One 16-byte write, the way the tests probe an IOVA.
    SmmuV3Model::Dma poke(uint32_t sid, uint64_t iova, uint8_t v = 0x5a) {
        uint8_t b[16];
        memset(b, v, sizeof b);
        return model.dma_write(sid, iova, b, sizeof b);
    }
};

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; i++) v[i] = static_cast<uint8_t>(seed + i * 13);
    return v;
}

iopt::Prot read_only() {
    iopt::Prot p;
    p.perm = iopt::kRead;
    return p;
}

// What most tests start with: init, map [iova, iova + size) to pa (if size), attach `sid`.
bool ready(IoDomain& d, Iommu& iommu, uint32_t sid, uint64_t iova = 0, uint64_t pa = 0, uint64_t size = 0) {
    return d.init() == Status::ok && (!size || d.map(iova, pa, size, {}).ok()) && d.attach(iommu, sid) == Status::ok;
}

void expect_fault(const FaultRecord& r, FaultKind kind, uint32_t sid, uint64_t addr, bool write, uint8_t raw) {
    EXPECT_EQ(r.kind, kind) << to_string(r.kind);
    EXPECT_EQ(r.stream, sid);
    EXPECT_EQ(r.address, addr);
    EXPECT_EQ(r.write, write);
    EXPECT_EQ(r.raw, raw);
}

// ---------------------------------------------------------------- the walker on its own

TEST(SmmuV3Walker, HandBuiltTablesGiveTheArchitectedResults) {
    HostMem h(kPhysBase, 16);
    model::PoolPhysMem mem(*h.pool);
    auto page = [&] { return h.pool->alloc().value; };
    auto t = [&](uint64_t pa) { return static_cast<uint64_t*>(h.pool->virt(pa)); };
    // Stage 1, 39-bit input: starts at level 1 with 512 entries.
    uint64_t l1 = page(), l2 = page(), l3 = page(), out = page();
    constexpr uint64_t kAf = 1 << 10, kAp1 = 1 << 6, kAp2 = 1 << 7;
    t(l1)[1] = l2 | 3;                               // 1 GiB slot 1 -> table
    t(l1)[2] = l2 | 3 | (uint64_t{1} << 62);          // same table, APTable[1]: read-only below
    t(l2)[0] = l3 | 3;
    t(l2)[1] = 0x40000000 | kAf | kAp1 | kAp2 | 1;    // 2 MiB read-only block
    t(l2)[2] = 0x40200000 | kAp1 | 1;                 // block without the access flag
    t(l3)[5] = out | kAf | kAp1 | 3;                  // page
    t(l3)[6] = (uint64_t{1} << 40) | kAf | kAp1 | 3;  // beyond a 40-bit output size
    t(l3)[7] = out | kAf | kAp1 | 1;                  // 0b01 at level 3 is reserved
    vmsa::Regime s1{vmsa::Stage::s1, l1, 39, 40, -1};
    EXPECT_EQ(vmsa::check(s1), nullptr);
    EXPECT_EQ(vmsa::start_level(s1), 1);

    vmsa::Walk w = vmsa::walk(mem, s1, 0x40005123);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w.out, out + 0x123);
    EXPECT_TRUE(w.level == 3 && w.size == 4096 && w.reads == 3);
    EXPECT_TRUE(vmsa::allows(vmsa::Stage::s1, w.perms, {true, false, false}));
    w = vmsa::walk(mem, s1, 0x80005123);  // through the APTable read-only entry
    ASSERT_TRUE(w.ok());
    EXPECT_FALSE(vmsa::allows(vmsa::Stage::s1, w.perms, {true, false, false}));
    EXPECT_TRUE(vmsa::allows(vmsa::Stage::s1, w.perms, {false, false, false}));
    w = vmsa::walk(mem, s1, 0x40234567);
    ASSERT_TRUE(w.ok());
    EXPECT_TRUE(w.out == 0x40034567 && w.level == 2);
    EXPECT_FALSE(vmsa::allows(vmsa::Stage::s1, w.perms, {true, false, false}));
    EXPECT_EQ(vmsa::walk(mem, s1, 0x40400000).fault, vmsa::Fault::access_flag);
    EXPECT_EQ(vmsa::walk(mem, s1, 0x40006000).fault, vmsa::Fault::address_size);
    EXPECT_EQ(vmsa::walk(mem, s1, 0x40007000).fault, vmsa::Fault::translation);
    w = vmsa::walk(mem, s1, 0x40008000);
    EXPECT_TRUE(w.fault == vmsa::Fault::translation && w.level == 3);
    EXPECT_EQ(vmsa::walk(mem, s1, uint64_t{1} << 39).fault, vmsa::Fault::translation);  // beyond the input size

    // Stage 2, 40-bit input from level 1 (SL0 = 1): two concatenated level-1 tables, 8 KiB aligned.
    uint64_t root = h.pool->alloc(2, 2).value;
    t(root)[513] = 0xc0000000 | kAf | (1 << 6) | 1;  // IPA 2^39 + 1 GiB: a read-only 1 GiB block
    vmsa::Regime s2{vmsa::Stage::s2, root, 40, 40, vmsa::s2_level_from_sl0(1)};
    EXPECT_EQ(vmsa::check(s2), nullptr);
    EXPECT_EQ(vmsa::root_entries(s2), 1024u);
    w = vmsa::walk(mem, s2, (uint64_t{1} << 39) + 0x40001234);
    ASSERT_TRUE(w.ok());
    EXPECT_TRUE(w.out == 0xc0001234 && w.level == 1);
    EXPECT_TRUE(vmsa::allows(vmsa::Stage::s2, w.perms, {false, false, false}));
    EXPECT_FALSE(vmsa::allows(vmsa::Stage::s2, w.perms, {true, false, false}));
    EXPECT_NE(vmsa::check({vmsa::Stage::s2, root, 40, 40, vmsa::s2_level_from_sl0(0)}), nullptr);  // level 2 can't reach 40 bits
    EXPECT_NE(vmsa::check({vmsa::Stage::s2, root + 4096, 40, 40, 1}), nullptr);  // concatenated root misaligned
    EXPECT_NE(vmsa::check({vmsa::Stage::s1, l1, 24, 40, -1}), nullptr);
}

// ---------------------------------------------------------------- probe

TEST(SmmuV3Probe, EnablesWithEveryStreamBlocked) {
    Rig r;
    ASSERT_EQ(r.probe(63), Status::ok);
    EXPECT_EQ(r.model.cr0(), 0xdu);  // SMMUEN | EVENTQEN | CMDQEN
    EXPECT_FALSE(r.smmu.two_level());
    EXPECT_EQ(r.model.strtab_base_cfg(), 6u);  // linear, 64 STEs
    EXPECT_EQ(r.smmu.pages_used(), r.pool().used_pages() - r.pool_before);
    EXPECT_EQ(r.model.commands(0x04), 1u);  // CFGI_ALL
    EXPECT_EQ(r.model.commands(0x30), 1u);  // TLBI_NSNH_ALL
    EXPECT_EQ(r.model.commands(kOpEl2All), 0u);  // no IDR0.HYP: illegal, so not sent
    EXPECT_EQ(r.smmu.commands_issued(), r.model.commands_total());
    EXPECT_EQ(r.smmu.command_errors(), 0u);
    const IommuCaps& c = r.smmu.caps();
    EXPECT_TRUE(c.stage1 && !c.stage2 && c.oas == 44 && c.coherent_walk && c.range_invalidation);

    // An id with an abort STE: blocked, no event. One past the table: C_BAD_STREAMID, recorded.
    SmmuV3Model::Dma d = r.poke(5, 0x1000);
    EXPECT_FALSE(d.ok);
    EXPECT_EQ(d.event, 0);
    EXPECT_EQ(r.poke(64, 0x2000).event, ev::kBadStreamId);
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    EXPECT_TRUE(f[0].kind == FaultKind::bad_stream && f[0].stream == 64 && f[0].raw == ev::kBadStreamId);
}

TEST(SmmuV3Probe, InvalidatesEl2TlbOnlyWhenTheSmmuHasHyp) {
    SmmuV3Model::Features f;
    f.hyp = true;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    EXPECT_EQ(r.model.commands(kOpEl2All), 1u);
    EXPECT_EQ(r.smmu.command_errors(), 0u);
}

TEST(SmmuV3Probe, RefusesWhatItCannotDriveAndTouchesNothing) {
    using Tweak = void (*)(SmmuV3Model::Features&);
    const Tweak tweaks[] = {
        [](SmmuV3Model::Features& f) { f.aarch64_tables = false; },
        [](SmmuV3Model::Features& f) { f.gran4k = false; },
        [](SmmuV3Model::Features& f) { f.stage1 = f.stage2 = false; },
    };
    for (Tweak tweak : tweaks) {
        SmmuV3Model::Features f;
        tweak(f);
        Rig r(f);
        EXPECT_EQ(r.probe(), Status::unsupported);
        EXPECT_EQ(r.model.cr0(), 0u);
        EXPECT_EQ(r.pool().used_pages(), r.pool_before);
    }
    {
        Rig r;  // reg smaller than the two register pages: not even an ID register is read
        EXPECT_EQ(r.probe(63, false, 0x10000), Status::invalid_argument);
        EXPECT_EQ(r.model.register_accesses(), 0u);
    }
    {
        SmmuV3Model::Features f;
        f.sid_bits = 8;
        Rig r(f);
        EXPECT_EQ(r.probe(256), Status::out_of_range);
        EXPECT_EQ(r.pool().used_pages(), r.pool_before);
    }
}

TEST(SmmuV3Probe, Cr0AckNeverAnsweringTimesOutWithEverythingGivenBack) {
    Rig r;
    r.model.freeze_cr0ack(true);  // CR0ACK stays 0: the "off" step passes, enabling never completes
    EXPECT_EQ(r.probe(), Status::timeout);
    EXPECT_EQ(r.model.cr0(), 0u);
    EXPECT_EQ(r.smmu.pages_used(), 0u);
    EXPECT_EQ(r.pool().used_pages(), r.pool_before);

    r.model.set_cr0ack(0xd);  // stuck enabled: even turning it off times out
    EXPECT_EQ(r.probe(), Status::timeout);
    EXPECT_EQ(r.model.cr0(), 0u);
    EXPECT_EQ(r.pool().used_pages(), r.pool_before);

    r.model.freeze_cr0ack(false);  // the instance is reusable once the hardware answers
    EXPECT_EQ(r.probe(), Status::ok);
}

// ---------------------------------------------------------------- stage 1

TEST(SmmuV3Stage1, DmaLandsWhereTheMappingSaysAndFaultsAreReported) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t rw = r.buffer(2), ro = r.buffer();
    memset(r.at(ro), 0x77, kPageSize);
    IoDomain d(r.pool(), iopt::vmsa_s1(39, r.smmu.caps().oas, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x100000, rw, 2 * kPageSize, {}).ok());
    ASSERT_TRUE(d.map(0x200000, ro, kPageSize, read_only()).ok());
    ASSERT_EQ(d.attach(r.smmu, 3), Status::ok);

    // A write across the two pages, then read back through the SMMU.
    std::vector<uint8_t> src = pattern(6000, 1), back(6000);
    SmmuV3Model::Dma w = r.model.dma_write(3, 0x100800, src.data(), src.size());
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.pa, rw + 0x800);
    EXPECT_EQ(memcmp(r.at(rw) + 0x800, src.data(), src.size()), 0);
    EXPECT_EQ(r.at(rw)[0x7ff], 0);
    ASSERT_TRUE(r.model.dma_read(3, 0x100800, back.data(), back.size()).ok);
    EXPECT_EQ(back, src);

    // Read-only: reads work, a write is a permission fault and changes nothing.
    uint8_t b[16] = {};
    EXPECT_TRUE(r.model.dma_read(3, 0x200010, b, sizeof b).ok);
    EXPECT_EQ(b[3], 0x77);
    EXPECT_EQ(r.poke(3, 0x200010).event, ev::kPermission);
    EXPECT_EQ(r.at(ro)[0x10], 0x77);
    // Unmapped, by write and by read; and an IOVA beyond the 39-bit input size.
    EXPECT_EQ(r.poke(3, 0x300000).event, ev::kTranslation);
    EXPECT_EQ(r.model.dma_read(3, 0x300040, b, sizeof b).event, ev::kTranslation);
    EXPECT_EQ(r.poke(3, uint64_t{1} << 39).event, ev::kTranslation);

    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 4u);
    expect_fault(f[0], FaultKind::permission, 3, 0x200010, true, ev::kPermission);
    expect_fault(f[1], FaultKind::translation, 3, 0x300000, true, ev::kTranslation);
    expect_fault(f[2], FaultKind::translation, 3, 0x300040, false, ev::kTranslation);
    expect_fault(f[3], FaultKind::translation, 3, uint64_t{1} << 39, true, ev::kTranslation);
    EXPECT_EQ(r.smmu.commands_issued(), r.model.commands_total());
}

TEST(SmmuV3Stage1, UnmapDetachAndDestroyEachStopDma) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t buf = r.buffer(4);
    size_t after_buffers = r.pool().used_pages();
    uint64_t smmu_pages = r.smmu.pages_used();
    {
        IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
        ASSERT_TRUE(ready(d, r.smmu, 7, 0x400000, buf, 4 * kPageSize));
        EXPECT_EQ(r.smmu.pages_used(), smmu_pages + 1);  // the domain's CD
        ASSERT_TRUE(r.poke(7, 0x400000).ok);
        uint64_t hits = r.model.tlb_hits();
        ASSERT_TRUE(r.poke(7, 0x400100).ok);
        EXPECT_EQ(r.model.tlb_hits(), hits + 1);  // the IOTLB holds the translation...

        ASSERT_TRUE(d.unmap(0x400000, kPageSize).ok());
        EXPECT_GE(r.model.commands(kOpNhVa), 1u);
        EXPECT_EQ(r.poke(7, 0x400000).event, ev::kTranslation);  // ...until the unmap's TLBI
        EXPECT_EQ(r.faults().size(), 1u);
        EXPECT_TRUE(r.poke(7, 0x401000).ok);

        // Detached: the STE aborts silently, the domain's TLB entries and CD page are gone.
        ASSERT_EQ(d.detach(r.smmu, 7), Status::ok);
        memset(r.at(buf + kPageSize), 0, kPageSize);
        SmmuV3Model::Dma x = r.poke(7, 0x401000);
        EXPECT_FALSE(x.ok);
        EXPECT_EQ(x.event, 0);
        EXPECT_EQ(r.at(buf + kPageSize)[0], 0);
        EXPECT_EQ(r.model.commands(kOpNhAsid), 1u);
        EXPECT_EQ(r.smmu.pages_used(), smmu_pages);

        ASSERT_EQ(d.attach(r.smmu, 7), Status::ok);
        EXPECT_TRUE(r.poke(7, 0x402000).ok);
        ASSERT_EQ(d.destroy(), Status::ok);
        EXPECT_FALSE(r.poke(7, 0x402000).ok);
        EXPECT_TRUE(r.faults().empty());
    }
    EXPECT_EQ(r.pool().used_pages(), after_buffers);
    EXPECT_EQ(r.smmu.pages_used(), smmu_pages);
    EXPECT_EQ(r.smmu.commands_issued(), r.model.commands_total());
}

TEST(SmmuV3Stage1, ANewDomainOnTheSameStreamAndTagSeesNothingOfTheOld) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t a = r.buffer(), b = r.buffer();
    uint16_t tag = 0;
    {
        IoDomain old(r.pool(), iopt::vmsa_s1(39, 44, true));
        ASSERT_TRUE(ready(old, r.smmu, 1, 0x10000, a, kPageSize));
        tag = old.tag();
        ASSERT_TRUE(r.poke(1, 0x10000, 0x11).ok);  // cached: STE, CD, IOTLB
    }
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_TRUE(ready(d, r.smmu, 1, 0x10000, b, kPageSize));
    EXPECT_EQ(d.tag(), tag);  // same ASID: only the detach's TLBI keeps the old entries out
    SmmuV3Model::Dma x = r.poke(1, 0x10000, 0x22);
    ASSERT_TRUE(x.ok);
    EXPECT_EQ(x.pa, b);
    EXPECT_EQ(r.at(b)[0], 0x22);
    EXPECT_EQ(r.at(a)[0], 0x11);
}

// The model really catches a missing invalidation: change a PTE and an STE behind the driver's
// back and DMA still goes through the cached copies until the driver invalidates them.
TEST(SmmuV3Model, CatchesMissingTlbiAndCfgi) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t buf = r.buffer();
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_TRUE(ready(d, r.smmu, 2, 0x8000, buf, kPageSize));
    ASSERT_TRUE(r.poke(2, 0x8000).ok);

    vmsa::Walk w = vmsa::walk(r.mem, {vmsa::Stage::s1, d.root_pa(), 39, 44, -1}, 0x8000);
    ASSERT_TRUE(w.ok());
    uint64_t pte = w.desc;
    ASSERT_TRUE(r.mem.write64(w.desc_pa, 0));
    EXPECT_TRUE(r.poke(2, 0x8000).ok);  // stale IOTLB entry
    iopt::Gather one;  // what IoDomain hands over for a break-before-make: one range
    one.add(0x8000, kPageSize, 12, true);
    ASSERT_EQ(r.smmu.flush(d, one), Status::ok);
    EXPECT_EQ(r.poke(2, 0x8000).event, ev::kTranslation);
    ASSERT_TRUE(r.mem.write64(w.desc_pa, pte));

    uint64_t ste_pa = 0, saved = 0;
    ASSERT_TRUE(r.model.ste_address(2, ste_pa));
    ASSERT_TRUE(r.mem.read64(ste_pa, saved));
    ASSERT_TRUE(r.mem.write64(ste_pa, 1));  // V = 1, Config = abort
    EXPECT_TRUE(r.poke(2, 0x8000).ok);     // stale STE
    ASSERT_EQ(r.smmu.submit_raw(kOpCfgiSte | uint64_t{2} << 32, 1), Status::ok);
    EXPECT_FALSE(r.poke(2, 0x8000).ok);
    ASSERT_TRUE(r.mem.write64(ste_pa, saved));
    ASSERT_EQ(r.smmu.submit_raw(kOpCfgiSte | uint64_t{2} << 32, 1), Status::ok);
    EXPECT_TRUE(r.poke(2, 0x8000).ok);
    EXPECT_EQ(r.faults().size(), 1u);
}

TEST(SmmuV3Stage1, TablesBeyondTheOutputSizeGiveAddressSizeFaults) {
    Rig r({}, 0x100000000);  // RAM above 4 GiB, a domain with 32-bit output
    ASSERT_EQ(r.probe(), Status::ok);
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 32, true));
    ASSERT_TRUE(ready(d, r.smmu, 4, 0x1000, 0x1000, kPageSize));
    EXPECT_EQ(r.poke(4, 0x1000).event, ev::kAddrSize);
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    expect_fault(f[0], FaultKind::address_size, 4, 0x1000, true, ev::kAddrSize);

    // The same RAM through a 40-bit domain: CD.IPS follows the domain, so this one translates.
    uint64_t buf = r.buffer();
    IoDomain wide(r.pool(), iopt::vmsa_s1(39, 40, true));
    ASSERT_TRUE(ready(wide, r.smmu, 5, 0x1000, buf, kPageSize));
    EXPECT_EQ(r.poke(5, 0x1000).pa, buf);
    IoDomain too_wide(r.pool(), iopt::vmsa_s1(39, 48, true));  // beyond the SMMU's 44 bits
    ASSERT_EQ(too_wide.init(), Status::ok);
    EXPECT_EQ(too_wide.attach(r.smmu, 6), Status::out_of_range);
}

// An attach the SMMU never confirms must not leave the stream pointing at the domain: the caller
// treats it as unattached and may free the tables while the SMMU can still fetch that STE.
TEST(SmmuV3Stage1, AnAttachTheSmmuNeverConfirmsLeavesTheStreamBlocked) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    uint64_t buf = r.buffer();
    uint64_t smmu_pages = r.smmu.pages_used();
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x6000, buf, kPageSize, {}).ok());
    r.model.stall_commands(true);
    EXPECT_EQ(d.attach(r.smmu, 8), Status::timeout);
    EXPECT_FALSE(d.attached(r.smmu, 8));
    EXPECT_FALSE(r.poke(8, 0x6000).ok);  // the STE in memory aborts
    EXPECT_EQ(r.at(buf)[0], 0);
    EXPECT_EQ(r.smmu.pages_used(), smmu_pages);  // no CD left behind

    r.model.stall_commands(false);  // the SMMU catches up; a new attach works
    ASSERT_EQ(d.attach(r.smmu, 8), Status::ok);
    EXPECT_TRUE(r.poke(8, 0x6000).ok);
}

// ---------------------------------------------------------------- stage 2

TEST(SmmuV3Stage2, DomainBecomesAStage2SteTheWalkerTranslates) {
    SmmuV3Model::Features f;
    f.stage2 = true;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    EXPECT_TRUE(r.smmu.caps().stage2);
    uint64_t buf = r.buffer(), ro = r.buffer();
    constexpr uint64_t kHigh = (uint64_t{1} << 39) + 0x1000;  // served by the second level-1 table
    IoDomain d(r.pool(), iopt::vmsa_s2(40, 40, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(iopt::vmsa_geometry(d.format()).root_tables, 2u);
    ASSERT_TRUE(d.map(kHigh, buf, kPageSize, {}).ok());
    ASSERT_TRUE(d.map(0x4000, ro, kPageSize, read_only()).ok());
    ASSERT_EQ(d.attach(r.smmu, 9), Status::ok);

    uint64_t ste_pa = 0, ste[4] = {};
    ASSERT_TRUE(r.model.ste_address(9, ste_pa));
    ASSERT_TRUE(r.mem.read(ste_pa, ste, sizeof ste));
    EXPECT_EQ((ste[0] >> 1) & 7, 6u);     // Config: stage 2 only
    EXPECT_EQ(ste[2] & 0xffff, d.tag());  // S2VMID
    EXPECT_EQ((ste[2] >> 32) & 0x3f, 24u);  // S2T0SZ: 40 bits
    EXPECT_EQ((ste[2] >> 38) & 3, 1u);    // S2SL0: level 1
    EXPECT_EQ((ste[2] >> 48) & 7, 2u);    // S2PS: 40 bits
    EXPECT_EQ(ste[3] & ((uint64_t{1} << 52) - 16), d.root_pa());

    std::vector<uint8_t> src = pattern(64, 9);
    SmmuV3Model::Dma w = r.model.dma_write(9, kHigh + 0x20, src.data(), src.size());
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.pa, buf + 0x20);
    EXPECT_EQ(memcmp(r.at(buf) + 0x20, src.data(), src.size()), 0);
    EXPECT_EQ(r.poke(9, 0x4008).event, ev::kPermission);
    ASSERT_FALSE(r.model.events().empty());
    EXPECT_TRUE(r.model.events().back().stage2);
    EXPECT_EQ(r.poke(9, 0x8000).event, ev::kTranslation);
    std::vector<FaultRecord> faults = r.faults();
    ASSERT_EQ(faults.size(), 2u);
    expect_fault(faults[0], FaultKind::permission, 9, 0x4008, true, ev::kPermission);
    expect_fault(faults[1], FaultKind::translation, 9, 0x8000, true, ev::kTranslation);

    ASSERT_TRUE(d.unmap(kHigh, kPageSize).ok());
    EXPECT_GE(r.model.commands(kOpS2Ipa), 1u);
    EXPECT_EQ(r.poke(9, kHigh).event, ev::kTranslation);
    ASSERT_EQ(d.detach(r.smmu, 9), Status::ok);
    EXPECT_EQ(r.model.commands(kOpS12Vmall), 1u);
    EXPECT_EQ(r.smmu.commands_issued(), r.model.commands_total());
}

TEST(SmmuV3Stage2, EachStageOnlyWhereTheSmmuHasIt) {
    {
        Rig s1_only;
        ASSERT_EQ(s1_only.probe(), Status::ok);
        IoDomain d(s1_only.pool(), iopt::vmsa_s2(40, 40, true));
        ASSERT_EQ(d.init(), Status::ok);
        EXPECT_EQ(d.attach(s1_only.smmu, 1), Status::unsupported);
    }
    SmmuV3Model::Features f;
    f.stage1 = false;
    f.stage2 = true;
    Rig s2_only(f);
    ASSERT_EQ(s2_only.probe(), Status::ok);
    IoDomain d(s2_only.pool(), iopt::vmsa_s1(39, 40, true));
    ASSERT_EQ(d.init(), Status::ok);
    EXPECT_EQ(d.attach(s2_only.smmu, 1), Status::unsupported);
}

// ---------------------------------------------------------------- stream tables

TEST(SmmuV3StreamTable, TwoLevelWithSparseIds) {
    Rig r;
    ASSERT_EQ(r.probe(0xffff), Status::ok);
    ASSERT_TRUE(r.smmu.two_level());
    EXPECT_EQ(r.model.strtab_base_cfg(), 16u | 8u << 6 | 1u << 16);  // 2^16 ids, SPLIT 8, 2-level
    uint64_t buf = r.buffer();
    uint64_t pages = r.smmu.pages_used();
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x20000, buf, kPageSize, {}).ok());

    // Before attach the span is invalid: C_BAD_STREAMID, and the SMMU may cache that descriptor.
    EXPECT_EQ(r.poke(0x1234, 0x20000).event, ev::kBadStreamId);
    const uint32_t sids[] = {0x3, 0x1234, 0xfff0};
    for (uint32_t sid : sids) ASSERT_EQ(d.attach(r.smmu, sid), Status::ok);
    EXPECT_EQ(r.smmu.pages_used(), pages + 3 * 4 + 1);  // a 16 KiB level-2 table per span, one CD
    for (unsigned i = 0; i < 3; i++) {
        SmmuV3Model::Dma x = r.poke(sids[i], 0x20000 + i * 0x100, static_cast<uint8_t>(0x30 + i));
        ASSERT_TRUE(x.ok) << std::hex << sids[i];
        EXPECT_EQ(r.at(buf)[i * 0x100], 0x30 + i);
    }
    EXPECT_EQ(r.poke(0x1235, 0x20000).event, 0);  // populated span, abort STE: silent
    EXPECT_EQ(r.poke(0x0800, 0x20000).event, ev::kBadStreamId);  // a span never populated
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(f[0].stream, 0x1234u);
    EXPECT_TRUE(f[1].kind == FaultKind::bad_stream && f[1].stream == 0x0800);
    ASSERT_EQ(d.destroy(), Status::ok);
    for (uint32_t sid : sids) EXPECT_FALSE(r.poke(sid, 0x20000).ok);
}

TEST(SmmuV3StreamTable, SizesFollowTheLargestStreamId) {
    {
        Rig r;
        ASSERT_EQ(r.probe(100, true), Status::ok);  // forced 2-level: at least one full span
        EXPECT_TRUE(r.smmu.two_level());
        EXPECT_EQ(r.smmu.strtab_log2size(), 9u);
        IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
        ASSERT_EQ(d.init(), Status::ok);
        EXPECT_EQ(d.attach(r.smmu, 100), Status::ok);
        EXPECT_EQ(d.attach(r.smmu, 101), Status::out_of_range);
    }
    SmmuV3Model::Features f;
    f.two_level = false;  // an SMMU without 2-level tables gets a linear one, however many ids
    Rig r(f);
    ASSERT_EQ(r.probe(2000), Status::ok);
    EXPECT_FALSE(r.smmu.two_level());
    EXPECT_EQ(r.smmu.strtab_log2size(), 11u);
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_TRUE(ready(d, r.smmu, 2000, 0, r.buffer(), kPageSize));
    EXPECT_TRUE(r.poke(2000, 0x10).ok);
    EXPECT_EQ(d.attach(r.smmu, 2001), Status::out_of_range);
}

// ---------------------------------------------------------------- queues

TEST(SmmuV3CommandQueue, IllegalCommandIsCountedAndTheQueueRecovers) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    const uint64_t bad[] = {0x7f, kOpSync | 3u << 12, kOpEl2All};  // unknown, SYNC CS=3, EL2 without HYP
    for (unsigned i = 0; i < 3; i++) {
        EXPECT_EQ(r.smmu.submit_raw(bad[i], 0), Status::hw_error);
        EXPECT_EQ(r.smmu.command_errors(), i + 1);
        EXPECT_EQ(r.model.gerror(), r.model.gerrorn());  // acknowledged
        EXPECT_EQ(r.model.cmdq_cons() & 0x1ff, r.model.cmdq_prod() & 0x1ff);  // everything consumed
        EXPECT_EQ((r.model.cmdq_cons() >> 24) & 0x7f, 1u);  // CERROR_ILL was the reason
    }
    EXPECT_EQ(r.model.commands(0x7f), 1u);
    // Later commands work: an attach (CFGI_STE + SYNC) and DMA through it.
    uint64_t buf = r.buffer();
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_TRUE(ready(d, r.smmu, 6, 0x3000, buf, kPageSize));
    EXPECT_TRUE(r.poke(6, 0x3000).ok);
    EXPECT_EQ(r.smmu.command_errors(), 3u);
}

TEST(SmmuV3EventQueue, OverflowIsCountedAcknowledgedAndRecovered) {
    SmmuV3Model::Features f;
    f.evtq_log2 = 3;  // 8 records
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_TRUE(ready(d, r.smmu, 4));  // nothing mapped: every DMA faults

    for (uint64_t i = 0; i < 12; i++) EXPECT_EQ(r.poke(4, 0x10000 * (i + 1)).event, ev::kTranslation);
    EXPECT_EQ(r.model.events_lost(), 4u);
    EXPECT_NE(r.model.eventq_prod() >> 31, r.model.eventq_cons() >> 31);  // overflow pending
    std::vector<FaultRecord> got = r.faults();
    ASSERT_EQ(got.size(), 8u);
    for (unsigned i = 0; i < 8; i++) expect_fault(got[i], FaultKind::translation, 4, 0x10000 * (i + 1), true, ev::kTranslation);
    EXPECT_EQ(r.smmu.event_overflows(), 1u);
    EXPECT_EQ(r.model.eventq_prod() >> 31, r.model.eventq_cons() >> 31);  // acknowledged

    // Delivered again, and a second overflow is a second count.
    EXPECT_EQ(r.poke(4, 0xabc000).event, ev::kTranslation);
    got = r.faults();
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].address, 0xabc000u);
    EXPECT_EQ(r.smmu.event_overflows(), 1u);
    for (uint64_t i = 0; i < 9; i++) (void)r.poke(4, 0x100000 + 0x1000 * i);
    EXPECT_EQ(r.faults().size(), 8u);
    EXPECT_EQ(r.smmu.event_overflows(), 2u);
    EXPECT_EQ(r.poke(4, 0x5000).event, ev::kTranslation);
    EXPECT_EQ(r.faults().size(), 1u);
}

// ---------------------------------------------------------------- invalidation and coherency

// 512 pages mapped one by one, touched so that the IOTLB holds them, then unmapped in one call.
void unmap_512_pages(bool ril, uint64_t want_tlbis) {
    SmmuV3Model::Features f;
    f.ril = ril;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    EXPECT_EQ(r.smmu.caps().range_invalidation, ril);
    uint64_t buf = r.buffer(512);
    constexpr uint64_t kIova = 0x40000000;
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(kIova, buf, 2 * MiB, {}, kPageSize).ok());
    ASSERT_EQ(d.attach(r.smmu, 5), Status::ok);
    for (uint64_t p = 0; p < 512; p += 73) ASSERT_TRUE(r.poke(5, kIova + p * kPageSize).ok);
    ASSERT_TRUE(r.poke(5, kIova + 511 * kPageSize).ok);

    IommuStats before = r.smmu.stats();
    uint64_t va_before = r.model.commands(kOpNhVa), sync_before = r.model.commands(kOpSync);
    ASSERT_TRUE(d.unmap(kIova, 2 * MiB).ok());
    IommuStats after = r.smmu.stats();
    EXPECT_EQ(after.commands - before.commands, want_tlbis + 1);
    EXPECT_EQ(after.syncs - before.syncs, 1u);
    EXPECT_EQ(r.model.commands(kOpNhVa) - va_before, want_tlbis);
    EXPECT_EQ(r.model.commands(kOpSync) - sync_before, 1u);
    for (uint64_t p = 0; p < 512; p += 73) EXPECT_EQ(r.poke(5, kIova + p * kPageSize).event, ev::kTranslation);
    EXPECT_EQ(r.poke(5, kIova + 511 * kPageSize).event, ev::kTranslation);
}

TEST(SmmuV3Invalidation, OneRangeCommandForA512PageUnmapWithRil) { unmap_512_pages(true, 1); }
TEST(SmmuV3Invalidation, OneCommandPerPageWithoutRil) { unmap_512_pages(false, 512); }

TEST(SmmuV3Coherency, NonCoherentSmmuGetsCleanedTablesAndRefusesCoherentDomains) {
    SmmuV3Model::Features f;
    f.coherent = false;
    Rig r(f);
    cache::CleanLog before = cache::clean_log();
    ASSERT_EQ(r.probe(), Status::ok);
    EXPECT_FALSE(r.smmu.caps().coherent_walk);
    EXPECT_GT(cache::clean_log().calls, before.calls);  // stream table and queues

    IoDomain coherent(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_EQ(coherent.init(), Status::ok);
    EXPECT_EQ(coherent.attach(r.smmu, 1), Status::invalid_argument);

    uint64_t buf = r.buffer();
    IoDomain d(r.pool(), iopt::vmsa_s1(39, 44, false));
    ASSERT_EQ(d.init(), Status::ok);
    cache::CleanLog mid = cache::clean_log();
    ASSERT_TRUE(d.map(0x5000, buf, kPageSize, {}).ok());
    EXPECT_GT(cache::clean_log().calls, mid.calls);  // page tables
    mid = cache::clean_log();
    ASSERT_EQ(d.attach(r.smmu, 1), Status::ok);
    EXPECT_GT(cache::clean_log().bytes, mid.bytes + 64);  // CD, STE and commands
    EXPECT_TRUE(r.poke(1, 0x5000).ok);
}

// Walk attributes follow the domain's format and the walker's coherency, as in every other driver
// (walk_expect.hpp). Before the table seam the CD and STE said write-back inner shareable even on
// an SMMU without COHACC, whose walks then could miss what the CPU had cleaned.
TEST(SmmuV3Coherency, WalkAttributesFollowCoherencyAtBothStages) {
    for (bool coherent : {true, false}) {
        SmmuV3Model::Features f;
        f.coherent = coherent;
        f.stage2 = true;
        Rig r(f);
        ASSERT_EQ(r.probe(), Status::ok);
        for (iopt::FormatId id : {iopt::FormatId::vmsa_s1, iopt::FormatId::vmsa_s2}) {
            Result<iopt::Format> fmt = r.smmu.domain_format(id == iopt::FormatId::vmsa_s1 ? DomainUse::dma : DomainUse::guest_p2m, 40);
            ASSERT_TRUE(fmt.ok());
            ASSERT_EQ(fmt.value.id, id);
            EXPECT_EQ(fmt.value.coherent_walk, coherent);
            IoDomain d(r.pool(), fmt.value);
            StreamId sid = id == iopt::FormatId::vmsa_s1 ? 1 : 2;
            ASSERT_TRUE(ready(d, r.smmu, sid));
            model::vmsa::WalkCodes w;
            ASSERT_TRUE(r.model.walk_codes(sid, w));
            EXPECT_EQ(w, moat::test::expected_walk(coherent)) << "coherent " << coherent << " stage " << (sid == 1 ? 1 : 2);
        }
    }
}

}  // namespace
