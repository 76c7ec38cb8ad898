// Arm SMMUv3 registers, table and queue formats (Arm IHI 0070; docs/hardware.md §3).
// One enum per register width so a 64-bit register can never be accessed with 32 bits,
// one named Field per bit field.
#pragma once
#include "common/types.hpp"

namespace moat::smmuv3 {

enum class Reg32 : uint32_t {
    IDR0 = 0x00,          // features: stages, table formats, coherency
    IDR1 = 0x04,          // sizes: stream id bits, queue sizes
    IDR3 = 0x0c,          // range invalidation
    IDR5 = 0x14,          // output size, granules
    CR0 = 0x20,           // enables: SMMU, queues
    CR0ACK = 0x24,        // CR0 as the SMMU has applied it
    CR1 = 0x28,           // table and queue memory attributes
    CR2 = 0x2c,           // record invalid stream ids, ...
    IRQ_CTRL = 0x50,      // which interrupt lines the SMMU may signal
    IRQ_CTRLACK = 0x54,   // IRQ_CTRL as the SMMU has applied it
    GERROR = 0x60,        // global errors, active while they differ from GERRORN
    GERRORN = 0x64,       // acknowledged global errors
    STRTAB_BASE_CFG = 0x88,
    CMDQ_PROD = 0x98,
    CMDQ_CONS = 0x9c,
    EVENTQ_PROD = 0x100a8,  // page 1
    EVENTQ_CONS = 0x100ac,  // page 1
};

enum class Reg64 : uint32_t {
    STRTAB_BASE = 0x80,
    CMDQ_BASE = 0x90,
    EVENTQ_BASE = 0xa0,
};

namespace idr0 {
constexpr uint64_t kS2P = bit(0), kS1P = bit(1), kCohacc = bit(4), kAsid16 = bit(12), kVmid16 = bit(18);
constexpr uint64_t kHyp = bit(9);  // EL2 regime: without it CMD_TLBI_EL2_* is illegal
constexpr Field kTtf{3, 2};          // bit 1 of the field: AArch64 tables
constexpr Field kStLevel{28, 27};    // 0 linear only, 1 two-level too
}  // namespace idr0
namespace idr1 {
constexpr Field kSidSize{5, 0}, kEventqs{20, 16}, kCmdqs{25, 21};
}
namespace idr3 {
constexpr uint64_t kRil = bit(10);
}
namespace idr5 {
constexpr Field kOas{2, 0};
constexpr uint64_t kGran4k = bit(4);
}
namespace cr0 {
constexpr uint32_t kSmmuEn = 1u << 0, kEventqEn = 1u << 2, kCmdqEn = 1u << 3;
}
namespace cr1 {  // write-back, inner shareable for queues and tables
constexpr uint32_t kWbInnerShareable = 1u << 0 | 1u << 2 | 3u << 4 | 1u << 6 | 1u << 8 | 3u << 10;
}
namespace cr2 {
constexpr uint32_t kRecInvSid = 1u << 1;  // record C_BAD_STREAMID
}
namespace irq_ctrl {
constexpr uint32_t kGerrorIrqen = 1u << 0, kPriIrqen = 1u << 1, kEventqIrqen = 1u << 2;
}  // namespace irq_ctrl

namespace gerror {
constexpr uint32_t kCmdqErr = 1u << 0, kEventqAbt = 1u << 2, kSfmErr = 1u << 8;
}
namespace strtab {
constexpr uint64_t kRa = bit(62);
constexpr Field kAddr{51, 6};
constexpr Field kLog2Size{5, 0}, kSplit{10, 6}, kFmt{17, 16};
constexpr uint64_t kFmtLinear = 0, kFmt2Level = 1;
constexpr Field kL1Span{4, 0};
constexpr Field kL1L2Ptr{51, 6};
}  // namespace strtab
namespace queue {
constexpr uint64_t kRwa = bit(62);
constexpr Field kAddr{51, 5}, kLog2Size{4, 0};
constexpr uint32_t kOvflg = 1u << 31;            // EVENTQ_PROD overflow / EVENTQ_CONS ack
constexpr Field kConsErr{30, 24};                // CMDQ_CONS.ERR
}  // namespace queue

// Stream table entry: 8 doublewords.
namespace ste {
constexpr unsigned kDwords = 8;
constexpr uint64_t kValid = bit(0);
constexpr Field kConfig{3, 1};
constexpr uint64_t kCfgAbort = 0, kCfgBypass = 4, kCfgS1 = 5, kCfgS2 = 6;
constexpr Field kS1Fmt{5, 4};
constexpr Field kS1ContextPtr{51, 6};
constexpr Field kS1CDMax{63, 59};
// dword 1
constexpr Field kS1Cir{3, 2}, kS1Cor{5, 4}, kS1Csh{7, 6};
constexpr Field kShcfg{45, 44};
constexpr uint64_t kShcfgIncoming = 1;
// dword 2
constexpr Field kS2Vmid{15, 0}, kS2T0sz{37, 32}, kS2Sl0{39, 38}, kS2Ir0{41, 40}, kS2Or0{43, 42}, kS2Sh0{45, 44};
constexpr Field kS2Tg{47, 46}, kS2Ps{50, 48};
constexpr uint64_t kS2Aa64 = bit(51), kS2Ptw = bit(54), kS2R = bit(58);
// dword 3
constexpr Field kS2Ttb{51, 4};
}  // namespace ste

// Context descriptor: 8 doublewords.
namespace cd {
constexpr unsigned kDwords = 8;
constexpr Field kT0sz{5, 0}, kTg0{7, 6}, kIr0{9, 8}, kOr0{11, 10}, kSh0{13, 12};
constexpr uint64_t kEpd1 = bit(30), kValid = bit(31);
constexpr Field kIps{34, 32};
constexpr uint64_t kAa64 = bit(41), kR = bit(45), kA = bit(46);
constexpr Field kAsid{63, 48};
constexpr Field kTtb0{51, 4};  // dword 1
}  // namespace cd

// Commands: 2 doublewords.
namespace cmd {
constexpr uint8_t kCfgiSte = 0x03, kCfgiSteRange = 0x04, kCfgiCd = 0x05, kTlbiNhAll = 0x10, kTlbiNhAsid = 0x11,
                  kTlbiNhVa = 0x12, kTlbiEl2All = 0x20, kTlbiS12Vmall = 0x28, kTlbiS2Ipa = 0x2a, kTlbiNsnhAll = 0x30,
                  kSync = 0x46;
constexpr Field kOpcode{7, 0};
constexpr Field kSid{63, 32};
constexpr Field kVmid{47, 32}, kAsid{63, 48};
constexpr Field kNum{16, 12}, kScale{24, 20};
constexpr uint64_t kLeaf = bit(0);      // dword 1
constexpr Field kRange{4, 0};           // dword 1 of CFGI_STE_RANGE
constexpr Field kSyncCs{13, 12};        // CMD_SYNC completion signal: 0 none, 1 interrupt, 2 SEV
constexpr uint64_t kSyncCsIrq = 1;
constexpr Field kTtl{9, 8}, kTg{11, 10};
constexpr Field kAddr{63, 12};
constexpr uint64_t kTg4k = 1;
}  // namespace cmd

// Event records: 4 doublewords.
namespace evt {
constexpr Field kType{7, 0}, kSid{63, 32};
constexpr uint64_t kRnW = bit(35);      // dword 1: 1 = read
constexpr uint64_t kS2 = bit(39);       // dword 1: the fault was taken at stage 2
constexpr Field kIpa{51, 12};           // dword 3 of a translation-class fault: the IPA (stage 2)
enum Type : uint8_t {
    F_UUT = 0x01, C_BAD_STREAMID = 0x02, F_STE_FETCH = 0x03, C_BAD_STE = 0x04, F_BAD_ATS_TREQ = 0x05,
    F_STREAM_DISABLED = 0x06, F_TRANSL_FORBIDDEN = 0x07, C_BAD_SUBSTREAMID = 0x08, F_CD_FETCH = 0x09,
    C_BAD_CD = 0x0a, F_WALK_EABT = 0x0b, F_TRANSLATION = 0x10, F_ADDR_SIZE = 0x11, F_ACCESS = 0x12,
    F_PERMISSION = 0x13, F_TLB_CONFLICT = 0x20, F_CFG_CONFLICT = 0x21,
};
}  // namespace evt

}  // namespace moat::smmuv3
