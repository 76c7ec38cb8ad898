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

    // Each returns the gather ranges the call produced (a driver's invalidation count).
    unsigned map(uint64_t iova, uint64_t size, uint64_t pgsize) {
        Gather g;
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
