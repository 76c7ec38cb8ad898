#include "arch/arm64/mmu.hpp"

#include "common/types.hpp"

namespace moat::arch {

namespace {

constexpr unsigned kVaBits = 40;                // covers QEMU virt's high ECAM window
constexpr uint64_t kDesc_Table = 0b11;
constexpr uint64_t kDesc_Block = 0b01;
constexpr uint64_t kAttrIdxDevice = 0 << 2;     // MAIR attr0: Device-nGnRE
constexpr uint64_t kAttrIdxNormal = 1 << 2;     // MAIR attr1: Normal WB RA/WA
constexpr uint64_t kSH_Inner = 3ull << 8;
constexpr uint64_t kAF = 1ull << 10;
constexpr uint64_t kXN = 1ull << 54;
constexpr uint64_t kMair = 0x04ull | (0xffull << 8);

alignas(4096) uint64_t g_l0[512];
alignas(4096) uint64_t g_l1[2][512];

}  // namespace

void mmu_enable_identity(uint64_t ram_base, uint64_t ram_end) {
    for (unsigned t = 0; t < 2; t++) {
        g_l0[t] = reinterpret_cast<uintptr_t>(g_l1[t]) | kDesc_Table;
        for (unsigned i = 0; i < 512; i++) {
            uint64_t pa = (uint64_t{t} * 512 + i) * GiB;
            bool ram = pa + GiB > ram_base && pa < ram_end;
            g_l1[t][i] = pa | kDesc_Block | kAF |
                         (ram ? (kAttrIdxNormal | kSH_Inner) : (kAttrIdxDevice | kXN));
        }
    }
    uint64_t tcr = (64 - kVaBits)      // T0SZ
                   | (1ull << 8)       // IRGN0 write-back
                   | (1ull << 10)      // ORGN0 write-back
                   | (3ull << 12)      // SH0 inner shareable
                   | (0ull << 14)      // TG0 4 KiB
                   | (2ull << 16)      // PS 40 bits
                   | (1ull << 23) | (1ull << 31);  // RES1
    asm volatile("dsb ish; tlbi alle2; dsb ish; isb" ::: "memory");
    asm volatile("msr mair_el2, %0" : : "r"(kMair));
    asm volatile("msr tcr_el2, %0" : : "r"(tcr));
    asm volatile("msr ttbr0_el2, %0" : : "r"(reinterpret_cast<uintptr_t>(g_l0)));
    asm volatile("isb");
    uint64_t sctlr;
    asm volatile("mrs %0, sctlr_el2" : "=r"(sctlr));
    sctlr |= (1ull << 0) | (1ull << 2) | (1ull << 12);  // M, C, I
    sctlr &= ~(1ull << 1);                               // no alignment checking on Normal memory
    asm volatile("msr sctlr_el2, %0; isb" : : "r"(sctlr) : "memory");
}

}  // namespace moat::arch
