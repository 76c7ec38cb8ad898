// Intel VT-d DMA-remapping registers, table entries and invalidation descriptors (Intel VT-d
// specification, chapters 9-11; docs/hardware.md "Intel VT-d"). One enum per access width so a
// 64-bit register is never accessed with 32 bits; one named constant or Field per bit field.
#pragma once
#include "common/types.hpp"

namespace moat::vtd {

enum class Reg32 : uint32_t {
    VER = 0x00,    // architecture version (major 7:4, minor 3:0)
    GCMD = 0x18,   // global command: enables and one-shot commands
    GSTS = 0x1c,   // global status: what GCMD has taken effect
    FSTS = 0x34,   // fault status: overflow, pending, queue errors, first record index
    FECTL = 0x38,  // fault event control: interrupt mask
    ICS = 0x9c,    // invalidation completion status
};

enum class Reg64 : uint32_t {
    CAP = 0x08,     // capabilities
    ECAP = 0x10,    // extended capabilities
    RTADDR = 0x20,  // root table address and translation table mode
    CCMD = 0x28,    // context-cache invalidation (register-based)
    IQH = 0x80,     // invalidation queue head (byte offset of the next descriptor hardware reads)
    IQT = 0x88,     // invalidation queue tail (byte offset software writes next)
    IQA = 0x90,     // invalidation queue base, descriptor width, size
};

namespace cap {
constexpr Field kNd{2, 0};         // domain ids: 2^(4 + 2 * ND)
constexpr uint64_t kRwbf = bit(4); // write buffers must be flushed (GCMD.WBF) after table updates
constexpr uint64_t kCm = bit(7);   // caching mode: not-present entries may be cached
constexpr Field kSagaw{12, 8};     // bit 1: 39-bit 3-level, bit 2: 48-bit 4-level, bit 3: 57-bit 5-level
constexpr Field kMgaw{21, 16};     // maximum guest address width - 1
constexpr Field kFro{33, 24};      // fault recording registers at base + 16 * FRO
constexpr Field kSllps{37, 34};    // second-level superpages: bit 0 2 MiB, bit 1 1 GiB
constexpr uint64_t kPsi = bit(39); // page-selective IOTLB invalidation
constexpr Field kNfr{47, 40};      // fault recording registers - 1
constexpr Field kMamv{53, 48};     // largest address mask of a page-selective invalidation
constexpr uint64_t kDwd = bit(54), kDrd = bit(55);  // write / read draining
constexpr unsigned kSagaw39 = 1u << 1, kSagaw48 = 1u << 2, kSagaw57 = 1u << 3;
}  // namespace cap

namespace ecap {
constexpr uint64_t kC = bit(0);    // coherent: table reads snoop the CPU caches
constexpr uint64_t kQi = bit(1);   // queued invalidation
constexpr uint64_t kDt = bit(2);   // device TLBs (ATS)
constexpr uint64_t kIr = bit(3);   // interrupt remapping
constexpr uint64_t kPt = bit(6);   // pass-through translation type
constexpr uint64_t kSc = bit(7);   // snoop control: SNP in second-level leaves
constexpr Field kIro{17, 8};       // IOTLB registers at base + 16 * IRO
constexpr uint64_t kSmts = bit(43);    // scalable-mode translation
constexpr uint64_t kSlts = bit(46);    // second-level (second-stage) translation in scalable mode
constexpr uint64_t kSmpwc = bit(48);   // scalable mode: page walks may snoop (PASID entry PWSNP)
}  // namespace ecap

// GCMD bits, and the same positions in GSTS. One-shot commands (SRTP, SFL, WBF, SIRTP) must not
// be written back when an enable is changed: GCMD takes the enables that are on plus one change.
namespace gcmd {
constexpr uint32_t kTe = 1u << 31;    // translation enable
constexpr uint32_t kSrtp = 1u << 30;  // set root table pointer (GSTS.RTPS)
constexpr uint32_t kWbf = 1u << 27;   // write buffer flush (GSTS.WBFS while it runs)
constexpr uint32_t kQie = 1u << 26;   // queued invalidation enable
constexpr uint32_t kIre = 1u << 25;   // interrupt remapping enable
constexpr uint32_t kPersistent = kTe | kQie | kIre | (1u << 28) | (1u << 23);  // TE, EAFL, QIE, IRE, CFI
}  // namespace gcmd

namespace rtaddr {
constexpr uint64_t kAddr = bits(63, 12);
constexpr Field kTtm{11, 10};  // 0 legacy, 1 scalable
constexpr uint64_t kLegacy = 0, kScalable = 1;
}  // namespace rtaddr

namespace ccmd {
constexpr uint64_t kIcc = bit(63);  // set to invalidate, hardware clears it when done
constexpr Field kCirg{62, 61};      // requested granularity: 1 global, 2 domain, 3 device
constexpr Field kCaig{60, 59};      // actual granularity (0: not performed)
constexpr Field kFm{33, 32};        // function mask
constexpr Field kSid{31, 16};
constexpr Field kDid{15, 0};
constexpr uint64_t kGlobal = 1, kDomain = 2, kDevice = 3;
}  // namespace ccmd

// IOTLB_REG at 16 * ECAP.IRO + 8, IVA_REG at 16 * ECAP.IRO.
namespace iotlb {
constexpr uint64_t kIvt = bit(63);  // set to invalidate, cleared when done
constexpr Field kIirg{61, 60};      // requested: 1 global, 2 domain, 3 page
constexpr Field kIaig{58, 57};      // actual (0: not performed)
constexpr uint64_t kDr = bit(49), kDw = bit(48);  // drain reads / writes
constexpr Field kDid{47, 32};
constexpr uint64_t kGlobal = 1, kDomain = 2, kPage = 3;
constexpr uint64_t kIvaAddr = bits(63, 12);
constexpr uint64_t kIvaIh = bit(6);  // invalidation hint: only leaves changed, keep paging-structure caches
constexpr Field kIvaAm{5, 0};        // address mask: 2^AM pages, the address aligned to them
}  // namespace iotlb

namespace fsts {
constexpr uint32_t kPfo = 1u << 0;  // primary fault overflow (W1C)
constexpr uint32_t kPpf = 1u << 1;  // a fault record is pending (read-only: the records' F bits)
constexpr uint32_t kAfo = 1u << 2, kApf = 1u << 3;  // advanced fault logging (W1C)
constexpr uint32_t kIqe = 1u << 4;  // invalidation queue error (W1C)
constexpr uint32_t kIce = 1u << 5;  // invalidation completion error (W1C)
constexpr uint32_t kIte = 1u << 6;  // invalidation time-out error (W1C)
constexpr uint32_t kW1c = kPfo | kAfo | kApf | kIqe | kIce | kIte;
constexpr Field kFri{15, 8};        // index of the first pending fault record
}  // namespace fsts

namespace fectl {
constexpr uint32_t kIm = 1u << 31;  // interrupt mask: faults are polled
}

// A fault recording register: 128 bits, as two 64-bit halves.
namespace frcd {
constexpr uint64_t kFi = bits(63, 12);       // low: faulting page address
constexpr uint64_t kF = bit(63);             // high: valid record (W1C)
constexpr uint64_t kT = bit(62);             // high: 1 read, 0 write
constexpr Field kFr{39, 32};                 // high: fault reason
constexpr Field kSid{15, 0};                 // high: source id (bus 15:8, device 7:3, function 2:0)
constexpr unsigned kBytes = 16;
}  // namespace frcd

// Fault reasons (appendix "Non-recoverable fault reason encodings"), those moat can cause.
namespace reason {
constexpr uint8_t kRootNotPresent = 0x1, kContextNotPresent = 0x2, kContextInvalid = 0x3, kBeyondMgaw = 0x4,
                  kWrite = 0x5, kRead = 0x6, kPagingEntry = 0x7, kRootTable = 0x8, kContextTable = 0x9,
                  kRootReserved = 0xa, kContextReserved = 0xb, kPagingReserved = 0xc, kTranslationType = 0xd;
}

// Root entries: 256 per 4 KiB table, one per bus, 128 bits each.
namespace root {
constexpr uint64_t kPresent = bit(0);  // legacy P; scalable LP (lower context table, devfn 0-127)
constexpr uint64_t kCtp = bits(63, 12);
// Scalable mode: the high half's bit 0 is UP and its bits 63:12 the upper table (devfn 128-255).
}  // namespace root

// Legacy context entries: 256 per table (one per devfn), 128 bits each.
namespace ctx {
constexpr uint64_t kPresent = bit(0);
constexpr uint64_t kFpd = bit(1);       // fault processing disable: never set, faults are wanted
constexpr Field kTt{3, 2};              // translation type: 0 untranslated requests through the second level
constexpr uint64_t kSlptptr = bits(63, 12);
constexpr Field kAw{2, 0};              // high: adjusted guest address width, levels - 2
constexpr Field kDid{23, 8};            // high: domain id
}  // namespace ctx

// Scalable-mode context entries: 128 per table, 256 bits each; PASID directory, PASID table.
namespace smctx {
constexpr uint64_t kPresent = bit(0);
constexpr Field kPdts{11, 9};           // PASID directory of 2^(PDTS + 7) entries
constexpr uint64_t kPasidDir = bits(63, 12);
constexpr Field kRidPasid{19, 0};       // qword 1: the PASID requests without one use
constexpr unsigned kBytes = 32;
}  // namespace smctx
namespace pasid_dir {
constexpr uint64_t kPresent = bit(0);
constexpr uint64_t kTable = bits(63, 12);
constexpr unsigned kPasidsPerTable = 64;
}  // namespace pasid_dir
namespace pasid {
constexpr uint64_t kPresent = bit(0);   // qword 0
constexpr Field kAw{4, 2};              // qword 0: levels - 2
constexpr Field kPgtt{8, 6};            // qword 0: 2 = second-stage only
constexpr uint64_t kSsptptr = bits(63, 12);
constexpr uint64_t kPgttSecond = 2;
constexpr Field kDid{15, 0};            // qword 1
constexpr uint64_t kPwsnp = bit(23);    // qword 1: page walks snoop (ECAP.SMPWC)
constexpr unsigned kBytes = 64;
}  // namespace pasid

// Queued invalidation descriptors: 128 bits (256 in scalable mode, the upper half zero).
namespace qi {
constexpr Field kType{3, 0};
constexpr uint64_t kContext = 1, kIotlb = 2, kWait = 5, kPasidCache = 7;
constexpr Field kGran{5, 4};            // context: 1 global 2 domain 3 device; IOTLB: 1 global 2 domain 3 page
constexpr Field kDid{31, 16};
constexpr Field kCtxSid{47, 32};
constexpr Field kCtxFm{49, 48};
constexpr uint64_t kIotlbDr = bit(7), kIotlbDw = bit(6);
constexpr uint64_t kAddr = bits(63, 12);  // IOTLB high qword: address; AM 5:0, IH 6
constexpr Field kAm{5, 0};
constexpr uint64_t kIh = bit(6);
constexpr uint64_t kWaitIf = bit(4), kWaitSw = bit(5), kWaitFn = bit(6);
constexpr Field kWaitData{63, 32};
constexpr uint64_t kWaitAddr = bits(63, 2);
constexpr Field kPcPasid{51, 32};       // PASID-cache: PASID, granularity 1 = PASID-selective
constexpr uint64_t kPcPasidSelective = 1;
constexpr Field kIqaQs{2, 0};           // IQA: 2^QS pages
constexpr uint64_t kIqaDw = bit(11);    // IQA: 256-bit descriptors
constexpr uint64_t kIqaBase = bits(63, 12);
}  // namespace qi

}  // namespace moat::vtd
