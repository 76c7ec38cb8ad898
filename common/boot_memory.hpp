// Which RAM the page pool may have: every `/memory` range, minus the image, the device tree,
// `/memreserve/` entries and `/reserved-memory` children. Portable, so the arithmetic is
// tested on the host with the same trees the image boots with.
#pragma once
#include "common/fdt.hpp"
#include "common/page_pool.hpp"

namespace moat {

struct MemRange {
    uint64_t base;
    uint64_t size;
    uint64_t end() const { return base + size; }
};

struct MemoryPlan {
    static constexpr unsigned kMaxRam = 8, kMaxReserved = 32, kMaxFree = 40;
    unsigned nram = 0, nreserved = 0, nfree = 0;
    MemRange ram[kMaxRam];
    MemRange reserved[kMaxReserved];
    const char* reserved_why[kMaxReserved];
    MemRange free[kMaxFree];
    uint64_t ram_bytes() const;
    uint64_t free_bytes() const;
};

// image and dtb are the physical ranges the image and the tree occupy.
Status plan_memory(const dt::Tree& t, MemRange image, MemRange dtb, MemoryPlan& plan);

// One more range kept out of the pool after planning (a boot module a loader put in RAM):
// listed as reserved for `why` and cut from the free ranges.
Status reserve_range(const dt::Tree& t, MemoryPlan& plan, MemRange r, const char* why);

// Hands every free range to the pool; returns the first failure (a full pool is reported,
// the ranges before it stay added).
Status fill_pool(const MemoryPlan& plan, PagePool& pool);

void print_memory(const MemoryPlan& plan, const PagePool& pool, Sink& out);

}  // namespace moat
