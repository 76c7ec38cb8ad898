// The guest's vGIC on the path every guest exit takes (hyp/vgic.hpp): lr_sync() with the list
// registers as the guest left them and wants_vcpu() for an idle vCPU's WFI, for a guest with the
// default 64 SPIs and one with all 988, and 0, 1 or 4 interrupts pending at a time (spread over
// the whole range). Printed as figures and the 988/64 ratio, never asserted: the ready bitmap
// keeps the cost with what is pending, so the ratio stays near 1 where a scan of every line
// would make it grow with the count (about 15 times the lines).
#include <stdio.h>
#include <stdlib.h>

#include <chrono>

#include "hyp/vgic.hpp"

using namespace moat;
using hyp::VGic;

namespace {

constexpr unsigned kRounds = 200000, kNlr = 4;
VGic g_vgic;

// ns per round: `pending` SPIs pulsed, an exit's lr_sync fills the LRs, the guest takes and
// deactivates them, the next exit's lr_sync empties them, then the WFI check.
double run(unsigned spis, unsigned pending) {
    const uint64_t mpidr[1] = {0};
    VGic& g = g_vgic;
    g.reset(1, mpidr, spis);
    if (!g.dist_write(0x0, 4, (1u << 4) | 2)) abort();
    for (unsigned w = 1; w < (g.lines() + 31) / 32; w++)
        if (!g.dist_write(0x80 + 4 * w, 4, ~0u) || !g.dist_write(0x100 + 4 * w, 4, ~0u)) abort();
    unsigned ids[kNlr];
    for (unsigned i = 0; i < pending; i++) ids[i] = g.lines() - 1 - i * (g.spis() / kNlr);  // the highest first
    uint64_t lrs[kNlr] = {};
    unsigned woke = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (unsigned r = 0; r < kRounds; r++) {
        for (unsigned i = 0; i < pending; i++) g.pulse(0, ids[i]);
        (void)g.lr_sync(0, lrs, kNlr);
        for (auto& l : lrs) l = VGic::kLrState.set(l, 0);
        (void)g.lr_sync(0, lrs, kNlr);
        woke += g.wants_vcpu(0);
    }
    auto t1 = std::chrono::steady_clock::now();
    if (woke || g.injected() != uint64_t{kRounds} * pending) abort();  // every pulse delivered, nothing left over
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / kRounds;
}

}  // namespace

int main() {
    printf("vGIC: two lr_sync + wants_vcpu per round, %u rounds, %u list registers\n\n", kRounds, kNlr);
    printf("| pending | 64 SPIs (ns/round) | 988 SPIs (ns/round) | ratio 988/64 |\n|---:|---:|---:|---:|\n");
    const unsigned pend[] = {0, 1, 4};
    for (unsigned p : pend) {
        double a = run(64, p), b = run(VGic::kMaxSpis, p);
        printf("| %u | %.1f | %.1f | %.2f |\n", p, a, b, b / a);
    }
    return 0;
}
