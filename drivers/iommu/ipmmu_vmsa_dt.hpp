// The device-tree side of the IPMMU-VMSA driver (R-Car Gen3 and Gen4), as the registry calls it.
//
// Which node is the root, which caches forward to it (and on which IMSSTR bit), which master sits
// on which uTLB: discovery has read the nodes, their `iommus` references and, through
// ipmmu_main() below (the one parser of `renesas,ipmmu-main`), each cache's link to its root.
// The probe checks the binding, reads the product register for a root, and builds the instance;
// a cache whose root has not probed yet asks to be probed again later (not_ready), the way Linux
// defers a probe. A refused IPMMU is left alone and its masters untranslated; nothing else is
// affected. Each cache is told which of its uTLBs the tree's masters use: with block_unattached
// (the default) they fault until attached, in a blocking context whose table comes from the pool.
#pragma once
#include "common/discovery.hpp"
#include "drivers/iommu/ipmmu_vmsa.hpp"

namespace moat {

// The product register of the SoC: where the `renesas,prr` node says, else at Gen3's fixed
// address (as Linux does for Gen3 trees without the node; dts/salvator-x.dts has none). Gen4 has
// no such fallback in Linux: without the node, not_found and nothing is read. `from_dt` says which.
Status read_prr(const dt::Tree& t, const ipmmu::Generation& gen, uint32_t& prr, bool* from_dt = nullptr);

// `renesas,ipmmu-main = <&root bit>` of a cache IPMMU: the root's node and the cache's IMSSTR bit.
// not_found when the node has none (it is a root); bad_dt, with why, when it is malformed.
Status ipmmu_main(const dt::Tree& t, int node, int& root, uint32_t& bit, Why& why);

// Capacity of the driver's instance storage: R-Car H3 has 17 IPMMUs (one root, 16 caches), V3U 12.
constexpr unsigned kMaxIpmmus = 24;

}  // namespace moat
