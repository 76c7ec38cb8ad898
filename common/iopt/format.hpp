// Which page-table format a domain uses, and how its walker reads the tables. The driver picks the
// format from what its hardware walks (Iommu::domain_format); everything above the seam (IoDomain,
// the PV-IOMMU dispatcher) only carries it around.
#pragma once
#include "common/iopt/prot.hpp"

namespace moat::iopt {

// One value per table layout the engine builds: the VMSAv8-64 stages and the VT-d second level
// (common/iopt/vtd_sl.hpp), each with its factory entry in formats.cpp. EPT would be one more.
enum class FormatId : uint8_t {
    vmsa_s1,  // VMSAv8-64 stage 1, 4 KiB granule: SMMU CDs, SMMUv2 stage-1 banks, IPMMU
    vmsa_s2,  // VMSAv8-64 stage 2, 4 KiB granule: the CPU's P2M, SMMU stage-2 contexts, IPMMU (S2PTE)
    vtd_sl,   // Intel VT-d second-level (second-stage) table: legacy context entries, scalable PASID entries
};

// Format::options for vtd_sl: what the remapping unit's CAP/ECAP allow in its leaves.
namespace vtd_opt {
constexpr uint8_t k2M = 1;     // CAP.SLLPS bit 0: 2 MiB superpages
constexpr uint8_t k1G = 2;     // CAP.SLLPS bit 1: 1 GiB superpages (only with k2M: a split 1 GiB page needs 2 MiB ones)
constexpr uint8_t kSnoop = 4;  // ECAP.SC: the SNP bit may be set (otherwise it is reserved)
}  // namespace vtd_opt

struct Format {
    FormatId id = FormatId::vmsa_s1;
    unsigned ias = 0;            // input (IOVA or IPA) bits
    unsigned oas = 0;            // output (PA) bits
    bool coherent_walk = false;  // the walker snoops the CPU's caches; otherwise tables are cleaned
    uint8_t options = 0;         // format-specific (vtd_opt for vtd_sl); 0 for the VMSA formats
    constexpr bool operator==(const Format&) const = default;
};

// For reports: what a domain of this format is, in the words of its architecture.
constexpr const char* format_name(FormatId id) {
    switch (id) {
    case FormatId::vmsa_s1: return "stage-1";
    case FormatId::vmsa_s2: return "stage-2";
    case FormatId::vtd_sl: return "VT-d second-level";
    }
    return "unknown-format";
}

constexpr Format vmsa_s1(unsigned ias, unsigned oas, bool coherent_walk) {
    return Format{FormatId::vmsa_s1, ias, oas, coherent_walk};
}
constexpr Format vmsa_s2(unsigned ias, unsigned oas, bool coherent_walk) {
    return Format{FormatId::vmsa_s2, ias, oas, coherent_walk};
}
constexpr Format vtd_sl(unsigned ias, unsigned oas, bool coherent_walk, uint8_t options) {
    return Format{FormatId::vtd_sl, ias, oas, coherent_walk, options};
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
