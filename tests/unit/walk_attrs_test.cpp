// Walk attributes come from one place (iopt::walk_attrs) and reach every register the same way:
// here VTCR_EL2 for the guest's P2M and the VMSA codes; the IOMMU drivers' registers are checked
// against the same table (walk_expect.hpp) in their own tests, through their register models.
#include <gtest/gtest.h>

#include "arch/arm64/vm.hpp"
#include "common/iopt/geometry.hpp"
#include "tests/unit/walk_expect.hpp"

using namespace moat;

namespace {

TEST(WalkAttrs, CoherencyDecidesCacheabilityAndShareability) {
    for (bool coherent : {true, false})
        for (iopt::Format f : {iopt::vmsa_s1(39, 44, coherent), iopt::vmsa_s2(40, 40, coherent)}) {
            const iopt::VmsaWalkCodes c = iopt::vmsa_walk_codes(f);
            EXPECT_EQ((model::vmsa::WalkCodes{c.irgn, c.orgn, c.sh}), moat::test::expected_walk(coherent));
        }
}

TEST(WalkAttrs, Vtcr_El2CarriesTheSameCodesAsTheIommus) {
    for (bool coherent : {true, false}) {
        uint64_t vtcr = arch::vtcr_el2(iopt::vmsa_s2(40, 40, coherent));
        EXPECT_EQ(model::vmsa::tcr0_walk(vtcr), moat::test::expected_walk(coherent));
        EXPECT_EQ(vtcr & 0x3f, 24u);         // T0SZ: 40 bits
        EXPECT_EQ((vtcr >> 6) & 3, 1u);      // SL0: level 1
        EXPECT_EQ((vtcr >> 16) & 7, 2u);     // PS: 40 bits
    }
}

TEST(WalkAttrs, NonVmsaFormatsHaveNoVmsaGeometry) {
    iopt::Format f = iopt::vmsa_s1(39, 40, true);
    f.id = static_cast<iopt::FormatId>(7);  // an id no engine serves yet (a VT-d second level, say)
    EXPECT_FALSE(iopt::is_vmsa(f.id));
    EXPECT_FALSE(iopt::vmsa_geometry(f).valid());
}

}  // namespace
