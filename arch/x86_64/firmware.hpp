// What the x86 loader and firmware hand over, read once at entry: the PVH start info (its
// command line, memory map and RSDP) and the ACPI tables, turned into the boot tree.
#pragma once
#include <stdint.h>

namespace moat::arch {

// Xen's hvm_start_info (PVH boot ABI), as QEMU's -kernel fills it.
struct HvmStartInfo {
    uint32_t magic;           // kHvmStartMagic
    uint32_t version;         // 1: the memory map fields are valid
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;   // NUL-terminated, or 0
    uint64_t rsdp_paddr;      // offset 32
    uint64_t memmap_paddr;    // version 1
    uint32_t memmap_entries;
    uint32_t reserved;
};
static_assert(__builtin_offsetof(HvmStartInfo, rsdp_paddr) == 32);
static_assert(sizeof(HvmStartInfo) == 56);

struct HvmMemmapEntry {
    uint64_t addr, size;
    uint32_t type;  // E820 types: 1 RAM, 2 reserved, 3 ACPI reclaimable, 4 ACPI NVS, 5 unusable
    uint32_t reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

constexpr uint32_t kHvmStartMagic = 0x336ec578;

struct FirmwareTree {
    uint64_t pa;        // the boot tree, inside the image
    unsigned problems;  // bad tables, each reported: the verdict counts them
};

// Reads the start info and the ACPI tables and writes the boot tree into the image. Prints what
// it found; a start info or RSDP moat cannot use ends the run (exit 3).
FirmwareTree firmware_tree(uint64_t start_info_pa, uint64_t ram_window_end);

}  // namespace moat::arch
