// What every driver must program as the walk attributes of a domain's tables, written out here
// from the architecture rather than taken from iopt::walk_attrs: the SMMUv3, MMU-500 and IPMMU
// tests and the VTCR_EL2 test all compare against this one table, so that the four registers
// agree for the same (format, coherency).
#pragma once
#include "tests/models/vmsa_walker.hpp"

namespace moat::test {

// Coherent walker: write-back write-allocate, inner shareable. Non-coherent: non-cacheable, outer.
inline model::vmsa::WalkCodes expected_walk(bool coherent_walk) {
    return coherent_walk ? model::vmsa::WalkCodes{1, 1, 3} : model::vmsa::WalkCodes{0, 0, 2};
}

}  // namespace moat::test
