#include "hyp/p2m_selftest.hpp"

#include <stdarg.h>
#include <string.h>

#include "arch/cache.hpp"
#include "arch/cpu.hpp"
#include "arch/stage2.hpp"
#include "common/io_domain.hpp"

namespace moat {

namespace {

// The test guest's RAM: 16 pages at IPA 8 MiB, below edu's 28-bit DMA mask.
constexpr uint64_t kRamIpa = 0x00800000;
constexpr unsigned kRamPages = 16;
constexpr uint64_t kSrcIpa = kRamIpa, kDstIpa = kRamIpa + kPageSize, kGoneIpa = kRamIpa + 2 * kPageSize;
constexpr unsigned kIpaBits = 40;
constexpr uint32_t kXfer = 0x800;   // half a page: QEMU 7.2's edu refuses a transfer ending at its buffer's end
constexpr uint32_t kProbe = 16;     // a faulting transfer stays short (one event per access)

Status cpu_flush(void*, const IoDomain& d, const iopt::Gather& g) { return arch::stage2_invalidate(d.tag(), g); }

struct Checker {
    Sink& out;
    SelftestResult& r;
    __attribute__((format(printf, 3, 4))) bool check(bool ok, const char* fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        format(out, "  %s ", ok ? "ok    " : "FAILED");
        vformat(out, fmt, ap);
        va_end(ap);
        out.write("\n", 1);
        (ok ? r.passed : r.failed)++;
        return ok;
    }
};

void fill(void* p, uint8_t seed) {
    auto* b = static_cast<uint8_t*>(p);
    for (size_t i = 0; i < kPageSize; i++) b[i] = static_cast<uint8_t>(seed + i * 3);
    cache::sync_for_device(p, kPageSize);
}

}  // namespace

IoDomain::CpuWalker cpu_stage2_walker() { return IoDomain::CpuWalker{&cpu_flush, nullptr}; }

SelftestResult p2m_selftest(PagePool& pool, Iommu& iommu, StreamId sid, Edu& edu, FaultLog& log, Sink& out) {
    SelftestResult res;
    Checker c{out, res};
    // Shared where the IOMMU walks the CPU's stage-2 format; otherwise the CPU's own P2M format
    // (as arch::Vm builds it) and a DMA table of the IOMMU's that mirrors it.
    Result<iopt::Format> shared_fmt = iommu.domain_format(DomainUse::guest_p2m, kIpaBits);
    const bool shared = shared_fmt.ok();
    const unsigned cpu_oas = arch::pa_bits() < 48 ? arch::pa_bits() : 48;
    const iopt::Format p2m_fmt = shared ? shared_fmt.value : iopt::vmsa_s2(kIpaBits, cpu_oas, true);
    Result<iopt::Format> mirror_fmt = iommu.domain_format(DomainUse::dma, kIpaBits);
    if (shared)
        format(out, "p2m selftest: a guest's default DMA domain on %s is the guest's own stage-2 table, shared with the CPU\n",
               iommu.name());
    else
        format(out, "p2m selftest: a guest's default DMA domain on %s is a %s table mirroring the guest's stage 2 (%s)\n",
               iommu.name(), mirror_fmt.ok() ? iopt::format_name(mirror_fmt.value.id) : "(none)",
               iommu.caps().stage2 ? "its stage 2 cannot walk the CPU's P2M format" : "it has no stage 2");

    // The IOMMU's own structures (a stream table it grows on first attach) are not the guest's.
    auto tables_in_use = [&] { return pool.used_pages() - static_cast<size_t>(iommu.stats().pages); };
    size_t before = tables_in_use();
    Result<uint64_t> ram = pool.alloc(kRamPages);
    if (!c.check(ram.ok(), "%u pages of guest RAM at IPA 0x%lx", kRamPages, kRamIpa)) return res;
    auto pa_of = [&](uint64_t ipa) { return ram.value + (ipa - kRamIpa); };
    auto at = [&](uint64_t ipa) { return static_cast<uint8_t*>(pool.virt(pa_of(ipa))); };
    {
        IoDomain p2m(pool, p2m_fmt);
        IoDomain mirror(pool, mirror_fmt.ok() ? mirror_fmt.value : iopt::Format{});
        IoDomain& dma = shared ? p2m : mirror;
        p2m.set_cpu_walker(cpu_stage2_walker());
        iopt::Prot rwx;
        rwx.perm = iopt::kRead | iopt::kWrite | iopt::kExec;
        iopt::Prot rw;
        bool built = p2m.init() == Status::ok && p2m.map(kRamIpa, ram.value, kRamPages * kPageSize, rwx).ok() &&
                     (shared || (mirror.init() == Status::ok && mirror.map(kRamIpa, ram.value, kRamPages * kPageSize, rw).ok()));
        if (!c.check(built, "guest P2M (stage 2, %u-bit IPA, VMID %u)%s: IPA 0x%lx -> PA 0x%lx, %u pages", p2m_fmt.ias,
                     p2m.tag(), shared ? "" : " and its mirror", kRamIpa, ram.value, kRamPages))
            return res;
        c.check(dma.attach(iommu, sid) == Status::ok, "attach edu's stream 0x%x to the guest's default DMA domain", sid);

        Iommu::StreamConfig sc;
        Status sst = iommu.stream_config(sid, sc);
        if (shared)
            c.check(sst == Status::ok && sc.translating && sc.stage2 && sc.root == p2m.root_pa() && sc.tag == p2m.tag(),
                    "the STE uses stage 2: S2VMID %u, S2TTB 0x%lx, the P2M's own root (what VTTBR_EL2 takes)", sc.tag, sc.root);
        else
            c.check(sst == Status::ok && sc.translating && !sc.stage2 && sc.root == mirror.root_pa() && sc.root != p2m.root_pa(),
                    "the STE uses stage 1: ASID %u, TTB0 0x%lx, the mirror's root (the P2M's is 0x%lx)", sc.tag, sc.root,
                    p2m.root_pa());

        fill(at(kSrcIpa), 0x21);
        fill(at(kDstIpa), 0xd4);
        Status a = edu.to_device(kSrcIpa, Edu::kBufBase, kXfer);
        Status b = edu.to_ram(Edu::kBufBase, kDstIpa, kXfer);
        cache::sync_for_cpu(at(kDstIpa), kPageSize);
        c.check(a == Status::ok && b == Status::ok && memcmp(at(kSrcIpa), at(kDstIpa), kXfer) == 0,
                "edu DMA through guest-physical addresses 0x%lx -> 0x%lx: %u bytes at PA 0x%lx", kSrcIpa, kDstIpa, kXfer,
                pa_of(kDstIpa));

        // Take one page out of the guest's stage 2, as a balloon or an unassignment would.
        IommuStats s0 = iommu.stats();
        uint64_t cpu0 = p2m.cpu_flushes();
        Progress gone = p2m.unmap(kGoneIpa, kPageSize);
        if (!shared && gone.ok()) gone = mirror.unmap(kGoneIpa, kPageSize);  // the mirror follows, in the same step
        IommuStats s1 = iommu.stats();
        uint64_t cmds = s1.commands - s0.commands, syncs = s1.syncs - s0.syncs, cpu = p2m.cpu_flushes() - cpu0;
        c.check(gone.ok() && cpu == 1 && syncs == 1 && cmds == 2,
                "IPA 0x%lx removed from the guest's stage 2%s: one flush, CPU (TLBI IPAS2E1IS, %lu) and %s (%lu invalidation, "
                "%lu sync)", kGoneIpa, shared ? "" : " and from its mirror", cpu, iommu.name(), cmds - syncs, syncs);

        fill(at(kGoneIpa), 0x6b);
        uint8_t ref[kProbe];
        memcpy(ref, at(kGoneIpa), kProbe);
        uint64_t from = log.total();
        (void)edu.to_ram(Edu::kBufBase, kGoneIpa, kProbe);
        iommu.poll_faults(log);
        cache::sync_for_cpu(at(kGoneIpa), kPageSize);
        bool faulted = log.total() > from && log.total() - from <= log.size();
        const FaultRecord* r = faulted ? &log.at(log.size() - static_cast<unsigned>(log.total() - from)) : nullptr;
        if (r) log.print(out, log.size() - static_cast<unsigned>(log.total() - from), 1);
        bool right = r && r->kind == FaultKind::translation && r->stream == sid && r->address == kGoneIpa &&
                     (shared ? r->stage2 && r->ipa == kGoneIpa : !r->stage2);
        c.check(right && memcmp(ref, at(kGoneIpa), kProbe) == 0,
                "DMA to the removed IPA 0x%lx is blocked, the page unchanged; the fault names it as %s", kGoneIpa,
                shared ? "a stage-2 fault with its IPA" : "a stage-1 fault (the mirror's)");

        c.check(dma.detach(iommu, sid) == Status::ok, "detach stream 0x%x", sid);
        c.check(p2m.destroy() == Status::ok && mirror.destroy() == Status::ok, "tear the guest's P2M%s down",
                shared ? "" : " and its mirror");
    }
    (void)pool.free(ram.value, kRamPages);
    c.check(tables_in_use() == before, "every page back in the pool, tables and RAM (%zu pages in use, %zu before)",
            tables_in_use(), before);
    return res;
}

}  // namespace moat
