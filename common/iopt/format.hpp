// Which page-table format a domain uses, and how its walker reads the tables. The driver picks the
// format from what its hardware walks (Iommu::domain_format); everything above the seam (IoDomain,
// the PV-IOMMU dispatcher) only carries it around.
#pragma once
#include "common/iopt/prot.hpp"

namespace moat::iopt {

// One value per table layout an engine builds. VMSAv8-64 is the only engine today; a VT-d second
// level (vtd_sl) or EPT table gets its own id, engine and factory entry (formats.cpp) beside it.
enum class FormatId : uint8_t {
    vmsa_s1,  // VMSAv8-64 stage 1, 4 KiB granule: SMMU CDs, SMMUv2 stage-1 banks, IPMMU
    vmsa_s2,  // VMSAv8-64 stage 2, 4 KiB granule: the CPU's P2M, SMMU stage-2 contexts, IPMMU (S2PTE)
};

struct Format {
    FormatId id = FormatId::vmsa_s1;
    unsigned ias = 0;            // input (IOVA or IPA) bits
    unsigned oas = 0;            // output (PA) bits
    bool coherent_walk = false;  // the walker snoops the CPU's caches; otherwise tables are cleaned
    constexpr bool operator==(const Format&) const = default;
};

// For reports: what a domain of this format is, in the words of its architecture.
constexpr const char* format_name(FormatId id) {
    switch (id) {
    case FormatId::vmsa_s1: return "stage-1";
    case FormatId::vmsa_s2: return "stage-2";
    }
    return "unknown-format";
}

constexpr Format vmsa_s1(unsigned ias, unsigned oas, bool coherent_walk) {
    return Format{FormatId::vmsa_s1, ias, oas, coherent_walk};
}
constexpr Format vmsa_s2(unsigned ias, unsigned oas, bool coherent_walk) {
    return Format{FormatId::vmsa_s2, ias, oas, coherent_walk};
}

// The memory attributes of the walker's own table reads (not of what the tables map).
enum class Cacheability : uint8_t { non_cacheable, write_back };  // write-back: read/write-allocate
struct WalkAttrs {
    Cacheability inner = Cacheability::non_cacheable;
    Cacheability outer = Cacheability::non_cacheable;
    Share share = Share::outer;
    constexpr bool operator==(const WalkAttrs&) const = default;
};

// The one place walk attributes are decided. A coherent walker reads the tables as the CPU wrote
// them, cacheable and inner shareable. A non-coherent one reads memory after the engine cleaned
// every update to the point of coherency: a cacheable walk could hit a stale line in a cache the
// CPU's clean did not reach, so its walks are non-cacheable (which the architecture treats as
// outer shareable whatever SH says: say so). Every format lands on the same rule so far; a format
// whose walker takes other hints (VT-d snoop control) decides them here as well.
constexpr WalkAttrs walk_attrs(const Format& f) {
    if (f.coherent_walk) return WalkAttrs{Cacheability::write_back, Cacheability::write_back, Share::inner};
    return WalkAttrs{Cacheability::non_cacheable, Cacheability::non_cacheable, Share::outer};
}

}  // namespace moat::iopt
