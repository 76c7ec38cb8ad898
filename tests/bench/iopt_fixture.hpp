// Shared by the benchmark and the instruction-count driver: a page pool over host memory and the
// scenarios both measure, built from the same sources as the image (-O2, no sanitizers).
#pragma once
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "common/iopt/memory.hpp"
#include "common/iopt/page_table.hpp"

namespace iopt_bench {

using namespace moat;
using namespace moat::iopt;

constexpr uint64_t K4 = 4 * KiB, M2 = 2 * MiB, G1 = GiB;
constexpr uint64_t kPhysBase = 0x80000000;
constexpr size_t kPoolPages = 40960;        // 160 MiB: 10,000 scattered pages need ~20,000 tables
constexpr uint64_t kMapIova = G1;           // 1 GiB-aligned: the 4 KiB case needs exactly 514 tables
constexpr uint64_t kMapPa = 0x40000000000;  // any PA below the 48-bit OAS
constexpr size_t kScattered = 10000;
// The least table memory for 1 GiB of 4 KiB pages under a level-0 root: 512 leaf tables, one
// level-2 and one level-1 table.
constexpr size_t kMinTables4K = 512 + 2;
constexpr size_t kPteBytes4K = (G1 / K4) * 8;  // what those leaf tables hold

// The DMA hot path: map one buffer, unmap it, again and again (what a DMA API does per I/O).
//  solo:     nothing else is mapped in the table: every pair builds and empties the whole walk;
//  pinned:   another page stays mapped in the same leaf table (slot 0), the buffer at slot 8;
//  low_last: below 4 GiB, the kept page in the last slot (511) of the leaf table, the buffer at
//            slot 0 (where an engine that scans for live entries looks longest).
// Minimum table pages held during and after a workload: what the kept page needs (a level-1,
// level-2 and leaf table under the level-0 root), none for solo.
struct HotCase {
    const char* name;
    uint64_t iova;  // the buffer
    uint64_t size;
    bool keep;      // a kept page at `kept`
    uint64_t kept;
};
constexpr uint64_t kHotHigh = 0x5a5a40000000;  // above 4 GiB, a 2 MiB-aligned leaf-table span
constexpr uint64_t kHotLow = 0x80000000;       // 2 GiB
constexpr HotCase kHotCases[] = {
    {"solo_4KiB", kHotHigh + 8 * K4, K4, false, 0},
    {"solo_16KiB", kHotHigh + 8 * K4, 16 * KiB, false, 0},
    {"solo_64KiB", kHotHigh + 16 * K4, 64 * KiB, false, 0},
    {"pinned_4KiB", kHotHigh + 8 * K4, K4, true, kHotHigh},
    {"pinned_16KiB", kHotHigh + 8 * K4, 16 * KiB, true, kHotHigh},
    {"pinned_64KiB", kHotHigh + 16 * K4, 64 * KiB, true, kHotHigh},
    {"low_last_4KiB", kHotLow, K4, true, kHotLow + 511 * K4},
    {"low_last_16KiB", kHotLow, 16 * KiB, true, kHotLow + 511 * K4},
    {"low_last_64KiB", kHotLow, 64 * KiB, true, kHotLow + 511 * K4},
};
constexpr size_t kHotMinTables(const HotCase& h) { return h.keep ? 3 : 0; }

struct Fixture {
    using Table = PageTable<Stage1, PoolMemory>;  // what QEMU's SMMUv3 walks; stage 2 costs the same

    uint8_t* phys = nullptr;
    std::unique_ptr<PagePool> pool;
    std::unique_ptr<PoolMemory> mem;
    std::unique_ptr<Table> pt;
    std::vector<uint64_t> scattered;  // IOVAs of the scattered pages
    size_t base_used = 0;

    explicit Fixture(bool coherent = true) {
        phys = static_cast<uint8_t*>(aligned_alloc(M2, kPoolPages * K4));
        memset(phys, 0, kPoolPages * K4);  // fault the memory in before anything is measured
        pool = std::make_unique<PagePool>(reinterpret_cast<uintptr_t>(phys) - kPhysBase);
        (void)pool->add_region(kPhysBase, kPoolPages * K4);
        mem = std::make_unique<PoolMemory>(*pool, coherent);
        pt = std::make_unique<Table>(*mem, 48, 48);
        (void)pt->init();
        base_used = pool->used_pages();
        // Distinct random pages over the whole 48-bit space: about two new tables per page.
        std::mt19937_64 rng(42);
        while (scattered.size() < kScattered) scattered.push_back((rng() & ((uint64_t{1} << 48) - 1)) & ~(K4 - 1));
        std::sort(scattered.begin(), scattered.end());
        scattered.erase(std::unique(scattered.begin(), scattered.end()), scattered.end());
        std::shuffle(scattered.begin(), scattered.end(), rng);
    }
    ~Fixture() {
        pt->destroy();
        free(phys);
    }
    size_t tables() const { return pool->used_pages() - base_used; }
    // The engine's release point: parked tables unlinked (after the, here absent, invalidation of
    // what that gathered), cached empty tables given back.
    void trim() { trim_if_any(*pt); }
    template <class T>
    static void trim_if_any(T& t) {
        if constexpr (requires(Gather& g) { t.unlink_parked(g); }) {
            Gather g;
            t.unlink_parked(g);
            t.release(g);
        }
        if constexpr (requires { t.trim(); }) t.trim();
    }
    // No walker here: a break-before-make invalidation (a block over parked tables) has nothing to do.
    static Status no_walker(void*, uint64_t, uint64_t, unsigned) { return Status::ok; }

    // One DMA buffer's life as a driver runs it: map, release (nothing to invalidate after a map
    // on the Arm IOMMUs), unmap, release after the (here absent) invalidation.
    void pair(uint64_t iova, uint64_t size) {
        {
            Gather g;
            if (!pt->map(iova, kMapPa + (iova & (G1 - 1)), size, Prot{}, g).ok()) abort();
            pt->release(g);
        }
        Gather g;
        if (!pt->unmap(iova, size, g).ok()) abort();
        pt->release(g);
    }
    void keep(const HotCase& h) {
        if (h.keep) (void)map(h.kept, K4, K4);
    }
    void unkeep(const HotCase& h) {
        if (h.keep) (void)unmap(h.kept, K4);
    }

    // Each returns the gather ranges the call produced (a driver's invalidation count).
    unsigned map(uint64_t iova, uint64_t size, uint64_t pgsize) {
        Gather g(InvalidateHook{no_walker, nullptr});
        if (!pt->map(iova, kMapPa, size, Prot{}, g, pgsize).ok()) abort();
        unsigned n = g.range_count();
        pt->release(g);
        return n;
    }
    unsigned unmap(uint64_t iova, uint64_t size) {
        Gather g;
        if (!pt->unmap(iova, size, g).ok()) abort();
        unsigned n = g.range_count();
        pt->release(g);
        return n;
    }
    void map_scattered() {
        for (uint64_t iova : scattered) {
            Gather g;
            if (!pt->map(iova, kMapPa + iova % G1, K4, Prot{}, g).ok()) abort();
        }
    }
    void unmap_scattered() {
        for (uint64_t iova : scattered) {
            Gather g;
            if (!pt->unmap(iova, K4, g).ok()) abort();
            pt->release(g);  // after the (here absent) invalidation
        }
    }
};

}  // namespace iopt_bench
