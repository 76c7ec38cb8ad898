// The VT-d second-level format's adapter over the PageTable engine (the twin of formats.cpp's
// VmsaTable) and its one instantiation.
#include "common/iopt/vtd_sl.hpp"

#include <new>

#include "common/iopt/memory.hpp"
#include "common/iopt/page_table.hpp"

namespace moat::iopt {

template class PageTable<VtdSl, PoolMemory>;

namespace {

class VtdTable final : public Table {
public:
    VtdTable(PagePool& pool, const Format& f, PageQuota* q) : Table(f), mem_(pool, f.coherent_walk, q), pt_(mem_, f.ias, f.oas) {}

    Status init() override { return pt_.init(); }
    void destroy() override { pt_.destroy(); }
    Progress map(uint64_t iova, uint64_t pa, uint64_t size, const Prot& caller, Gather& g, uint64_t pgsize) override {
        // SNP (see VtdSl): set for write-back mappings where the unit has snoop control.
        Prot prot = caller;
        if (prot.share != Share::none && prot.share != Share::outer && prot.share != Share::inner) return {0, Status::invalid_argument};
        const bool snoop = (format().options & vtd_opt::kSnoop) && prot.type == MemType::normal_wb;
        prot.share = snoop ? Share::inner : Share::none;
        const uint64_t sizes = pgsize_bitmap();
        if (pgsize != kLargest) {
            if (!(pgsize & sizes)) return {0, Status::invalid_argument};
            return pt_.map(iova, pa, size, prot, g, pgsize);
        }
        if (sizes & level_size(1)) return pt_.map(iova, pa, size, prot, g, kLargest);
        if (!(sizes & level_size(2))) return pt_.map(iova, pa, size, prot, g, level_size(3));
        // 2 MiB superpages but no 1 GiB ones (CAP.SLLPS = 1): the engine would write a 1 GiB leaf
        // wherever alignment allows, so such a stretch is asked for in 2 MiB pages, and the rest
        // in pieces that end at a 1 GiB boundary (none of which can hold an aligned 1 GiB).
        const uint64_t g1 = level_size(1);
        if (add_overflows(iova, size) || add_overflows(pa, size) || iova + size > pt_.geometry().input_limit() ||
            pa + size > pt_.geometry().output_limit())
            return {0, Status::out_of_range};
        uint64_t done = 0;
        while (done < size) {
            const uint64_t a = iova + done, p = pa + done, rest = size - done;
            const bool whole = is_aligned(a | p, g1) && rest >= g1;
            const uint64_t len = whole ? g1 : min(rest, align_down(a, g1) + g1 - a);
            Progress r = pt_.map(a, p, len, prot, g, whole ? level_size(2) : kLargest);
            done += r.bytes_done;
            if (!r.ok()) return {done, r.status};
        }
        return {done, Status::ok};
    }
    Progress unmap(uint64_t iova, uint64_t size, Gather& g) override { return pt_.unmap(iova, size, g); }
    Result<Translation> lookup(uint64_t iova) const override { return pt_.lookup(iova); }
    void release(Gather& g) override { pt_.release(g); }
    uint64_t root_pa() const override { return pt_.root_pa(); }
    uint64_t pgsize_bitmap() const override { return vtd_pgsize_bitmap(format(), pt_.geometry().start_level); }
    uint64_t pages() const override { return mem_.held(); }

private:
    PoolMemory mem_;
    PageTable<VtdSl, PoolMemory> pt_;
};

static_assert(sizeof(VtdTable) <= TableSlot::kBytes && alignof(VtdTable) <= 16, "TableSlot::kBytes is too small for VtdTable");

}  // namespace

Table* construct_vtd_sl(void* at, PagePool& pool, const Format& f, PageQuota* q) { return new (at) VtdTable(pool, f, q); }
void destruct_vtd_sl(Table* t) { static_cast<VtdTable*>(t)->~VtdTable(); }

}  // namespace moat::iopt
