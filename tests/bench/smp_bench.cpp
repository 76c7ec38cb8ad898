// Map/unmap throughput from 1 and 2 threads (this machine has 2 cores), printed as figures and
// ratios, never asserted: a lock that serialises more than it must shows as a ratio near (or
// below) 1 where 2 is possible. Two cases:
//   - one domain per thread: they meet only in the page pool's lock (ideal ratio 2);
//   - one domain shared by both: map/unmap serialise on the domain's lock by design
//     (docs/architecture.md, "Concurrency"), so about 1 is expected, and less shows the cost of
//     the lock bouncing between cores.
// The work is the DMA API's hot path: map one 4 KiB page, unmap it, each thread in its own IOVA
// range (a page at a time over 2 MiB), once with the leaf table emptied by each unmap (it stays
// linked, parked, so no pair calls the pool since parking came in; before, each pair allocated
// and freed it), once with a page pinned in it. No IOMMU is attached: the figure is moat's own
// cost, not a model's.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "arch/cpu.hpp"
#include "common/io_domain.hpp"

using namespace moat;

namespace {

constexpr uint64_t kPhysBase = 0x80000000;
constexpr size_t kPoolPages = 4096;
constexpr unsigned kOpsPerThread = 200000;  // map + unmap pairs
constexpr uint64_t kSpan = 2 * MiB;

struct Memory {
    uint8_t* phys;
    std::unique_ptr<PagePool> pool;
    Memory() {
        phys = static_cast<uint8_t*>(aligned_alloc(2 * MiB, kPoolPages * kPageSize));
        memset(phys, 0, kPoolPages * kPageSize);
        pool = std::make_unique<PagePool>(reinterpret_cast<uintptr_t>(phys) - kPhysBase);
        if (pool->add_region(kPhysBase, kPoolPages * kPageSize) != Status::ok) abort();
    }
    ~Memory() { free(phys); }
};

// pin: one page stays mapped in the same leaf table, so unmap never frees it and the pool is
// not touched in the loop (the difference between the two shows what the pool's lock costs).
void worker(IoDomain& d, unsigned t, bool pin, std::atomic<bool>& go) {
    (void)arch::cpu_init(t);
    uint64_t base = (uint64_t{1} << 30) + uint64_t{t} * (1ull << 30);
    if (pin && !d.map(base + kSpan - kPageSize, kPhysBase + 65 * kPageSize, kPageSize, {}).ok()) abort();
    while (!go.load(std::memory_order_acquire)) {
    }
    for (unsigned i = 0; i < kOpsPerThread; i++) {
        uint64_t iova = base + (i * kPageSize) % (kSpan - kPageSize);
        if (!d.map(iova, kPhysBase + 64 * kPageSize, kPageSize, {}).ok()) abort();
        if (!d.unmap(iova, kPageSize).ok()) abort();
    }
}

// Pairs per second with `threads` threads, each on its own domain or all on one.
double run(unsigned threads, bool shared, bool pin) {
    Memory m;
    iopt::Format f = iopt::vmsa_s1(39, 44, true);
    std::vector<std::unique_ptr<IoDomain>> doms;
    for (unsigned t = 0; t < (shared ? 1 : threads); t++) {
        doms.push_back(std::make_unique<IoDomain>(*m.pool, f));
        if (doms.back()->init() != Status::ok) abort();
    }
    std::atomic<bool> go{false};
    std::vector<std::thread> th;
    for (unsigned t = 0; t < threads; t++) th.emplace_back(worker, std::ref(*doms[shared ? 0 : t]), t, pin, std::ref(go));
    auto start = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    for (std::thread& x : th) x.join();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (auto& d : doms)
        if (d->destroy() != Status::ok) abort();
    if (m.pool->used_pages() != 0) abort();  // every table back
    return threads * kOpsPerThread / s;
}

// What two threads that share nothing get on this machine now (other work shares its cores):
// the ceiling the map/unmap ratios are to be read against.
double baseline(unsigned threads) {
    std::vector<std::thread> th;
    std::atomic<uint64_t> sink{0};
    auto start = std::chrono::steady_clock::now();
    for (unsigned t = 0; t < threads; t++)
        th.emplace_back([&sink] {
            uint64_t x = 0;
            for (uint64_t i = 0; i < 100000000; i++) x += i * i ^ (x >> 7);
            sink += x;
        });
    for (std::thread& x : th) x.join();
    return threads / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main() {
    printf("Map + unmap of one 4 KiB page (IoDomain, stage 1, IAS 39, no IOMMU attached), %u pairs per thread;\n"
           "median of 3 runs. Ratio: 2-thread throughput / 1-thread throughput (2 cores: at most 2).\n\n",
           kOpsPerThread);
    printf("| case | 1 thread (pairs/s) | 2 threads (pairs/s) | ratio |\n|---|---:|---:|---:|\n");
    for (int k = 0; k < 4; k++) {
        bool shared = k >= 2, pin = k & 1;
        double one[3], two[3];
        for (int r = 0; r < 3; r++) {
            one[r] = run(1, shared, pin);
            two[r] = run(2, shared, pin);
        }
        auto median = [](double* v) {
            double a = v[0], b = v[1], c = v[2];
            return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
        };
        double o = median(one), w = median(two);
        printf("| %s, %s | %.0f | %.0f | %.2f |\n", shared ? "one domain shared by both threads" : "one domain per thread",
               pin ? "another page kept in the leaf table" : "leaf table emptied each pair (parked: no pool call)", o, w, w / o);
    }
    double b1[3], b2[3];
    for (int r = 0; r < 3; r++) b1[r] = baseline(1), b2[r] = baseline(2);
    std::sort(b1, b1 + 3);
    std::sort(b2, b2 + 3);
    printf("| machine ceiling now: two threads sharing nothing (arithmetic loop) | | | %.2f |\n", b2[1] / b1[1]);
    return 0;
}
