// One guest against the others, through the PV-IOMMU dispatcher and the SMMUv3 driver on its
// register model: a guest cannot take more of the page pool than its quota, and a teardown the
// SMMU does not confirm is quarantined, so a guest built next in the same storage never reaches
// the dead guest's tables or memory.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <new>

#include "drivers/iommu/smmu_v3.hpp"
#include "tests/models/fake_guest.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/smmu_v3_model.hpp"
#include "tests/models/vmsa_walker.hpp"
#include "xen-compat/pv_iommu.hpp"

using namespace moat;
using namespace moat::xen;

namespace {

constexpr uintptr_t kBase = 0x09050000;
constexpr uint64_t kArgs = (model::FakeGuest::kRamGfn << kPageShift) + 0x100;

struct Rig {
    model::HostPool host{16384, model::HostPool::kPhysBase, 2 * MiB};
    model::PoolPhysMem mem{*host.pool};
    model::SmmuV3Model model;
    SmmuV3 smmu{*host.pool};
    PvIommuHost hosts;
    explicit Rig(model::SmmuV3Model::Features f = {}) : model(mem, f) {
        EXPECT_TRUE(host.ok);
        EXPECT_TRUE(mmio::attach(kBase, model::SmmuV3Model::kRegSize, &model));
        EXPECT_EQ(smmu.probe(SmmuV3::Config{kBase, model::SmmuV3Model::kRegSize, "smmuv3-model", 63, 48, false}), Status::ok);
    }
    ~Rig() {
        smmu.shutdown();
        mmio::detach(&model);
    }
    PagePool& pool() { return *host.pool; }
    template <class T>
    long call(PvIommuGuest& g, IommuSubop op, T& s) {
        EXPECT_TRUE(g.memory().write(kArgs, &s, sizeof s));
        CallResult r = iommu_op(hosts, g, static_cast<uint64_t>(op), kArgs);
        EXPECT_TRUE(g.memory().read(kArgs, &s, sizeof s));
        return r.ret;
    }
    uint16_t new_context(PvIommuGuest& g) {
        if (!g.initialised) {
            PvIommuInit init{0, 0};
            EXPECT_EQ(call(g, IommuSubop::init, init), 0);
        }
        PvIommuAllocContext a{};
        EXPECT_EQ(call(g, IommuSubop::alloc_context, a), 0);
        return a.ctx_no;
    }
    long map(PvIommuGuest& g, uint16_t ctx, uint64_t gfn, uint64_t dfn, uint64_t n = 1) {
        PvIommuMapPages m{};
        m.ctx_no = ctx;
        m.gfn = gfn;
        m.dfn = dfn;
        m.map_flags = mapf::kReadable | mapf::kWriteable;
        m.pgsize = kPageSize;
        m.nr_pages = n;
        long rc = call(g, IommuSubop::map_pages, m);
        while (rc == 0 && m.nr_pages) rc = call(g, IommuSubop::map_pages, m);  // continuations
        return rc;
    }
    long unmap(PvIommuGuest& g, uint16_t ctx, uint64_t dfn, uint64_t pgsize, uint64_t n, PvIommuUnmapPages& u,
               bool* preempted = nullptr) {
        u = PvIommuUnmapPages{};
        u.ctx_no = ctx;
        u.dfn = dfn;
        u.pgsize = pgsize;
        u.nr_pages = n;
        EXPECT_TRUE(g.memory().write(kArgs, &u, sizeof u));
        CallResult cr = iommu_op(hosts, g, static_cast<uint64_t>(IommuSubop::unmap_pages), kArgs);
        EXPECT_TRUE(g.memory().read(kArgs, &u, sizeof u));
        if (preempted) *preempted = cr.preempted;
        return cr.ret;
    }
    long reattach(PvIommuGuest& g, uint8_t devfn, uint16_t ctx) {
        PvIommuReattachDevice a{};
        a.ctx_no = ctx;
        a.devfn = devfn;
        return call(g, IommuSubop::reattach_device, a);
    }
    model::SmmuV3Model::Dma poke(uint32_t sid, uint64_t iova) {
        uint8_t b[16];
        memset(b, 0xa5, sizeof b);
        return model.dma_write(sid, iova, b, sizeof b);
    }
};

bool all(const uint8_t* p, size_t n, uint8_t v) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != v) return false;
    return true;
}

}  // namespace

// The red team's scenario: guest A's device on a context of its own, the SMMU's command queue
// stalled while A exits, then guest B built in the very same storage with another device.
TEST(PvIommuIsolation, ATeardownTheSmmuNeverConfirmsIsQuarantinedAndTheNextGuestReachesOnlyItsOwnMemory) {
    Rig r;
    const IoDomain::Quarantine q0 = IoDomain::quarantine();
    alignas(PvIommuGuest) static unsigned char storage[sizeof(PvIommuGuest)];
    constexpr uint64_t kDfn = 0x100;  // the DMA address both guests use: 1 MiB

    auto mem_a = std::make_unique<model::FakeGuest>(r.pool(), 64);
    auto* a = new (storage) PvIommuGuest(1, false, *mem_a, r.pool(), {});
    ASSERT_EQ(a->init_default(model::FakeGuest::kRamGfn, 64), Status::ok);
    ASSERT_EQ(a->assign(0, 0, 0x08, r.smmu, 8), Status::ok);
    ASSERT_EQ(r.hosts.add(*a), Status::ok);
    uint16_t ca = r.new_context(*a);
    ASSERT_EQ(r.reattach(*a, 0x08, ca), 0);
    ASSERT_EQ(r.map(*a, ca, model::FakeGuest::kRamGfn + 5, kDfn), 0);
    ASSERT_TRUE(r.poke(8, kDfn << kPageShift).ok);  // A's DMA works, into A's page

    r.model.stall_commands(true);
    a->~PvIommuGuest();  // the detaches time out
    const IoDomain::Quarantine q1 = IoDomain::quarantine();
    EXPECT_GE(q1.domains - q0.domains, 1u) << "the unconfirmed teardown is reported";
    EXPECT_EQ(q1.streams - q0.streams, 1u);
    EXPECT_GT(q1.pages - q0.pages, 0u);
    r.model.stall_commands(false);  // the SMMU wakes up later; the quarantine stays
    mem_a.reset();                  // A's RAM goes back to the pool: it belongs to nobody now

    r.hosts = PvIommuHost{};
    auto mem_b = std::make_unique<model::FakeGuest>(r.pool(), 64);
    auto* b = new (storage) PvIommuGuest(1, false, *mem_b, r.pool(), {});
    ASSERT_EQ(b->init_default(model::FakeGuest::kRamGfn, 64), Status::ok);
    // A's stream stays blocked: the SMMU never confirmed it let go of A's configuration.
    EXPECT_NE(b->assign(0, 0, 0x10, r.smmu, 8), Status::ok);
    EXPECT_TRUE(IoDomain::stream_quarantined(r.smmu, 8));
    ASSERT_EQ(b->assign(0, 0, 0x10, r.smmu, 9), Status::ok);
    ASSERT_EQ(r.hosts.add(*b), Status::ok);
    uint16_t cb = r.new_context(*b);
    ASSERT_EQ(cb, ca);  // the same context number, built in the same storage as A's
    ASSERT_EQ(r.reattach(*b, 0x10, cb), 0);

    // Nothing is mapped in B's new context: B's device must not reach A's old page.
    model::SmmuV3Model::Dma d = r.poke(9, kDfn << kPageShift);
    EXPECT_FALSE(d.ok) << "DMA reached PA 0x" << std::hex << d.pa;
    // Mapped: it lands in B's own page and nowhere else.
    ASSERT_EQ(r.map(*b, cb, model::FakeGuest::kRamGfn + 7, kDfn), 0);
    d = r.poke(9, kDfn << kPageShift);
    EXPECT_TRUE(d.ok);
    EXPECT_EQ(d.pa, mem_b->mfn_of(model::FakeGuest::kRamGfn + 7) << kPageShift);
    EXPECT_TRUE(all(static_cast<uint8_t*>(mem_b->host((model::FakeGuest::kRamGfn + 7) << kPageShift, 16)), 16, 0xa5));
    EXPECT_FALSE(r.poke(8, kDfn << kPageShift).ok);  // A's stream: blocked

    b->~PvIommuGuest();
}

// The drain: one page per 2 MiB of DMA space costs a leaf table per call. The guest gets -ENOMEM
// at its quota, and a second guest on the same pool works fully.
TEST(PvIommuIsolation, OneGuestCannotDrainThePoolAndASecondGuestStillWorks) {
    Rig r;
    PvIommuConfig cfg;
    cfg.quota_pages = 64;
    model::FakeGuest mem_a(r.pool(), 16), mem_b(r.pool(), 16);
    PvIommuGuest a(1, false, mem_a, r.pool(), cfg), b(2, false, mem_b, r.pool(), cfg);
    ASSERT_EQ(a.init_default(model::FakeGuest::kRamGfn, 16), Status::ok);
    ASSERT_EQ(b.init_default(model::FakeGuest::kRamGfn, 16), Status::ok);
    ASSERT_EQ(b.assign(0, 0, 0x10, r.smmu, 9), Status::ok);
    ASSERT_EQ(r.hosts.add(a), Status::ok);
    ASSERT_EQ(r.hosts.add(b), Status::ok);
    const size_t pool_before = r.pool().used_pages();

    uint16_t ca = r.new_context(a);
    long rc = 0;
    unsigned maps = 0;
    for (; maps < 100000 && rc == 0; maps++) rc = r.map(a, ca, model::FakeGuest::kRamGfn, uint64_t{maps} * 512);
    EXPECT_EQ(rc, -12);  // -ENOMEM
    EXPECT_LE(maps, 64u);
    EXPECT_LE(a.quota().used(), 64u);
    EXPECT_LE(r.pool().used_pages() - pool_before, 64u);
    // The other contexts of the drained guest are charged to the same share.
    PvIommuAllocContext more{};
    for (int i = 0; i < 6 && r.call(a, IommuSubop::alloc_context, more) == 0; i++) {
        EXPECT_NE(r.map(a, more.ctx_no, model::FakeGuest::kRamGfn, 0x40000), 0);
    }
    EXPECT_LE(a.quota().used(), 64u);

    // Guest B: a context, its device on it, a map, DMA into its own page.
    uint16_t cb = r.new_context(b);
    ASSERT_EQ(r.reattach(b, 0x10, cb), 0);
    ASSERT_EQ(r.map(b, cb, model::FakeGuest::kRamGfn + 3, 0x200, 8), 0);
    model::SmmuV3Model::Dma d = r.poke(9, 0x200ull << kPageShift);
    EXPECT_TRUE(d.ok);
    EXPECT_EQ(d.pa, mem_b.mfn_of(model::FakeGuest::kRamGfn + 3) << kPageShift);
}

TEST(PvIommuIsolation, ArenaOrderLowersTheQuotaNeverRaisesIt) {
    Rig r;
    PvIommuConfig cfg;
    cfg.quota_pages = 64;
    model::FakeGuest mem(r.pool(), 16);
    PvIommuGuest g(1, false, mem, r.pool(), cfg);
    ASSERT_EQ(g.init_default(model::FakeGuest::kRamGfn, 16), Status::ok);
    ASSERT_EQ(r.hosts.add(g), Status::ok);
    uint64_t held = g.quota().used();
    PvIommuInit init{0, 3};  // 8 pages for the contexts the guest allocates
    ASSERT_EQ(r.call(g, IommuSubop::init, init), 0);
    EXPECT_EQ(g.quota().limit(), held + 8);
    uint16_t c = r.new_context(g);
    long rc = 0;
    for (unsigned i = 0; i < 100 && rc == 0; i++) rc = r.map(g, c, model::FakeGuest::kRamGfn, uint64_t{i} * 512);
    EXPECT_EQ(rc, -12);
    EXPECT_LE(g.quota().used(), held + 8);

    PvIommuGuest big(2, false, mem, r.pool(), cfg);
    ASSERT_EQ(big.init_default(model::FakeGuest::kRamGfn, 16), Status::ok);
    ASSERT_EQ(r.hosts.add(big), Status::ok);
    PvIommuInit huge{0, 16};
    ASSERT_EQ(r.call(big, IommuSubop::init, huge), 0);
    EXPECT_EQ(big.quota().limit(), 64u);
}

// One guest with edu-like stream 8 on a context of its own, for the unmap tests.
struct OneGuest {
    Rig& r;
    model::FakeGuest mem;
    PvIommuGuest g;
    uint16_t ctx = 0;
    OneGuest(Rig& rig, uint64_t pages) : r(rig), mem(rig.pool(), pages), g(1, false, mem, rig.pool(), {}) {
        EXPECT_EQ(g.init_default(model::FakeGuest::kRamGfn, pages), Status::ok);
        EXPECT_EQ(g.assign(0, 0, 0x08, r.smmu, 8), Status::ok);
        EXPECT_EQ(r.hosts.add(g), Status::ok);
        ctx = r.new_context(g);
        EXPECT_EQ(r.reattach(g, 0x08, ctx), 0);
    }
    bool mapped(uint64_t dfn) { return g.context(ctx)->lookup(dfn << kPageShift).ok(); }
};

// Three 4 KiB pages, then unmap_pages pgsize=2M: refused before anything changes.
TEST(PvIommuUnmap, ALargerPageOverSmallerOnesIsRefusedAndNothingChanges) {
    Rig r;
    OneGuest o(r, 1024);
    ASSERT_EQ(r.map(o.g, o.ctx, model::FakeGuest::kRamGfn + 1, 0x200, 3), 0);
    PvIommuUnmapPages u;
    EXPECT_EQ(r.unmap(o.g, o.ctx, 0x200, 2 * MiB, 1, u), -22);
    EXPECT_EQ(u.unmapped, 0u);
    for (uint64_t dfn = 0x200; dfn < 0x203; dfn++) {
        EXPECT_TRUE(o.mapped(dfn)) << dfn;
        EXPECT_TRUE(r.poke(8, dfn << kPageShift).ok) << dfn;  // DMA still reaches them
    }
    // Nothing at the first frame: -ENOENT, the page's smaller neighbours untouched.
    ASSERT_EQ(r.map(o.g, o.ctx, model::FakeGuest::kRamGfn + 1, 0x401, 1), 0);
    EXPECT_EQ(r.unmap(o.g, o.ctx, 0x400, 2 * MiB, 1, u), -2);
    EXPECT_EQ(u.unmapped, 0u);
    EXPECT_TRUE(o.mapped(0x401));
}

// A 2 MiB block and five 4 KiB pages after it, unmapped as nr=2 pgsize=2M: the block goes and is
// counted; the five stay.
TEST(PvIommuUnmap, ReportsExactlyWhatItRemoved) {
    Rig r;
    OneGuest o(r, 1024);
    PvIommuMapPages m{};
    m.ctx_no = o.ctx;
    m.gfn = model::FakeGuest::kRamGfn;
    m.dfn = 0x400;
    m.map_flags = mapf::kReadable | mapf::kWriteable;
    m.pgsize = 2 * MiB;
    m.nr_pages = 1;
    ASSERT_EQ(r.call(o.g, IommuSubop::map_pages, m), 0);
    ASSERT_EQ(r.map(o.g, o.ctx, model::FakeGuest::kRamGfn + 512, 0x600, 5), 0);
    PvIommuUnmapPages u;
    EXPECT_EQ(r.unmap(o.g, o.ctx, 0x400, 2 * MiB, 2, u), -22);
    EXPECT_EQ(u.unmapped, 1u);
    EXPECT_EQ(u.dfn, 0x600u);
    EXPECT_EQ(u.nr_pages, 1u);
    EXPECT_FALSE(o.mapped(0x400));
    EXPECT_FALSE(r.poke(8, 0x400ull << kPageShift).ok);
    for (uint64_t dfn = 0x600; dfn < 0x605; dfn++) EXPECT_TRUE(o.mapped(dfn)) << dfn;
    // A 4 KiB page out of a block: the block is split around it, one page counted.
    m.dfn = 0x800;
    m.nr_pages = 1;
    m.mapped = 0;
    ASSERT_EQ(r.call(o.g, IommuSubop::map_pages, m), 0);
    EXPECT_EQ(r.unmap(o.g, o.ctx, 0x801, kPageSize, 1, u), 0);
    EXPECT_EQ(u.unmapped, 1u);
    EXPECT_FALSE(o.mapped(0x801));
    EXPECT_TRUE(o.mapped(0x800));
    EXPECT_TRUE(o.mapped(0x802));
}

// The 1 GiB unmap of a range mapped in 4 KiB pages: with or without range invalidation, one call
// clears at most budget_pages entries and issues at most budget_pages + 1 commands.
class PvIommuUnmapBound : public ::testing::TestWithParam<bool> {};

TEST_P(PvIommuUnmapBound, EveryCallIsBoundedWhateverThePageSize) {
    model::SmmuV3Model::Features f;
    f.ril = GetParam();
    Rig r(f);
    OneGuest o(r, 4096);
    const uint64_t budget = o.g.config().budget_pages;
    ASSERT_EQ(r.map(o.g, o.ctx, model::FakeGuest::kRamGfn, 0, 4096), 0);  // 16 MiB in 4 KiB pages
    uint64_t cmds = r.smmu.commands_issued();
    PvIommuUnmapPages u;
    EXPECT_EQ(r.unmap(o.g, o.ctx, 0, 1 * GiB, 1, u), -22);  // smaller pages inside: refused
    EXPECT_EQ(u.unmapped, 0u);
    EXPECT_EQ(r.smmu.commands_issued(), cmds);
    EXPECT_TRUE(o.mapped(0));
    EXPECT_TRUE(o.mapped(4095));

    // The same range in its own page size: continued in rounds of at most `budget` pages.
    uint64_t rounds = 0, total = 0;
    bool preempted = true;
    PvIommuUnmapPages req{};
    req.nr_pages = 4096;
    req.dfn = 0;
    while (preempted) {
        cmds = r.smmu.commands_issued();
        ASSERT_EQ(r.unmap(o.g, o.ctx, req.dfn, kPageSize, req.nr_pages, u, &preempted), 0);
        EXPECT_LE(u.unmapped, budget);  // each round starts its count from 0 (unmap() above)
        EXPECT_LE(r.smmu.commands_issued() - cmds, budget + 1);
        total += u.unmapped;
        req.dfn = u.dfn;
        req.nr_pages = u.nr_pages;
        rounds++;
        ASSERT_LT(rounds, 10u);
    }
    EXPECT_EQ(total, 4096u);
    EXPECT_EQ(rounds, 2u);
    EXPECT_FALSE(o.mapped(0));
    EXPECT_FALSE(o.mapped(4095));
}

INSTANTIATE_TEST_SUITE_P(RangeInvalidation, PvIommuUnmapBound, ::testing::Bool());

// Four guests that spread seven devices each across seven contexts of their own must leave a
// fifth guest able to do the same: the SMMU's slots are sized for every domain there can be.
TEST(PvIommuIsolation, FiveGuestsWithSevenContextsEachAllFitOnOneSmmu) {
    Rig r;
    constexpr unsigned kGuests = 5, kDevs = 7;
    std::unique_ptr<model::FakeGuest> mem[kGuests];
    std::unique_ptr<PvIommuGuest> g[kGuests];
    for (unsigned i = 0; i < kGuests; i++) {
        mem[i] = std::make_unique<model::FakeGuest>(r.pool(), 16);
        g[i] = std::make_unique<PvIommuGuest>(static_cast<uint16_t>(i + 1), false, *mem[i], r.pool(), PvIommuConfig{});
        ASSERT_EQ(g[i]->init_default(model::FakeGuest::kRamGfn, 16), Status::ok);
        ASSERT_EQ(r.hosts.add(*g[i]), Status::ok);
        for (unsigned k = 0; k < kDevs; k++)
            ASSERT_EQ(g[i]->assign(0, 0, static_cast<uint8_t>(k << 3), r.smmu, i * 8 + k), Status::ok);
    }
    for (unsigned i = 0; i < kGuests; i++)
        for (unsigned k = 0; k < kDevs; k++) {
            uint16_t c = r.new_context(*g[i]);
            EXPECT_NE(c, 0) << "guest " << i + 1 << " context " << k;
            EXPECT_EQ(r.reattach(*g[i], static_cast<uint8_t>(k << 3), c), 0) << "guest " << i + 1 << " device " << k;
            ASSERT_EQ(r.map(*g[i], c, model::FakeGuest::kRamGfn + k, 0x100), 0);
            EXPECT_TRUE(r.poke(i * 8 + k, 0x100ull << kPageShift).ok);
        }
}
