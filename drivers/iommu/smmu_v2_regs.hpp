// Arm SMMUv2 (IHI 0062) registers as the MMU-500 implements them (docs/hardware.md §2, UG1087 for ZynqMP).
// One enum class per register space and access width, so that a context-bank offset can never
// reach global space and a 64-bit register is never accessed with 32 bits; one named Field or
// bit per field.
//
// Address map: global space 0 (GR0) at the base, global space 1 (GR1) one page up, context
// bank n at base + NUMPAGE * page + n * page, where NUMPAGE = 2^(ID1.NUMPAGENDXB + 1) and the
// page is 4 KiB or 64 KiB (ID1.PAGESIZE). The whole SMMU spans 2 * NUMPAGE pages.
#pragma once
#include "common/types.hpp"

namespace moat::smmuv2 {

// Global register space 0, 32-bit registers.
enum class Gr0 : uint32_t {
    sCR0 = 0x000,          // global configuration: client port, fault reporting, unmatched streams
    sACR = 0x010,          // auxiliary configuration (implementation defined; MMU-500 bits below)
    ID0 = 0x020,           // stages, stream matching, NUMSIDB, coherent walks, NUMSMRG
    ID1 = 0x024,           // page size, NUMPAGENDXB, context banks
    ID2 = 0x028,           // IAS, OAS, UBS, granules, 16-bit VMIDs
    ID7 = 0x03c,           // implementation revision (MMU-500: rMAJORpMINOR)
    sGFSR = 0x048,         // global fault status, write 1 to clear
    sGFSYNR0 = 0x050,      // global fault syndrome: direction, privilege
    sGFSYNR1 = 0x054,      // global fault syndrome: stream id
    TLBIVMID = 0x064,      // invalidate every entry of one VMID
    TLBIALLNSNH = 0x068,   // invalidate every non-secure, non-hypervisor entry
    TLBIALLH = 0x06c,      // invalidate every hypervisor entry
    sTLBGSYNC = 0x070,     // start a sync of the global invalidations
    sTLBGSTATUS = 0x074,   // GSACTIVE until that sync completes
};
// Global register space 0, 64-bit registers.
enum class Gr0_64 : uint32_t {
    sGFAR = 0x040,         // global fault address
};
// Global register space 0, arrays of 32-bit registers indexed by stream map entry.
enum class Gr0Array : uint32_t {
    SMR = 0x800,           // stream match register n: ID, MASK, VALID
    S2CR = 0xc00,          // stream-to-context register n: what a match does
};
// Global register space 1, arrays of 32-bit registers indexed by context bank.
enum class Gr1Array : uint32_t {
    CBAR = 0x000,          // bank type and VMID
    CBFRSYNRA = 0x400,     // stream id of the bank's last recorded fault
    CBA2R = 0x800,         // AArch64 (VA64) contexts, 16-bit VMID
};
// Context bank registers, 32-bit.
enum class Cb : uint32_t {
    SCTLR = 0x000,         // enable, fault reporting and fault model
    ACTLR = 0x004,         // auxiliary control (MMU-500: next-page prefetcher)
    TCR2 = 0x010,          // stage 1: output size, ASID size, sign-extension position
    TCR = 0x030,           // stage 1 TCR / stage 2 VTCR: T0SZ, SL0, cacheability, granule, PS
    MAIR0 = 0x038,         // stage 1 attribute indirection, attrs 0-3
    MAIR1 = 0x03c,         // attrs 4-7
    FSR = 0x058,           // context fault status, write 1 to clear
    FSYNR0 = 0x068,        // context fault syndrome: level, direction
    TLBIASID = 0x610,      // invalidate stage-1 entries of one ASID
    TLBIALL = 0x618,       // invalidate every entry of the bank
    TLBSYNC = 0x7f0,       // start a sync of this bank's invalidations
    TLBSTATUS = 0x7f4,     // SACTIVE until that sync completes
};
// Context bank registers, 64-bit.
enum class Cb64 : uint32_t {
    TTBR0 = 0x020,         // table base (stage 1: ASID in [63:48])
    FAR = 0x060,           // input address of the recorded fault
    TLBIVA = 0x600,        // stage 1 by address: VA >> 12 in [43:0], ASID in [63:48]
    TLBIVAL = 0x620,       // the same, last-level entries only
    TLBIIPAS2 = 0x630,     // stage 2 by address: IPA >> 12 in [35:0]
    TLBIIPAS2L = 0x638,    // the same, last-level entries only
};

namespace scr0 {
constexpr uint32_t kClientPd = 1u << 0;   // 1: every transaction bypasses the SMMU
constexpr uint32_t kGfre = 1u << 1;       // abort transactions that raise a global fault
constexpr uint32_t kGfie = 1u << 2;       // interrupt on a global fault
constexpr uint32_t kGcfgfre = 1u << 4;    // the same for global configuration faults
constexpr uint32_t kGcfgfie = 1u << 5;
constexpr uint32_t kUsfcfg = 1u << 10;    // 1: an unmatched stream faults; 0: it bypasses
constexpr uint32_t kVmidpne = 1u << 11;   // VMIDs private to the SMMU, not the CPU's namespace
constexpr uint32_t kPtm = 1u << 12;       // private TLB maintenance: ignore CPU broadcast TLBIs
constexpr uint32_t kFb = 1u << 13;        // force broadcast of TLB maintenance
constexpr uint32_t kBsu = 3u << 14;       // barrier shareability upgrade
constexpr uint32_t kVmid16En = 1u << 31;
}  // namespace scr0

namespace sacr {  // MMU-500 (TRM; Linux and Jailhouse use the same bits)
constexpr uint32_t kCacheLock = 1u << 26; // r2p0 on: while set, context-bank ACTLR writes are ignored
}

namespace id0 {
constexpr Field kNumSmrg{7, 0};
constexpr uint32_t kExids = 1u << 8;
constexpr Field kNumSidb{12, 9};
constexpr uint32_t kCttw = 1u << 14;      // coherent translation table walks
constexpr uint32_t kSms = 1u << 27;       // stream matching (0: stream indexing)
constexpr uint32_t kNts = 1u << 28;
constexpr uint32_t kS2ts = 1u << 29;
constexpr uint32_t kS1ts = 1u << 30;
}  // namespace id0

namespace id1 {
constexpr Field kNumCb{7, 0};
constexpr Field kNumS2Cb{23, 16};         // banks [0, NUMS2CB) can only do stage 2
constexpr Field kNumPageNdxb{30, 28};
constexpr uint32_t kPageSize = 1u << 31;  // 1: 64 KiB register pages
}  // namespace id1

namespace id2 {
constexpr Field kIas{3, 0}, kOas{7, 4}, kUbs{11, 8};
constexpr uint32_t kPtfs4k = 1u << 12;
constexpr uint32_t kVmid16 = 1u << 15;
}  // namespace id2

namespace id7 {
constexpr Field kMajor{7, 4}, kMinor{3, 0};
}

// sGFSR: global faults. Unmatched streams (sCR0.USFCFG) and streams whose S2CR says fault
// are reported as USF.
namespace gfsr {
constexpr uint32_t kIcf = 1u << 0;        // invalid context: S2CR names a bank that is not there
constexpr uint32_t kUsf = 1u << 1;        // unidentified stream
constexpr uint32_t kSmcf = 1u << 2;       // stream match conflict: several SMRs matched
constexpr uint32_t kUcbf = 1u << 3;       // unimplemented context bank
constexpr uint32_t kUcif = 1u << 4;       // unimplemented context interrupt
constexpr uint32_t kCaf = 1u << 5;        // configuration access fault
constexpr uint32_t kEf = 1u << 6;         // external fault
constexpr uint32_t kPf = 1u << 7;         // permission fault
constexpr uint32_t kUut = 1u << 8;        // unsupported upstream transaction
constexpr uint32_t kMulti = 1u << 31;     // another fault arrived while one was recorded
constexpr uint32_t kAll = kIcf | kUsf | kSmcf | kUcbf | kUcif | kCaf | kEf | kPf | kUut | kMulti;
}  // namespace gfsr

namespace gfsynr0 {
constexpr uint32_t kWnr = 1u << 1;        // 1: the faulting access was a write
}
namespace gfsynr1 {
constexpr Field kStreamId{15, 0};
}

namespace smr {
constexpr Field kId{15, 0};               // bits above ID0.NUMSIDB are not implemented
constexpr Field kMask{30, 16};            // a set bit: that stream-id bit is ignored
constexpr uint32_t kValid = 1u << 31;
}  // namespace smr

namespace s2cr {
constexpr Field kCbndx{7, 0};
constexpr Field kType{17, 16};
constexpr uint32_t kTypeTranslate = 0, kTypeBypass = 1, kTypeFault = 2;
}  // namespace s2cr

namespace cbar {
constexpr Field kVmid{7, 0};
constexpr Field kBpshcfg{9, 8};           // stage 1 + bypass: shareability of the bypassed stage 2
constexpr Field kMemAttr{15, 12};         // stage 1 + bypass: memory type of the bypassed stage 2
constexpr Field kType{17, 16};
constexpr uint32_t kTypeS2 = 0, kTypeS1BypassS2 = 1, kTypeS1FaultS2 = 2, kTypeNested = 3;
constexpr uint32_t kBpshcfgNsh = 3, kMemAttrWb = 0xf;
}  // namespace cbar

namespace cbfrsynra {
constexpr Field kStreamId{15, 0};
}

namespace cba2r {
constexpr uint32_t kVa64 = 1u << 0;       // AArch64 translation tables
constexpr Field kVmid16{31, 16};
}  // namespace cba2r

namespace sctlr {
constexpr uint32_t kM = 1u << 0;          // translation enabled
constexpr uint32_t kTre = 1u << 1;
constexpr uint32_t kAfe = 1u << 2;
constexpr uint32_t kE = 1u << 4;          // big-endian tables: never set
constexpr uint32_t kCfre = 1u << 5;       // abort the transaction of a context fault
constexpr uint32_t kCfie = 1u << 6;       // interrupt on a context fault
constexpr uint32_t kCfcfg = 1u << 7;      // 1: stall on a fault. Left clear: MMU-500 erratum 842869
constexpr uint32_t kHupcf = 1u << 8;
constexpr uint32_t kAsidpne = 1u << 12;   // stage 1: the ASID is private to this bank
}  // namespace sctlr

namespace actlr {  // MMU-500
constexpr uint32_t kCpre = 1u << 1;       // next-page prefetcher; off for errata 841119 and 826419
}

// TCR in a stage-1 bank (the AArch64 TCR_EL1 layout for TTBR0).
namespace tcr {
constexpr Field kT0sz{5, 0};
constexpr uint32_t kEpd0 = 1u << 7;
constexpr Field kIrgn0{9, 8}, kOrgn0{11, 10}, kSh0{13, 12}, kTg0{15, 14};
constexpr uint32_t kEpd1 = 1u << 23;      // no TTBR1 walks (IRGN0/ORGN0/SH0 codes: iopt::vmsa_walk_codes)
constexpr uint64_t kTg4k = 0;
}  // namespace tcr

// TCR in a stage-2 bank (the VTCR_EL2 layout).
namespace vtcr {
constexpr Field kT0sz{5, 0}, kSl0{7, 6}, kIrgn0{9, 8}, kOrgn0{11, 10}, kSh0{13, 12}, kTg0{15, 14}, kPs{18, 16};
constexpr uint32_t kRes1 = 1u << 31;
}  // namespace vtcr

namespace tcr2 {
constexpr Field kPaSize{3, 0};            // stage 1 output size, PS encoding
constexpr uint32_t kAs = 1u << 4;         // 16-bit ASIDs
constexpr Field kSep{17, 15};
constexpr uint32_t kSepUpstream = 7;      // sign extension at the upstream bus size
}  // namespace tcr2

namespace ttbr {
constexpr Field kAsid{63, 48};
constexpr Field kBase{47, 4};
}  // namespace ttbr

namespace fsr {
constexpr uint32_t kTf = 1u << 1;         // translation
constexpr uint32_t kAff = 1u << 2;        // access flag
constexpr uint32_t kPf = 1u << 3;         // permission
constexpr uint32_t kEf = 1u << 4;         // external abort on the walk
constexpr uint32_t kTlbmcf = 1u << 5;     // TLB match conflict
constexpr uint32_t kTlblkf = 1u << 6;     // TLB lock fault
constexpr uint32_t kAsf = 1u << 7;        // address size
constexpr uint32_t kUut = 1u << 8;        // unsupported upstream transaction
constexpr uint32_t kSs = 1u << 30;        // stalled (never, with SCTLR.CFCFG clear)
constexpr uint32_t kMulti = 1u << 31;
constexpr uint32_t kFaults = kTf | kAff | kPf | kEf | kTlbmcf | kTlblkf | kAsf | kUut | kSs;
constexpr uint32_t kAll = kFaults | kMulti;
}  // namespace fsr

namespace fsynr0 {
constexpr Field kPlvl{1, 0};              // table level of the fault
constexpr uint32_t kWnr = 1u << 4;        // 1: write
}  // namespace fsynr0

namespace tlbstatus {
constexpr uint32_t kActive = 1u << 0;     // TLBSTATUS.SACTIVE / sTLBGSTATUS.GSACTIVE
}

namespace tlbi {
constexpr Field kAddr{43, 0};             // TLBIVA(L): VA >> 12; TLBIIPAS2(L): IPA >> 12 ([35:0])
constexpr Field kAsid{63, 48};
}  // namespace tlbi

// ID2.IAS/OAS and TCR PS encodings share one table; UBS differs above 44 bits.
constexpr unsigned address_bits(uint64_t enc) {
    constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48};
    return enc < 6 ? kBits[enc] : 48;
}
constexpr unsigned ubs_bits(uint64_t enc) {
    constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 49};
    return enc < 6 ? kBits[enc] : 64;
}

}  // namespace moat::smmuv2
