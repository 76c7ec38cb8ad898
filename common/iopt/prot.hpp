// What a mapping is, in terms every page-table format shares: the access it allows, the memory
// type and shareability of what it maps, and what a lookup finds. Formats (VMSAv8-64 stage 1 and 2
// today; VT-d second level and EPT later) encode it into their own descriptor bits.
#pragma once
#include "common/types.hpp"

namespace moat::iopt {

// Access a mapping allows. Execute is only meaningful to walkers that fetch instructions (the CPU
// sharing a stage-2 table); devices ignore it, so the default is execute-never.
enum Perm : uint8_t { kRead = 1, kWrite = 2, kExec = 4 };
constexpr uint8_t kPermMask = kRead | kWrite | kExec;

enum class MemType : uint8_t {
    normal_wb,  // Normal, inner and outer write-back (read/write-allocate): cacheable, snooped DMA
    normal_nc,  // Normal, non-cacheable
    device,     // Device-nGnRE: MMIO (MSI doorbells, peer-to-peer BARs)
};

// Shareability, with its SH[1:0] encoding. Ignored by hardware for device and non-cacheable memory
// but still encoded as given so that lookup reads back what was mapped.
enum class Share : uint8_t { none = 0, outer = 2, inner = 3 };

struct Prot {
    uint8_t perm = kRead | kWrite;
    MemType type = MemType::normal_wb;
    Share share = Share::inner;
    bool privileged = false;  // stage 1 only: no unprivileged access (AP[1] clear)
    bool not_global = false;  // stage 1 only: nG, the TLB entry is tagged with the ASID
    constexpr bool operator==(const Prot&) const = default;
};

struct Translation {
    uint64_t pa = 0;     // output address of the IOVA looked up (block base + offset)
    uint64_t size = 0;   // size of the leaf: 4 KiB page, 2 MiB or 1 GiB block
    unsigned level = 0;  // level of the leaf
    Prot prot;
};

}  // namespace moat::iopt
