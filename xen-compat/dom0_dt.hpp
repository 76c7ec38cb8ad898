// The device tree dom0 boots with: the host's, minus what moat owns.
//
// As Xen does for its hardware domain: the IOMMU nodes moat drives are removed, and every
// consumer loses the `iommus` / `iommu-map` entries that point at them (`iommu-map-mask` goes
// with the last `iommu-map` entry). Entries that point at an IOMMU moat does not drive stay,
// so dom0 can drive that IOMMU itself. /aliases and /__symbols__ entries naming a removed node
// go too. Nothing else changes: node order, phandles and every other property are the host's.
//
// The filter edits a copy with libfdt's read-write API (fdt_open_into, fdt_setprop,
// fdt_delprop, fdt_del_node, fdt_pack); the caller provides the output buffer.
#pragma once
#include "xen-compat/protection.hpp"

namespace moat::xen {

// XENFEAT bits Xen reports to a guest in XENVER_get_features (docs/hardware.md §6.4).
constexpr uint32_t kXenfeatNotDirectMapped = 16;  // dom0's gfn != mfn
constexpr uint32_t kXenfeatDirectMapped = 17;     // dom0's gfn == mfn

struct Dom0Result {
    size_t size = 0;               // bytes of the packed output tree
    unsigned removed_nodes = 0;    // IOMMU nodes hidden from dom0
    unsigned removed_props = 0;    // iommus / iommu-map / iommu-map-mask deleted
    unsigned trimmed_props = 0;    // rewritten to keep only entries of IOMMUs moat does not drive
    unsigned removed_aliases = 0;  // /aliases and /__symbols__ entries of removed nodes
    unsigned problems = 0;         // references that could not be filtered cleanly (each logged)
};

// Filters `host` into `out` (at least host.size() bytes). `driven` says which IOMMUs of `topo`
// (discovered on `host`) are hidden. Problems are logged one line each, naming the node; the
// output is still written. Fails only when the output cannot be produced (buffer too small,
// libfdt error), with a message in `log`.
Status filter_dom0(const dt::Tree& host, const Topology& topo, const DrivenSet& driven, void* out, size_t cap,
                   Dom0Result& res, Sink& log);

// Which of XENFEAT_direct_mapped / XENFEAT_not_direct_mapped dom0 gets. Dom0 may leave the
// 1:1 layout only when every DMA master it sees is translated by an IOMMU moat drives (moat
// points those IOMMUs at dom0's P2M); one unprotected or unknown master forces gfn == mfn,
// since its DMA uses the addresses dom0 programs as machine addresses.
struct XenfeatDecision {
    uint32_t feature = kXenfeatDirectMapped;
    int first = -1;           // the first device (report order) that forces direct mapping
    unsigned protected_count = 0, unprotected = 0, unknown = 0;
};
XenfeatDecision decide_xenfeat(const ProtectionReport& report);
// One line, no newline: the feature, its number, and why.
void explain_xenfeat(const dt::Tree& host, const Topology& topo, const ProtectionReport& report,
                     const XenfeatDecision& d, Sink& out);

}  // namespace moat::xen
