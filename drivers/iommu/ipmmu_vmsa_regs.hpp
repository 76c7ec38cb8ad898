// Renesas IPMMU-VMSA registers, R-Car Gen3 and Gen4 (docs/hardware.md §1, §1.9; offsets and fields as the
// Linux and Xen drivers use them, which were checked against each other). Every register is 32 bits wide.
// Three banks, so that an offset of one can never be used on another:
//   Ctx    per context (the root holds all of them; a cache only IMCTR)
//   Utlb   per micro-TLB, IMUCTR/IMUASID; uTLBs 32 and up live in a second window
//   Global the IPMMU's own controls
// Where each bank starts, how far apart the contexts are and how many of everything there are
// differ between generations: one Generation describes that, and every offset goes through it.
// One named Field (or bit) per field.
#pragma once
#include "common/types.hpp"

namespace moat::ipmmu {

constexpr unsigned kMaxContexts = 16;    // Gen4; what the driver's storage holds
constexpr unsigned kMaxUtlbs = 64;       // Gen4

// What one generation's register map and capacities are (docs/hardware.md §1.1, §1.9).
struct Generation {
    const char* name;        // "R-Car Gen3"
    unsigned contexts;       // root contexts
    unsigned utlbs;          // uTLBs per IPMMU
    uint64_t reg_size;       // the register window every IPMMU node's reg gives
    uint32_t ctx_base;       // context 0's IMCTR
    uint32_t ctx_stride;     // from context n to n + 1 (plus kCtxHighSkip from 7 to 8)
    uint32_t utlb_base;      // added to every IMUCTR/IMUASID offset
    uint32_t control_base;   // added to IMSCTLR/IMSAUXCTLR
    Field ttsel;             // IMUCTR.TTSEL: the context a uTLB walks with
    bool fixed_prr;          // the product register is at 0xfff00044 also when the tree has no renesas,prr node
};
// One object per generation program-wide (inline): drivers compare generations by address.
// Contexts 8 and up start 0x600 further on than the stride says (both drivers compute it this
// way; only Gen4 has them).
constexpr uint32_t kCtxHighSkip = 0x800 - 8 * 0x40;

inline constexpr Generation kGen3{"R-Car Gen3", 8, 48, 0x1000, 0x0, 0x40, 0x0, 0x0, Field{7, 4}, true};
inline constexpr Generation kGen4{"R-Car Gen4", 16, 64, 0x20000, 0x10000, 0x1040, 0x3000, 0x1000, Field{8, 4}, false};

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
    IMUCTR = 0x300,   // uTLB control: enable, flush, which context (TTSEL), from the uTLB base
    IMUASID = 0x308,  // uTLB ASID: both known drivers write 0
};

enum class Global : uint32_t {
    IMSCTLR = 0x500,     // system control: security group function (from the control base)
    IMSAUXCTLR = 0x504,  // auxiliary control: stage-2 table format (root)
};

constexpr uint32_t offset(const Generation& g, Ctx r, unsigned context) {
    return g.ctx_base + (context >= 8 ? kCtxHighSkip : 0) + context * g.ctx_stride + static_cast<uint32_t>(r);
}
// uTLB n: 0x300 + 16n below 32, then a second window from 0x600 (Linux and Xen agree), both
// moved by the generation's uTLB base.
constexpr uint32_t offset(const Generation& g, Utlb r, unsigned utlb) {
    uint32_t at = utlb < 32 ? 16 * utlb : 0x300 + 16 * (utlb - 32);
    return g.utlb_base + static_cast<uint32_t>(r) + at;
}
constexpr uint32_t offset(const Generation& g, Global r) { return g.control_base + static_cast<uint32_t>(r); }

// Gen3: contexts below the uTLBs, the second uTLB window after the controls.
static_assert(offset(kGen3, Utlb::IMUCTR, 31) == 0x4f0 && offset(kGen3, Utlb::IMUASID, 31) == 0x4f8);
static_assert(offset(kGen3, Utlb::IMUCTR, 32) == 0x600 && offset(kGen3, Utlb::IMUASID, 47) == 0x6f8);
static_assert(offset(kGen3, Ctx::IMEUAR, kGen3.contexts - 1) < offset(kGen3, Utlb::IMUCTR, 0));
// Gen4: controls at 0x1500, uTLBs from 0x3300, contexts from 0x10000, all inside the 0x20000 window.
static_assert(offset(kGen4, Global::IMSAUXCTLR) == 0x1504 && offset(kGen4, Utlb::IMUCTR, 0) == 0x3300);
static_assert(offset(kGen4, Utlb::IMUASID, 63) == 0x37f8 && offset(kGen4, Ctx::IMCTR, 7) == 0x171c0);
static_assert(offset(kGen4, Ctx::IMCTR, 8) == 0x18800 && offset(kGen4, Ctx::IMEUAR, 15) + 4 <= kGen4.reg_size);
static_assert(kGen3.contexts <= kMaxContexts && kGen4.contexts <= kMaxContexts && kGen4.utlbs <= kMaxUtlbs);
static_assert(kGen3.ttsel.fits(kGen3.contexts - 1) && kGen4.ttsel.fits(kGen4.contexts - 1));

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
// TTSEL, the context this uTLB walks with, starts at bit 4: 4 bits on Gen3, 5 on Gen4 (Generation::ttsel).
constexpr Field kFixAdd{23, 16};
constexpr uint32_t kFixAddEn = 1u << 31;
}  // namespace imuctr

namespace imsctlr {
constexpr uint32_t kUseSecGrp = 1u << 28;  // security group function: both drivers clear it
}
namespace imsauxctlr {
constexpr uint32_t kS2pte = 1u << 3;   // the root walks stage-2 format descriptors
}

// Product register (PRR, `renesas,prr` in the DT, at 0xfff00044 on Gen3 and in Linux's Gen4 trees):
// which SoC and which cut.
namespace prr {
constexpr uintptr_t kGen3Address = 0xfff00044;  // where every Gen3 SoC has it, with or without the DT node
constexpr Field kProduct{14, 8};       // mask 0x7f00
constexpr Field kCut{7, 0};            // 0x00 ES1.0, 0x10 ES2.0, 0x20 ES3.0 (ES(major + 1).minor)
constexpr uint32_t kH3 = 0x4f, kM3W = 0x52, kM3N = 0x55;  // Gen3
constexpr uint32_t kV3U = 0x59, kS4 = 0x5a;                // Gen4
constexpr uint32_t kCutEs30 = 0x20;
}  // namespace prr

// What one SoC's IPMMU needs; the registry's entry for its compatible points at it.
struct Soc {
    const char* name;
    uint32_t product;         // PRR product field
    const Generation* gen;    // its register map and capacities
    bool needs_es3;           // stage-2 tables (and the Xen way of sharing them) only from ES3.0
    bool only_es3 = false;    // the part exists only as ES3.0 and later: its compatible says the cut
    // Its root walks stage-2 tables (IMSAUXCTLR.S2PTE): a public driver shares the P2M on it (Xen).
    // Without it the root gets 32-bit LPAE stage-1 tables, the format Linux drives every part with.
    bool stage2 = true;
};
inline constexpr Soc kSocH3{"R-Car H3", prr::kH3, &kGen3, true};
inline constexpr Soc kSocM3W{"R-Car M3-W", prr::kM3W, &kGen3, true};
inline constexpr Soc kSocM3WPlus{"R-Car M3-W+", prr::kM3W, &kGen3, true, true};  // M3-W+ (r8a77961) is M3-W ES3.0
inline constexpr Soc kSocM3N{"R-Car M3-N", prr::kM3N, &kGen3, false};
// S4: Xen shares stage-2 tables on every cut. V3U: Linux drives it (LPAE stage 1), Xen does not
// list it, and nobody says its IPMMU walks stage-2 tables: moat gives it stage-1 tables.
inline constexpr Soc kSocS4{"R-Car S4", prr::kS4, &kGen4, false};
inline constexpr Soc kSocV3U{"R-Car V3U", prr::kV3U, &kGen4, false, false, false};

}  // namespace moat::ipmmu
