// complete_guest(): defaults, then every check the guest tree depends on, each error naming
// the config line.
#include <string.h>

#include "xen-compat/guest_dt_detail.hpp"

namespace moat::xen {

using namespace guest_detail;

namespace {

constexpr int kOnly = -1;  // a resource with one instance: no number in messages

struct Region {
    uint64_t base, size;
    const char* what;
    int index;           // device number within its kind, or kOnly
    uint32_t line;
    const char* detail;  // a passthrough device's host path, or nullptr
};
struct IrqUse {
    uint32_t intid;
    const char* what;
    int index;
    uint32_t line;
    const char* detail;
};

// "virtio-mmio 2", "console (vPL011)", "passthrough /soc/mmc@ee140000", plus " (line N)" when
// it comes from another line than the message's.
const char* describe(char* buf, size_t cap, const char* what, int index, const char* detail, uint32_t line, uint32_t here) {
    BufferSink s(buf, cap);
    format(s, "%s", what);
    if (index != kOnly) format(s, " %d", index);
    if (detail) format(s, " %s", detail);
    if (line && line != here) format(s, " (line %u)", line);
    return buf;
}
constexpr unsigned kMaxRegions = 8 + kGuestMaxRamBanks + kGuestMaxVirtioMmio + kGuestMaxPassthrough * kGuestMaxPtRegs;
constexpr unsigned kMaxIrqUses = 8 + kGuestMaxVirtioMmio + kGuestMaxPassthrough * kGuestMaxPtIrqs;

// Everything complete_guest() needs to check at once.
struct Checker {
    GuestDesc& g;
    const dt::Tree* host;
    Sink& err;
    unsigned errors = 0;
    unsigned nregions = 0, nirqs = 0;
    Region regions[kMaxRegions];
    IrqUse irqs[kMaxIrqUses];

    __attribute__((format(printf, 3, 4))) void error(uint32_t line, const char* fmt, ...) {
        where(err, g, line);
        va_list ap;
        va_start(ap, fmt);
        vformat(err, fmt, ap);
        va_end(ap);
        format(err, "\n");
        errors++;
    }

    void add_region(uint64_t base, uint64_t size, const char* what, int index, uint32_t line, const char* detail = nullptr) {
        if (nregions < kMaxRegions) regions[nregions++] = Region{base, size, what, index, line, detail};
    }
    void add_irq(uint32_t intid, const char* what, int index, uint32_t line, const char* detail = nullptr) {
        if (nirqs < kMaxIrqUses) irqs[nirqs++] = IrqUse{intid, what, index, line, detail};
    }
    bool irq_used(uint32_t intid) const {
        for (unsigned i = 0; i < nirqs; i++)
            if (irqs[i].intid == intid) return true;
        return false;
    }
    bool region_free(uint64_t base, uint64_t size) const {
        for (unsigned i = 0; i < nregions; i++)
            if (base < regions[i].base + regions[i].size && regions[i].base < base + size) return false;
        return true;
    }

    void check_basics() {
        if (g.vcpus < 1 || g.vcpus > kGuestMaxVcpus) error(g.line, "vcpus is %u, expected 1..%u", g.vcpus, kGuestMaxVcpus);
        if (g.gic_version != 2 && g.gic_version != 3) error(g.line, "gic version %u, expected 2 or 3", g.gic_version);
        if (g.gic_version == 2 && g.vcpus > 8) error(g.line, "GICv2 serves at most 8 vCPUs, not %u", g.vcpus);
        if (g.nram == 0 || g.nram > kGuestMaxRamBanks) error(g.memory_line, "no guest memory (memory = SIZE)");
        for (unsigned i = 0; i < g.nram && i < kGuestMaxRamBanks; i++) {
            if (g.ram[i].size == 0 || !is_aligned(g.ram[i].base | g.ram[i].size, kPageSize) || add_overflows(g.ram[i].base, g.ram[i].size))
                error(g.memory_line, "memory bank %u (0x%lx, 0x%lx) is empty, not page aligned or wraps", i, g.ram[i].base, g.ram[i].size);
        }
        if (g.evtchn_intid < 16 || g.evtchn_intid > 31) error(g.line, "event channel interrupt %u is not a PPI (16..31)", g.evtchn_intid);
        if (g.gnttab_size == 0 || !is_aligned(g.gnttab_base | g.gnttab_size, kPageSize))
            error(g.gnttab_line, "grant-table window 0x%lx size 0x%lx is empty or not page aligned", g.gnttab_base, g.gnttab_size);
        if (g.xen_major == 0) error(g.line, "Xen version %u.%u is not a version", g.xen_major, g.xen_minor);
        if (g.nvirtio > kGuestMaxVirtioMmio) error(g.line, "more than %u virtio-mmio devices", kGuestMaxVirtioMmio), g.nvirtio = kGuestMaxVirtioMmio;
        if (g.npassthrough > kGuestMaxPassthrough) error(g.line, "more than %u passthrough devices", kGuestMaxPassthrough), g.npassthrough = kGuestMaxPassthrough;
        if (g.pci.ndevices > kGuestMaxPciDevices) error(g.pci.line, "more than %u PCI devices", kGuestMaxPciDevices), g.pci.ndevices = kGuestMaxPciDevices;
    }

    void fixed_regions_and_irqs() {
        for (unsigned i = 0; i < g.nram && i < kGuestMaxRamBanks; i++) add_region(g.ram[i].base, g.ram[i].size, "memory bank", static_cast<int>(i), g.memory_line);
        add_region(kGicdBase, g.gic_version == 2 ? kGicdSizeV2 : kGicdSizeV3, "GIC distributor", kOnly, g.line);
        if (g.gic_version == 2) add_region(kGiccBase, kGiccSize, "GIC CPU interface", kOnly, g.line);
        else add_region(kGicrBase, kGicrStride * g.vcpus, "GIC redistributors", kOnly, g.line);
        add_region(g.gnttab_base, g.gnttab_size, "grant-table window", kOnly, g.gnttab_line);
        if (g.console == Console::pl011) {
            add_region(kPl011Base, kPl011Size, "console (vPL011)", kOnly, g.line);
            add_irq(kPl011Intid, "console (vPL011)", kOnly, g.line);
        }
    }

    void pci() {
        static constexpr const char* kPinNames[] = {"pci INTA", "pci INTB", "pci INTC", "pci INTD"};
        GuestPciBridge& b = g.pci;
        if (!b.present) return;
        if (!b.ecam_size) b.ecam_base = kVirtioPciEcamBase, b.ecam_size = kVirtioPciEcamSize;
        if (!b.mem_size) b.mem_base = kVirtioPciMemBase, b.mem_size = kVirtioPciMemSize;
        if (!b.intid) b.intid = kVirtioPciIntid;
        if (!is_aligned(b.ecam_base, kPciBusEcam) || !is_aligned(b.ecam_size, kPciBusEcam) || b.ecam_size > 256 * kPciBusEcam)
            error(b.line, "pci ecam 0x%lx size 0x%lx: needs 1 MiB alignment and 1..256 buses", b.ecam_base, b.ecam_size);
        if (!is_aligned(b.mem_base | b.mem_size, kPageSize) || b.mem_size == 0 || b.mem_base + b.mem_size > (1ull << 32))
            error(b.line, "pci mem window 0x%lx size 0x%lx: must be page aligned and below 4 GiB", b.mem_base, b.mem_size);
        if (b.intid < 32 || b.intid + 3 > 1019) error(b.line, "pci irq %u: INTA..INTD need four SPIs (INTIDs 32..1019)", b.intid);
        add_region(b.ecam_base, b.ecam_size, "pci ecam", kOnly, b.line);
        add_region(b.mem_base, b.mem_size, "pci mem window", kOnly, b.line);
        for (uint32_t pin = 0; pin < 4; pin++) add_irq(b.intid + pin, kPinNames[pin], kOnly, b.line);
        uint64_t buses = b.ecam_size / kPciBusEcam;
        for (unsigned i = 0; i < b.ndevices; i++) {
            const GuestPciDevice& d = b.devices[i];
            if ((d.rid >> 8) >= buses)
                error(d.line, "pci device %02x:%02x.%u is on bus %u, but the ecam window covers %lu bus%s", d.rid >> 8,
                      (d.rid >> 3) & 0x1f, d.rid & 7, d.rid >> 8, buses, buses > 1 ? "es" : "");
            if (d.backend >= kDomidFirstReserved) error(d.line, "backend %u is a reserved domain id", d.backend);
            for (unsigned k = 0; k < i; k++)
                if (b.devices[k].rid == d.rid)
                    error(d.line, "pci device %02x:%02x.%u is already described (line %u)", d.rid >> 8, (d.rid >> 3) & 0x1f,
                          d.rid & 7, b.devices[k].line);
        }
    }

    void passthrough() {
        for (unsigned i = 0; i < g.npassthrough; i++) {
            const GuestPassthrough& p = g.passthrough[i];
            HostDevice h;
            if (!read_host(g, p, host, h, err)) {
                errors++;
                continue;
            }
            if (p.nregs && p.nregs != h.nregs)
                error(p.line, "passthrough %s: %u guest addresses for %u host reg entries", p.host_path, p.nregs, h.nregs);
            if (p.nirqs && p.nirqs != h.nirqs)
                error(p.line, "passthrough %s: %u guest interrupts for %u host interrupts", p.host_path, p.nirqs, h.nirqs);
            for (unsigned k = 0; k < h.nregs && (!p.nregs || p.nregs == h.nregs); k++) {
                uint64_t gb = guest_reg(p, h, k);
                // Stage 2 maps whole pages: the device must sit at the same offset in its page.
                if ((gb ^ h.regs[k].addr) & (kPageSize - 1))
                    error(p.line, "passthrough %s: guest address 0x%lx and host address 0x%lx differ within their page",
                          p.host_path, gb, h.regs[k].addr);
                add_region(gb, h.regs[k].size, "passthrough", kOnly, p.line, p.host_path);
            }
            for (unsigned k = 0; k < h.nirqs && (!p.nirqs || p.nirqs == h.nirqs); k++) {
                uint32_t intid = guest_intid(p, h, k);
                if (intid < 32 || intid > 1019) error(p.line, "passthrough %s: guest interrupt %u is not an SPI (32..1019)", p.host_path, intid);
                add_irq(intid, "passthrough", kOnly, p.line, p.host_path);
            }
        }
    }

    void virtio() {
        // Explicit choices first, so that automatic ones go around them.
        for (unsigned i = 0; i < g.nvirtio; i++) {
            const GuestVirtioMmio& v = g.virtio[i];
            if (v.backend >= kDomidFirstReserved) error(v.line, "virtio-mmio %u: backend %u is a reserved domain id", i, v.backend);
            if (v.base && !is_aligned(v.base, kVirtioMmioSize))
                error(v.line, "virtio-mmio %u: base 0x%lx is not 0x%lx aligned", i, v.base, kVirtioMmioSize);
            if (v.intid && (v.intid < 32 || v.intid > 1019)) error(v.line, "virtio-mmio %u: irq %u is not an SPI (32..1019)", i, v.intid);
        }
        for (unsigned i = 0; i < g.nvirtio; i++) {
            GuestVirtioMmio& v = g.virtio[i];
            if (!v.base) {
                uint64_t b = kVirtioMmioBase;
                while (b < kVirtioMmioBase + kVirtioMmioWindow && !(region_free(b, kVirtioMmioSize) && !explicit_base(b))) b += kVirtioMmioSize;
                if (b >= kVirtioMmioBase + kVirtioMmioWindow) error(v.line, "virtio-mmio %u: no free window left", i);
                else v.base = b;
            }
            if (v.base) add_region(v.base, kVirtioMmioSize, "virtio-mmio", static_cast<int>(i), v.line);
        }
        for (unsigned i = 0; i < g.nvirtio; i++)
            if (g.virtio[i].intid) add_irq(g.virtio[i].intid, "virtio-mmio", static_cast<int>(i), g.virtio[i].line);
        for (unsigned i = 0; i < g.nvirtio; i++) {
            GuestVirtioMmio& v = g.virtio[i];
            if (v.intid) continue;
            uint32_t q = kVirtioMmioFirstIntid;
            while (q <= kVirtioMmioLastIntid && irq_used(q)) q++;
            if (q > kVirtioMmioLastIntid) {
                error(v.line, "virtio-mmio %u: SPIs %u..%u are all taken; give irq = explicitly", i, kVirtioMmioFirstIntid,
                      kVirtioMmioLastIntid);
                continue;
            }
            v.intid = q;
            add_irq(q, "virtio-mmio", static_cast<int>(i), v.line);
        }
    }
    bool explicit_base(uint64_t b) const {
        for (unsigned i = 0; i < g.nvirtio; i++)
            if (g.virtio[i].base == b) return true;
        return false;
    }

    void overlaps() {
        char a_name[dt::kPathMax + 32], b_name[dt::kPathMax + 32];
        for (unsigned i = 0; i < nregions; i++)
            for (unsigned k = 0; k < i; k++) {
                const Region &a = regions[i], &b = regions[k];
                if (a.base < b.base + b.size && b.base < a.base + a.size)
                    error(a.line, "%s at 0x%lx (size 0x%lx) overlaps %s at 0x%lx (size 0x%lx)",
                          describe(a_name, sizeof a_name, a.what, a.index, a.detail, 0, 0), a.base, a.size,
                          describe(b_name, sizeof b_name, b.what, b.index, b.detail, b.line, a.line), b.base, b.size);
            }
        for (unsigned i = 0; i < nirqs; i++)
            for (unsigned k = 0; k < i; k++)
                if (irqs[i].intid == irqs[k].intid)
                    error(irqs[i].line, "%s: interrupt %u is already used by %s",
                          describe(a_name, sizeof a_name, irqs[i].what, irqs[i].index, irqs[i].detail, 0, 0), irqs[i].intid,
                          describe(b_name, sizeof b_name, irqs[k].what, irqs[k].index, irqs[k].detail, irqs[k].line, irqs[i].line));
    }
};

}  // namespace

bool GuestDesc::uses_grants() const {
    for (unsigned i = 0; i < nvirtio && i < kGuestMaxVirtioMmio; i++)
        if (virtio[i].uses_grants()) return true;
    for (unsigned i = 0; pci.present && i < pci.ndevices && i < kGuestMaxPciDevices; i++)
        if (pci.devices[i].uses_grants()) return true;
    return false;
}

Status set_guest_memory(GuestDesc& g, uint64_t bytes) {
    if (bytes == 0 || !is_aligned(bytes, kPageSize) || bytes > kRam0Size + kRam1Size) return Status::invalid_argument;
    g.nram = 1;
    g.ram[0] = GuestRam{kRam0Base, min(bytes, kRam0Size)};
    if (bytes > kRam0Size) g.ram[g.nram++] = GuestRam{kRam1Base, bytes - kRam0Size};
    return Status::ok;
}

Status complete_guest(GuestDesc& g, const dt::Tree* host, Sink& err) {
    Checker c{g, host, err};  // about 4 KiB of tables: fine on the image's 32 KiB boot stack
    c.check_basics();
    c.fixed_regions_and_irqs();
    c.pci();
    c.passthrough();
    c.virtio();
    c.overlaps();
    return c.errors ? Status::invalid_argument : Status::ok;
}

}  // namespace moat::xen
