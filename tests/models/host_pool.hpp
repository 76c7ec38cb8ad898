// Pretend physical memory for host tests and tools: a host buffer posing as RAM at `phys_base`,
// handed to a PagePool. The default base keeps physical addresses inside what a 40-bit output
// size accepts. `align` aligns the buffer so that physical runs of that alignment are aligned in
// host memory too (2 MiB for block mappings and guest RAM).
#pragma once
#include <memory>
#include <vector>

#include "common/page_pool.hpp"

namespace moat::model {

struct HostPool {
    static constexpr uint64_t kPhysBase = 0x80000000;
    std::vector<uint8_t> mem;
    std::unique_ptr<PagePool> pool;
    bool ok = false;

    explicit HostPool(size_t pages, uint64_t phys_base = kPhysBase, uint64_t align = kPageSize)
        : mem(pages * kPageSize + align) {
        uintptr_t host = align_up(reinterpret_cast<uintptr_t>(mem.data()), align);
        pool = std::make_unique<PagePool>(host - phys_base);
        ok = pool->add_region(phys_base, pages * kPageSize) == Status::ok;
    }
};

}  // namespace moat::model
