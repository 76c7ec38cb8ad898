#include "arch/stage2.hpp"

namespace moat::arch {

namespace {
constexpr uint64_t kVmidShift = 48;
constexpr uint64_t kVmidMask = uint64_t{0xffff} << kVmidShift;
constexpr uint64_t kByIpaMaxPages = 512;  // past this, one TLBI VMALLS12E1IS is cheaper than a loop
}  // namespace

// TLBI IPAS2E1IS removes only stage-2 entries, and acts on the VMID in VTTBR_EL2, so: point it at
// the guest, make the table writes visible (DSB), invalidate each page by IPA, wait (DSB), then
// drop the guest's combined stage-1+2 entries (TLBI VMALLE1IS) that may still hold the old output.
Status stage2_invalidate(uint16_t vmid, const iopt::Gather& g) {
    uint64_t pages = 0;
    for (unsigned i = 0; i < g.range_count(); i++) pages += g.range(i).size >> kPageShift;
    uint64_t old;
    asm volatile("mrs %0, vttbr_el2" : "=r"(old));
    uint64_t v = (old & ~kVmidMask) | (uint64_t{vmid} << kVmidShift);
    asm volatile("msr vttbr_el2, %0; isb; dsb ishst" : : "r"(v) : "memory");
    if (g.overflowed() || pages > kByIpaMaxPages) {
        asm volatile("tlbi vmalls12e1is" ::: "memory");
    } else {
        for (unsigned i = 0; i < g.range_count(); i++)
            for (uint64_t a = g.range(i).iova; a < g.range(i).end(); a += kPageSize)
                asm volatile("tlbi ipas2e1is, %0" : : "r"(a >> 12) : "memory");
        asm volatile("dsb ish; tlbi vmalle1is" ::: "memory");
    }
    asm volatile("dsb ish; isb; msr vttbr_el2, %0; isb" : : "r"(old) : "memory");
    return Status::ok;
}

}  // namespace moat::arch
