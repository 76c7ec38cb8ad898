// IoDomain: one address space, its attached streams, and the flush after every change.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "common/io_domain.hpp"
#include "common/iopt/geometry.hpp"
#include "tests/models/host_pool.hpp"

using namespace moat;

namespace {

class FakeIommu final : public Iommu {
public:
    const char* name() const override { return "fake"; }
    const IommuCaps& caps() const override { return caps_; }
    const char* why() const override { return ""; }
    void describe(Sink&) const override {}
    Status xlate(const uint32_t* a, unsigned, StreamId& out, Why&) const override { return out = a[0], Status::ok; }
    IommuStats stats() const override { return stats_; }
    Status attach(IoDomain&, StreamId) override { return attach_result; }
    Status detach(IoDomain&, StreamId) override { return detaches++, detach_result; }
    Result<iopt::Format> domain_format(DomainUse, unsigned ias) const override { return iopt::vmsa_s1(ias, 44, true); }
    // Every flush is recorded; `fail_on` (1-based, 0: never) picks the one that fails with flush_result.
    Status flush(IoDomain&, const iopt::Gather& g) override {
        stats_.commands++;
        ranges.push_back({g.range_count() ? g.range(0).iova : 0, g.range_count() ? g.range(0).size : 0});
        if (fail_on == 0 || stats_.commands == fail_on) return flush_result;
        return Status::ok;
    }
    unsigned poll_faults(FaultLog&) override { return 0; }
    Status flush_result = Status::ok;
    Status attach_result = Status::ok;
    Status detach_result = Status::ok;  // anything else: the hardware did not confirm the detach
    unsigned detaches = 0;
    uint64_t fail_on = 0;
    struct Range { uint64_t iova, size; };
    std::vector<Range> ranges;
private:
    IommuCaps caps_{true, true, 48, 44, true, true, 0xffff};
    IommuStats stats_;
};

// A domain of format f with streams 1 and 2 of one IOMMU attached (torn down in that order).
struct TwoStreams {
    model::HostPool host{256};
    FakeIommu a;
    IoDomain d;
    explicit TwoStreams(const iopt::Format& f) : d(*host.pool, f) {
        EXPECT_EQ(d.init(), Status::ok);
        EXPECT_EQ(d.attach(a, 1), Status::ok);
        EXPECT_EQ(d.attach(a, 2), Status::ok);
    }
};

TEST(IoDomain, AStreamBelongsToOneDomainOnly) {
    model::HostPool host(256);
    FakeIommu a, b;
    IoDomain d1(*host.pool, iopt::vmsa_s1(39, 40, true)), d2(*host.pool, iopt::vmsa_s1(39, 40, true));
    ASSERT_EQ(d1.init(), Status::ok);
    ASSERT_EQ(d2.init(), Status::ok);
    EXPECT_NE(d1.tag(), d2.tag());
    EXPECT_EQ(d1.attach(a, 5), Status::ok);
    EXPECT_EQ(d2.attach(a, 5), Status::in_use);
    EXPECT_EQ(d2.attach(b, 5), Status::ok);  // the same id on another IOMMU is another stream
    EXPECT_EQ(IoDomain::owner(a, 5), &d1);
    EXPECT_EQ(d1.detach(a, 5), Status::ok);
    EXPECT_EQ(d2.attach(a, 5), Status::ok);
    b.attach_result = Status::no_space;
    EXPECT_EQ(d1.attach(b, 9), Status::no_space);
    EXPECT_EQ(IoDomain::owner(b, 9), nullptr);  // a refused attach claims nothing
}

TEST(IoDomain, OneFlushPerCallAndNoneForAMap) {
    TwoStreams r(iopt::vmsa_s1(39, 40, true));
    IoDomain& d = r.d;
    FakeIommu& a = r.a;
    ASSERT_TRUE(d.map(0x100000, 0x80000000, 64 * kPageSize, iopt::Prot{}).ok());
    EXPECT_EQ(a.stats().commands, 0u);
    ASSERT_TRUE(d.unmap(0x100000, 64 * kPageSize).ok());
    EXPECT_EQ(a.stats().commands, 1u);  // two streams, one IOMMU: one flush
}

TEST(IoDomain, TablesAreNotFreedWhenTheFlushFailed) {
    model::HostPool host(256);
    FakeIommu a;
    IoDomain d(*host.pool, iopt::vmsa_s1(39, 40, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(a, 1), Status::ok);
    size_t before = host.pool->used_pages();
    // A full leaf table: unmapping its whole span unlinks it (a lone page's table would be parked).
    ASSERT_TRUE(d.map(0x200000, 0x80000000, 2 * MiB, iopt::Prot{}, kPageSize).ok());
    size_t with_tables = host.pool->used_pages();
    EXPECT_GT(with_tables, before);
    a.flush_result = Status::timeout;
    Progress p = d.unmap(0x200000, 2 * MiB);
    EXPECT_EQ(p.status, Status::timeout);
    EXPECT_EQ(p.bytes_done, 2 * MiB);
    EXPECT_GT(d.quarantined_pages(), 0u);
    EXPECT_EQ(host.pool->used_pages(), with_tables);  // a walker may still read them: kept out
}

TEST(IoDomain, DestroyDetachesAndGivesTablesBack) {
    model::HostPool host(256);
    FakeIommu a;
    size_t before = host.pool->used_pages();
    {
        IoDomain d(*host.pool, iopt::vmsa_s2(40, 40, true));
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_EQ(iopt::vmsa_geometry(d.format()).root_tables, 2u);
        ASSERT_EQ(d.attach(a, 3), Status::ok);
        ASSERT_TRUE(d.map(0x40000000, 0x80000000, 2 * MiB, iopt::Prot{}).ok());
        ASSERT_EQ(d.destroy(), Status::ok);
        EXPECT_EQ(d.attached_count(), 0u);
        EXPECT_EQ(IoDomain::owner(a, 3), nullptr);
        EXPECT_EQ(d.map(0, 0x80000000, kPageSize, iopt::Prot{}).status, Status::invalid_argument);
    }
    EXPECT_EQ(host.pool->used_pages(), before);
}

// A partial unmap of a 2 MiB block splits it: the break-before-make invalidation goes through
// Iommu::flush like the end-of-call one, once per IOMMU however many of its streams are attached.
TEST(IoDomain, BreakBeforeMakeFlushesEachIommuOnce) {
    FakeIommu b;
    TwoStreams r(iopt::vmsa_s2(40, 40, true));
    IoDomain& d = r.d;
    FakeIommu& a = r.a;
    ASSERT_EQ(d.attach(b, 1), Status::ok);
    ASSERT_TRUE(d.map(0x200000, 0x80200000, 2 * MiB, iopt::Prot{}).ok());
    ASSERT_EQ(d.lookup(0x200000).value.size, 2 * MiB);
    ASSERT_TRUE(d.unmap(0x200000, kPageSize).ok());
    // The block (immediate), then the page that went (end of call): two flushes each, not four.
    ASSERT_EQ(a.stats().commands, 2u);
    EXPECT_EQ(b.stats().commands, 2u);
    EXPECT_EQ(a.ranges[0].iova, 0x200000u);
    EXPECT_EQ(a.ranges[0].size, 2 * MiB);
    EXPECT_EQ(d.flushes(), 4u);
    EXPECT_EQ(d.lookup(0x201000).value.pa, 0x80201000u);
}

// A break-before-make invalidation that fails stops the unmap with its status: the block stays
// broken (never re-made without an invalidation), the pages the call unlinked stay out of the pool,
// and the end-of-call flush still runs for what was done.
TEST(IoDomain, AFailedBreakBeforeMakeReachesTheCaller) {
    TwoStreams r(iopt::vmsa_s2(40, 40, true));
    IoDomain& d = r.d;
    FakeIommu& a = r.a;
    PagePool& pool = *r.host.pool;
    ASSERT_TRUE(d.map(0x100000, 0x80100000, kPageSize, iopt::Prot{}).ok());  // its own leaf table
    ASSERT_TRUE(d.map(0x200000, 0x80200000, 2 * MiB, iopt::Prot{}).ok());   // a block beside it
    const size_t before = pool.used_pages();
    a.flush_result = Status::timeout;
    a.fail_on = 2;  // the page's flush-free unmap is #1 below; the split's invalidation is #2
    // Unmapping the page empties its leaf table (parked: still linked); then cutting into the
    // block needs an immediate invalidation, which times out.
    ASSERT_TRUE(d.unmap(0x100000, kPageSize).ok());
    // Flushed fine: nothing freed, nothing quarantined.
    EXPECT_EQ(pool.used_pages(), before);
    EXPECT_EQ(d.quarantined_pages(), 0u);
    Progress p = d.unmap(0x200000, kPageSize);
    EXPECT_EQ(p.status, Status::timeout);
    EXPECT_EQ(p.bytes_done, 0u);
    EXPECT_EQ(a.stats().commands, 3u);  // #2 failed (once for both streams), then the end-of-call flush
    EXPECT_EQ(d.lookup(0x201000).status, Status::not_found);  // left broken, not re-made
    EXPECT_EQ(pool.used_pages(), before);  // the remainder (a new table) was never linked: it went back
}

// Pages a call unlinked before its break-before-make failed are quarantined, not released, even
// though the end-of-call flush succeeded.
TEST(IoDomain, PagesUnlinkedBeforeAFailedBreakBeforeMakeAreQuarantined) {
    TwoStreams r(iopt::vmsa_s2(40, 40, true));
    IoDomain& d = r.d;
    FakeIommu& a = r.a;
    PagePool& pool = *r.host.pool;
    ASSERT_TRUE(d.map(0x1ff000, 0x801ff000, kPageSize, iopt::Prot{}).ok());  // alone in a leaf table
    ASSERT_TRUE(d.map(0x200000, 0x80200000, 2 * MiB, iopt::Prot{}).ok());   // the next 2 MiB: a block
    const size_t before = pool.used_pages();
    a.flush_result = Status::timeout;
    a.fail_on = 1;  // the first flush of the call: the split's
    Progress p = d.unmap(0x1ff000, 2 * kPageSize);  // the page (its table empties), then into the block
    EXPECT_EQ(p.status, Status::timeout);
    EXPECT_EQ(p.bytes_done, kPageSize);
    EXPECT_EQ(a.stats().commands, 2u);  // the failed split, then the end-of-call flush (which succeeds)
    EXPECT_EQ(d.quarantined_pages(), 2u);  // the emptied leaf table, and the level-2 table the broken block left empty
    EXPECT_EQ(pool.used_pages(), before);  // nothing released to the pool
    EXPECT_EQ(d.lookup(0x1ff000).status, Status::not_found);
    EXPECT_EQ(d.lookup(0x200000).status, Status::not_found);  // the block: broken
}

// ---------------------------------------------------------------- stream ownership and the IOMMU's lifetime

// A domain whose detach of `sid` from `iommu` the hardware does not confirm: the stream ends
// quarantined.
void quarantine_stream(PagePool& pool, FakeIommu& iommu, StreamId sid) {
    IoDomain d(pool, iopt::vmsa_s1(39, 40, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(iommu, sid), Status::ok);
    iommu.detach_result = Status::timeout;
    EXPECT_EQ(d.destroy(), Status::timeout);
    iommu.detach_result = Status::ok;
    ASSERT_TRUE(IoDomain::stream_quarantined(iommu, sid));
}

// The image releases an instance and probes the next in the same Instances slot; tests build
// rigs on the same stack address. The quarantine belongs to the instance, not to its address.
TEST(IoDomain, AnIommuBuiltWhereAReleasedOneWasInheritsNoQuarantine) {
    model::HostPool host(256);
    alignas(FakeIommu) static unsigned char storage[sizeof(FakeIommu)];
    auto* a = new (storage) FakeIommu;
    quarantine_stream(*host.pool, *a, 7);
    EXPECT_EQ(IoDomain::owner(*a, 7), nullptr);
    const uint64_t held = IoDomain::quarantine().streams;
    a->~FakeIommu();

    auto* b = new (storage) FakeIommu;
    ASSERT_EQ(static_cast<void*>(b), static_cast<void*>(storage));
    EXPECT_FALSE(IoDomain::stream_quarantined(*b, 7));
    IoDomain d(*host.pool, iopt::vmsa_s1(39, 40, true));
    ASSERT_EQ(d.init(), Status::ok);
    EXPECT_EQ(d.attach(*b, 7), Status::ok);
    EXPECT_EQ(IoDomain::owner(*b, 7), &d);
    EXPECT_EQ(IoDomain::quarantine().streams, held);  // the count since boot stays: it happened
    EXPECT_EQ(d.destroy(), Status::ok);
    EXPECT_EQ(b->detaches, 1u);
    b->~FakeIommu();
}

TEST(IoDomain, AQuarantinedStreamStaysBlockedWhileItsIommuLives) {
    model::HostPool host(256);
    FakeIommu a;
    quarantine_stream(*host.pool, a, 4);
    for (int round = 0; round < 3; round++) {  // domain after domain, each in the same storage
        IoDomain d(*host.pool, iopt::vmsa_s1(39, 40, true));
        ASSERT_EQ(d.init(), Status::ok);
        EXPECT_EQ(d.attach(a, 4), Status::hw_error) << round;
        EXPECT_EQ(IoDomain::owner(a, 4), nullptr) << round;
        EXPECT_EQ(d.attach(a, 5), Status::ok) << round;  // the next stream is nobody's business
        EXPECT_EQ(d.destroy(), Status::ok) << round;
        EXPECT_TRUE(IoDomain::stream_quarantined(a, 4)) << round;
    }
    FakeIommu other;  // the same id on another live IOMMU is another stream
    EXPECT_FALSE(IoDomain::stream_quarantined(other, 4));
}

// The system's stream table full up: the attach that finds no free entry is refused, and it
// never takes the entry the quarantine holds (whose domain pointer is null like a free one's).
TEST(IoDomain, AFullStreamTableNeverReusesTheQuarantinesEntry) {
    model::HostPool host(256);
    FakeIommu a;
    quarantine_stream(*host.pool, a, 0x1000);
    std::vector<std::unique_ptr<IoDomain>> domains;
    bool full = false;
    for (StreamId sid = 0; sid < 1024 && !full; sid++) {
        if (domains.empty() || domains.back()->attached_count() == IoDomain::kMaxAttached) {
            domains.push_back(std::make_unique<IoDomain>(*host.pool, iopt::vmsa_s1(39, 40, true)));
            ASSERT_EQ(domains.back()->init(), Status::ok);
        }
        Status st = domains.back()->attach(a, sid);
        if (st == Status::no_space) full = true;
        else ASSERT_EQ(st, Status::ok) << sid;
    }
    ASSERT_TRUE(full) << "the system's stream table never filled";
    EXPECT_TRUE(IoDomain::stream_quarantined(a, 0x1000));
    EXPECT_EQ(domains[0]->attach(a, 0x1000), Status::hw_error);
}

// A domain still attached through an instance that is released forgets the attachment: it
// never flushes or detaches through that storage again, whoever lives there next.
TEST(IoDomain, ADomainForgetsAnIommuReleasedUnderIt) {
    model::HostPool host(256);
    alignas(FakeIommu) static unsigned char storage[sizeof(FakeIommu)];
    FakeIommu keep;
    auto* a = new (storage) FakeIommu;
    IoDomain d(*host.pool, iopt::vmsa_s1(39, 40, true));
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(*a, 3), Status::ok);
    ASSERT_EQ(d.attach(keep, 3), Status::ok);
    a->~FakeIommu();
    EXPECT_EQ(d.attached_count(), 1u);
    auto* b = new (storage) FakeIommu;
    EXPECT_FALSE(d.attached(*b, 3));
    EXPECT_EQ(IoDomain::owner(*b, 3), nullptr);
    ASSERT_TRUE(d.map(0x100000, 0x80000000, kPageSize, iopt::Prot{}).ok());
    ASSERT_TRUE(d.unmap(0x100000, kPageSize).ok());
    EXPECT_EQ(b->stats().commands, 0u);
    EXPECT_EQ(keep.stats().commands, 1u);
    EXPECT_EQ(d.destroy(), Status::ok);
    EXPECT_EQ(b->detaches, 0u);
    EXPECT_EQ(keep.detaches, 1u);
    b->~FakeIommu();
}

}  // namespace

namespace {

// Pool exhausted: a map that needs table pages first takes back what its own table holds linked
// but empty (a parked leaf table and its walk), flushing their span before they are reused, then
// goes on; teardown gives every page back, parked ones included.
TEST(IoDomain, MapShortOfPagesReclaimsParkedTablesFirst) {
    model::HostPool host(256);
    FakeIommu a;
    const size_t before = host.pool->used_pages();
    {
        IoDomain d(*host.pool, iopt::vmsa_s1(39, 40, true));
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_EQ(d.attach(a, 1), Status::ok);
        const uint64_t parked_at = 0x40000000 + 7 * kPageSize;  // its own level-2 and leaf table
        ASSERT_TRUE(d.map(parked_at, 0x80000000, kPageSize, iopt::Prot{}).ok());
        ASSERT_TRUE(d.unmap(parked_at, kPageSize).ok());
        EXPECT_EQ(d.reclaims(), 0u);
        // Everything else of the pool taken: the two pages the parked walk holds are all there is.
        std::vector<uint64_t> held;
        for (Result<uint64_t> r = host.pool->alloc(); r.ok(); r = host.pool->alloc()) held.push_back(r.value);
        a.ranges.clear();
        const uint64_t flushes = d.flushes();
        Progress p = d.map(0x1000, 0x90000000, 2 * kPageSize, iopt::Prot{});  // needs a level-2 and a leaf table
        EXPECT_TRUE(p.ok()) << to_string(p.status);
        EXPECT_EQ(p.bytes_done, 2 * kPageSize);
        EXPECT_EQ(d.reclaims(), 1u);
        EXPECT_EQ(d.lookup(0x1000 + kPageSize).value.pa, 0x90001000u);
        EXPECT_EQ(d.lookup(parked_at).status, Status::not_found);
        // The reclaim flushed the parked span before its pages went back (and could be reused).
        EXPECT_EQ(d.flushes(), flushes + 1);
        ASSERT_EQ(a.ranges.size(), 1u);
        EXPECT_EQ(a.ranges[0].iova, align_down(parked_at, uint64_t{2} << 20));
        // With nothing left to reclaim, a map that needs pages fails cleanly.
        p = d.map(0x80000000, 0x90000000, kPageSize, iopt::Prot{});
        EXPECT_EQ(p.status, Status::no_memory);
        EXPECT_EQ(p.bytes_done, 0u);
        EXPECT_EQ(d.reclaims(), 2u);
        for (uint64_t pa : held) EXPECT_EQ(host.pool->free(pa), Status::ok);
        ASSERT_TRUE(d.unmap(0x1000, 2 * kPageSize).ok());  // parks again
        EXPECT_GT(host.pool->used_pages(), before + 1);
        EXPECT_EQ(d.destroy(), Status::ok);
    }
    EXPECT_EQ(host.pool->used_pages(), before);
}

}  // namespace
