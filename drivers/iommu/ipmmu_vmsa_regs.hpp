// Renesas IPMMU-VMSA registers, R-Car Gen3 layout (docs/hardware.md §1; offsets and fields as the Linux and
// Xen drivers use them, which were checked against each other). Every register is 32 bits wide.
// Three banks, so that an offset of one can never be used on another:
//   Ctx    per context, at context * 0x40 (the root holds all of them; a cache only IMCTR)
//   Utlb   per micro-TLB, IMUCTR/IMUASID; uTLBs 32..47 live in a second window at 0x600
//   Global the IPMMU's own controls
// One named Field (or bit) per field.
#pragma once
#include "common/types.hpp"

namespace moat::ipmmu {

constexpr unsigned kContexts = 8;        // Gen3
constexpr unsigned kUtlbs = 48;          // Gen3
constexpr uint64_t kRegSize = 0x1000;    // the DT reg of every Gen3 IPMMU
constexpr uint32_t kCtxStride = 0x40;

enum class Ctx : uint32_t {
    IMCTR = 0x00,     // control: enable, flush, interrupt enable, table format (root)
    IMTTBCR = 0x08,   // translation table control: EAE, SL0, TSZ0 (root)
    IMTTLBR0 = 0x10,  // table base bits [31:12] (root)
    IMTTUBR0 = 0x14,  // table base bits [39:32] (root)
    IMTTLBR1 = 0x18,  // second table base, unused: TSZ0 covers the whole input range
    IMTTUBR1 = 0x1c,
    IMSTR = 0x20,     // status: latched faults with error code and level; write 0 to clear
    IMMAIR0 = 0x28,   // memory attributes 0-3 for stage-1 tables (root)
    IMMAIR1 = 0x2c,   // memory attributes 4-7
    IMELAR = 0x30,    // faulting address bits [31:0]; reads 0 once IMSTR is cleared
    IMEUAR = 0x34,    // faulting address bits [63:32]
};

enum class Utlb : uint32_t {
    IMUCTR = 0x300,   // uTLB control: enable, flush, which context (TTSEL)
    IMUASID = 0x308,  // uTLB ASID: both known drivers write 0
};

enum class Global : uint32_t {
    IMSCTLR = 0x500,     // system control: security group function
    IMSAUXCTLR = 0x504,  // auxiliary control: stage-2 table format (root)
};

constexpr uint32_t offset(Ctx r, unsigned context) { return context * kCtxStride + static_cast<uint32_t>(r); }
// uTLB n: 0x300 + 16n below 32, then a second window from 0x600 (Linux and Xen agree).
constexpr uint32_t offset(Utlb r, unsigned utlb) {
    uint32_t base = utlb < 32 ? 16 * utlb : 0x300 + 16 * (utlb - 32);
    return static_cast<uint32_t>(r) + base;
}
constexpr uint32_t offset(Global r) { return static_cast<uint32_t>(r); }

static_assert(offset(Utlb::IMUCTR, 31) == 0x4f0 && offset(Utlb::IMUASID, 31) == 0x4f8 && offset(Utlb::IMUCTR, 32) == 0x600);
static_assert(offset(Utlb::IMUASID, 47) == 0x6f8 && offset(Ctx::IMEUAR, kContexts - 1) < offset(Utlb::IMUCTR, 0));

namespace imctr {
constexpr uint32_t kMmuEn = 1u << 0;   // context translates
constexpr uint32_t kFlush = 1u << 1;   // flush the context's TLB; self-clears when done
constexpr uint32_t kIntEn = 1u << 2;   // faults raise the root's interrupt
constexpr uint32_t kTrEn = 1u << 3;
constexpr Field kRtSel{5, 4};
constexpr uint32_t kAfe = 1u << 16;
constexpr uint32_t kTre = 1u << 17;
constexpr uint32_t kVa64 = 1u << 29;   // VMSAv8-64 tables (root only)
// What a cache IPMMU's copy of IMCTR holds: the rest is the root's.
constexpr uint32_t kCacheMask = kMmuEn | kFlush | kIntEn;
}  // namespace imctr

namespace imttbcr {
constexpr uint32_t kEae = 1u << 31;    // long descriptors
constexpr uint32_t kPmb = 1u << 30;    // meaning unconfirmed; Xen sets it with stage-2 tables, Linux never
constexpr Field kSh1{29, 28}, kOrgn1{27, 26}, kIrgn1{25, 24}, kTsz1{20, 16};
constexpr Field kSh0{13, 12}, kOrgn0{11, 10}, kIrgn0{9, 8};
// Start level. Its encoding depends on the table format:
//   stage-2 tables (VA64 + S2PTE): as VTCR_EL2.SL0 with 4 KiB pages, 2 - level (Xen: level 1 = 1);
//   32-bit stage-1 (LPAE) tables:  3 - level (Linux: level 1 = 2; Gen2 had a one-bit field at [4]).
constexpr Field kSl0{7, 6};
constexpr Field kTsz0{4, 0};           // input size: 64 - bits with VA64, 32 - bits without
}  // namespace imttbcr

namespace imttlbr {
constexpr Field kLow{31, 12};          // IMTTLBR0: table base bits [31:12] in place
constexpr Field kHigh{7, 0};           // IMTTUBR0: table base bits [39:32]
constexpr unsigned kPaBits = 40;
}  // namespace imttlbr

namespace imstr {
constexpr uint32_t kTf = 1u << 0;      // translation fault
constexpr uint32_t kPf = 1u << 1;      // permission fault
constexpr uint32_t kAbort = 1u << 2;   // the table walk itself was aborted
constexpr uint32_t kMhit = 1u << 4;    // multiple TLB hits
constexpr uint32_t kErrors = kTf | kPf | kAbort | kMhit;
constexpr Field kErrCode{10, 8};
constexpr Field kErrLvl{13, 12};       // table level of the fault
}  // namespace imstr

namespace imuctr {
constexpr uint32_t kMmuEn = 1u << 0;   // the uTLB translates (clear: the master's addresses pass untranslated)
constexpr uint32_t kFlush = 1u << 1;   // flush the uTLB; self-clears
constexpr Field kTtSel{7, 4};          // context this uTLB walks with (Gen3: 4 bits)
constexpr Field kFixAdd{23, 16};
constexpr uint32_t kFixAddEn = 1u << 31;
}  // namespace imuctr

namespace imsctlr {
constexpr uint32_t kUseSecGrp = 1u << 28;  // security group function: both drivers clear it
}
namespace imsauxctlr {
constexpr uint32_t kS2pte = 1u << 3;   // the root walks stage-2 format descriptors
}

// Product register (PRR, `renesas,prr` in the DT, 0xfff00044 on Gen3): which SoC and which cut.
namespace prr {
constexpr uintptr_t kGen3Address = 0xfff00044;  // where every Gen3 SoC has it, with or without the DT node
constexpr Field kProduct{14, 8};       // mask 0x7f00
constexpr Field kCut{7, 0};            // 0x00 ES1.0, 0x10 ES2.0, 0x20 ES3.0 (ES(major + 1).minor)
constexpr uint32_t kH3 = 0x4f, kM3W = 0x52, kM3N = 0x55;
constexpr uint32_t kCutEs30 = 0x20;
}  // namespace prr

// What one SoC's IPMMU needs; the registry's entry for its compatible points at it.
struct Soc {
    const char* name;
    uint32_t product;  // PRR product field
    bool needs_es3;    // stage-2 tables (and the Xen way of sharing them) only from ES3.0
    bool only_es3 = false;  // the part exists only as ES3.0 and later: its compatible says the cut
};
constexpr Soc kSocH3{"R-Car H3", prr::kH3, true};
constexpr Soc kSocM3W{"R-Car M3-W", prr::kM3W, true};
constexpr Soc kSocM3WPlus{"R-Car M3-W+", prr::kM3W, true, true};  // M3-W+ (r8a77961) is M3-W ES3.0
constexpr Soc kSocM3N{"R-Car M3-N", prr::kM3N, false};

}  // namespace moat::ipmmu
