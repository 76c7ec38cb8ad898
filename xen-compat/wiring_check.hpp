// Checks a device tree's IOMMU wiring beyond what discovery needs to stay safe: what a board
// or guest tree author wants to hear about before booting it.
//
// discover() already reports (and blocks) masters with dangling phandles, a target without
// `#iommu-cells`, too few argument cells, malformed or wrapping `iommu-map` entries. On top of
// that, check_wiring() reports:
//   - an IOMMU whose `#iommu-cells` its binding does not allow (IPMMU 1, SMMUv3 1, SMMUv2 and
//     MMU-500 1 or 2, xen,grant-dma 1), and stream ids out of the hardware's range (IPMMU
//     uTLB >= 48 on Gen3, SMMUv2 stream id or mask past 16 bits, a grant backend domid that
//     is a reserved DOMID);
//   - a cache IPMMU whose `renesas,ipmmu-main` does not point at a root IPMMU;
//   - overlapping requester-id ranges inside one `iommu-map`;
//   - one stream claimed by two masters on the same IOMMU (an SMMUv2 stream id + mask counts
//     every id it matches). xen,grant-dma is exempt: its "stream" is a backend domain id that
//     many devices share by design.
#pragma once
#include "common/discovery.hpp"

namespace moat::xen {

// Writes one line per problem ("dt: <node path>: <what>\n") and returns how many it found.
// Problems discovery already reported are counted in topo.problems, not here.
unsigned check_wiring(const dt::Tree& t, const Topology& topo, Sink& out);

}  // namespace moat::xen
