#include "hyp/dma_selftest.hpp"

#include <string.h>

#include "arch/cache.hpp"
#include "arch/irq.hpp"
#include "arch/time.hpp"
#include "common/io_domain.hpp"

namespace moat {

namespace {

// IOVAs below 2^28: edu clamps bus addresses to its default 28-bit DMA mask.
constexpr uint64_t kIovaSrc = 0x01000000;   // RAM -> device source
constexpr uint64_t kIovaDst = 0x01001000;   // device -> RAM destination
constexpr uint64_t kIovaRo = 0x01002000;    // read-only mapping
constexpr uint64_t kIovaHole = 0x02000000;  // never mapped
constexpr uint64_t kIovaBatch = 0x04000000; // 512-page figure
constexpr unsigned kIas = 39;
// QEMU 7.2's edu rejects (aborts QEMU on) a transfer that ends exactly at the end of its 4 KiB
// buffer, so every transfer here is half a page.
constexpr uint32_t kXfer = 0x800;

class Checker {
public:
    Checker(Sink& out, SelftestResult& r) : out_(out), r_(r) {}
    __attribute__((format(printf, 3, 4))) bool check(bool ok, const char* fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        format(out_, "  %s ", ok ? "ok    " : "FAILED");
        vformat(out_, fmt, ap);
        va_end(ap);
        out_.write("\n", 1);
        (ok ? r_.passed : r_.failed)++;
        return ok;
    }
private:
    Sink& out_;
    SelftestResult& r_;
};

void fill(void* p, uint8_t seed) {
    auto* b = static_cast<uint8_t*>(p);
    for (size_t i = 0; i < kPageSize; i++) b[i] = static_cast<uint8_t>(seed + i * 7);
    cache::sync_for_device(p, kPageSize);
}

// The whole page: the transferred half must match, and the other half must be untouched.
bool same(const void* a, const void* b) {
    cache::sync_for_cpu(a, kPageSize);
    cache::sync_for_cpu(b, kPageSize);
    return memcmp(a, b, kPageSize) == 0;
}

// A faulting transfer is kept short: QEMU's SMMU reports one event per access the DMA engine
// makes, and this keeps every one of them inside the event queue.
constexpr uint32_t kProbe = 16;

// Faults arrived since `from`, every one of this kind, stream and direction, inside
// [iova, iova + kProbe), the first at iova itself. Prints the first and how many.
bool saw_fault(Iommu& iommu, FaultLog& log, uint64_t from, FaultKind kind, StreamId sid, uint64_t iova, bool write, Sink& out) {
    iommu.poll_faults(log);
    uint64_t n = log.total() - from;
    if (n == 0 || n > log.size()) return false;
    unsigned first = log.size() - static_cast<unsigned>(n);
    for (unsigned i = first; i < log.size(); i++) {
        const FaultRecord& r = log.at(i);
        if (r.kind != kind || r.stream != sid || r.write != write || r.address < iova || r.address >= iova + kProbe) return false;
    }
    log.print(out, first, 1);
    if (n > 1) format(out, "       (%lu events for one %u-byte transfer: one per access)\n", n, kProbe);
    return log.at(first).address == iova;
}

// Sleeps in wfi until `log` holds `want` records or `ns` have passed; nothing here polls the
// IOMMU: only its interrupt can bring records in.
bool wait_for_faults(FaultLog& log, uint64_t want, uint64_t ns) {
    uint64_t start = arch::now_ns();
    while (log.total() < want) {
        if (arch::now_ns() - start > ns) return false;
        arch::wait_for_interrupt();
    }
    return true;
}

constexpr uint64_t kIrqWaitNs = 200 * 1000 * 1000;
constexpr unsigned kStorm = 40;   // DMAs to the hole, back to back
constexpr unsigned kBurst = 8;    // the report's lines per window before it stays silent
constexpr unsigned kQuarantine = 64;  // faults from one stream before the policy blocks it

}  // namespace

SelftestResult dma_selftest(PagePool& pool, Iommu& iommu, StreamId sid, Edu& edu, FaultLog& log, Sink& out) {
    SelftestResult res;
    Checker c(out, res);
    format(out, "dma selftest: edu stream 0x%x through %s\n", sid, iommu.name());
    if (!c.check(edu.identify(), "edu answers (id 0x%08x, liveness)", Edu::kId)) return res;

    Result<uint64_t> pages = pool.alloc(4);
    if (!c.check(pages.ok(), "4 buffer pages from the pool")) return res;
    uint64_t src_pa = pages.value, dst_pa = src_pa + kPageSize, ro_pa = dst_pa + kPageSize, ref_pa = ro_pa + kPageSize;
    void* src = pool.virt(src_pa);
    void* dst = pool.virt(dst_pa);
    void* ro = pool.virt(ro_pa);
    void* ref = pool.virt(ref_pa);
    // The IOMMU's own structures (a stream table it grows on first attach) are not the domain's.
    auto tables_in_use = [&] { return pool.used_pages() - static_cast<size_t>(iommu.stats().pages); };
    size_t pool_before = tables_in_use();

    // A DMA space of its own, in the format the IOMMU walks (an invalid one, if it has none: init fails).
    Result<iopt::Format> fmt = iommu.domain_format(DomainUse::dma, kIas);
    const iopt::Format f = fmt.ok() ? fmt.value : iopt::Format{};
    {
        IoDomain dom(pool, f);
        if (!c.check(dom.init() == Status::ok, "%s domain, %u-bit IOVA, tag %u", iopt::format_name(f.id), f.ias, dom.tag()))
            return res;
        iopt::Prot rw, rdonly;
        rdonly.perm = iopt::kRead;
        bool mapped = dom.map(kIovaSrc, src_pa, kPageSize, rw).ok() && dom.map(kIovaDst, dst_pa, kPageSize, rw).ok() &&
                      dom.map(kIovaRo, ro_pa, kPageSize, rdonly).ok();
        c.check(mapped, "map IOVA 0x%lx -> PA 0x%lx, 0x%lx -> 0x%lx (rw), 0x%lx -> 0x%lx (read-only)", kIovaSrc, src_pa,
                kIovaDst, dst_pa, kIovaRo, ro_pa);
        c.check(dom.attach(iommu, sid) == Status::ok, "attach stream 0x%x", sid);
        c.check(dom.attach(iommu, sid) == Status::in_use, "a second attach of stream 0x%x is refused", sid);

        fill(src, 0x11);
        fill(dst, 0xee);
        Status a = edu.to_device(kIovaSrc, Edu::kBufBase, kXfer);
        Status b = edu.to_ram(Edu::kBufBase, kIovaDst, kXfer);
        memcpy(static_cast<uint8_t*>(dst) + kXfer, static_cast<uint8_t*>(src) + kXfer, kPageSize - kXfer);  // untransferred half
        c.check(a == Status::ok && b == Status::ok && same(src, dst),
                "DMA RAM -> edu -> RAM through IOVA 0x%lx and 0x%lx: all %u bytes arrived", kIovaSrc, kIovaDst, kXfer);

        uint64_t from = log.total();
        fill(ref, 0x5a);
        memcpy(dst, ref, kPageSize);
        (void)edu.to_ram(Edu::kBufBase, kIovaHole, kProbe);
        c.check(saw_fault(iommu, log, from, FaultKind::translation, sid, kIovaHole, true, out),
                "DMA to unmapped IOVA 0x%lx: translation fault reported for stream 0x%x", kIovaHole, sid);

        fill(ro, 0x77);
        memcpy(ref, ro, kPageSize);
        from = log.total();
        (void)edu.to_ram(Edu::kBufBase, kIovaRo, kProbe);
        bool perm = saw_fault(iommu, log, from, FaultKind::permission, sid, kIovaRo, true, out);
        c.check(perm && same(ro, ref), "DMA write to read-only IOVA 0x%lx: permission fault, page unchanged", kIovaRo);

        if (iommu.interrupt_driven() && arch::wfi_wakes_by_time()) {
            // The fault reported by the IOMMU's own interrupt while the CPU sleeps: no poll here.
            from = log.total();
            uint64_t irqs = iommu.stats().interrupts;
            (void)edu.to_ram(Edu::kBufBase, kIovaHole, kProbe);
            bool got = wait_for_faults(log, from + 1, kIrqWaitNs);
            uint64_t taken = iommu.stats().interrupts - irqs;
            bool right = got && log.total() - from <= log.size() &&
                         log.at(log.size() - static_cast<unsigned>(log.total() - from)).address == kIovaHole;
            c.check(right && taken > 0,
                    "DMA to unmapped IOVA 0x%lx while the CPU waits in wfi: reported by the IOMMU's interrupt (%lu taken, "
                    "%lu faults), no poll", kIovaHole, taken, log.total() - from);

            // A device faulting in a loop: the report says the first kBurst and counts the rest, and
            // past kQuarantine faults the policy asks for the stream to be blocked, which the owner
            // of the stream (here the selftest's domain) does: the loop's later DMAs fault no more.
            log.report_to(&out, "  storm: ", ReportPolicy{kBurst, 60ull * 1000 * 1000 * 1000, kQuarantine});
            from = log.total();
            uint64_t shown = log.reported();
            bool blocked = false;
            for (unsigned i = 0; i < kStorm; i++) {
                uint64_t at = log.total();
                (void)edu.to_ram(Edu::kBufBase, kIovaHole, kProbe);
                if (!blocked) (void)wait_for_faults(log, at + 1, kIrqWaitNs);
                Quarantine q;
                if (!blocked && log.quarantine(q) && q.stream == sid) blocked = dom.detach(iommu, sid) == Status::ok;
            }
            (void)wait_for_faults(log, ~0ull, 20 * 1000 * 1000);  // let the last events in
            uint64_t lines = log.reported() - shown, faults = log.total() - from;
            uint64_t quiet = log.flush_suppressed();
            log.report_to(nullptr, nullptr);
            c.check(faults >= kQuarantine && faults < kStorm * 4 && lines == kBurst && quiet == faults - lines,
                    "a device faulting in a loop (%u DMAs, %lu faults): %lu lines, then one line for the %lu suppressed", kStorm,
                    faults, lines, quiet);
            c.check(blocked, "the policy quarantined stream 0x%x after %u faults: its later DMAs were blocked", sid, kQuarantine);
            c.check(dom.attach(iommu, sid) == Status::ok, "stream 0x%x attached again once the storm is over", sid);
            // And the device carries on with what is mapped.
            memcpy(dst, ref, kPageSize);
            cache::sync_for_device(dst, kPageSize);
            Status back = edu.to_ram(Edu::kBufBase, kIovaDst, kXfer);
            cache::sync_for_cpu(dst, kPageSize);
            c.check(back == Status::ok && memcmp(dst, src, kXfer) == 0, "after the storm: DMA through IOVA 0x%lx lands again",
                    kIovaDst);
        }

        // After unmap (and its invalidation) the IOTLB must not remember the old translation.
        Progress u = dom.unmap(kIovaDst, kPageSize);
        memcpy(dst, ref, kPageSize);
        cache::sync_for_device(dst, kPageSize);
        from = log.total();
        (void)edu.to_ram(Edu::kBufBase, kIovaDst, kProbe);
        c.check(u.ok() && saw_fault(iommu, log, from, FaultKind::translation, sid, kIovaDst, true, out) && same(dst, ref),
                "after unmap of 0x%lx: DMA faults, memory unchanged", kIovaDst);

        // Detached: the stream's STE aborts; the still-mapped source page must not be written.
        c.check(dom.detach(iommu, sid) == Status::ok, "detach stream 0x%x", sid);
        fill(src, 0x99);
        memcpy(ref, src, kPageSize);
        (void)edu.to_ram(Edu::kBufBase, kIovaSrc, kXfer);
        iommu.poll_faults(log);
        c.check(same(src, ref), "after detach: DMA to 0x%lx blocked, memory unchanged", kIovaSrc);

        // Reattach, then destroy the domain with the stream still attached: teardown detaches.
        c.check(dom.attach(iommu, sid) == Status::ok, "reattach stream 0x%x", sid);
        c.check(dom.destroy() == Status::ok && dom.attached_count() == 0, "destroy the domain (detaches the stream)");
        (void)edu.to_ram(Edu::kBufBase, kIovaSrc, kXfer);
        iommu.poll_faults(log);
        c.check(same(src, ref), "after destroy: DMA blocked, memory unchanged");
    }
    c.check(tables_in_use() == pool_before, "every table page back in the pool (%zu pages in use, %zu before)",
            tables_in_use(), pool_before);

    // The figure: what mapping and unmapping 512 pages in one call each costs in commands.
    {
        IoDomain dom(pool, f);
        iopt::Prot rw;
        if (dom.init() == Status::ok && dom.attach(iommu, sid) == Status::ok) {
            IommuStats s0 = iommu.stats();
            Progress m = dom.map(kIovaBatch, src_pa & ~(2 * MiB - 1), 512 * kPageSize, rw, kPageSize);
            IommuStats s1 = iommu.stats();
            Progress u = dom.unmap(kIovaBatch, 512 * kPageSize);
            IommuStats s2 = iommu.stats();
            uint64_t mc = s1.commands - s0.commands, uc = s2.commands - s1.commands, us = s2.syncs - s1.syncs;
            format(out, "  figure: map 512 pages: %lu commands; unmap 512 pages: %lu commands (%lu invalidation, %lu sync)\n",
                   mc, uc, uc - us, us);
            bool want = iommu.caps().range_invalidation ? uc == 2 : uc == 513;
            // An IOMMU that caches not-present entries (VT-d caching mode) must be told of a map
            // too: one range invalidation and one sync, like the unmap.
            bool cm = iommu.caps().caches_invalid;
            bool map_want = cm ? mc == (iommu.caps().range_invalidation ? 2u : 513u) : mc == 0;
            c.check(m.ok() && u.ok() && map_want && us == 1 && want, "512-page map needs %s; unmap needs %s plus one sync",
                    cm ? "the same invalidation as the unmap (caching mode)" : "no invalidation",
                    iommu.caps().range_invalidation ? "one range invalidation" : "one invalidation per page");
        } else {
            c.check(false, "domain for the 512-page figure");
        }
    }
    (void)pool.free(src_pa, 4);
    return res;
}

}  // namespace moat
