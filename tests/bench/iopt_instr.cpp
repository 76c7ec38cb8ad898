// Instruction counts per page, for `make bench-instructions`: run under callgrind with collection
// off; each scenario runs once to warm the pool up, then once more with collection on, and its
// counts are dumped under "name pages tables zeroed", which bench.mk turns into a table.
//
// Callgrind counts every iteration of a `rep stosb` as an instruction, and glibc zeroes a 4 KiB
// page that way: the pool's zeroing of a new table would read as 4096 instructions. So the first
// dump measures that zeroing alone, and bench.mk also shows counts without it (zeroed pages x zeroing;
// leaf tables the engine fills whole are not zeroed at all).
#include <valgrind/callgrind.h>

#include <stdio.h>

#include "tests/bench/iopt_fixture.hpp"

using namespace iopt_bench;

constexpr size_t kHotPairsCounted = 10000;

namespace {

// Runs `op` twice (the first warms the pool and caches up), counting the second; `undo` restores
// the state `op` expects after each run.
template <class Op, class Undo>
void measure(Fixture& f, const char* name, uint64_t pages, Op op, Undo undo) {
    op();
    undo();
    const size_t before = f.pool->used_pages();
    const uint64_t zeroed_before = f.pool->zeroed_pages();
    CALLGRIND_ZERO_STATS;
    CALLGRIND_TOGGLE_COLLECT;
    op();
    CALLGRIND_TOGGLE_COLLECT;
    const size_t after = f.pool->used_pages();
    char label[96];
    snprintf(label, sizeof label, "%s %llu %llu %llu", name, static_cast<unsigned long long>(pages),
             static_cast<unsigned long long>(after > before ? after - before : 0),
             static_cast<unsigned long long>(f.pool->zeroed_pages() - zeroed_before));
    CALLGRIND_DUMP_STATS_AT(label);
    undo();
}

}  // namespace

int main() {
    Fixture f;
    const uint64_t pages = G1 / K4, n = f.scattered.size();
    // What PagePool::alloc spends zeroing one page, counted the same way.
    // (Through a pointer, so that it is libc's memset as in the pool, not an inlined rep stosq.)
    void* page = f.pool->virt(f.pool->alloc().value);
    void* (*volatile libc_memset)(void*, int, size_t) = memset;
    measure(f, "pool_zeroing_of_one_page", 1, [&] { libc_memset(page, 0, K4); }, [] {});
    auto map4k = [&] { f.map(kMapIova, G1, K4); };
    auto map2m = [&] { f.map(kMapIova, G1, M2); };
    auto unmap = [&] { f.unmap(kMapIova, G1); };
    measure(f, "map_1GiB_4KiB_pages", pages, map4k, unmap);
    map4k();
    measure(f, "unmap_1GiB_4KiB_pages", pages, unmap, map4k);
    unmap();
    measure(f, "map_1GiB_2MiB_blocks(per_4KiB)", pages, map2m, unmap);
    measure(f, "map_10000_scattered_pages", n, [&] { f.map_scattered(); }, [&] { f.unmap_scattered(); });
    f.map_scattered();
    measure(f, "unmap_10000_scattered_pages", n, [&] { f.unmap_scattered(); }, [&] { f.map_scattered(); });
    f.unmap_scattered();
    f.trim();
    // The hot path, per map + unmap pair (the kept page, if any, mapped around it, uncounted).
    for (const HotCase& h : kHotCases) {
        f.keep(h);
        measure(f, h.name, kHotPairsCounted, [&] {
            for (size_t k = 0; k < kHotPairsCounted; k++) f.pair(h.iova, h.size);
        }, [] {});
        f.unkeep(h);
        f.trim();
    }
    if (!RUNNING_ON_VALGRIND) printf("run me under valgrind --tool=callgrind (make bench-instructions)\n");
    return 0;
}
