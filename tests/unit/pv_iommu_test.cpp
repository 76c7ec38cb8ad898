// The PV-IOMMU dispatcher on the host: a fake P2M (guest RAM backed by pool pages), a recording
// IOMMU, and guest structs placed in guest RAM exactly as a guest would place them.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "tests/models/fake_guest.hpp"
#include "tests/models/host_pool.hpp"
#include "xen-compat/pv_iommu.hpp"

using namespace moat;
using namespace moat::xen;

namespace {

class RecordingIommu final : public Iommu {
public:
    const char* name() const override { return "fake"; }
    const IommuCaps& caps() const override { return caps_; }
    const char* why() const override { return ""; }
    void describe(Sink&) const override {}
    Status xlate(const uint32_t* a, unsigned, StreamId& out, Why&) const override { return out = a[0], Status::ok; }
    IommuStats stats() const override { return stats_; }
    Status attach(IoDomain& d, StreamId sid) override { last_attach = &d; attached_sid = sid; return Status::ok; }
    Status detach(IoDomain&, StreamId) override { detaches++; return Status::ok; }
    Status flush(IoDomain&, const iopt::Gather&) override { stats_.commands++; stats_.syncs++; return Status::ok; }
    Result<iopt::Format> domain_format(DomainUse, unsigned ias) const override { return iopt::vmsa_s1(ias, 44, true); }
    unsigned poll_faults(FaultLog&) override { return 0; }
    IoDomain* last_attach = nullptr;
    StreamId attached_sid = 0;
    unsigned detaches = 0;
private:
    IommuCaps caps_{true, false, 48, 44, true, true, 0xffff};
    IommuStats stats_;
};

// Guest RAM at gfn 0x40000 (FakeGuest::kGfn0 below), backed by pool pages.
struct FakeGuest : model::FakeGuest {
    static constexpr uint64_t kGfn0 = kRamGfn;
    static constexpr uint64_t kHole = kHoleGfn;
    static constexpr uint64_t kArgs = (kGfn0 << kPageShift) + 0x100;  // where tests put structs
    FakeGuest(PagePool& pool, uint64_t pages) : model::FakeGuest(pool, pages) { EXPECT_TRUE(ok()); }
};

struct Rig {
    model::HostPool host_mem{4096, model::HostPool::kPhysBase, 2 * MiB};
    PagePool* pool = host_mem.pool.get();
    std::unique_ptr<FakeGuest> mem;
    std::unique_ptr<FakeGuest> mem2;
    RecordingIommu iommu;
    PvIommuHost host;
    std::unique_ptr<PvIommuGuest> guest;
    std::unique_ptr<PvIommuGuest> dom0;
    explicit Rig(PvIommuConfig cfg = {}) {
        EXPECT_TRUE(host_mem.ok);
        mem = std::make_unique<FakeGuest>(*pool, 1024);
        mem2 = std::make_unique<FakeGuest>(*pool, 16);
        guest = std::make_unique<PvIommuGuest>(1, false, *mem, *pool, cfg);
        dom0 = std::make_unique<PvIommuGuest>(0, true, *mem2, *pool, cfg);
        EXPECT_EQ(guest->init_default(FakeGuest::kGfn0, 1024), Status::ok);
        EXPECT_EQ(dom0->init_default(FakeGuest::kGfn0, 16), Status::ok);
        EXPECT_EQ(guest->assign(0, 0, 0x08, iommu, 0x8), Status::ok);
        EXPECT_EQ(host.add(*guest), Status::ok);
        EXPECT_EQ(host.add(*dom0), Status::ok);
    }
    template <class T> long call(IommuSubop op, T& s, PvIommuGuest* who = nullptr, bool* preempted = nullptr) {
        PvIommuGuest& g = who ? *who : *guest;
        GuestMemory& m = g.memory();
        EXPECT_TRUE(m.write(FakeGuest::kArgs, &s, sizeof s));
        CallResult r = iommu_op(host, g, static_cast<uint64_t>(op), FakeGuest::kArgs);
        EXPECT_TRUE(m.read(FakeGuest::kArgs, &s, sizeof s));
        if (preempted) *preempted = r.preempted;
        return r.ret;
    }
    uint16_t alloc_ctx() {
        PvIommuInit init{0, 0};
        if (!guest->initialised) {
            EXPECT_EQ(call(IommuSubop::init, init), 0);
        }
        PvIommuAllocContext a{};
        EXPECT_EQ(call(IommuSubop::alloc_context, a), 0);
        return a.ctx_no;
    }
    PvIommuMapPages map_req(uint16_t ctx, uint64_t gfn, uint64_t dfn, uint64_t n, uint32_t flags = mapf::kReadable | mapf::kWriteable) {
        PvIommuMapPages m{};
        m.ctx_no = ctx;
        m.gfn = gfn;
        m.dfn = dfn;
        m.map_flags = flags;
        m.pgsize = kPageSize;
        m.nr_pages = n;
        return m;
    }
};

TEST(PvIommu, QueryCapabilitiesTellsTheTruth) {
    Rig r;
    PvIommuCapabilities caps{};
    EXPECT_EQ(r.call(IommuSubop::query_capabilities, caps), 0);
    EXPECT_EQ(caps.max_iova_addr, (1ull << 39) - 1);
    EXPECT_EQ(caps.pgsize_mask, (1u << 12) | (1u << 21) | (1u << 30));
    EXPECT_TRUE(caps.cap_flags & cap::kCache);
    EXPECT_EQ(caps.max_ctx_no, 7);
    PvIommuConfig nc;
    nc.format.coherent_walk = false;
    Rig r2(nc);
    EXPECT_EQ(r2.call(IommuSubop::query_capabilities, caps), 0);
    EXPECT_FALSE(caps.cap_flags & cap::kCache);  // entries would not be snooped
}

TEST(PvIommu, InitOnceAndWithinLimits) {
    Rig r;
    PvIommuAllocContext a{};
    EXPECT_EQ(r.call(IommuSubop::alloc_context, a), -13);  // before init
    PvIommuInit big{100, 0};
    EXPECT_EQ(r.call(IommuSubop::init, big), -7);
    PvIommuInit ok{3, 0};
    EXPECT_EQ(r.call(IommuSubop::init, ok), 0);
    EXPECT_EQ(r.call(IommuSubop::init, ok), -13);
    for (int i = 0; i < 3; i++) EXPECT_EQ(r.call(IommuSubop::alloc_context, a), 0);
    EXPECT_EQ(r.call(IommuSubop::alloc_context, a), -28);  // -ENOSPC, and nothing half built
    PvIommuAllocContext bad{0, {}, 0x80};
    PvIommuInit again{0, 0};
    (void)again;
    EXPECT_EQ(r.call(IommuSubop::alloc_context, bad), -22);
}

TEST(PvIommu, MapTranslatesGfnToTheGuestsOwnFrame) {
    Rig r;
    uint16_t ctx = r.alloc_ctx();
    auto m = r.map_req(ctx, FakeGuest::kGfn0 + 5, 0x100, 3);
    EXPECT_EQ(r.call(IommuSubop::map_pages, m), 0);
    EXPECT_EQ(m.mapped, 3u);
    EXPECT_EQ(m.nr_pages, 0u);
    EXPECT_EQ(m.dfn, 0x103u);
    auto t = r.guest->context(ctx)->lookup(0x101ull << 12);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t.value.pa, r.mem->mfn_of(FakeGuest::kGfn0 + 6) << 12);
}

TEST(PvIommu, DoubleMapIsAddressInUseAndDoubleUnmapIsNotFound) {
    Rig r;
    uint16_t ctx = r.alloc_ctx();
    auto m = r.map_req(ctx, FakeGuest::kGfn0, 0x200, 2);
    EXPECT_EQ(r.call(IommuSubop::map_pages, m), 0);
    auto m2 = r.map_req(ctx, FakeGuest::kGfn0 + 10, 0x1ff, 3);  // second page collides
    EXPECT_EQ(r.call(IommuSubop::map_pages, m2), -98);
    EXPECT_EQ(m2.mapped, 1u);                           // 0x1ff went in before the collision
    EXPECT_EQ(m2.dfn, 0x200u);                          // the struct points at the collision
    auto t = r.guest->context(ctx)->lookup(0x200ull << 12);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t.value.pa, r.mem->mfn_of(FakeGuest::kGfn0) << 12);  // the old mapping is untouched
    PvIommuUnmapPages u{ctx, {}, 0x1ff, kPageSize, 3, 0};
    EXPECT_EQ(r.call(IommuSubop::unmap_pages, u), 0);
    EXPECT_EQ(u.unmapped, 3u);
    PvIommuUnmapPages u2{ctx, {}, 0x1ff, kPageSize, 1, 0};
    EXPECT_EQ(r.call(IommuSubop::unmap_pages, u2), -2);
    EXPECT_EQ(u2.unmapped, 0u);
}

TEST(PvIommu, FramesTheGuestDoesNotOwnAreRefusedAndNothingChanges) {
    Rig r;
    uint16_t ctx = r.alloc_ctx();
    size_t before = r.pool->used_pages();
    auto m = r.map_req(ctx, FakeGuest::kGfn0 + 1020, 0x300, 8);  // runs past the end of guest RAM
    EXPECT_EQ(r.call(IommuSubop::map_pages, m), -1);
    EXPECT_EQ(m.mapped, 0u);
    EXPECT_FALSE(r.guest->context(ctx)->lookup(0x300ull << 12).ok());
    auto hv = r.map_req(ctx, 0x80000000ull >> 12, 0x300, 1);  // the hypervisor's own pool
    EXPECT_EQ(r.call(IommuSubop::map_pages, hv), -1);
    auto hole = r.map_req(ctx, FakeGuest::kHole, 0x300, 1);
    EXPECT_EQ(r.call(IommuSubop::map_pages, hole), -2);
    EXPECT_EQ(r.pool->used_pages(), before);
}

// Ownership of a large page is one question to the guest's memory, not one per 4 KiB frame: the
// work of a call stays bounded whatever the page size (a 1 GiB page would be 262,144 frames).
TEST(PvIommu, ALargePageCostsOneOwnershipQuestion) {
    Rig r;
    uint16_t ctx = r.alloc_ctx();
    size_t before = r.pool->used_pages();
    auto g1 = r.map_req(ctx, FakeGuest::kGfn0, 0x40000, 1);  // 1 GiB at a 1 GiB-aligned gfn: past the 4 MiB of RAM
    g1.pgsize = 1ull << 30;
    r.mem->frame_questions = r.mem->run_questions = 0;
    EXPECT_EQ(r.call(IommuSubop::map_pages, g1), -1);
    EXPECT_EQ(g1.mapped, 0u);
    EXPECT_EQ(r.mem->run_questions, 1u);
    EXPECT_LE(r.mem->frame_questions, 1u);  // at most the one frame that decides why
    EXPECT_EQ(r.pool->used_pages(), before);
    auto m2 = r.map_req(ctx, FakeGuest::kGfn0 + 512, 0x200, 1);  // one 2 MiB page inside RAM
    m2.pgsize = 2 * MiB;
    r.mem->frame_questions = r.mem->run_questions = 0;
    EXPECT_EQ(r.call(IommuSubop::map_pages, m2), 0);
    EXPECT_EQ(m2.mapped, 1u);
    EXPECT_EQ(r.mem->frame_questions, 0u);  // not 512
    EXPECT_EQ(r.mem->run_questions, 2u);    // the check, then the machine run it maps
}

TEST(PvIommu, RangesAreValidatedBeforeAnythingHappens) {
    Rig r;
    uint16_t ctx = r.alloc_ctx();
    auto zero = r.map_req(0, FakeGuest::kGfn0, 0, 1);
    EXPECT_EQ(r.call(IommuSubop::map_pages, zero), -22);  // the default context is not the guest's to change
    auto badctx = r.map_req(7, FakeGuest::kGfn0, 0, 1);
    EXPECT_EQ(r.call(IommuSubop::map_pages, badctx), -22);
    auto wrap = r.map_req(ctx, FakeGuest::kGfn0, ~0ull - 1, 4);
    EXPECT_EQ(r.call(IommuSubop::map_pages, wrap), -34);
    auto past = r.map_req(ctx, FakeGuest::kGfn0, (1ull << 27) - 1, 2);  // 39-bit IOVA = 2^27 frames
    EXPECT_EQ(r.call(IommuSubop::map_pages, past), -34);
    auto huge = r.map_req(ctx, FakeGuest::kGfn0, 0, 1ull << 62);
    EXPECT_EQ(r.call(IommuSubop::map_pages, huge), -34);
    auto odd = r.map_req(ctx, FakeGuest::kGfn0, 0, 1);
    odd.pgsize = 0x3000;
    EXPECT_EQ(r.call(IommuSubop::map_pages, odd), -22);
    auto unaligned = r.map_req(ctx, FakeGuest::kGfn0, 1, 1);
    unaligned.pgsize = 2 * MiB;
    EXPECT_EQ(r.call(IommuSubop::map_pages, unaligned), -22);
    auto noperm = r.map_req(ctx, FakeGuest::kGfn0, 0, 1, 0);
    EXPECT_EQ(r.call(IommuSubop::map_pages, noperm), -22);
    auto unknown = r.map_req(ctx, FakeGuest::kGfn0, 0, 1, mapf::kReadable | 0x100);
    EXPECT_EQ(r.call(IommuSubop::map_pages, unknown), -22);
    for (auto* m : {&zero, &badctx, &wrap, &past, &huge, &odd, &unaligned, &noperm, &unknown}) EXPECT_EQ(m->mapped, 0u);
}

TEST(PvIommu, SuperpagesNeedAnExactPageSizeAndCanBeSplit) {
    Rig r;
    uint16_t ctx = r.alloc_ctx();
    auto m = r.map_req(ctx, FakeGuest::kGfn0, 0x200, 1);
    m.pgsize = 2 * MiB;
    EXPECT_EQ(r.call(IommuSubop::map_pages, m), 0);
    auto t = r.guest->context(ctx)->lookup(0x200ull << 12);
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(t.value.size, 2 * MiB);
    // Unmapping one 4 KiB page in the middle needs a table page: without one, a short count.
    r.pool->fail_after(0);
    PvIommuUnmapPages u{ctx, {}, 0x201, kPageSize, 1, 0};
    EXPECT_EQ(r.call(IommuSubop::unmap_pages, u), -12);
    EXPECT_EQ(u.unmapped, 0u);
    EXPECT_TRUE(r.guest->context(ctx)->lookup(0x201ull << 12).ok());
    r.pool->fail_after(SIZE_MAX);
    EXPECT_EQ(r.call(IommuSubop::unmap_pages, u), 0);
    EXPECT_EQ(u.unmapped, 1u);
    EXPECT_FALSE(r.guest->context(ctx)->lookup(0x201ull << 12).ok());
    EXPECT_TRUE(r.guest->context(ctx)->lookup(0x202ull << 12).ok());
}

TEST(PvIommu, LongCallsArePreemptedAndContinueFromTheStruct) {
    PvIommuConfig cfg;
    cfg.budget_pages = 16;
    Rig r(cfg);
    uint16_t ctx = r.alloc_ctx();
    auto m = r.map_req(ctx, FakeGuest::kGfn0, 0x1000, 40);
    bool preempted = true;
    int calls = 0;
    while (preempted) {
        ASSERT_EQ(r.call(IommuSubop::map_pages, m, nullptr, &preempted), 0);
        calls++;
    }
    EXPECT_EQ(calls, 3);
    EXPECT_EQ(m.mapped, 40u);
    EXPECT_EQ(m.nr_pages, 0u);
    EXPECT_EQ(m.gfn, FakeGuest::kGfn0 + 40);
    EXPECT_TRUE(r.guest->context(ctx)->lookup(0x1027ull << 12).ok());
}

TEST(PvIommu, StructsOutsideGuestRamFault) {
    Rig r;
    uint16_t ctx = r.alloc_ctx();
    (void)ctx;
    CallResult res = iommu_op(r.host, *r.guest, static_cast<uint64_t>(IommuSubop::map_pages), 0x1000);
    EXPECT_EQ(res.ret, -14);
    uint64_t end = (FakeGuest::kGfn0 + 1024) << kPageShift;
    res = iommu_op(r.host, *r.guest, static_cast<uint64_t>(IommuSubop::map_pages), end - 8);  // straddles the end
    EXPECT_EQ(res.ret, -14);
    res = iommu_op(r.host, *r.guest, 99, FakeGuest::kArgs);
    EXPECT_EQ(res.ret, -95);
    res = iommu_op(r.host, *r.guest, static_cast<uint64_t>(IommuSubop::alloc_nested), FakeGuest::kArgs);
    EXPECT_EQ(res.ret, -95);
}

TEST(PvIommu, DevicesMoveBetweenContextsOnlyIfTheyAreTheCallers) {
    Rig r;
    uint16_t ctx = r.alloc_ctx();
    PvIommuReattachDevice foreign{ctx, 0, 0, 0x10, {}, 0, {}};
    EXPECT_EQ(r.call(IommuSubop::reattach_device, foreign), -19);
    PvIommuReattachDevice mine{ctx, 0, 0, 0x08, {}, 0, {}};
    EXPECT_EQ(r.call(IommuSubop::reattach_device, mine), 0);
    EXPECT_EQ(r.iommu.last_attach, r.guest->context(ctx));
    EXPECT_EQ(r.iommu.attached_sid, 0x8u);
    PvIommuFreeContext busy{ctx, {}, 0};
    EXPECT_EQ(r.call(IommuSubop::free_context, busy), -16);
    PvIommuFreeContext dflt{0, {}, 0};
    EXPECT_EQ(r.call(IommuSubop::free_context, dflt), -22);
    PvIommuFreeContext reattach{ctx, {}, kFreeReattachDefault};
    EXPECT_EQ(r.call(IommuSubop::free_context, reattach), 0);
    EXPECT_EQ(r.iommu.last_attach, r.guest->context(0));
    EXPECT_EQ(r.guest->context(ctx), nullptr);
    EXPECT_EQ(r.guest->device(0, 0, 0x08)->ctx, 0);
}

TEST(PvIommu, RemoteCommandsNeedPrivilegeAndCannotNest) {
    Rig r;
    uint16_t ctx = r.alloc_ctx();
    auto m = r.map_req(ctx, FakeGuest::kGfn0 + 1, 0x40, 1);
    // dom0 writes the map struct into its own RAM, then asks to run it on domain 1.
    uint64_t inner = FakeGuest::kArgs + 0x200;
    ASSERT_TRUE(r.mem2->write(inner, &m, sizeof m));
    PvIommuRemoteCmd rc{1, static_cast<uint16_t>(IommuSubop::map_pages), {}, inner};
    EXPECT_EQ(r.call(IommuSubop::remote_cmd, rc, r.dom0.get()), 0);
    EXPECT_TRUE(r.guest->context(ctx)->lookup(0x40ull << 12).ok());
    PvIommuRemoteCmd unknown{42, static_cast<uint16_t>(IommuSubop::noop), {}, inner};
    EXPECT_EQ(r.call(IommuSubop::remote_cmd, unknown, r.dom0.get()), -2);
    PvIommuRemoteCmd nested{1, static_cast<uint16_t>(IommuSubop::remote_cmd), {}, inner};
    EXPECT_EQ(r.call(IommuSubop::remote_cmd, nested, r.dom0.get()), -22);
    PvIommuRemoteCmd from_guest{0, static_cast<uint16_t>(IommuSubop::noop), {}, inner};
    EXPECT_EQ(r.call(IommuSubop::remote_cmd, from_guest), -1);
}

TEST(PvIommu, TeardownGivesEveryPageBack) {
    model::HostPool host_mem(2048, model::HostPool::kPhysBase, 2 * MiB);
    ASSERT_TRUE(host_mem.ok);
    PagePool* pool = host_mem.pool.get();
    FakeGuest mem(*pool, 512);
    size_t before = pool->used_pages();
    RecordingIommu iommu;
    {
        PvIommuHost host;
        PvIommuGuest g(3, false, mem, *pool, PvIommuConfig{});
        ASSERT_EQ(g.init_default(FakeGuest::kGfn0, 512), Status::ok);
        ASSERT_EQ(g.assign(0, 0, 0x08, iommu, 8), Status::ok);
        EXPECT_GT(pool->used_pages(), before);
    }
    EXPECT_EQ(pool->used_pages(), before);
    EXPECT_GE(iommu.detaches, 1u);
}

}  // namespace
