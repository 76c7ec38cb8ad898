// The page-table seam: one I/O (or P2M) table of some format, used without knowing which. IoDomain,
// the PV-IOMMU dispatcher and the guest P2M hold a Table; a format's engine (the VMSAv8-64
// PageTable template, later VT-d or EPT) implements it, and make-by-id (TableSlot::build) is the one
// place that knows every format. The engine's own code stays a template: the virtual call is paid
// once per map/unmap call, never per entry.
#pragma once
#include "common/iopt/format.hpp"
#include "common/iopt/gather.hpp"
#include "common/page_pool.hpp"
#include "common/page_quota.hpp"
#include "common/status.hpp"

namespace moat::iopt {

class Table {
public:
    // map() page-size policy: the largest page or block alignment and range allow, or else
    // exactly one size of pgsize_bitmap() with iova, pa and size aligned to it.
    static constexpr uint64_t kLargest = 0;

    // The root table (invalid_argument for a geometry the format cannot have, no_memory).
    virtual Status init() = 0;
    // Every table page back to the pool at once: only after every walker was detached and invalidated.
    virtual void destroy() = 0;
    // As PageTable::map / unmap: stop at the first problem, report how far they got, gather what
    // must be invalidated and the pages that wait for it.
    virtual Progress map(uint64_t iova, uint64_t pa, uint64_t size, const Prot& prot, Gather& g, uint64_t pgsize) = 0;
    virtual Progress unmap(uint64_t iova, uint64_t size, Gather& g) = 0;
    virtual Result<Translation> lookup(uint64_t iova) const = 0;
    // The pages `g` holds back to the pool (or to the engine's small cache of empty tables), once
    // the invalidation of its ranges has completed.
    virtual void release(Gather& g) = 0;
    // Tables an engine keeps LINKED though empty (VMSA "parked" leaf tables) are unlinked into `g`:
    // the owner invalidates g's ranges, then release(g), like after an unmap. Returns how many.
    virtual unsigned unlink_parked(Gather& g) {
        (void)g;
        return 0;
    }
    // The owner's release point, after unlink_parked's flush and release: tables an engine keeps
    // unlinked for reuse go back to the pool now.
    virtual void trim() {}
    // What a driver points its hardware at (TTBR, CD.TTB0, STE.S2TTB, later a VT-d SLPTPTR).
    virtual uint64_t root_pa() const = 0;
    // Page and block sizes map() can write.
    virtual uint64_t pgsize_bitmap() const = 0;
    // Pool pages the table holds (root, tables, cached empty tables, those waiting for an invalidation).
    virtual uint64_t pages() const = 0;

    const Format& format() const { return format_; }

protected:
    explicit Table(const Format& f) : format_(f) {}
    ~Table() = default;  // destroyed through the TableSlot that built it (no heap, no deleting dtor)

private:
    Format format_;
};

// Room for one table of any format, inside whoever owns it. Sized for the largest engine; each
// engine's entry in formats.cpp static_asserts that it fits.
class TableSlot {
public:
    static constexpr size_t kBytes = 384;

    TableSlot() = default;
    ~TableSlot() { reset(); }
    TableSlot(const TableSlot&) = delete;
    TableSlot& operator=(const TableSlot&) = delete;

    // Constructs the table of format f (not yet init()ed), every page of it charged to `quota`
    // when one is given. unsupported when no engine builds that format id, in_use when the slot
    // already holds one.
    Status build(PagePool& pool, const Format& f, PageQuota* quota = nullptr);
    // Runs the table's destructor (its pages: destroy() first). The slot is empty afterwards.
    void reset();
    Table* get() const { return table_; }

private:
    alignas(16) unsigned char bytes_[kBytes];
    Table* table_ = nullptr;
    void (*destruct_)(Table*) = nullptr;
};

}  // namespace moat::iopt
