// IoDomain: one address space, its attached streams, and the flush after every change.
#include <gtest/gtest.h>

#include "common/io_domain.hpp"
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
    Status detach(IoDomain&, StreamId) override { return Status::ok; }
    Status flush(IoDomain&, const iopt::Gather&) override {
        stats_.commands++;
        return flush_result;
    }
    Status invalidate_range(IoDomain&, uint64_t, uint64_t, unsigned) override { return flush_result; }
    unsigned poll_faults(FaultLog&) override { return 0; }
    Status flush_result = Status::ok;
    Status attach_result = Status::ok;
private:
    IommuCaps caps_{true, true, 48, 44, true, true, 0xffff};
    IommuStats stats_;
};

TEST(IoDomain, AStreamBelongsToOneDomainOnly) {
    model::HostPool host(256);
    FakeIommu a, b;
    IoDomain d1(*host.pool, iopt::Stage::s1, 39, 40, true), d2(*host.pool, iopt::Stage::s1, 39, 40, true);
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
    model::HostPool host(256);
    FakeIommu a;
    IoDomain d(*host.pool, iopt::Stage::s1, 39, 40, true);
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(a, 1), Status::ok);
    ASSERT_EQ(d.attach(a, 2), Status::ok);
    ASSERT_TRUE(d.map(0x100000, 0x80000000, 64 * kPageSize, iopt::Prot{}).ok());
    EXPECT_EQ(a.stats().commands, 0u);
    ASSERT_TRUE(d.unmap(0x100000, 64 * kPageSize).ok());
    EXPECT_EQ(a.stats().commands, 1u);  // two streams, one IOMMU: one flush
}

TEST(IoDomain, TablesAreNotFreedWhenTheFlushFailed) {
    model::HostPool host(256);
    FakeIommu a;
    IoDomain d(*host.pool, iopt::Stage::s1, 39, 40, true);
    ASSERT_EQ(d.init(), Status::ok);
    ASSERT_EQ(d.attach(a, 1), Status::ok);
    size_t before = host.pool->used_pages();
    ASSERT_TRUE(d.map(0x200000, 0x80000000, kPageSize, iopt::Prot{}).ok());
    size_t with_tables = host.pool->used_pages();
    EXPECT_GT(with_tables, before);
    a.flush_result = Status::timeout;
    Progress p = d.unmap(0x200000, kPageSize);
    EXPECT_EQ(p.status, Status::timeout);
    EXPECT_EQ(p.bytes_done, kPageSize);
    EXPECT_GT(d.quarantined_pages(), 0u);
    EXPECT_EQ(host.pool->used_pages(), with_tables);  // a walker may still read them: kept out
}

TEST(IoDomain, DestroyDetachesAndGivesTablesBack) {
    model::HostPool host(256);
    FakeIommu a;
    size_t before = host.pool->used_pages();
    {
        IoDomain d(*host.pool, iopt::Stage::s2, 40, 40, true);
        ASSERT_EQ(d.init(), Status::ok);
        ASSERT_EQ(d.geometry().root_tables, 2u);
        ASSERT_EQ(d.attach(a, 3), Status::ok);
        ASSERT_TRUE(d.map(0x40000000, 0x80000000, 2 * MiB, iopt::Prot{}).ok());
        ASSERT_EQ(d.destroy(), Status::ok);
        EXPECT_EQ(d.attached_count(), 0u);
        EXPECT_EQ(IoDomain::owner(a, 3), nullptr);
        EXPECT_EQ(d.map(0, 0x80000000, kPageSize, iopt::Prot{}).status, Status::invalid_argument);
    }
    EXPECT_EQ(host.pool->used_pages(), before);
}

}  // namespace
