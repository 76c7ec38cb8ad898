#include "arch/arm64/mmu.hpp"

#include "arch/arm64/early_map.hpp"

// What a secondary CPU loads to turn on the same map (arch/arm64/smp_entry.S reads it with its
// MMU still off, so it is cleaned to memory once written): MAIR, TCR, TTBR0 of EL2.
extern "C" {
uint64_t moat_mmu_regs[3];
}

namespace moat::arch {

namespace {
constexpr unsigned kVaBits = 40;  // covers QEMU virt's high ECAM window
early_map::Tables g_tables;
}  // namespace

void mmu_enable_identity(uint64_t ram_base, uint64_t ram_end) {
    early_map::build(g_tables, ram_base, ram_end, [](const uint64_t* p) { return uint64_t{reinterpret_cast<uintptr_t>(p)}; });
    uint64_t tcr = (64 - kVaBits)      // T0SZ
                   | (1ull << 8)       // IRGN0 write-back
                   | (1ull << 10)      // ORGN0 write-back
                   | (3ull << 12)      // SH0 inner shareable
                   | (0ull << 14)      // TG0 4 KiB
                   | (2ull << 16)      // PS 40 bits
                   | (1ull << 23) | (1ull << 31);  // RES1
    moat_mmu_regs[0] = early_map::kMair;
    moat_mmu_regs[1] = tcr;
    moat_mmu_regs[2] = reinterpret_cast<uintptr_t>(g_tables.l0);
    asm volatile("dsb ish; tlbi alle2; dsb ish; isb" ::: "memory");
    asm volatile("msr mair_el2, %0" : : "r"(early_map::kMair));
    asm volatile("msr tcr_el2, %0" : : "r"(tcr));
    asm volatile("msr ttbr0_el2, %0" : : "r"(reinterpret_cast<uintptr_t>(g_tables.l0)));
    asm volatile("isb");
    uint64_t sctlr;
    asm volatile("mrs %0, sctlr_el2" : "=r"(sctlr));
    sctlr |= (1ull << 0) | (1ull << 2) | (1ull << 12);  // M, C, I
    sctlr &= ~(1ull << 1);                               // no alignment checking on Normal memory
    asm volatile("msr sctlr_el2, %0; isb" : : "r"(sctlr) : "memory");
}

}  // namespace moat::arch
