// pci_intx_line(): a function's INTx pin through its host bridge's interrupt-map.
#include "hyp/pci_intx.hpp"

namespace moat::hyp {

namespace {
constexpr unsigned kChildAddr = 3, kChildIrq = 1, kMaxParentCells = 8;

bool gic(const dt::Tree& t, int node) {
    return t.compatible(node, "arm,gic-v3") || t.compatible(node, "arm,gic-400") || t.compatible(node, "arm,cortex-a15-gic");
}
}  // namespace

Status pci_intx_line(const dt::Tree& t, int bridge, const xen::PciBdf& f, unsigned pin, IntxLine& out, Why& why) {
    char path[dt::kPathMax];
    t.path(bridge, path, sizeof path);
    if (pin < 1 || pin > 4) return why.set(Status::invalid_argument, "interrupt pin %u is not INTA..INTD", pin);
    int len = 0;
    const void* map = t.prop(bridge, "interrupt-map", &len);
    if (!map) return why.set(Status::not_found, "%s has no interrupt-map", path);
    if (len <= 0 || len % 4) return why.set(Status::bad_dt, "%s: interrupt-map is %d bytes, not whole cells", path, len);
    uint32_t mask[kChildAddr + kChildIrq] = {0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    int mlen = 0;
    if (const void* m = t.prop(bridge, "interrupt-map-mask", &mlen)) {
        if (mlen != 4 * (kChildAddr + kChildIrq))
            return why.set(Status::bad_dt, "%s: interrupt-map-mask is %d bytes, expected %u cells", path, mlen,
                           kChildAddr + kChildIrq);
        for (unsigned i = 0; i < kChildAddr + kChildIrq; i++) mask[i] = dt::be32(m, i);
    }
    const uint32_t key[kChildAddr + kChildIrq] = {uint32_t{f.bus} << 16 | uint32_t{f.dev} << 11 | uint32_t{f.fn} << 8, 0, 0, pin};
    unsigned total = static_cast<unsigned>(len) / 4, pos = 0;
    for (unsigned e = 0; pos < total; e++) {
        if (pos + kChildAddr + kChildIrq + 1 > total)
            return why.set(Status::bad_dt, "%s: interrupt-map entry %u is cut short", path, e);
        bool match = true;
        for (unsigned i = 0; i < kChildAddr + kChildIrq; i++) match &= (dt::be32(map, pos + i) & mask[i]) == (key[i] & mask[i]);
        uint32_t ph = dt::be32(map, pos + kChildAddr + kChildIrq);
        int parent = t.node_by_phandle(ph);
        if (parent < 0) return why.set(Status::bad_dt, "%s: interrupt-map entry %u: phandle 0x%x points to no node", path, e, ph);
        uint32_t acells = 0, icells = 0;
        if (t.has(parent, "#address-cells") && t.u32(parent, "#address-cells", acells) != Status::ok)
            return why.set(Status::bad_dt, "%s", t.error());
        if (t.u32(parent, "#interrupt-cells", icells) != Status::ok)
            return why.set(Status::bad_dt, "%s: interrupt-map entry %u: its parent has no #interrupt-cells", path, e);
        if (acells > 4 || icells == 0 || icells > kMaxParentCells)
            return why.set(Status::bad_dt, "%s: interrupt-map entry %u: parent #address-cells %u / #interrupt-cells %u", path, e,
                           acells, icells);
        unsigned irq = pos + kChildAddr + kChildIrq + 1 + acells;
        if (irq + icells > total) return why.set(Status::bad_dt, "%s: interrupt-map entry %u is cut short", path, e);
        pos = irq + icells;
        if (!match) continue;
        char pp[dt::kPathMax];
        t.path(parent, pp, sizeof pp);
        if (!gic(t, parent) || icells < 3)
            return why.set(Status::unsupported, "%s: interrupt-map sends %02x:%02x.%u INT%c to %s, not a GIC", path, f.bus, f.dev,
                           f.fn, 'A' + pin - 1, pp);
        uint32_t type = dt::be32(map, irq), num = dt::be32(map, irq + 1), flags = dt::be32(map, irq + 2) & 0xf;
        if (type != 0 || num > 987)
            return why.set(Status::unsupported, "%s: interrupt-map sends %02x:%02x.%u INT%c to %s %s %u, not an SPI", path, f.bus,
                           f.dev, f.fn, 'A' + pin - 1, pp, type == 1 ? "PPI" : "type", type == 1 ? num : type);
        if (flags != 4 && flags != 1)
            return why.set(Status::unsupported, "%s: interrupt-map gives SPI %u trigger flags 0x%x; moat forwards level-high (4) or rising edge (1)",
                           path, num, flags);
        out = IntxLine{num + 32, flags == 4};
        return Status::ok;
    }
    return why.set(Status::not_found, "%s: interrupt-map has no entry for %02x:%02x.%u INT%c", path, f.bus, f.dev, f.fn, 'A' + pin - 1);
}

}  // namespace moat::hyp
