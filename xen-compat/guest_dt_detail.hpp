// Shared by the guest device-tree checker, builder and verifier (guest_check.cpp,
// guest_dt.cpp, guest_verify.cpp); not an interface of its own.
#pragma once
#include <libfdt.h>
#include <string.h>

#include "xen-compat/guest_dt.hpp"

namespace moat::xen::guest_detail {

using namespace layout;

constexpr uint64_t kPciBusEcam = 1ull << 20;  // ECAM bytes per bus
constexpr uint32_t kIrqEdgeRising = 1, kIrqLevelHigh = 4, kIrqLevelLow = 8;
constexpr uint32_t kGicSpi = 0, kGicPpi = 1;

// What a passthrough device looks like on the host.
struct HostDevice {
    int node;
    unsigned nregs;
    dt::Reg regs[kGuestMaxPtRegs];
    unsigned nirqs;
    dt::Irq irqs[kGuestMaxPtIrqs];
};

// The message prefix naming where in the description something came from.
inline void where(Sink& s, const GuestDesc& g, uint32_t line) {
    if (g.source && line) format(s, "%s:%u: ", g.source, line);
    else if (g.source) format(s, "%s: ", g.source);
    else format(s, "guest: ");
}

inline uint32_t mpidr(unsigned vcpu) { return ((vcpu >> 4) & 0xff) << 8 | (vcpu & 0xf); }  // Xen's vCPU affinity

inline uint64_t guest_reg(const GuestPassthrough& p, const HostDevice& h, unsigned k) { return p.nregs ? p.regs[k] : h.regs[k].addr; }
inline uint32_t guest_intid(const GuestPassthrough& p, const HostDevice& h, unsigned k) { return p.nirqs ? p.intids[k] : h.irqs[k].intid; }

// Reads the host device a passthrough entry names; problems go to err with the entry's line.
inline bool read_host(const GuestDesc& g, const GuestPassthrough& p, const dt::Tree* host, HostDevice& h, Sink& err) {
    auto bad = [&](const char* what, const char* detail) {
        where(err, g, p.line);
        format(err, "passthrough %s: %s%s%s\n", p.host_path, what, detail ? ": " : "", detail ? detail : "");
        return false;
    };
    if (!host || !host->blob()) return bad("no host device tree to copy it from", nullptr);
    h.node = host->find_path(p.host_path);
    if (h.node < 0) return bad("no such node in the host device tree", nullptr);
    if (!host->available(h.node)) return bad("the host node is disabled", nullptr);
    unsigned n = 0;
    if (host->reg_count(h.node, n) != Status::ok) return bad("unusable reg", host->error());
    if (n > kGuestMaxPtRegs) return bad("more reg entries than moat copies", nullptr);
    h.nregs = n;
    for (unsigned k = 0; k < n; k++)
        if (host->reg(h.node, k, h.regs[k]) != Status::ok) return bad("unusable reg", host->error());
    int len;
    if (host->prop(h.node, "interrupts", &len) && static_cast<unsigned>(len) > kGuestMaxPtIrqs * 12)
        return bad("more interrupts than moat routes", nullptr);
    if (host->interrupts(h.node, h.irqs, kGuestMaxPtIrqs, h.nirqs) != Status::ok) return bad("unusable interrupts", host->error());
    for (unsigned k = 0; k < h.nirqs; k++)
        if (h.irqs[k].kind != dt::IrqKind::spi) return bad("an interrupt is not a GIC SPI; only SPIs can be routed to a guest", nullptr);
    return true;
}

// Unit addresses as dtc expects them under a bus with 64-bit addresses: hex, no leading zeros.
inline void node_name(char* buf, size_t cap, const char* base, uint64_t addr) { format_to(buf, cap, "%s@%lx", base, addr); }

// The sequential-write calls with a sticky error, so the builder reads as the tree it writes.
struct Writer {
    void* fdt;
    int err = 0;

    void begin(const char* name) { if (!err) err = fdt_begin_node(fdt, name); }
    void end() { if (!err) err = fdt_end_node(fdt); }
    void raw(const char* name, const void* v, size_t len) { if (!err) err = fdt_property(fdt, name, v, static_cast<int>(len)); }
    void empty(const char* name) { raw(name, nullptr, 0); }
    void u32(const char* name, uint32_t v) { if (!err) err = fdt_property_u32(fdt, name, v); }
    void str(const char* name, const char* s) { raw(name, s, strlen(s) + 1); }
    void strs(const char* name, const char* a, const char* b, const char* c = nullptr) {
        char buf[128];
        size_t la = strlen(a) + 1, lb = strlen(b) + 1, lc = c ? strlen(c) + 1 : 0;
        if (la + lb + lc > sizeof buf) { err = -FDT_ERR_BADVALUE; return; }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        if (c) memcpy(buf + la + lb, c, lc);
        raw(name, buf, la + lb + lc);
    }
    void cells(const char* name, const uint32_t* c, unsigned n) {
        fdt32_t be[64];
        if (n > 64) { err = -FDT_ERR_BADVALUE; return; }
        for (unsigned i = 0; i < n; i++) be[i] = cpu_to_fdt32(c[i]);
        raw(name, be, n * 4);
    }
    // `reg` with #address-cells = #size-cells = 2 (the guest root's).
    void reg(const GuestRam* r, unsigned n) {
        uint32_t c[4 * kGuestMaxPtRegs];
        n = min(n, kGuestMaxPtRegs);
        for (unsigned i = 0; i < n; i++) {
            c[4 * i] = static_cast<uint32_t>(r[i].base >> 32), c[4 * i + 1] = static_cast<uint32_t>(r[i].base);
            c[4 * i + 2] = static_cast<uint32_t>(r[i].size >> 32), c[4 * i + 3] = static_cast<uint32_t>(r[i].size);
        }
        cells("reg", c, 4 * n);
    }
    void reg1(uint64_t base, uint64_t size) {
        GuestRam r{base, size};
        reg(&r, 1);
    }
    void irq(uint32_t type, uint32_t number, uint32_t flags) {
        uint32_t c[3] = {type, number, flags};
        cells("interrupts", c, 3);
    }
};

// A sink that drops what it is given (for reads whose errors were reported already).
struct NullSink final : Sink {
    void write(const char*, size_t) override {}
};

}  // namespace moat::xen::guest_detail
