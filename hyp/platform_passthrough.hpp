// Platform-device passthrough (Xen's partial-tree form) against the host: each /passthrough
// device of a guest's partial tree (xen-compat/dom0less_partial.hpp) checked against the host node
// its xen,path names, and the IOMMU streams its `iommus` give, for the guest's DMA domain
// (hyp/passthrough.hpp GuestDmaDomain). Portable: the image and the host tests use it alike.
//
// Refused, each with one line naming the guest, the partial tree's node and the property:
//   - xen,path names no node of the host tree, or a disabled one;
//   - a node moat uses itself: an IOMMU, the GIC (and what is under it), its console UART
//     (/chosen stdout-path), or one the caller names (own());
//   - a node another guest already has (claims are kept here, in the order guests are resolved);
//   - a host range of xen,reg not inside one `reg` entry of the host node, or overlapping a range
//     moat keeps (own_range(): its image, RAM, the boot tree, the IOMMUs' and GIC's registers);
//   - a node whose `iommus` name an IOMMU moat drives but whose wiring check refused it (the
//     reason said), or a PCI host bridge (iommu-map: moat,pci passes its functions through);
//   - a node with no stream through an IOMMU moat drives (no `iommus`, a disabled IOMMU, one no
//     driver knows) unless the partial tree says xen,force-assign-without-iommu: then it is
//     assigned and reported as unconfined, its DMA reaching all memory;
//   - `interrupts` that are not exactly the host node's SPIs (Xen routes them 1:1).
// Any refusal fails the guest; nothing is claimed for it then.
#pragma once
#include "common/iommu_set.hpp"
#include "hyp/passthrough.hpp"

namespace moat {

class PlatformHost {
public:
    static constexpr unsigned kMaxOwned = 48;
    static constexpr unsigned kMaxClaims = 32;

    // `set` may be nullptr: no IOMMU probed (every device then needs xen,force-assign-without-iommu).
    // The IOMMUs of `topo`, the GIC and the stdout-path UART are owned from the start.
    PlatformHost(const dt::Tree& host, const Topology& topo, const IommuSet* set);

    // A host node (and its subtree) no guest may have; `what` names it in messages.
    void own(int node, const char* what);
    void own_with_regs(int node, const char* what, const char* regs_what);  // own() and each reg range
    // A host-physical range no guest may map.
    void own_range(uint64_t base, uint64_t size, const char* what);

    // Checks every device of pt for guest g; on success out holds one PlatformAssignment per
    // device (in pt's order) and the nodes are claimed for g. One report line per device assigned
    // without an IOMMU ("... assigned WITHOUT an IOMMU ...: its DMA is unconfined").
    Status resolve(const xen::Dom0lessGuest& g, const xen::PartialTree& pt, GuestPlatform& out, Sink& err);
    // Gives back what guest `name` claimed (it ended, or could not be built after all).
    void release(const char* name);

private:
    struct Owned { int node; uint64_t base, size; const char* what; };
    struct Claim { int node; char guest[xen::kDom0lessNameMax]; };
    bool check_device(const xen::Dom0lessGuest& g, const xen::PtDevice& d, PlatformAssignment& a, Sink& err);
    const char* owner_of(int node) const;

    const dt::Tree& t_;
    const Topology& topo_;
    const IommuSet* set_;
    Owned owned_[kMaxOwned];
    unsigned nowned_ = 0;
    Claim claims_[kMaxClaims];
    unsigned nclaims_ = 0;
};

}  // namespace moat
