// The EL2 identity map's tables, built without touching any system register so that the host
// tests can check them: 40-bit VA, 4 KiB granule, level 0 -> two level-1 tables of 1 GiB blocks,
// and 2 MiB level-2 tables for the GiBs the RAM window covers only in part.
#pragma once
#include "common/types.hpp"

namespace moat::arch::early_map {

constexpr uint64_t kTable = 0b11, kBlock = 0b01;
constexpr uint64_t kAttrIdxDevice = 0 << 2;  // MAIR attr0: Device-nGnRE
constexpr uint64_t kAttrIdxNormal = 1 << 2;  // MAIR attr1: Normal WB RA/WA
constexpr uint64_t kShInner = 3ull << 8;
constexpr uint64_t kAf = 1ull << 10;
constexpr uint64_t kXn = 1ull << 54;
constexpr uint64_t kMair = 0x04ull | (0xffull << 8);
constexpr unsigned kMaxL2 = 4;

struct Tables {
    alignas(4096) uint64_t l0[512];
    alignas(4096) uint64_t l1[2][512];
    alignas(4096) uint64_t l2[kMaxL2][512];
};

constexpr uint64_t normal_block(uint64_t pa) { return pa | kBlock | kAf | kAttrIdxNormal | kShInner; }
constexpr uint64_t device_block(uint64_t pa) { return pa | kBlock | kAf | kAttrIdxDevice | kXn; }

// Normal memory exactly where [ram_base, ram_end) is (rounded inward to 2 MiB), Device elsewhere.
// `phys` turns a table's address into what the walker needs (identity on the target).
template <class Phys>
void build(Tables& t, uint64_t ram_base, uint64_t ram_end, Phys phys) {
    uint64_t lo = align_up(ram_base, 2 * MiB), hi = align_down(ram_end, 2 * MiB);
    unsigned nl2 = 0;
    for (unsigned k = 0; k < 512; k++) t.l0[k] = 0;
    for (unsigned h = 0; h < 2; h++) {
        t.l0[h] = phys(t.l1[h]) | kTable;
        for (unsigned i = 0; i < 512; i++) {
            uint64_t pa = (uint64_t{h} * 512 + i) * GiB;
            if (pa >= lo && pa + GiB <= hi) {
                t.l1[h][i] = normal_block(pa);
            } else if (pa + GiB <= lo || pa >= hi || nl2 == kMaxL2) {
                t.l1[h][i] = device_block(pa);
            } else {
                uint64_t* l2 = t.l2[nl2++];
                for (unsigned k = 0; k < 512; k++) {
                    uint64_t p2 = pa + k * 2 * MiB;
                    l2[k] = p2 >= lo && p2 + 2 * MiB <= hi ? normal_block(p2) : device_block(p2);
                }
                t.l1[h][i] = phys(l2) | kTable;
            }
        }
    }
}

}  // namespace moat::arch::early_map
