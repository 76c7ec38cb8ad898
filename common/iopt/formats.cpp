// The formats the table seam can build, and the VMSAv8-64 adapter over the PageTable template.
// Adding a format (VT-d second level, EPT): its engine, one adapter like VmsaTable, one kEngines
// entry. Nothing above the seam changes.
#include <new>

#include "common/iopt/memory.hpp"
#include "common/iopt/page_table.hpp"
#include "common/iopt/table.hpp"
#include "common/iopt/vtd_sl.hpp"

namespace moat::iopt {

namespace {

// One VMSA table with its memory policy: tables from the pool, cleaned for a non-coherent walker.
template <class F>
class VmsaTable final : public Table {
public:
    VmsaTable(PagePool& pool, const Format& f, PageQuota* q) : Table(f), mem_(pool, f.coherent_walk, q), pt_(mem_, f.ias, f.oas) {}

    Status init() override { return pt_.init(); }
    void destroy() override { pt_.destroy(); }
    Progress map(uint64_t iova, uint64_t pa, uint64_t size, const Prot& prot, Gather& g, uint64_t pgsize) override {
        return pt_.map(iova, pa, size, tagged(prot), g, pgsize);
    }
    Progress unmap(uint64_t iova, uint64_t size, Gather& g) override { return pt_.unmap(iova, size, g); }
    Result<Translation> lookup(uint64_t iova) const override { return pt_.lookup(iova); }
    void release(Gather& g) override { pt_.release(g); }
    unsigned unlink_parked(Gather& g) override { return pt_.unlink_parked(g); }
    void trim() override { pt_.trim(); }
    uint64_t root_pa() const override { return pt_.root_pa(); }
    uint64_t pgsize_bitmap() const override { return pt_.geometry().pgsize_bitmap(); }
    uint64_t pages() const override { return mem_.held(); }

private:
    // A stage-1 table built here is an address space with an ASID (the domain's tag): its entries
    // are not global, so that invalidating the ASID reaches all of them.
    static Prot tagged(Prot p) {
        if constexpr (F::kStage == Stage::s1) p.not_global = true;
        return p;
    }

    PoolMemory mem_;
    PageTable<F, PoolMemory> pt_;
};

template <class T>
Table* construct(void* at, PagePool& pool, const Format& f, PageQuota* q) {
    static_assert(sizeof(T) <= TableSlot::kBytes && alignof(T) <= 16, "TableSlot::kBytes is too small for this format");
    return new (at) T(pool, f, q);
}
template <class T>
void destruct(Table* t) {
    static_cast<T*>(t)->~T();
}

struct Engine {
    FormatId id;
    Table* (*construct)(void* at, PagePool& pool, const Format& f, PageQuota* q);
    void (*destruct)(Table* t);
};

constexpr Engine kEngines[] = {
    {FormatId::vmsa_s1, construct<VmsaTable<Stage1>>, destruct<VmsaTable<Stage1>>},
    {FormatId::vmsa_s2, construct<VmsaTable<Stage2>>, destruct<VmsaTable<Stage2>>},
    {FormatId::vtd_sl, construct_vtd_sl, destruct_vtd_sl},
};

}  // namespace

Status TableSlot::build(PagePool& pool, const Format& f, PageQuota* quota) {
    if (table_) return Status::in_use;
    for (const Engine& e : kEngines)
        if (e.id == f.id) {
            table_ = e.construct(bytes_, pool, f, quota);
            destruct_ = e.destruct;
            return Status::ok;
        }
    return Status::unsupported;
}

void TableSlot::reset() {
    if (!table_) return;
    destruct_(table_);
    table_ = nullptr;
    destruct_ = nullptr;
}

}  // namespace moat::iopt
