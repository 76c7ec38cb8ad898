#include "hyp/smp_selftest.hpp"

#include <string.h>

#include "arch/cache.hpp"
#include "arch/cpu.hpp"
#include "arch/time.hpp"
#include "common/io_domain.hpp"
#include "common/lock.hpp"
#include "common/wait.hpp"

namespace moat {

namespace {

constexpr unsigned kIas = 39;
constexpr uint64_t kIovaBase = 0x08000000;     // below edu's 28-bit DMA mask
constexpr uint64_t kIovaPerCpu = 0x00100000;   // each CPU's own IOVAs: 1 MiB apart
constexpr uint32_t kXfer = 0x800;              // half a page (QEMU 7.2's edu, see dma_selftest)
constexpr uint32_t kProbe = 4;                 // one access, so one event per faulting DMA
constexpr uint64_t kFaultWaitNs = 500 * 1000 * 1000;
constexpr uint64_t kJoinNs = 60ull * 1000 * 1000 * 1000;

struct Shared {
    PagePool* pool;
    Iommu* iommu;
    IoDomain* dom;
    FaultLog* log;
    const SmpEdu* edus;
    unsigned nedus;
    Spinlock edu_lock[arch::kMaxCpus];  // one per edu: a device runs one transfer at a time
};

struct Worker {
    Shared* sh;
    unsigned cpu;      // logical id
    unsigned edu;      // index into sh->edus
    unsigned rounds, faults, failed;
    uint64_t bytes;
    bool done;
};

__attribute__((format(printf, 3, 4))) void fail(Worker& w, bool ok, const char* fmt, ...) {
    if (ok) return;
    w.failed++;
    char line[192];
    va_list ap;
    va_start(ap, fmt);
    BufferSink b(line, sizeof line);
    vformat(b, fmt, ap);
    va_end(ap);
    print("smp dma:  cpu%u FAILED: %s\n", w.cpu, line);
}

// A fault for `sid` at `iova` among the records since `from`, polling the IOMMU meanwhile (its
// interrupt, where it has one, brings them in too).
bool wait_fault(Shared& sh, uint64_t from, StreamId sid, uint64_t iova) {
    FaultRecord recs[8];
    return wait_until(kFaultWaitNs, [&] {
               sh.iommu->poll_faults(*sh.log);
               while (unsigned n = sh.log->copy(from, recs, 8))
                   for (unsigned i = 0; i < n; i++)
                       if (recs[i].stream == sid && recs[i].address == iova && recs[i].kind == FaultKind::translation) return true;
               return false;
           }) == Status::ok;
}

void one_round(Worker& w, unsigned r) {
    Shared& sh = *w.sh;
    const SmpEdu& e = sh.edus[w.edu];
    Edu edu(e.bar0);
    uint64_t src_iova = kIovaBase + w.cpu * kIovaPerCpu + r * 2 * kPageSize, dst_iova = src_iova + kPageSize;
    Result<uint64_t> pages = sh.pool->alloc(2);
    fail(w, pages.ok(), "round %u: no pages", r);
    if (!pages.ok()) return;
    auto* src = static_cast<uint8_t*>(sh.pool->virt(pages.value));
    uint8_t* dst = src + kPageSize;
    for (size_t i = 0; i < kPageSize; i++) src[i] = static_cast<uint8_t>(w.cpu * 31 + r * 7 + i);
    memset(dst, 0xee, kPageSize);
    cache::sync_for_device(src, 2 * kPageSize);

    bool mapped = sh.dom->map(src_iova, pages.value, kPageSize, {}).ok() && sh.dom->map(dst_iova, pages.value + kPageSize, kPageSize, {}).ok();
    fail(w, mapped, "round %u: map 0x%lx and 0x%lx", r, src_iova, dst_iova);
    Status a = Status::ok, b = Status::ok;
    if (mapped) {
        Guard<Spinlock> g(sh.edu_lock[w.edu]);
        a = edu.to_device(src_iova, Edu::kBufBase, kXfer);
        b = edu.to_ram(Edu::kBufBase, dst_iova, kXfer);
    }
    cache::sync_for_cpu(dst, kPageSize);
    bool arrived = a == Status::ok && b == Status::ok && memcmp(src, dst, kXfer) == 0;
    bool rest = true;
    for (size_t i = kXfer; i < kPageSize; i++) rest = rest && dst[i] == 0xee;
    fail(w, mapped && arrived && rest, "round %u: RAM -> edu -> RAM through 0x%lx/0x%lx (%s/%s)", r, src_iova, dst_iova,
         to_string(a), to_string(b));
    if (arrived && rest) w.bytes += kXfer;
    Progress u1 = sh.dom->unmap(src_iova, kPageSize), u2 = sh.dom->unmap(dst_iova, kPageSize);
    fail(w, u1.ok() && u2.ok(), "round %u: unmap (%s, %s)", r, to_string(u1.status), to_string(u2.status));

    // After the unmap (and its invalidation, done when unmap returned) the same IOVA faults.
    memset(dst, 0x5a, kPageSize);
    cache::sync_for_device(dst, kPageSize);
    uint64_t from = sh.log->total();
    Status f;
    {
        Guard<Spinlock> g(sh.edu_lock[w.edu]);
        f = edu.to_ram(Edu::kBufBase, dst_iova, kProbe);
    }
    bool faulted = f == Status::ok && wait_fault(sh, from, e.sid, dst_iova);
    cache::sync_for_cpu(dst, kPageSize);
    bool untouched = true;
    for (size_t i = 0; i < kPageSize; i++) untouched = untouched && dst[i] == 0x5a;
    fail(w, faulted && untouched, "round %u: DMA to unmapped 0x%lx %s%s", r, dst_iova, faulted ? "faulted" : "did not fault",
         untouched ? "" : " and wrote memory");
    if (faulted && untouched) w.faults++;
    (void)sh.pool->free(pages.value, 2);
    w.rounds++;
}

void work(void* p) {
    auto& w = *static_cast<Worker*>(p);
    for (unsigned r = 0; r < kSmpRounds; r++) one_round(w, r);
    __atomic_store_n(&w.done, true, __ATOMIC_RELEASE);
}

}  // namespace

SmpResult smp_selftest(PagePool& pool, Iommu& iommu, const SmpEdu* edus, unsigned nedus, FaultLog& log,
                       bool (*run_on_cpu)(unsigned, void (*)(void*), void*)) {
    SmpResult res;
    if (nedus == 0) return res;
    if (nedus > arch::kMaxCpus) nedus = arch::kMaxCpus;
    Result<iopt::Format> fmt = iommu.domain_format(DomainUse::dma, kIas);
    static Shared sh;  // static storage: a Spinlock per edu
    static Worker w[arch::kMaxCpus];
    size_t before = pool.used_pages() - static_cast<size_t>(iommu.stats().pages);
    IommuStats st0 = iommu.stats();
    IoDomain dom(pool, fmt.ok() ? fmt.value : iopt::Format{});
    if (!fmt.ok() || dom.init() != Status::ok) {
        print("smp dma:  FAILED: no domain for %s\n", iommu.name());
        res.failed = 1;
        return res;
    }
    sh.pool = &pool;
    sh.iommu = &iommu;
    sh.dom = &dom;
    sh.log = &log;
    sh.edus = edus;
    sh.nedus = nedus;
    for (unsigned i = 0; i < nedus; i++)
        if (dom.attach(iommu, edus[i].sid) != Status::ok) {
            print("smp dma:  FAILED: attach stream 0x%x to the shared domain\n", edus[i].sid);
            res.failed++;
        }
    print("smp dma:  one %s domain (tag %u) for %u edu stream(s), %u rounds per CPU\n", iopt::format_name(dom.format().id),
          dom.tag(), nedus, kSmpRounds);

    // Hand the work out: CPU c drives edu c % nedus. CPU 0's share runs here.
    bool started[arch::kMaxCpus] = {true};
    unsigned n = 0;
    for (unsigned c = 0; c < arch::kMaxCpus; c++) {
        w[c] = Worker{&sh, c, c % nedus, 0, 0, 0, 0, false};
        if (c > 0) started[c] = run_on_cpu && run_on_cpu(c, &work, &w[c]);
        if (started[c]) n++;
    }
    if (res.failed == 0) work(&w[0]);
    else w[0].done = true;
    Status joined = wait_until(kJoinNs, [&] {
        for (unsigned c = 0; c < arch::kMaxCpus; c++)
            if (started[c] && !__atomic_load_n(&w[c].done, __ATOMIC_ACQUIRE)) return false;
        return true;
    });
    if (joined != Status::ok) {
        print("smp dma:  FAILED: not every CPU finished within %lu s\n", kJoinNs / 1000000000);
        res.failed++;
    }
    res.cpus = n;
    for (unsigned c = 0; c < arch::kMaxCpus; c++) {
        if (!started[c]) continue;
        print("smp dma:  cpu%u edu stream 0x%x: %u rounds, %lu bytes checked, %u faults after unmap, %u failed\n", c,
              edus[w[c].edu].sid, w[c].rounds, w[c].bytes, w[c].faults, w[c].failed);
        res.rounds += w[c].rounds;
        res.faults += w[c].faults;
        res.bytes += w[c].bytes;
        res.failed += w[c].failed;
    }
    Status ds = dom.destroy();
    if (ds != Status::ok) res.failed++;
    size_t after = pool.used_pages() - static_cast<size_t>(iommu.stats().pages);
    if (after != before) {
        print("smp dma:  FAILED: %zu pool pages in use before, %zu after\n", before, after);
        res.failed++;
    }
    IommuStats st1 = iommu.stats();
    print("smp dma:  total %u CPUs, %u rounds, %lu bytes, %u faults, %u failed; %lu commands (%lu syncs) through one queue, "
          "pool pages back (%zu)\n",
          res.cpus, res.rounds, res.bytes, res.faults, res.failed, st1.commands - st0.commands, st1.syncs - st0.syncs, after);
    return res;
}

}  // namespace moat
