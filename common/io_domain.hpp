// One DMA address space: a page table (stage 1 or stage 2) and the (IOMMU, stream) pairs that
// use it. Every map or unmap ends with one flush per attached IOMMU for what the call changed.
// A stream is attached to at most one domain in the whole system: a second attach is refused.
#pragma once
#include "common/iommu.hpp"
#include "common/iopt/memory.hpp"
#include "common/iopt/page_table.hpp"

namespace moat {

class IoDomain {
public:
    static constexpr unsigned kMaxAttached = 16;
    static constexpr uint64_t kLargest = 0;

    // tag: a small id unique among live domains, usable as ASID/VMID by drivers (never 0).
    IoDomain(PagePool& pool, iopt::Stage stage, unsigned ias, unsigned oas, bool coherent_walk);
    ~IoDomain();
    IoDomain(const IoDomain&) = delete;
    IoDomain& operator=(const IoDomain&) = delete;

    // Allocates the root table and a tag. invalid_argument for a bad geometry, no_memory, no_space.
    Status init();
    // Detaches every stream (each to abort), releases every table page and the tag.
    Status destroy();

    Progress map(uint64_t iova, uint64_t pa, uint64_t size, const iopt::Prot& prot, uint64_t pgsize = kLargest);
    Progress unmap(uint64_t iova, uint64_t size);
    Result<iopt::Translation> lookup(uint64_t iova) const;

    Status attach(Iommu& iommu, StreamId sid);
    Status detach(Iommu& iommu, StreamId sid);
    bool attached(const Iommu& iommu, StreamId sid) const;
    unsigned attached_count() const { return nattached_; }

    iopt::Stage stage() const { return stage_; }
    const iopt::Geometry& geometry() const;
    uint64_t root_pa() const;
    uint16_t tag() const { return tag_; }
    bool coherent_walk() const { return coherent_; }
    // Flushes issued by map/unmap (one per attached IOMMU per call that changed something).
    uint64_t flushes() const { return flushes_; }
    // Table pages withheld from the pool because the flush that should have preceded their
    // release failed (a walker may still read them).
    uint64_t quarantined_pages() const { return quarantined_; }
    // Owner of a stream, or nullptr.
    static IoDomain* owner(const Iommu& iommu, StreamId sid);

private:
    using S1 = iopt::PageTable<iopt::Stage1, iopt::PoolMemory>;
    using S2 = iopt::PageTable<iopt::Stage2, iopt::PoolMemory>;
    static void invalidate_hook(void* ctx, uint64_t iova, uint64_t size, unsigned granule_shift);
    Status flush_all(iopt::Gather& g);

    iopt::Stage stage_;
    bool coherent_;
    iopt::PoolMemory mem_;
    alignas(8) unsigned char table_[sizeof(S1) > sizeof(S2) ? sizeof(S1) : sizeof(S2)];
    S1* s1_ = nullptr;
    S2* s2_ = nullptr;
    uint16_t tag_ = 0;
    unsigned nattached_ = 0;
    struct Attachment { Iommu* iommu; StreamId sid; };
    Attachment attached_[kMaxAttached] = {};
    uint64_t flushes_ = 0;
    uint64_t quarantined_ = 0;
};

}  // namespace moat
