// The ACPI DMAR table (Intel VT-d specification, chapter 8 "BIOS Considerations"): which DMA
// remapping units (DRHD) exist, which PCI devices each one covers (device scopes, or
// INCLUDE_PCI_ALL for the rest of its segment), and which memory ranges firmware asks to keep
// identity-mapped for given devices (RMRR). ATSR (ATS-capable root ports) and SATC (SoC devices
// whose ATS is integrated) only matter to a driver that enables ATS, which moat does not: they
// are counted and skipped. RHSA (NUMA proximity) and ANDD (ACPI namespace devices) likewise.
//
// The parser takes the table as bytes (pointer + length, already located by whoever reads the
// RSDP/XSDT), so it is independent of how the tables were found and is tested on the host with
// hand-built tables. Every length and bound is checked before a byte is read: the header's
// length against the bytes given, the checksum, each structure's length against its type's
// minimum and the table's end, each device scope against its structure's end and its own path.
// A bad table is refused whole with one line "DMAR: offset N: <what>" and an empty result, so
// no remapping unit is half-described (each stays blocked, or unused, by whoever asked).
#pragma once
#include <stddef.h>

#include "common/status.hpp"
#include "common/types.hpp"
#include "common/why.hpp"

namespace moat::acpi {

namespace dmar {
constexpr uint32_t kHeaderSize = 48;  // the ACPI header (36), host address width, flags, 10 reserved
constexpr uint16_t kDrhd = 0, kRmrr = 1, kAtsr = 2, kRhsa = 3, kAndd = 4, kSatc = 5;
constexpr uint8_t kFlagIntrRemap = 1u << 0, kFlagX2apicOptOut = 1u << 1, kFlagDmaCtrlOptIn = 1u << 2;
constexpr uint8_t kDrhdIncludePciAll = 1u << 0;
// Device scope types.
constexpr uint8_t kScopeEndpoint = 1, kScopeBridge = 2, kScopeIoapic = 3, kScopeHpet = 4, kScopeAcpi = 5;
}  // namespace dmar

struct DevFn {
    uint8_t dev, fn;
};

// One device scope: a PCI path from start_bus (the first hop is on start_bus, each further hop
// on the secondary bus of the bridge before it).
struct DmarScope {
    static constexpr unsigned kMaxPath = 8;
    uint8_t type = 0;
    uint8_t enum_id = 0;  // IOAPIC / HPET id
    uint8_t start_bus = 0;
    uint8_t npath = 0;
    DevFn path[kMaxPath] = {};
    // The requester id when the path is one hop (no bridge to look through), else false.
    bool direct_bdf(uint16_t& bdf) const {
        if (npath != 1) return false;
        bdf = static_cast<uint16_t>(start_bus << 8 | path[0].dev << 3 | path[0].fn);
        return true;
    }
};

struct DmarDrhd {
    uint64_t base = 0;          // register base
    uint16_t segment = 0;
    bool include_all = false;   // INCLUDE_PCI_ALL: every device of the segment no other DRHD lists
    unsigned size_pages = 1;    // register set size (the Size field, 2^N pages; 0 from old firmware: 1)
    unsigned first_scope = 0, nscopes = 0;  // in Dmar::scopes
    uint32_t offset = 0;        // byte offset of the structure in the table (for messages)
};

// A reserved memory region [base, limit] (limit inclusive) its devices keep reaching, identity-mapped.
struct DmarRmrr {
    uint64_t base = 0, limit = 0;
    uint16_t segment = 0;
    unsigned first_scope = 0, nscopes = 0;
    uint32_t offset = 0;
};

struct Dmar {
    static constexpr unsigned kMaxDrhd = 8, kMaxRmrr = 16, kMaxScopes = 64;
    unsigned haw = 0;      // host address width, bits (the field holds N - 1)
    uint8_t flags = 0;     // dmar::kFlag*
    DmarDrhd drhd[kMaxDrhd];
    unsigned ndrhd = 0;
    DmarRmrr rmrr[kMaxRmrr];
    unsigned nrmrr = 0;
    DmarScope scopes[kMaxScopes];
    unsigned nscopes = 0;
    unsigned skipped_atsr = 0, skipped_satc = 0, skipped_other = 0;  // understood, not needed (see top)

    // The DRHD that translates requester id `bdf` on `segment`: one whose scopes name it (a
    // one-hop endpoint, or a one-hop bridge whose bus range the caller cannot know: not matched
    // here), else the segment's INCLUDE_PCI_ALL unit; nullptr when none covers it.
    const DmarDrhd* unit_for(uint16_t segment, uint16_t bdf) const;
    // Whether RMRR `r` names requester id `bdf` with a one-hop path.
    bool rmrr_names(const DmarRmrr& r, uint16_t bdf) const;
};

// Parses the DMAR table in [table, table + len). invalid_argument (or no_space when it has more
// structures than Dmar holds) with `why` naming the byte offset; `out` is then empty.
Status parse_dmar(const void* table, size_t len, Dmar& out, Why& why);

}  // namespace moat::acpi
