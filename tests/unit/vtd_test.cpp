// The VT-d driver against the register model in tests/models, which walks the root, context
// (or PASID) and second-level tables it is given: every DMA below proves where the bytes land,
// or which fault the hardware would record. The model caches context entries and translations
// until the specification's invalidation drops them (and, in caching mode, not-present ones
// too), so a missing invalidation shows as DMA that still lands or still faults.
#include <gtest/gtest.h>

#include <stdio.h>
#include <string.h>

#include <map>
#include <memory>
#include <random>
#include <vector>

#include "arch/cache.hpp"
#include "arch/mmio.hpp"
#include "common/acpi_dmar.hpp"
#include "common/acpi_tree.hpp"
#include "common/discovery.hpp"
#include "common/io_domain.hpp"
#include "common/iommu_set.hpp"
#include "dt_support.hpp"
#include "common/iopt/vtd_sl.hpp"
#include "drivers/iommu/vtd.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/vtd_model.hpp"

using namespace moat;
using model::VtdModel;
namespace fr = model::vtd_fr;

namespace {

constexpr uintptr_t kBase = 0xfed90000;  // where QEMU's q35 puts its DRHD
constexpr uint16_t kEdu = 0x0010;        // 00:02.0
constexpr uint16_t kOther = 0x0018;      // 00:03.0

struct Rig {
    model::HostPool host;
    model::PoolPhysMem mem;
    VtdModel model;
    Vtd vtd;
    FaultLog log;
    size_t pool_before;

    explicit Rig(VtdModel::Features f = {}, size_t pages = 1024)
        : host(pages, model::HostPool::kPhysBase, 2 * MiB), mem(*host.pool), model(mem, f), vtd(*host.pool) {
        EXPECT_TRUE(host.ok);
        EXPECT_TRUE(mmio::attach(kBase, VtdModel::kRegSize, &model));
        pool_before = pool().used_pages();
    }
    ~Rig() {
        vtd.shutdown();
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
    PagePool& pool() { return *host.pool; }
    Status probe(bool scalable = true, bool queued = true, const std::vector<Vtd::Config::Rmrr>& rmrr = {}) {
        Vtd::Config c;
        for (const Vtd::Config::Rmrr& x : rmrr) c.rmrr[c.nrmrr++] = x;
        c.base = kBase;
        c.name = "dmar-model";
        c.haw = 39;
        c.cpu_pa_bits = 46;
        c.scalable = scalable;
        c.queued = queued;
        return vtd.probe(c);
    }
    iopt::Format format(unsigned ias = 39) {
        Result<iopt::Format> f = vtd.domain_format(DomainUse::dma, ias);
        EXPECT_TRUE(f.ok());
        return f.value;
    }
    uint64_t buffer(size_t n = 1) {
        Result<uint64_t> r = pool().alloc(n);
        EXPECT_TRUE(r.ok());
        return r.value;
    }
    uint8_t* at(uint64_t pa) { return static_cast<uint8_t*>(pool().virt(pa)); }
    std::vector<FaultRecord> faults() {
        uint64_t from = log.total();
        vtd.poll_faults(log);
        std::vector<FaultRecord> v;
        for (uint64_t i = from; i < log.total(); i++) v.push_back(log.at(static_cast<unsigned>(i - (log.total() - log.size()))));
        return v;
    }
    VtdModel::Dma poke(uint16_t bdf, uint64_t iova, uint8_t v = 0x5a) {
        uint8_t b[16];
        memset(b, v, sizeof b);
        return model.dma_write(bdf, iova, b, sizeof b);
    }
};

iopt::Prot read_only() {
    iopt::Prot p;
    p.perm = iopt::kRead;
    return p;
}

void expect_fault(const FaultRecord& r, FaultKind kind, uint32_t sid, uint64_t addr, bool write, uint8_t reason) {
    EXPECT_EQ(r.kind, kind) << to_string(r.kind);
    EXPECT_EQ(r.stream, sid);
    EXPECT_EQ(r.address, addr);
    EXPECT_EQ(r.write, write);
    EXPECT_EQ(r.raw, reason);
}

// ---------------------------------------------------------------- the format on its own

TEST(VtdFormat, EntriesAreSecondLevelEntries) {
    model::HostPool h(64);
    iopt::TableSlot slot;
    const iopt::Format f = iopt::vtd_sl(39, 36, true, iopt::vtd_opt::k2M | iopt::vtd_opt::kSnoop);
    ASSERT_EQ(slot.build(*h.pool, f), Status::ok);
    iopt::Table& t = *slot.get();
    ASSERT_EQ(t.init(), Status::ok);
    iopt::Gather g;
    ASSERT_TRUE(t.map(0x200000, 0x80200000, 2 * MiB, iopt::Prot{}, g, iopt::Table::kLargest).ok());
    ASSERT_TRUE(t.map(0x1000, 0x80001000, kPageSize, read_only(), g, iopt::Table::kLargest).ok());
    // 3 levels from a 39-bit input: root at level 1 (1 GiB entries), then 2 MiB, then 4 KiB.
    const uint64_t* root = static_cast<uint64_t*>(h.pool->virt(t.root_pa()));
    EXPECT_EQ(root[0] & 3, 3u) << "a table entry grants read and write";
    const uint64_t* l2 = static_cast<uint64_t*>(h.pool->virt(root[0] & iopt::VtdDesc::kOa));
    EXPECT_EQ(l2[1], 0x80200000u | iopt::VtdDesc::kPs | iopt::VtdDesc::kSnp | 3) << "2 MiB superpage: PS, SNP, R, W";
    const uint64_t* l3 = static_cast<uint64_t*>(h.pool->virt(l2[0] & iopt::VtdDesc::kOa));
    EXPECT_EQ(l3[1], 0x80001000u | iopt::VtdDesc::kSnp | iopt::VtdDesc::kR) << "read-only page: R only, no PS";
    Result<iopt::Translation> tr = t.lookup(0x1000);
    ASSERT_TRUE(tr.ok());
    EXPECT_EQ(tr.value.prot.perm, iopt::kRead);
    EXPECT_EQ(tr.value.prot.share, iopt::Share::inner) << "SNP reads back as inner shareable (snooped)";
    EXPECT_EQ(t.pgsize_bitmap(), kPageSize | 2 * MiB) << "no 1 GiB pages without vtd_opt::k1G";
    t.destroy();
    // Without snoop control SNP is reserved: never written, whatever the mapping asks.
    iopt::TableSlot plain;
    ASSERT_EQ(plain.build(*h.pool, iopt::vtd_sl(39, 36, true, 0)), Status::ok);
    ASSERT_EQ(plain.get()->init(), Status::ok);
    ASSERT_TRUE(plain.get()->map(0x1000, 0x80001000, kPageSize, iopt::Prot{}, g, iopt::Table::kLargest).ok());
    Result<iopt::Translation> pt = plain.get()->lookup(0x1000);
    ASSERT_TRUE(pt.ok());
    EXPECT_EQ(pt.value.prot.share, iopt::Share::none);
    EXPECT_EQ(pt.value.size, kPageSize) << "and no superpages without vtd_opt::k2M";
    plain.get()->destroy();
}

TEST(VtdFormat, WithoutOneGigPagesAnAlignedGigIsMappedInTwoMegPages) {
    model::HostPool h(64, 0x40000000, 2 * MiB);
    iopt::TableSlot slot2m, slot1g;
    ASSERT_EQ(slot2m.build(*h.pool, iopt::vtd_sl(39, 36, true, iopt::vtd_opt::k2M)), Status::ok);
    ASSERT_EQ(slot1g.build(*h.pool, iopt::vtd_sl(39, 36, true, iopt::vtd_opt::k2M | iopt::vtd_opt::k1G)), Status::ok);
    for (iopt::TableSlot* s : {&slot2m, &slot1g}) {
        iopt::Table& t = *s->get();
        ASSERT_EQ(t.init(), Status::ok);
        iopt::Gather g;
        ASSERT_TRUE(t.map(1 * GiB, 1 * GiB, 1 * GiB + 2 * MiB, iopt::Prot{}, g, iopt::Table::kLargest).ok());
        Result<iopt::Translation> tr = t.lookup(1 * GiB + 5 * MiB);
        ASSERT_TRUE(tr.ok());
        EXPECT_EQ(tr.value.size, s == &slot2m ? 2 * MiB : 1 * GiB);
        EXPECT_EQ(tr.value.pa, 1 * GiB + 5 * MiB);
        EXPECT_EQ(t.map(0, 0, 1 * GiB, iopt::Prot{}, g, 1 * GiB).status,
                  s == &slot2m ? Status::invalid_argument : Status::ok) << "an explicit size the unit lacks is refused";
        t.destroy();
    }
}

// ---------------------------------------------------------------- probe

TEST(Vtd, ProbeEnablesTranslationWithEveryDeviceBlocked) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok) << r.vtd.why();
    EXPECT_TRUE(r.model.translation_enabled());
    EXPECT_TRUE(r.vtd.queued());
    EXPECT_FALSE(r.vtd.scalable());
    EXPECT_EQ(r.vtd.domain_ids(), 65536u);
    EXPECT_EQ(r.model.counts().ctx_global, 1u);
    EXPECT_EQ(r.model.counts().iotlb_global, 1u);
    EXPECT_EQ(r.model.counts().waits, 1u);
    // Nothing attached: the root entry is absent, the DMA faults and nothing is written.
    VtdModel::Dma d = r.poke(kEdu, 0x80010000);
    EXPECT_FALSE(d.ok);
    EXPECT_EQ(d.reason, fr::kRootNotPresent);
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 1u);
    expect_fault(f[0], FaultKind::stream_disabled, kEdu, 0x80010000, true, fr::kRootNotPresent);
    EXPECT_EQ(r.model.fsts() & 1u, 0u);
    char line[400];
    BufferSink s(line, sizeof line);
    r.vtd.describe(s);
    EXPECT_NE(strstr(line, "legacy mode"), nullptr) << line;
    EXPECT_NE(strstr(line, "faults polled"), nullptr) << line;
}

TEST(Vtd, RefusesWhatItCannotDrive) {
    {
        VtdModel::Features f;
        f.sagaw = 0x8;  // 5-level only
        f.mgaw = 57;
        Rig r(f);
        EXPECT_EQ(r.probe(), Status::unsupported);
        EXPECT_NE(strstr(r.vtd.why(), "SAGAW"), nullptr) << r.vtd.why();
        EXPECT_FALSE(r.model.translation_enabled());
        EXPECT_EQ(r.pool().used_pages(), r.pool_before);
    }
    {
        Rig r;
        r.model.freeze_gsts(true);
        EXPECT_EQ(r.probe(), Status::timeout);
        EXPECT_NE(strstr(r.vtd.why(), "GSTS.RTPS"), nullptr) << r.vtd.why();
        EXPECT_EQ(r.pool().used_pages(), r.pool_before) << "a failed probe gives every page back";
    }
}

TEST(Vtd, FourAndFiveLevelUnitGetsFourLevelDomains) {
    VtdModel::Features f;
    f.sagaw = 0xc;  // 48-bit 4-level and 57-bit 5-level
    f.mgaw = 57;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok) << r.vtd.why();
    EXPECT_EQ(r.vtd.caps().ias, 48u) << "the engine's four levels: 48 bits at most";
    Result<iopt::Format> fm = r.vtd.domain_format(DomainUse::dma, 32);
    ASSERT_TRUE(fm.ok());
    EXPECT_EQ(fm.value.ias, 40u) << "no 3-level walk on this unit: at least 40 bits, so 4 levels";
    EXPECT_EQ(iopt::vtd_levels(fm.value), 4u);
    IoDomain three(r.pool(), iopt::vtd_sl(39, 36, true, 0));
    ASSERT_EQ(three.init(), Status::ok);
    EXPECT_EQ(three.attach(r.vtd, kEdu), Status::out_of_range) << "a 3-level table this unit cannot walk";
}

// ---------------------------------------------------------------- translation and faults

void translate_story(Rig& r) {
    const uint64_t src = r.buffer(), ro = r.buffer();
    // Pages outside the driver's own (root, context, PASID, queue): the domain's and the buffers.
    auto others = [&] { return r.pool().used_pages() - r.vtd.stats().pages; };
    const size_t before = others();
    IoDomain d(r.pool(), r.format());
    ASSERT_EQ(d.init(), Status::ok);
    constexpr uint64_t kIova = 0x1000000, kRo = 0x2000000, kHole = 0x3000000;
    ASSERT_TRUE(d.map(kIova, src, kPageSize, iopt::Prot{}).ok());
    ASSERT_TRUE(d.map(kRo, ro, kPageSize, read_only()).ok());
    ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
    // Bytes land through an IOVA that is not the PA.
    uint8_t data[64];
    for (unsigned i = 0; i < sizeof data; i++) data[i] = static_cast<uint8_t>(i * 7 + 1);
    VtdModel::Dma w = r.model.dma_write(kEdu, kIova + 0x40, data, sizeof data);
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(w.pa, src + 0x40);
    EXPECT_EQ(memcmp(r.at(src) + 0x40, data, sizeof data), 0);
    // Unmapped: reason 5 (write) / 6 (read), classified as translation; read-only: permission.
    EXPECT_EQ(r.poke(kEdu, kHole).reason, fr::kWrite);
    uint8_t back[16];
    EXPECT_EQ(r.model.dma_read(kEdu, kHole + 0x10, back, sizeof back).reason, fr::kRead);
    EXPECT_EQ(r.poke(kEdu, kRo).reason, fr::kWrite);
    EXPECT_TRUE(r.model.dma_read(kEdu, kRo, back, sizeof back).ok);
    std::vector<FaultRecord> f = r.faults();
    ASSERT_EQ(f.size(), 3u);
    expect_fault(f[0], FaultKind::translation, kEdu, kHole, true, fr::kWrite);
    expect_fault(f[1], FaultKind::translation, kEdu, kHole, false, fr::kRead);
    expect_fault(f[2], FaultKind::permission, kEdu, kRo, true, fr::kWrite);
    // Another device on the same unit stays blocked.
    EXPECT_EQ(r.poke(kOther, kIova).reason, fr::kContextNotPresent);
    r.faults();
    // Unmap: one page-selective invalidation, and the cached translation is gone.
    const uint64_t pages_before = r.model.counts().iotlb_page;
    ASSERT_TRUE(d.unmap(kIova, kPageSize).ok());
    EXPECT_EQ(r.model.counts().iotlb_page - pages_before, 1u);
    EXPECT_EQ(r.poke(kEdu, kIova).reason, fr::kWrite) << "the IOTLB still held the unmapped page";
    // Detach: blocked again.
    ASSERT_TRUE(d.map(kIova, src, kPageSize, iopt::Prot{}).ok());
    ASSERT_EQ(d.detach(r.vtd, kEdu), Status::ok);
    EXPECT_FALSE(r.poke(kEdu, kIova).ok);
    r.faults();
    const uint64_t held = d.attached_count();
    EXPECT_EQ(d.destroy(), Status::ok);
    EXPECT_EQ(held, 0u);
    EXPECT_EQ(others(), before) << "every table page of the domain went back";
    (void)r.pool().free(src, 1);
    (void)r.pool().free(ro, 1);
}

TEST(Vtd, LegacyQueuedTranslatesFaultsAndBlocks) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok) << r.vtd.why();
    translate_story(r);
    r.vtd.shutdown();
    EXPECT_EQ(r.pool().used_pages(), r.pool_before) << "every page back in the pool";
}

TEST(Vtd, RegisterInvalidationWithoutQueue) {
    VtdModel::Features f;
    f.qi = false;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok) << r.vtd.why();
    EXPECT_FALSE(r.vtd.queued());
    translate_story(r);
    EXPECT_GT(r.model.counts().register_invalidations, 3u);
    EXPECT_EQ(r.model.counts().queued, 0u);
}

TEST(Vtd, ScalableModePointsThePasidEntryAtTheTable) {
    VtdModel::Features f;
    f.smts = true;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok) << r.vtd.why();
    EXPECT_TRUE(r.vtd.scalable());
    EXPECT_TRUE(r.model.scalable_root());
    translate_story(r);
    EXPECT_GT(r.model.counts().pasid, 0u);
    r.vtd.shutdown();
    EXPECT_EQ(r.pool().used_pages(), r.pool_before);
}

TEST(Vtd, FourLevelTablesFor48Bits) {
    VtdModel::Features f;
    f.sagaw = 0x6;
    f.mgaw = 48;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok) << r.vtd.why();
    iopt::Format fm = r.format(48);
    EXPECT_EQ(fm.ias, 48u);
    EXPECT_EQ(iopt::vtd_levels(fm), 4u);
    const uint64_t buf = r.buffer();
    IoDomain d(r.pool(), fm);
    ASSERT_EQ(d.init(), Status::ok);
    constexpr uint64_t kHigh = uint64_t{0x7654} << 30;  // above 39 bits
    ASSERT_TRUE(d.map(kHigh, buf, kPageSize, iopt::Prot{}).ok());
    ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
    VtdModel::Dma w = r.poke(kEdu, kHigh + 8, 0x33);
    ASSERT_TRUE(w.ok);
    EXPECT_EQ(r.at(buf)[8], 0x33);
    EXPECT_EQ(d.destroy(), Status::ok);
    (void)r.pool().free(buf, 1);
}

// ---------------------------------------------------------------- caching mode

TEST(Vtd, CachingModeInvalidatesAttachesAndMaps) {
    VtdModel::Features f;
    f.cm = true;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok) << r.vtd.why();
    EXPECT_TRUE(r.vtd.caps().caches_invalid);
    // A blocked DMA first: the unit caches the not-present context entry (domain id 0).
    EXPECT_EQ(r.poke(kEdu, 0x1000000).reason, fr::kRootNotPresent);
    const uint64_t buf = r.buffer();
    IoDomain d(r.pool(), r.format());
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
    // Then a DMA to an unmapped page: cached as not present.
    EXPECT_EQ(r.poke(kEdu, 0x1000000).reason, fr::kWrite);
    const uint64_t before = r.model.counts().iotlb_page;
    ASSERT_TRUE(d.map(0x1000000, buf, kPageSize, iopt::Prot{}).ok());
    EXPECT_EQ(r.model.counts().iotlb_page - before, 1u) << "caching mode: a map is invalidated too";
    VtdModel::Dma w = r.poke(kEdu, 0x1000000, 0x77);
    ASSERT_TRUE(w.ok) << "reason " << unsigned{w.reason};
    EXPECT_EQ(r.at(buf)[0], 0x77);
    EXPECT_EQ(r.faults().size(), 2u);
    EXPECT_EQ(d.destroy(), Status::ok);
    (void)r.pool().free(buf, 1);
}

TEST(Vtd, WithoutCachingModeAMapNeedsNoInvalidation) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    const uint64_t buf = r.buffer();
    IoDomain d(r.pool(), r.format());
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
    const IommuStats s0 = r.vtd.stats();
    ASSERT_TRUE(d.map(0x1000000, buf & ~(2 * MiB - 1), 512 * kPageSize, iopt::Prot{}, kPageSize).ok());
    const IommuStats s1 = r.vtd.stats();
    ASSERT_TRUE(d.unmap(0x1000000, 512 * kPageSize).ok());
    const IommuStats s2 = r.vtd.stats();
    EXPECT_EQ(s1.commands - s0.commands, 0u);
    EXPECT_EQ(s2.commands - s1.commands, 2u) << "one page-selective invalidation (AM 9) plus the wait";
    EXPECT_EQ(s2.syncs - s1.syncs, 1u);
    EXPECT_EQ(d.destroy(), Status::ok);
    (void)r.pool().free(buf, 1);
}

TEST(Vtd, AnUnalignedRangeIsOneInvalidationOfTheBlockCoveringIt) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    const uint64_t buf = r.buffer(4);
    IoDomain d(r.pool(), r.format());
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
    ASSERT_TRUE(d.map(0x1003000, buf, 4 * kPageSize, iopt::Prot{}).ok());  // pages 3..6: block of 8 at 0
    for (unsigned i = 0; i < 4; i++) EXPECT_TRUE(r.poke(kEdu, 0x1003000 + i * kPageSize).ok);
    const uint64_t before = r.model.counts().iotlb_page;
    ASSERT_TRUE(d.unmap(0x1003000, 4 * kPageSize).ok());
    EXPECT_EQ(r.model.counts().iotlb_page - before, 1u);
    for (unsigned i = 0; i < 4; i++) EXPECT_FALSE(r.poke(kEdu, 0x1003000 + i * kPageSize).ok) << "page " << i << " still cached";
    r.faults();
    EXPECT_EQ(d.destroy(), Status::ok);
    (void)r.pool().free(buf, 4);
}

// ---------------------------------------------------------------- limits

TEST(Vtd, DomainIdExhaustionIsRefusedCleanly) {
    VtdModel::Features f;
    f.nd = 0;  // 16 domain ids, 0 reserved
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    EXPECT_EQ(r.vtd.domain_ids(), 16u);
    std::vector<std::unique_ptr<IoDomain>> doms;
    for (unsigned i = 0; i < 15; i++) {
        doms.push_back(std::make_unique<IoDomain>(r.pool(), r.format()));
        ASSERT_EQ(doms.back()->init(), Status::ok);
        ASSERT_EQ(doms.back()->attach(r.vtd, static_cast<StreamId>(0x100 + i)), Status::ok) << i;
    }
    IoDomain extra(r.pool(), r.format());
    ASSERT_EQ(extra.init(), Status::ok);
    const size_t pages = r.pool().used_pages();
    EXPECT_EQ(extra.attach(r.vtd, 0x200), Status::no_space);
    EXPECT_EQ(extra.attached_count(), 0u);
    EXPECT_EQ(r.pool().used_pages(), pages) << "a refused attach builds nothing";
    EXPECT_FALSE(r.poke(0x200, 0).ok) << "the refused device stays blocked";
    // One domain gone: its id is free again.
    EXPECT_EQ(doms[3]->destroy(), Status::ok);
    EXPECT_EQ(extra.attach(r.vtd, 0x200), Status::ok);
    EXPECT_EQ(extra.destroy(), Status::ok);
    for (auto& d : doms) (void)d->destroy();
    r.faults();
    r.vtd.shutdown();
    EXPECT_EQ(r.pool().used_pages(), r.pool_before);
}

TEST(Vtd, FaultOverflowIsCountedAndCleared) {
    VtdModel::Features f;
    f.nfr = 2;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    for (unsigned i = 0; i < 5; i++) EXPECT_FALSE(r.poke(kEdu, 0x1000 * i).ok);
    EXPECT_EQ(r.model.faults_lost(), 3u);
    std::vector<FaultRecord> v = r.faults();
    EXPECT_EQ(v.size(), 2u);
    EXPECT_EQ(r.vtd.fault_overflows(), 1u);
    EXPECT_EQ(r.model.fsts() & 1u, 0u) << "PFO acknowledged";
    EXPECT_FALSE(r.poke(kEdu, 0x9000).ok);
    EXPECT_EQ(r.faults().size(), 1u) << "records free again after the poll";
}

TEST(Vtd, NonCoherentUnitGetsEveryTableWriteFlushed) {
    VtdModel::Features f;
    f.coherent = false;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    iopt::Format fm = r.format();
    EXPECT_FALSE(fm.coherent_walk);
    const uint64_t buf = r.buffer();
    IoDomain d(r.pool(), fm);
    ASSERT_EQ(d.init(), Status::ok);
    const uint64_t c0 = cache::clean_log().calls;
    ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
    const uint64_t c1 = cache::clean_log().calls;
    ASSERT_TRUE(d.map(0x1000000, buf, kPageSize, iopt::Prot{}).ok());
    const uint64_t c2 = cache::clean_log().calls;
    EXPECT_GE(c1 - c0, 3u) << "context table page, root entry, context entry";
    EXPECT_GE(c2 - c1, 2u) << "new tables and the leaf";
    EXPECT_TRUE(r.poke(kEdu, 0x1000000).ok);
    IoDomain coherent(r.pool(), iopt::vtd_sl(39, 36, true, 0));
    ASSERT_EQ(coherent.init(), Status::ok);
    EXPECT_EQ(coherent.attach(r.vtd, kOther), Status::invalid_argument) << "tables nobody would flush";
    EXPECT_EQ(d.destroy(), Status::ok);
    (void)r.pool().free(buf, 1);
}

TEST(Vtd, SnoopControlSetsSnpAndItsAbsenceRefusesIt) {
    iopt::Format fm;
    {
        VtdModel::Features f;
        f.sc = true;
        Rig r(f);
        ASSERT_EQ(r.probe(), Status::ok);
        fm = r.format();
        EXPECT_TRUE(fm.options & iopt::vtd_opt::kSnoop);
        const uint64_t buf = r.buffer();
        IoDomain d(r.pool(), fm);
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_TRUE(d.map(0x1000000, buf, kPageSize, iopt::Prot{}).ok());
        ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
        EXPECT_TRUE(r.poke(kEdu, 0x1000000).ok) << "SNP accepted where ECAP.SC says so";
        EXPECT_EQ(d.destroy(), Status::ok);
        (void)r.pool().free(buf, 1);
    }
    // The same table on a unit without SC would fault (SNP reserved): the driver refuses it.
    Rig plain;
    ASSERT_EQ(plain.probe(), Status::ok);
    IoDomain snoopy(plain.pool(), fm);
    ASSERT_EQ(snoopy.init(), Status::ok);
    EXPECT_EQ(snoopy.attach(plain.vtd, kEdu), Status::unsupported);
}

// ---------------------------------------------------------------- RMRRs, queue trouble, odd corners

// A DMAR with one INCLUDE_PCI_ALL unit and an RMRR [base, limit] naming 00:02.0, as firmware
// writes it (little-endian, checksummed).
std::vector<uint8_t> dmar_with_rmrr(uint64_t base, uint64_t limit) {
    std::vector<uint8_t> b(48, 0);
    auto put = [&](uint64_t v, unsigned n) {
        for (unsigned i = 0; i < n; i++) b.push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    memcpy(b.data(), "DMAR", 4);
    b[8] = 1;
    b[36] = 38;  // host address width 39
    put(acpi::dmar::kDrhd, 2), put(16, 2), put(acpi::dmar::kDrhdIncludePciAll, 1), put(0, 1), put(0, 2), put(kBase, 8);
    put(acpi::dmar::kRmrr, 2), put(24 + 8, 2), put(0, 2), put(0, 2), put(base, 8), put(limit, 8);
    put(acpi::dmar::kScopeEndpoint, 1), put(8, 1), put(0, 2), put(0, 1), put(0, 1), put(2, 1), put(0, 1);  // bus 0, 02.0
    const uint32_t len = static_cast<uint32_t>(b.size());
    memcpy(b.data() + 4, &len, 4);
    uint8_t sum = 0;
    for (uint8_t c : b) sum = static_cast<uint8_t>(sum + c);
    b[9] = static_cast<uint8_t>(-sum);
    return b;
}

// The whole path: DMAR bytes -> parser -> the boot tree's `moat,rmrr` -> the driver probed
// through the registry -> IoDomain::attach maps the region 1:1 into a fresh domain before the
// context entry goes live, and the model's own walk takes edu's DMA there. The device without
// an RMRR gets nothing; detach takes the region away; every page comes back.
TEST(Vtd, RmrrFromTheDmarIsIdentityMappedIntoEveryDomainOfItsDevice) {
    model::HostPool mem(1024);
    model::PoolPhysMem phys(*mem.pool);
    VtdModel m(phys, {});
    ASSERT_TRUE(mmio::attach(kBase, VtdModel::kRegSize, &m));
    const size_t used_before = mem.pool->used_pages();
    const uint64_t region = mem.pool->alloc(4, 4).value;  // memory the model's DMA can land in
    const uint64_t limit = region + 4 * kPageSize - 1;
    {
        std::vector<uint8_t> table = dmar_with_rmrr(region, limit);
        acpi::Dmar dm;
        Why why;
        ASSERT_EQ(acpi::parse_dmar(table.data(), table.size(), dm, why), Status::ok) << why.text();
        ASSERT_EQ(dm.nrmrr, 1u);
        acpi::FirmwareDesc fd;
        fd.nram = 1;
        fd.ram[0] = {0x100000, 0x1fedf000};
        fd.necam = 1;
        fd.ecam[0] = acpi::McfgEntry{0xb0000000, 0, 0, 255};
        fd.pci_window_base = 0xe0000000;
        fd.pci_window_size = 0x1ec00000;
        fd.nunits = 1;
        fd.units[0] = acpi::IommuUnit{};
        fd.units[0].base = dm.drhd[0].base;
        fd.units[0].size = kPageSize;
        fd.units[0].compatible = kVtdCompatible;
        fd.units[0].all_devices = true;
        fd.units[0].address_width = dm.haw;
        EXPECT_EQ(acpi::add_rmrrs(dm, fd), 0u);
        ASSERT_EQ(fd.units[0].nrmrr, 1u);
        ASSERT_EQ(fd.nreserved, 1u) << "kept out of the pool as well";
        EXPECT_EQ(fd.reserved[0].base, region);
        EXPECT_EQ(fd.reserved[0].size, 4 * kPageSize);
        std::vector<uint8_t> blob(16384);
        ASSERT_EQ(acpi::build_tree(fd, blob.data(), blob.size(), why), Status::ok) << why.text();
        dt::Tree tree;
        ASSERT_EQ(tree.open(blob.data(), blob.size()), Status::ok);
        auto topo = std::make_unique<Topology>();
        dt_test::StrSink report;
        ASSERT_EQ(discover(tree, *topo, report), Status::ok) << report.text;
        FaultLog log;
        IommuSet set;
        ProbeEnv e{tree, *topo, mem.pool.get(), 46, nullptr, &log, report, nullptr};
        EXPECT_EQ(set.probe_all(e), 0u) << report.text;
        auto* v = static_cast<Vtd*>(set.at_node(tree.find_path("/iommu@fed90000")));
        ASSERT_NE(v, nullptr) << report.text;
        Iommu::ReservedRegion rr[4];
        ASSERT_EQ(v->reserved_regions(kEdu, rr, 4), 1u);
        EXPECT_EQ(rr[0].base, region);
        EXPECT_EQ(rr[0].size, 4 * kPageSize);
        EXPECT_EQ(v->reserved_regions(kOther, rr, 4), 0u);

        Result<iopt::Format> f = v->domain_format(DomainUse::dma, 39);
        ASSERT_TRUE(f.ok());
        IoDomain d(*mem.pool, f.value), other(*mem.pool, f.value);
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_EQ(other.init(), Status::ok);
        EXPECT_FALSE(d.lookup(region).ok()) << "a fresh domain has nothing";
        ASSERT_EQ(d.attach(*v, kEdu), Status::ok) << d.why();
        ASSERT_EQ(other.attach(*v, kOther), Status::ok) << other.why();
        for (uint64_t off = 0; off < 4 * kPageSize; off += kPageSize) {
            Result<iopt::Translation> t = d.lookup(region + off);
            ASSERT_TRUE(t.ok());
            EXPECT_EQ(t.value.pa, region + off) << "1:1";
        }
        EXPECT_FALSE(d.lookup(limit + 1).ok()) << "nothing beyond the region";
        EXPECT_FALSE(other.lookup(region).ok()) << "the device without an RMRR gets nothing extra";
        uint8_t b[16];
        memset(b, 0x42, sizeof b);
        VtdModel::Dma w = m.dma_write(kEdu, region + 3 * kPageSize + 0x20, b, sizeof b);
        ASSERT_TRUE(w.ok);
        EXPECT_EQ(w.pa, region + 3 * kPageSize + 0x20) << "the model's walk: identity";
        EXPECT_EQ(static_cast<uint8_t*>(mem.pool->virt(region))[3 * kPageSize + 0x20], 0x42);
        EXPECT_FALSE(m.dma_write(kOther, region, b, sizeof b).ok) << "not the other device's";
        // Detach takes the region with it: the domain is as it was, and attaching again maps it again.
        ASSERT_EQ(d.detach(*v, kEdu), Status::ok);
        EXPECT_FALSE(d.lookup(region).ok());
        ASSERT_EQ(d.attach(*v, kEdu), Status::ok) << d.why();
        EXPECT_TRUE(m.dma_write(kEdu, region, b, sizeof b).ok);
        EXPECT_EQ(d.destroy(), Status::ok);
        EXPECT_EQ(other.destroy(), Status::ok);
        set.release_all();
    }
    EXPECT_EQ(mem.pool->free(region, 4), Status::ok);
    EXPECT_EQ(mem.pool->used_pages(), used_before) << "every pool page back";
    mmio::detach(&m);
    for (const std::string& s : m.violations()) ADD_FAILURE() << "model: " << s;
}

// A `moat,rmrr` the driver cannot use refuses the unit, naming the property and the entry.
TEST(Vtd, MalformedRmrrPropertyRefusesTheUnit) {
    model::HostPool mem(256);
    model::PoolPhysMem phys(*mem.pool);
    VtdModel m(phys, {});
    ASSERT_TRUE(mmio::attach(kBase, VtdModel::kRegSize, &m));
    {
        acpi::FirmwareDesc fd;
        fd.nram = 1;
        fd.ram[0] = {0x100000, 0x1fedf000};
        fd.nunits = 1;
        fd.units[0] = acpi::IommuUnit{};
        fd.units[0].base = kBase;
        fd.units[0].size = kPageSize;
        fd.units[0].compatible = kVtdCompatible;
        fd.units[0].nrmrr = 1;
        fd.units[0].rmrr[0] = {0x7d000800, 0x7d000fff, kEdu};  // not page aligned
        std::vector<uint8_t> blob(16384);
        Why why;
        ASSERT_EQ(acpi::build_tree(fd, blob.data(), blob.size(), why), Status::ok) << why.text();
        dt::Tree tree;
        ASSERT_EQ(tree.open(blob.data(), blob.size()), Status::ok);
        auto topo = std::make_unique<Topology>();
        dt_test::StrSink report;
        ASSERT_EQ(discover(tree, *topo, report), Status::ok) << report.text;
        FaultLog log;
        IommuSet set;
        ProbeEnv e{tree, *topo, mem.pool.get(), 46, nullptr, &log, report, nullptr};
        EXPECT_EQ(set.probe_all(e), 1u);
        EXPECT_EQ(set.at_node(tree.find_path("/iommu@fed90000")), nullptr);
        EXPECT_NE(report.text.find("moat,rmrr entry 0 [0x7d000800, 0x7d000fff] for requester 0x10 is not a page-aligned range"),
                  std::string::npos)
            << report.text;
        set.release_all();
    }
    mmio::detach(&m);
}

// A domain that already maps something inside the device's RMRR cannot take the device: the
// attach is refused naming the stream, the region and where it collides; nothing of the attempt
// stays (the region is not mapped, the device stays blocked, the earlier mapping is untouched).
TEST(Vtd, RmrrCollidingWithADomainsMappingRefusesTheAttach) {
    Rig r;
    const uint64_t region = r.buffer(2), elsewhere = r.buffer();
    ASSERT_EQ(r.probe(true, true, {{region, region + 2 * kPageSize - 1, kEdu}}), Status::ok);
    {
        IoDomain d(r.pool(), r.format());
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_TRUE(d.map(region + kPageSize, elsewhere, kPageSize, iopt::Prot{}).ok());
        EXPECT_EQ(d.attach(r.vtd, kEdu), Status::in_use);
        char want[160];
        snprintf(want, sizeof want, "stream 0x10 of dmar-model: reserved region [0x%lx, 0x%lx] collides with the domain's mapping at 0x%lx",
                 static_cast<unsigned long>(region), static_cast<unsigned long>(region + 2 * kPageSize - 1),
                 static_cast<unsigned long>(region + kPageSize));
        EXPECT_NE(strstr(d.why(), want), nullptr) << d.why();
        EXPECT_FALSE(d.attached(r.vtd, kEdu));
        EXPECT_EQ(IoDomain::owner(r.vtd, kEdu), nullptr) << "the stream is free for another domain";
        EXPECT_FALSE(d.lookup(region).ok()) << "the part mapped before the collision went again";
        Result<iopt::Translation> t = d.lookup(region + kPageSize);
        ASSERT_TRUE(t.ok());
        EXPECT_EQ(t.value.pa, elsewhere) << "the domain's own mapping is untouched";
        EXPECT_FALSE(r.poke(kEdu, region).ok) << "still blocked";
        std::vector<FaultRecord> fs = r.faults();
        ASSERT_EQ(fs.size(), 1u);
        EXPECT_EQ(fs[0].kind, FaultKind::stream_disabled);
        // A fresh domain takes it.
        IoDomain fresh(r.pool(), r.format());
        ASSERT_EQ(fresh.init(), Status::ok);
        ASSERT_EQ(fresh.attach(r.vtd, kEdu), Status::ok) << fresh.why();
        EXPECT_EQ(fresh.why()[0], '\0');
        EXPECT_TRUE(r.poke(kEdu, region + kPageSize).ok);
        EXPECT_EQ(fresh.destroy(), Status::ok);
        EXPECT_EQ(d.destroy(), Status::ok);
    }
    EXPECT_EQ(r.pool().free(region, 2), Status::ok);
    EXPECT_EQ(r.pool().free(elsewhere, 1), Status::ok);
    EXPECT_EQ(r.pool().used_pages(), r.pool_before + r.vtd.stats().pages) << "only the unit's own tables are out";
    r.vtd.shutdown();
    EXPECT_EQ(r.pool().used_pages(), r.pool_before) << "every pool page back";
}

// Two devices whose RMRRs name the same region share one identity mapping in a shared domain:
// detaching one leaves it for the other; detaching the last removes it. A region beyond the
// domain's input size refuses the attach too, naming it.
TEST(Vtd, SharedRmrrStaysWhileAnyDeviceOfTheDomainNeedsIt) {
    Rig r;
    const uint64_t region = r.buffer();
    const uint64_t high = uint64_t{1} << 33;
    ASSERT_EQ(r.probe(true, true, {{region, region + kPageSize - 1, kEdu}, {region, region + kPageSize - 1, kOther},
                                   {high, high + kPageSize - 1, 0x0020}}),
              Status::ok);
    {
        IoDomain d(r.pool(), r.format());
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok) << d.why();
        ASSERT_EQ(d.attach(r.vtd, kOther), Status::ok) << d.why();
        ASSERT_EQ(d.detach(r.vtd, kEdu), Status::ok);
        EXPECT_TRUE(d.lookup(region).ok()) << "00:03.0 still needs it";
        EXPECT_TRUE(r.poke(kOther, region).ok);
        ASSERT_EQ(d.detach(r.vtd, kOther), Status::ok);
        EXPECT_FALSE(d.lookup(region).ok()) << "the last user went";
        IoDomain small(r.pool(), r.format(32));
        ASSERT_EQ(small.init(), Status::ok);
        EXPECT_NE(small.attach(r.vtd, 0x0020), Status::ok);
        EXPECT_NE(strstr(small.why(), "stream 0x20 of dmar-model: reserved region [0x200000000, 0x200000fff] could not be mapped 1:1"),
                  nullptr)
            << small.why();
        EXPECT_FALSE(small.attached(r.vtd, 0x0020));
        EXPECT_EQ(small.destroy(), Status::ok);
        EXPECT_EQ(d.destroy(), Status::ok);
    }
    EXPECT_EQ(r.pool().free(region, 1), Status::ok);
    EXPECT_EQ(r.pool().used_pages(), r.pool_before + r.vtd.stats().pages);
    r.vtd.shutdown();
    EXPECT_EQ(r.pool().used_pages(), r.pool_before);
}

TEST(Vtd, RefusedDescriptorIsRecoveredFrom) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    const uint64_t buf = r.buffer();
    IoDomain d(r.pool(), r.format());
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_TRUE(d.map(0x1000000, buf, kPageSize, iopt::Prot{}).ok());
    ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
    EXPECT_TRUE(r.poke(kEdu, 0x1000000).ok);
    r.model.refuse_next_descriptor();
    EXPECT_EQ(d.unmap(0x1000000, kPageSize).status, Status::hw_error);
    EXPECT_EQ(r.vtd.queue_errors(), 1u);
    EXPECT_EQ(r.model.fsts() & (1u << 4), 0u) << "IQE acknowledged";
    // The queue works again: the next invalidation goes through and DMA then faults.
    ASSERT_TRUE(d.map(0x2000000, buf, kPageSize, iopt::Prot{}).ok());
    ASSERT_TRUE(d.unmap(0x2000000, kPageSize).ok());
    EXPECT_EQ(d.destroy(), Status::ok);
    (void)r.pool().free(buf, 1);
}

TEST(Vtd, UnconfirmedDetachQuarantines) {
    // The quarantine is for the life of the system, keyed by the instance: a requester id no
    // other test uses, so later rigs (which may reuse the address) start clean.
    constexpr uint16_t kLost = 0x0f08;
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    const uint64_t buf = r.buffer();
    const IoDomain::Quarantine q0 = IoDomain::quarantine();
    {
        IoDomain d(r.pool(), r.format());
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_TRUE(d.map(0x1000000, buf, kPageSize, iopt::Prot{}).ok());
        ASSERT_EQ(d.attach(r.vtd, kLost), Status::ok);
        r.model.stall_queue(true);
        EXPECT_EQ(d.destroy(), Status::timeout) << "the wait descriptor never completed: bounded, reported";
    }
    const IoDomain::Quarantine q1 = IoDomain::quarantine();
    EXPECT_EQ(q1.domains - q0.domains, 1u);
    EXPECT_GE(q1.pages - q0.pages, 1u) << "its tables are kept out of the pool";
    EXPECT_TRUE(IoDomain::stream_quarantined(r.vtd, kLost));
    r.model.stall_queue(false);
    IoDomain again(r.pool(), r.format());
    ASSERT_EQ(again.init(), Status::ok);
    EXPECT_NE(again.attach(r.vtd, kLost), Status::ok) << "the stream stays blocked for good";
    EXPECT_EQ(again.destroy(), Status::ok);
}

TEST(Vtd, QueueWrapsAroundManyTimes) {
    Rig r;
    ASSERT_EQ(r.probe(), Status::ok);
    const uint64_t buf = r.buffer();
    IoDomain d(r.pool(), r.format());
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
    for (unsigned i = 0; i < 300; i++) {
        ASSERT_TRUE(d.map(0x1000000, buf, kPageSize, iopt::Prot{}).ok()) << i;
        ASSERT_TRUE(r.poke(kEdu, 0x1000000, static_cast<uint8_t>(i)).ok) << i;
        ASSERT_TRUE(d.unmap(0x1000000, kPageSize).ok()) << i;
        ASSERT_FALSE(r.poke(kEdu, 0x1000000).ok) << i;
        r.faults();
    }
    EXPECT_GE(r.model.counts().queued, 600u) << "more descriptors than the 256-entry queue holds";
    EXPECT_EQ(d.destroy(), Status::ok);
    (void)r.pool().free(buf, 1);
}

TEST(Vtd, BeyondTheAddressWidthAndWriteBufferFlush) {
    VtdModel::Features f;
    f.rwbf = true;
    Rig r(f);
    ASSERT_EQ(r.probe(), Status::ok);
    IoDomain d(r.pool(), r.format());
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
    EXPECT_GT(r.model.counts().wbf, 0u) << "CAP.RWBF: write buffers flushed after the context entry";
    EXPECT_EQ(r.poke(kEdu, uint64_t{1} << 39).reason, fr::kBeyondMgaw);
    std::vector<FaultRecord> v = r.faults();
    ASSERT_EQ(v.size(), 1u);
    expect_fault(v[0], FaultKind::address_size, kEdu, uint64_t{1} << 39, true, fr::kBeyondMgaw);
    EXPECT_EQ(r.vtd.domain_format(DomainUse::guest_p2m, 39).status, Status::unsupported) << "no EPT sharing here";
    uint32_t cell = 0x10000;
    StreamId sid;
    Why why;
    EXPECT_EQ(r.vtd.xlate(&cell, 1, sid, why), Status::out_of_range);
    EXPECT_EQ(d.destroy(), Status::ok);
}

// ---------------------------------------------------------------- through the registry

TEST(Vtd, ProbedFromTheBootTreeThroughTheRegistry) {
    model::HostPool mem(1024);
    model::PoolPhysMem phys(*mem.pool);
    VtdModel m0(phys, {}), m1(phys, {});
    ASSERT_TRUE(mmio::attach(kBase, VtdModel::kRegSize, &m0));
    ASSERT_TRUE(mmio::attach(kBase + 0x1000, VtdModel::kRegSize, &m1));
    {
        dt_test::Loaded dt("q35_vtd");
        FaultLog log;
        dt_test::StrSink report;
        IommuSet set;
        ProbeEnv e{dt.tree, *dt.topo, mem.pool.get(), 46, nullptr, &log, report, nullptr};
        EXPECT_EQ(set.probe_all(e), 1u) << "the unit with a malformed width is refused";
        auto* v = static_cast<Vtd*>(set.at_node(dt.node("/iommu@fed90000")));
        ASSERT_NE(v, nullptr) << report.text;
        EXPECT_EQ(set.at_node(dt.node("/iommu@fed91000")), nullptr);
        EXPECT_NE(report.text.find("moat,host-address-width is not a width"), std::string::npos) << report.text;
        EXPECT_EQ(v->caps().oas, 36u) << "39-bit host address width, rounded down to a size the engine names";
        // edu at 00:02.0 through the host bridge's iommu-map: requester id 0x10 is stream 0x10.
        int bridge = dt.topo->master_index(dt.node("/pcie@b0000000"));
        ASSERT_GE(bridge, 0);
        Iommu* out = nullptr;
        StreamId sid = 0;
        Why why;
        ASSERT_EQ(set.stream_of_rid(dt.tree, dt.topo->masters[bridge], kEdu, out, sid, why), Status::ok) << why.text();
        EXPECT_EQ(out, v);
        EXPECT_EQ(sid, kEdu);
        const uint64_t buf = mem.pool->alloc().value;
        Result<iopt::Format> f = v->domain_format(DomainUse::dma, 39);
        ASSERT_TRUE(f.ok());
        IoDomain d(*mem.pool, f.value);
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_TRUE(d.map(0x4000, buf, kPageSize, iopt::Prot{}).ok());
        ASSERT_EQ(d.attach(*v, sid), Status::ok);
        uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        EXPECT_TRUE(m0.dma_write(kEdu, 0x4000, b, sizeof b).ok);
        EXPECT_EQ(memcmp(mem.pool->virt(buf), b, sizeof b), 0);
        EXPECT_EQ(d.destroy(), Status::ok);
        set.release_all();
    }
    mmio::detach(&m0);
    mmio::detach(&m1);
    for (const std::string& s : m0.violations()) ADD_FAILURE() << "model: " << s;
}

// ---------------------------------------------------------------- random sequences

// Random maps (with superpages where alignment allows) and unmaps (often cutting superpages),
// through IoDomain with the driver attached, against a reference of which page maps where; after
// every operation the model's own walk (through its caches) must agree with the reference at
// sampled addresses: a stale IOTLB entry, a wrong split or a lost leaf shows as a disagreement.
TEST(Vtd, RandomSequencesAgreeWithTheModelsWalk) {
    VtdModel::Features f;
    f.tlb_entries = 256;
    Rig r(f, 4096);
    ASSERT_EQ(r.probe(), Status::ok);
    std::mt19937_64 rng(0x7d7d);
    constexpr uint64_t kWindow = 64 * MiB, kPhys = model::HostPool::kPhysBase, kPhysSpan = 16 * MiB;
    unsigned superpages = 0, cuts = 0;
    for (unsigned seq = 0; seq < 12; seq++) {
        IoDomain d(r.pool(), r.format());
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_EQ(d.attach(r.vtd, kEdu), Status::ok);
        std::map<uint64_t, uint64_t> ref;  // IOVA page -> PA page
        struct Extent { uint64_t iova, size; };
        std::vector<Extent> extents;
        for (unsigned op = 0; op < 40; op++) {
            if (extents.empty() || rng() % 100 < 55) {
                const uint64_t align = rng() % 3 == 0 ? 2 * MiB : kPageSize;
                const uint64_t size = align * (1 + rng() % (align == kPageSize ? 64 : 2));
                const uint64_t iova = align_down(rng() % (kWindow - size), align);
                const uint64_t pa = kPhys + align_down(rng() % (kPhysSpan - size), align);
                bool free = true;
                for (uint64_t a = iova; a < iova + size && free; a += kPageSize) free = !ref.count(a);
                if (!free) continue;
                Progress p = d.map(iova, pa, size, iopt::Prot{});
                ASSERT_TRUE(p.ok()) << "map " << iova << " " << size << ": " << to_string(p.status);
                for (uint64_t a = 0; a < size; a += kPageSize) ref[iova + a] = pa + a;
                extents.push_back({iova, size});
                Result<iopt::Translation> t = d.lookup(iova);
                superpages += t.ok() && t.value.size == 2 * MiB;
            } else {
                const size_t k = rng() % extents.size();
                Extent e = extents[k];
                const uint64_t pages = e.size / kPageSize;
                const uint64_t first = rng() % pages, count = 1 + rng() % (pages - first);
                const uint64_t iova = e.iova + first * kPageSize, size = count * kPageSize;
 Result<iopt::Translation> t = d.lookup(iova);
                cuts += t.ok() && t.value.size > size;
                Progress p = d.unmap(iova, size);
                ASSERT_TRUE(p.ok()) << "unmap " << iova << " " << size << ": " << to_string(p.status);
                for (uint64_t a = 0; a < size; a += kPageSize) ref.erase(iova + a);
                extents.erase(extents.begin() + static_cast<long>(k));
                if (first) extents.push_back({e.iova, first * kPageSize});
                if (first + count < pages) extents.push_back({iova + size, (pages - first - count) * kPageSize});
            }
            for (unsigned probe = 0; probe < 48; probe++) {
                uint64_t at;
                if (!ref.empty() && probe % 2) {
                    auto it = ref.begin();
                    std::advance(it, static_cast<long>(rng() % ref.size()));
                    at = it->first;
                } else {
                    at = align_down(rng() % kWindow, kPageSize);
                }
                const uint64_t off = (rng() % 512) * 8;
                uint8_t b[8];
                VtdModel::Dma x = r.model.dma_read(kEdu, at + off, b, sizeof b);
                auto it = ref.find(at);
                if (it == ref.end()) {
                    ASSERT_FALSE(x.ok) << "seq " << seq << " op " << op << ": 0x" << std::hex << at << " reachable after unmap";
                } else {
                    ASSERT_TRUE(x.ok) << "seq " << seq << " op " << op << ": 0x" << std::hex << at << " faulted, reason " << unsigned{x.reason};
                    ASSERT_EQ(x.pa, it->second + off) << "seq " << seq << " op " << op << ": 0x" << std::hex << at;
                }
            }
            r.faults();
        }
        EXPECT_EQ(d.destroy(), Status::ok);
    }
    EXPECT_GT(r.model.tlb_hits(), 0u) << "the IOTLB was exercised";
    EXPECT_GT(superpages, 10u) << "2 MiB superpages were written";
    EXPECT_GT(cuts, 5u) << "and cut by partial unmaps";
}

}  // namespace
