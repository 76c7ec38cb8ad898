// The device tree a guest boots with, built from a description, as Xen's toolstack (libxl)
// builds it for an Arm guest, plus what moat adds for DMA: one `xen,grant-dma` node, `iommus`
// on virtio-mmio devices whose backend is not the toolstack domain, `iommu-map` on a virtio-pci
// host bridge, and passthrough devices copied from the host tree with guest addresses and
// interrupts and without any reference to the physical IOMMU (the guest's DMA addresses are
// guest-physical; moat's IOMMU domain for the guest translates them).
//
// Layout and conventions (docs/hardware.md §6.1, §9): GIC phandle 65000, grant node
// `xen_iommu` with phandle 65001, RAM from 0x40000000 (3 GiB) then 0x200000000, virtio-mmio
// windows of 0x200 bytes from 0x02000000 on SPIs 33..43 edge-rising, vPL011 as `arm,sbsa-uart`
// at 0x22000000 on SPI 32, grant-table window 0x38000000 + 16 MiB, event channel on PPI 31.
// Interrupts are given as GIC INTIDs throughout (SPI n is INTID n + 32, PPI n is INTID n + 16).
//
// complete_guest() (guest_check.cpp) fills defaults and checks the description; the builder
// (guest_dt.cpp) writes with libfdt's sequential-write API into a caller-provided buffer, no
// heap; verify_guest_dt() (guest_verify.cpp) reads a tree back through the typed reader
// (common/fdt.hpp) and compares it with the description, so a test or the image itself can
// prove the round trip. Stack: complete_guest() needs about 6 KiB of tables.
#pragma once
#include "common/fdt.hpp"

namespace moat::xen {

constexpr unsigned kGuestMaxVcpus = 32;
constexpr unsigned kGuestMaxRamBanks = 2;
constexpr unsigned kGuestMaxVirtioMmio = 16;
constexpr unsigned kGuestMaxPciDevices = 32;
constexpr unsigned kGuestMaxPassthrough = 8;
constexpr unsigned kGuestMaxPtRegs = 4;
constexpr unsigned kGuestMaxPtIrqs = 8;
constexpr unsigned kGuestNameMax = 64;
constexpr unsigned kGuestBootargsMax = 256;

// Xen's guest memory map and phandles (docs/hardware.md §6.1).
namespace layout {
constexpr uint64_t kGicdBase = 0x03001000, kGicdSizeV2 = 0x1000, kGicdSizeV3 = 0x10000;
constexpr uint64_t kGiccBase = 0x03002000, kGiccSize = 0x2000;  // GICv2 CPU interface
constexpr uint64_t kGicrBase = 0x03020000, kGicrStride = 0x20000;  // GICv3 redistributors
constexpr uint64_t kVirtioMmioBase = 0x02000000, kVirtioMmioWindow = 0x00100000, kVirtioMmioSize = 0x200;
constexpr uint32_t kVirtioMmioFirstIntid = 33, kVirtioMmioLastIntid = 43;
constexpr uint64_t kPl011Base = 0x22000000, kPl011Size = 0x1000;
constexpr uint32_t kPl011Intid = 32;
constexpr uint64_t kGnttabBase = 0x38000000, kGnttabSize = 0x01000000;
constexpr uint32_t kEvtchnIntid = 31;
constexpr uint64_t kRam0Base = 0x40000000, kRam0Size = 0xc0000000;
constexpr uint64_t kRam1Base = 0x0200000000, kRam1Size = 0xfe00000000;
// Virtio-PCI: from the (unmerged) Xen virtio-pci series; moat's defaults, configurable.
// One bus (ECAM 1 MiB), a 64 MiB 32-bit window, INTA..INTD on four SPIs after virtio-mmio's.
constexpr uint64_t kVirtioPciEcamBase = 0x33000000, kVirtioPciEcamSize = 0x00100000;
constexpr uint64_t kVirtioPciMemBase = 0x34000000, kVirtioPciMemSize = 0x04000000;
constexpr uint32_t kVirtioPciIntid = 44;
constexpr uint32_t kPhandleGic = 65000, kPhandleGrant = 65001;
constexpr uint16_t kToolstackDomid = 0;
constexpr uint16_t kDomidFirstReserved = 0x7ff0;
}  // namespace layout

// Grant use of one virtio device: automatic means "when the backend is not the toolstack
// domain" (Xen's default), on/off force it.
enum class Grants : uint8_t { automatic, on, off };
enum class Console : uint8_t { none, pl011, hvc };  // pl011: Xen's vPL011 ("arm,sbsa-uart")

struct GuestRam {
    uint64_t base, size;
};

struct GuestVirtioMmio {
    uint64_t base;     // 0: next free window
    uint32_t intid;    // 0: next free SPI from 33
    uint16_t backend;  // backend domain id
    Grants grants;
    uint32_t line;     // config line, 0 if none (for messages)
    bool uses_grants() const { return grants == Grants::on || (grants == Grants::automatic && backend != layout::kToolstackDomid); }
};

struct GuestPciDevice {
    uint16_t rid;  // requester id: bus << 8 | device << 3 | function
    uint16_t backend;
    Grants grants;
    uint32_t line;
    bool uses_grants() const { return grants == Grants::on || (grants == Grants::automatic && backend != layout::kToolstackDomid); }
};

struct GuestPciBridge {
    bool present;
    uint64_t ecam_base, ecam_size;  // one MiB per bus
    uint64_t mem_base, mem_size;    // 32-bit non-prefetchable window, identity-mapped
    uint32_t intid;                 // INTA; INTB..INTD are the next three
    unsigned ndevices;
    GuestPciDevice devices[kGuestMaxPciDevices];
    uint32_t line;
};

// A host device given to the guest. Guest addresses and interrupts default to the host's.
struct GuestPassthrough {
    char host_path[dt::kPathMax];
    unsigned nregs;  // 0: same addresses as the host; else one per host reg entry
    uint64_t regs[kGuestMaxPtRegs];
    unsigned nirqs;  // 0: same INTIDs as the host; else one per host interrupt
    uint32_t intids[kGuestMaxPtIrqs];
    uint32_t line;
    // `force-assign-without-iommu = true` (Xen's xen,force-assign-without-iommu): assign it even
    // when no IOMMU moat drives confines its DMA. `unconfined` is set by whoever checked that.
    bool force = false;
    bool unconfined = false;
};

struct GuestDesc {
    char name[kGuestNameMax] = {};
    char bootargs[kGuestBootargsMax] = {};
    const char* source = nullptr;  // config file name for messages ("guest.cfg"), or nullptr
    uint32_t line = 0;             // line of [guest]
    uint32_t memory_line = 0, gnttab_line = 0;
    unsigned vcpus = 1;
    unsigned nram = 0;
    GuestRam ram[kGuestMaxRamBanks] = {};
    unsigned gic_version = 3;
    Console console = Console::pl011;
    uint16_t xen_major = 4, xen_minor = 19;
    uint64_t gnttab_base = layout::kGnttabBase, gnttab_size = layout::kGnttabSize;
    uint32_t evtchn_intid = layout::kEvtchnIntid;
    unsigned nvirtio = 0;
    GuestVirtioMmio virtio[kGuestMaxVirtioMmio] = {};
    GuestPciBridge pci = {};
    unsigned npassthrough = 0;
    GuestPassthrough passthrough[kGuestMaxPassthrough] = {};

    bool uses_grants() const;
};

// Lays `bytes` of RAM out as Xen does: bank 0 at 0x40000000 (up to 3 GiB), the rest at 8 GiB.
Status set_guest_memory(GuestDesc& g, uint64_t bytes);

// Fills what the description leaves to defaults (virtio windows and SPIs, the PCI bridge's
// windows), then checks everything the tree depends on: counts and ranges, overlapping
// regions, interrupts used twice, passthrough devices against the host tree (which may be
// nullptr when there are none). Messages name the config line ("guest.cfg:12: ...").
Status complete_guest(GuestDesc& g, const dt::Tree* host, Sink& err);

// Writes the guest's DTB into out[0..cap) and sets `size`. Calls complete_guest() first.
// Notes (properties dropped from passthrough devices, ...) go to `notes` when given.
Status build_guest_dt(GuestDesc& g, const dt::Tree* host, void* out, size_t cap, size_t& size, Sink& err,
                      Sink* notes = nullptr);

// Reads `t` back and compares it with the (completed) description: every node, address,
// interrupt, iommus/iommu-map target and backend, and that nothing names a physical IOMMU.
// Returns the number of differences, one line each in `diff`.
unsigned verify_guest_dt(const dt::Tree& t, const GuestDesc& g, const dt::Tree* host, Sink& diff);

}  // namespace moat::xen
