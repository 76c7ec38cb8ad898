#include "drivers/serial/cadence.hpp"
#include "drivers/serial/pl011.hpp"
#include "drivers/serial/scif.hpp"

namespace moat {

namespace {
Pl011 g_pl011;
Cadence g_cadence;
Scif g_scif;
}

int stdout_node(const dt::Tree& t) {
    int chosen = t.find_path("/chosen");
    if (chosen < 0) return -1;
    int len;
    const char* sp = static_cast<const char*>(t.prop(chosen, "stdout-path", &len));
    if (!sp || len <= 1 || sp[len - 1] != 0) return -1;
    char path[dt::kPathMax];
    size_t n = 0;
    while (sp[n] && sp[n] != ':' && n + 1 < sizeof path) {  // "path:options"
        path[n] = sp[n];
        n++;
    }
    path[n] = 0;
    return t.find_path(path);  // libfdt resolves an alias name too
}

Serial* serial_from_dt(const dt::Tree& t) {
    int node = stdout_node(t);
    dt::Reg reg;
    if (node < 0 || t.reg(node, 0, reg) != Status::ok) return nullptr;
    // Xen's vPL011 is an SBSA UART: the PL011 subset moat uses (DR, FR).
    if (t.compatible(node, "arm,pl011") || t.compatible(node, "arm,sbsa-uart")) {
        g_pl011.set_base(static_cast<uintptr_t>(reg.addr));
        return &g_pl011;
    }
    // R-Car SCIF (Salvator-X): "renesas,scif" is the generic entry of every SCIF's compatible list.
    if (t.compatible(node, "renesas,scif")) {
        g_scif.set_base(static_cast<uintptr_t>(reg.addr));
        return &g_scif;
    }
    // Xilinx/Cadence UART (ZynqMP: "xlnx,zynqmp-uart", "cdns,uart-r1p12"; Zynq-7000: "xlnx,xuartps").
    if (t.compatible(node, "cdns,uart-r1p12") || t.compatible(node, "xlnx,xuartps")) {
        g_cadence.set_base(static_cast<uintptr_t>(reg.addr));
        return &g_cadence;
    }
    return nullptr;
}

}  // namespace moat
