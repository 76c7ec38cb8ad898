// What an Arm IOMMU's table walker takes, and the format a domain gets from it: the part of
// Iommu::domain_format and of attach's checks that the SMMUv2, SMMUv3 and IPMMU drivers share.
#pragma once
#include "common/iommu.hpp"
#include "common/iopt/descriptor.hpp"  // Stage1::kMair, which every Arm driver programs

namespace moat {

struct VmsaWalker {
    bool s1 = false, s2 = false;      // stages it walks
    unsigned s1_lo = 0, s1_hi = 0;    // input sizes a stage-1 context takes, bits
    unsigned s2_lo = 0, s2_hi = 0;    // and a stage-2 one
    unsigned oas = 0;                 // output size, capped by the CPU's
    bool coherent = false;            // snoops the CPU's caches

    // A DMA space of its own: stage 1 where there is one (its entries are ASID-tagged, and QEMU 7.2's
    // SMMUv3 has nothing else), else stage 2. A shared P2M: stage 2, the CPU's own format.
    Result<iopt::Format> format_for(DomainUse use, unsigned ias) const {
        const bool stage2 = use == DomainUse::guest_p2m || !s1;
        if (stage2 ? !s2 : !s1) return Status::unsupported;
        Result<unsigned> bits = stage2 ? fit_ias(use, ias, s2_lo, s2_hi) : fit_ias(use, ias, s1_lo, s1_hi);
        if (!bits.ok()) return bits.status;
        return iopt::Format{stage2 ? iopt::FormatId::vmsa_s2 : iopt::FormatId::vmsa_s1, bits.value, oas, coherent};
    }

    // Whether a domain of format f can be walked here: unsupported for a format or stage it does
    // not walk, out_of_range for sizes it cannot take, invalid_argument for tables that would not
    // be cleaned for a walker that needs it.
    Status check(const iopt::Format& f) const {
        if (!iopt::is_vmsa(f.id)) return Status::unsupported;
        const bool stage2 = f.id == iopt::FormatId::vmsa_s2;
        if (stage2 ? !s2 : !s1) return Status::unsupported;
        const unsigned lo = stage2 ? s2_lo : s1_lo, hi = stage2 ? s2_hi : s1_hi;
        if (f.ias < lo || f.ias > hi || f.oas > oas) return Status::out_of_range;
        if (f.coherent_walk && !coherent) return Status::invalid_argument;
        return Status::ok;
    }
};

}  // namespace moat
