// Which host interrupt an INTx pin of a PCI function raises: the host bridge's `interrupt-map`
// (with `interrupt-map-mask`), read as the PCI binding says (IEEE 1275 PCI bus binding, the
// kernel's Documentation/devicetree/bindings/pci): each entry is the child unit address
// (3 cells: phys.hi carries bus/device/function), the child interrupt (1 cell: the pin, 1..4 =
// INTA..INTD), the parent's phandle, the parent's unit address (its #address-cells, 0 when
// absent) and the parent's interrupt (its #interrupt-cells). Only a GIC parent with an SPI is
// taken: that is what moat can forward (hyp/irq_forward.hpp). Functions on the bridge's root bus
// only (no bridge swizzle): moat assigns no function behind a bridge.
#pragma once
#include "common/fdt.hpp"
#include "common/why.hpp"
#include "xen-compat/dom0less.hpp"

namespace moat::hyp {

struct IntxLine {
    uint32_t intid = 0;  // GIC INTID (SPI + 32)
    bool level = true;   // level-high; false: rising edge
};

// The line pin `pin` (1..4) of `f` on the host bridge `bridge` reaches. Errors name the bridge
// and its property (bad_dt: malformed; not_found: no interrupt-map or no entry for the pin;
// unsupported: a parent or trigger moat cannot forward).
Status pci_intx_line(const dt::Tree& t, int bridge, const xen::PciBdf& f, unsigned pin, IntxLine& out, Why& why);

}  // namespace moat::hyp
