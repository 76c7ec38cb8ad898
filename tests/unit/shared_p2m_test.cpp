// A guest's P2M shared with an SMMUv3 (DomainUse::guest_p2m), against the register model that walks
// the tables it is given: the STE's stage-2 fields name the P2M's own root and tag, the one
// IoDomain flush reaches the CPU's stage 2 (arch::stage2_invalidate, recorded by the host arch)
// and the SMMU (CMD_TLBI_S2_IPA + CMD_SYNC) before a removed page's tables could go back, a DMA
// to the removed IPA faults at stage 2 with the IPA in the report, and teardown returns every page.
// On a stage-1-only SMMU (QEMU 7.2's) there is no shared format: the STE points at a mirror.
#include <gtest/gtest.h>

#include <string.h>

#include "arch/mmio.hpp"
#include "arch/stage2.hpp"
#include "common/io_domain.hpp"
#include "drivers/iommu/smmu_v3.hpp"
#include "hyp/p2m_selftest.hpp"
#include "tests/models/fake_guest.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/smmu_v3_model.hpp"

using namespace moat;
using model::SmmuV3Model;

namespace {

constexpr uintptr_t kBase = 0x09050000;
constexpr uint8_t kOpS2Ipa = 0x2a, kOpNhVa = 0x12, kOpSync = 0x46;
constexpr uint32_t kSid = 8;
constexpr uint64_t kRamIpa = 0x40000000;
constexpr size_t kRamPages = 32;

struct Rig {
    model::HostPool host{1024};
    model::PoolPhysMem mem{*host.pool};
    SmmuV3Model model;
    SmmuV3 smmu{*host.pool};
    FaultLog log;
    explicit Rig(bool stage2) : model(mem, features(stage2)) {
        EXPECT_TRUE(mmio::attach(kBase, SmmuV3Model::kRegSize, &model));
        EXPECT_EQ(smmu.probe(SmmuV3::Config{kBase, SmmuV3Model::kRegSize, "smmuv3-model", 63, 48}), Status::ok);
    }
    ~Rig() {
        smmu.shutdown();
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
    static SmmuV3Model::Features features(bool stage2) {
        SmmuV3Model::Features f;
        f.stage2 = stage2;
        return f;
    }
    PagePool& pool() { return *host.pool; }
    size_t tables() const { return host.pool->used_pages() - smmu.pages_used(); }
    SmmuV3Model::Dma poke(uint64_t iova) {
        uint8_t b[16];
        memset(b, 0x5a, sizeof b);
        return model.dma_write(kSid, iova, b, sizeof b);
    }
};

iopt::Prot rwx() {
    iopt::Prot p;
    p.perm = iopt::kRead | iopt::kWrite | iopt::kExec;
    return p;
}

TEST(SharedP2m, TheSteWalksTheGuestsOwnStage2AndOneFlushReachesBothWalkers) {
    Rig r(true);
    size_t before = r.tables();
    Result<uint64_t> ram = r.pool().alloc(kRamPages);
    ASSERT_TRUE(ram.ok());
    Result<iopt::Format> f = r.smmu.domain_format(DomainUse::guest_p2m, 40);
    ASSERT_TRUE(f.ok());
    EXPECT_EQ(f.value.id, iopt::FormatId::vmsa_s2);
    EXPECT_EQ(f.value.ias, 40u);
    {
        IoDomain p2m(r.pool(), f.value);
        p2m.set_cpu_walker(cpu_stage2_walker());
        ASSERT_EQ(p2m.init(), Status::ok);
        ASSERT_TRUE(p2m.map(kRamIpa, ram.value, kRamPages * kPageSize, rwx()).ok());
        EXPECT_EQ(p2m.cpu_flushes(), 0u);  // mapping over invalid entries needs no invalidation
        ASSERT_EQ(p2m.attach(r.smmu, kSid), Status::ok);

        Iommu::StreamConfig sc;
        ASSERT_EQ(r.smmu.stream_config(kSid, sc), Status::ok);
        EXPECT_TRUE(sc.translating && sc.stage2);
        EXPECT_EQ(sc.root, p2m.root_pa());
        EXPECT_EQ(sc.tag, p2m.tag());

        uint8_t src[64];
        for (unsigned i = 0; i < sizeof src; i++) src[i] = static_cast<uint8_t>(i * 5 + 1);
        SmmuV3Model::Dma w = r.model.dma_write(kSid, kRamIpa + 3 * kPageSize + 0x40, src, sizeof src);
        ASSERT_TRUE(w.ok);
        EXPECT_EQ(w.pa, ram.value + 3 * kPageSize + 0x40);
        EXPECT_EQ(memcmp(static_cast<uint8_t*>(r.pool().virt(w.pa)), src, sizeof src), 0);

        // Remove one page: one IoDomain flush, the CPU's first, then the SMMU's.
        arch::host::Stage2Calls c0 = arch::host::stage2_calls();
        uint64_t s2ipa = r.model.commands(kOpS2Ipa), syncs = r.model.commands(kOpSync);
        ASSERT_TRUE(p2m.unmap(kRamIpa + 3 * kPageSize, kPageSize).ok());
        arch::host::Stage2Calls c1 = arch::host::stage2_calls();
        EXPECT_EQ(c1.calls - c0.calls, 1u);
        EXPECT_EQ(c1.pages - c0.pages, 1u);
        EXPECT_EQ(c1.last_vmid, p2m.tag());
        EXPECT_EQ(p2m.cpu_flushes(), 1u);
        EXPECT_EQ(r.model.commands(kOpS2Ipa) - s2ipa, 1u);
        EXPECT_EQ(r.model.commands(kOpSync) - syncs, 1u);
        EXPECT_EQ(r.model.commands(kOpNhVa), 0u);

        SmmuV3Model::Dma gone = r.poke(kRamIpa + 3 * kPageSize);
        EXPECT_FALSE(gone.ok);
        uint64_t from = r.log.total();
        r.smmu.poll_faults(r.log);
        ASSERT_EQ(r.log.total() - from, 1u);
        const FaultRecord& rec = r.log.at(r.log.size() - 1);
        EXPECT_EQ(rec.kind, FaultKind::translation);
        EXPECT_TRUE(rec.stage2);
        EXPECT_EQ(rec.ipa, kRamIpa + 3 * kPageSize);
        EXPECT_TRUE(r.poke(kRamIpa + 4 * kPageSize).ok);  // its neighbours stay
        ASSERT_EQ(p2m.destroy(), Status::ok);
        EXPECT_FALSE(r.poke(kRamIpa).ok);  // torn down: the stream aborts
    }
    ASSERT_EQ(r.pool().free(ram.value, kRamPages), Status::ok);
    EXPECT_EQ(r.tables(), before);
}

// The CPU's invalidation failing is the flush failing: the removed range's table pages are not
// given back (a walker may still hold them), and the caller hears it.
TEST(SharedP2m, ACpuFlushThatFailsKeepsTheTablesOutOfThePool) {
    Rig r(true);
    Result<iopt::Format> f = r.smmu.domain_format(DomainUse::guest_p2m, 40);
    ASSERT_TRUE(f.ok());
    Result<uint64_t> ram = r.pool().alloc(2);
    ASSERT_TRUE(ram.ok());
    IoDomain p2m(r.pool(), f.value);
    p2m.set_cpu_walker(IoDomain::CpuWalker{[](void*, const IoDomain&, const iopt::Gather&) { return Status::timeout; }, nullptr});
    ASSERT_EQ(p2m.init(), Status::ok);
    // Two pages across a leaf-table boundary: unmapping them empties both leaf tables and unlinks
    // them (a lone page's leaf table would stay linked, parked); they wait for the flush.
    const uint64_t ipa = kRamIpa + 2 * MiB - kPageSize;
    ASSERT_TRUE(p2m.map(ipa, ram.value, 2 * kPageSize, rwx()).ok());
    ASSERT_EQ(p2m.attach(r.smmu, kSid), Status::ok);
    Progress u = p2m.unmap(ipa, 2 * kPageSize);
    EXPECT_EQ(u.status, Status::timeout);
    EXPECT_GT(p2m.quarantined_pages(), 0u);
    EXPECT_FALSE(r.poke(ipa).ok);
}

// QEMU 7.2's SMMUv3: no stage 2, so no shared P2M; the default domain is a stage-1 mirror and the
// STE says so.
TEST(SharedP2m, AStage1OnlySmmuHasNoSharedFormatAndTheSteNamesTheMirror) {
    Rig r(false);
    EXPECT_EQ(r.smmu.domain_format(DomainUse::guest_p2m, 40).status, Status::unsupported);
    Result<iopt::Format> mf = r.smmu.domain_format(DomainUse::dma, 40);
    ASSERT_TRUE(mf.ok());
    EXPECT_EQ(mf.value.id, iopt::FormatId::vmsa_s1);
    IoDomain mirror(r.pool(), mf.value);
    ASSERT_EQ(mirror.init(), Status::ok);
    ASSERT_EQ(mirror.attach(r.smmu, kSid), Status::ok);
    Iommu::StreamConfig sc;
    ASSERT_EQ(r.smmu.stream_config(kSid, sc), Status::ok);
    EXPECT_TRUE(sc.translating);
    EXPECT_FALSE(sc.stage2);
    EXPECT_EQ(sc.root, mirror.root_pa());
    EXPECT_EQ(sc.tag, mirror.tag());
    Iommu::StreamConfig none;
    ASSERT_EQ(r.smmu.stream_config(kSid + 1, none), Status::ok);
    EXPECT_FALSE(none.translating);  // an abort STE
}

// The PV-IOMMU guest's context 0 as the image builds it on an SMMU with stage 2: the guest's own
// P2M, which the guest cannot modify (map_pages in context 0 is -EINVAL), which its devices leave
// for a context of their own and come back to, and which the guest's teardown leaves to its owner.
TEST(SharedP2m, PvIommuDefaultContextIsTheP2mItselfAndStaysItsOwners) {
    Rig r(true);
    model::FakeGuest mem(r.pool(), 64);
    ASSERT_TRUE(mem.ok());
    Result<iopt::Format> f = r.smmu.domain_format(DomainUse::guest_p2m, 40);
    ASSERT_TRUE(f.ok());
    IoDomain p2m(r.pool(), f.value);
    ASSERT_EQ(p2m.init(), Status::ok);
    const uint64_t ram_ipa = mem.first_gfn() << kPageShift;
    ASSERT_TRUE(p2m.map(ram_ipa, mem.mfn_of(mem.first_gfn()) << kPageShift, 64 * kPageSize, rwx()).ok());
    xen::PvIommuConfig cfg;
    Result<iopt::Format> dma = r.smmu.domain_format(DomainUse::dma, 39);
    ASSERT_TRUE(dma.ok());
    cfg.format = dma.value;
    {
        xen::PvIommuGuest g(1, false, mem, r.pool(), cfg);
        ASSERT_EQ(g.init_default_shared(p2m, mem.first_gfn(), 64), Status::ok);
        EXPECT_TRUE(g.default_shared());
        EXPECT_EQ(g.context(0), &p2m);
        ASSERT_EQ(g.assign(0, 0, 8, r.smmu, kSid), Status::ok);
        Iommu::StreamConfig sc;
        ASSERT_EQ(r.smmu.stream_config(kSid, sc), Status::ok);
        EXPECT_TRUE(sc.stage2);
        EXPECT_EQ(sc.root, p2m.root_pa());
        SmmuV3Model::Dma w = r.poke(ram_ipa + 5 * kPageSize);  // DMA address = guest address
        ASSERT_TRUE(w.ok);
        EXPECT_EQ(w.pa, mem.mfn_of(mem.first_gfn() + 5) << kPageShift);
        EXPECT_EQ(g.destroy_context(0), Status::invalid_argument);  // never the guest's to free
        // A context of its own (as after the init sub-op), then back to the P2M.
        g.initialised = true;
        g.max_ctx = 2;
        Result<unsigned> c = g.create_context(false);
        ASSERT_TRUE(c.ok());
        ASSERT_EQ(p2m.detach(r.smmu, kSid), Status::ok);
        ASSERT_EQ(g.context(c.value)->attach(r.smmu, kSid), Status::ok);
        ASSERT_EQ(r.smmu.stream_config(kSid, sc), Status::ok);
        EXPECT_FALSE(sc.stage2);
        ASSERT_EQ(g.context(c.value)->detach(r.smmu, kSid), Status::ok);
        ASSERT_EQ(p2m.attach(r.smmu, kSid), Status::ok);
        ASSERT_EQ(r.smmu.stream_config(kSid, sc), Status::ok);
        EXPECT_TRUE(sc.stage2);
        ASSERT_EQ(g.destroy_context(c.value), Status::ok);
    }
    // The guest is gone: its device is detached, the P2M is still its owner's and still maps.
    EXPECT_NE(p2m.tag(), 0u);
    EXPECT_EQ(p2m.attached_count(), 0u);
    EXPECT_TRUE(p2m.lookup(ram_ipa).ok());
    EXPECT_EQ(p2m.destroy(), Status::ok);
}

}  // namespace

namespace {

// "A frame the guest no longer owns is reachable through none of its DMA contexts", on each kind
// of SMMU: context 0 follows the P2M (it is the P2M, or its mirror), and while a composed context
// of the guest's own exists the removal is refused with nothing changed.
void removal_keeps_the_guarantee(bool stage2) {
    Rig r(stage2);
    model::FakeGuest mem(r.pool(), 64);
    ASSERT_TRUE(mem.ok());
    const uint64_t gfn0 = mem.first_gfn(), ipa0 = gfn0 << kPageShift;
    Result<iopt::Format> shared = r.smmu.domain_format(DomainUse::guest_p2m, 40);
    ASSERT_EQ(shared.ok(), stage2);
    IoDomain p2m(r.pool(), shared.ok() ? shared.value : iopt::vmsa_s2(40, 44, true));
    p2m.set_cpu_walker(cpu_stage2_walker());
    ASSERT_EQ(p2m.init(), Status::ok);
    ASSERT_TRUE(p2m.map(ipa0, mem.mfn_of(gfn0) << kPageShift, 64 * kPageSize, rwx()).ok());
    xen::PvIommuConfig cfg;
    cfg.format = r.smmu.domain_format(DomainUse::dma, 39).value;
    xen::PvIommuGuest g(1, false, mem, r.pool(), cfg);
    ASSERT_EQ(stage2 ? g.init_default_shared(p2m, gfn0, 64) : g.init_default(gfn0, 64), Status::ok);
    ASSERT_EQ(g.assign(0, 0, 8, r.smmu, kSid), Status::ok);
    ASSERT_TRUE(r.poke(ipa0 + 7 * kPageSize).ok);

    // A context of the guest's own maps frame 7 too: removal is refused, nothing changes.
    g.initialised = true;
    g.max_ctx = 2;
    Result<unsigned> c = g.create_context(false);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(g.context(c.value)->map(0x100000, mem.mfn_of(gfn0 + 7) << kPageShift, kPageSize, {}).ok());
    EXPECT_EQ(g.remove_ram(p2m, gfn0 + 7, 1), Status::busy);
    EXPECT_TRUE(p2m.lookup(ipa0 + 7 * kPageSize).ok());
    EXPECT_TRUE(r.poke(ipa0 + 7 * kPageSize).ok);
    ASSERT_EQ(g.destroy_context(c.value), Status::ok);

    // Now it goes, from the P2M and from context 0 in the same call; its neighbours stay.
    arch::host::Stage2Calls c0 = arch::host::stage2_calls();
    ASSERT_EQ(g.remove_ram(p2m, gfn0 + 7, 1), Status::ok);
    EXPECT_EQ(arch::host::stage2_calls().calls - c0.calls, 1u);  // the CPU heard it
    EXPECT_FALSE(p2m.lookup(ipa0 + 7 * kPageSize).ok());
    EXPECT_FALSE(g.context(0)->lookup(ipa0 + 7 * kPageSize).ok());
    SmmuV3Model::Dma gone = r.poke(ipa0 + 7 * kPageSize);
    EXPECT_FALSE(gone.ok);
    ASSERT_FALSE(r.model.events().empty());
    EXPECT_EQ(r.model.events().back().stage2, stage2);
    EXPECT_TRUE(r.poke(ipa0 + 8 * kPageSize).ok);
    EXPECT_EQ(g.remove_ram(p2m, gfn0 + 64, 1), Status::invalid_argument);  // not its RAM
}

TEST(SharedP2m, RemovingRamReachesEveryContextOnAStage2Smmu) { removal_keeps_the_guarantee(true); }
TEST(SharedP2m, RemovingRamReachesEveryContextOnAStage1OnlySmmu) { removal_keeps_the_guarantee(false); }

}  // namespace
