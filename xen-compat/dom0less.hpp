// Guests described in the host tree's `/chosen` with Xen's dom0less binding, read into a
// portable spec the hypervisor builds and runs them from. Portable: the image reads its own boot
// tree with it, moat-dt and the unit tests read the same trees on the host.
//
// The binding (Xen docs/misc/arm/device-tree/booting.txt; docs/hardware.md §6.5):
//
//   chosen {
//       domU1 {                                  // the node name is the guest's name
//           compatible = "xen,domain";
//           #address-cells = <1>; #size-cells = <1>;    // of the module reg below (default 2, 1)
//           memory = <0 0x40000>;                // KiB, 64-bit (two cells; one cell accepted too)
//           cpus = <2>;                          // vCPUs, required
//           vpl011;                              // optional: an emulated PL011 console
//           moat,ram-base = <0 0x40000000>;      // optional, see below
//           module@4a000000 {
//               compatible = "multiboot,kernel", "multiboot,module";
//               reg = <0x4a000000 0x2000000>;    // host-physical, where the loader put it
//               bootargs = "console=ttyAMA0";
//           };
//           module@4c000000 { compatible = "multiboot,ramdisk", "multiboot,module"; reg = <...>; };
//           module@4e000000 { compatible = "multiboot,device-tree", "multiboot,module"; reg = <...>; };
//       };
//   };
//
// Bootargs: Xen takes them from the kernel module's `bootargs`. moat also accepts `bootargs` on
// the domain node (when the kernel module has none; both at once is an error, not a guess).
//
// `moat,` properties (where moat needs what the binding lacks; README "Linux guests"):
//   moat,ram-base   guest-physical address of the guest's RAM (one or two cells, 2 MiB-aligned).
//                   Default kGuestRamBase (Xen's GUEST_RAMBANK0, 0x40000000). The RAM is one bank
//                   of `memory` bytes from there; it must stay below kGuestRamLimit and clear of
//                   the device window [0, kGuestRamBase) the guest map below uses.
//   moat,pci        the PCI functions passed through to the guest: 4 cells each,
//                   <segment bus device function> (Xen's xl `pci = [ "0000:00:02.0" ]`, as
//                   numbers). At most kDom0lessMaxPci; a function listed twice, or already listed
//                   by an earlier guest, is an error naming both. Whether each exists on a host
//                   bridge and is behind an IOMMU moat drives is checked when the host's PCI is
//                   known (hyp/passthrough.hpp resolve_pci_assignment): a guest with an unknown
//                   function, or with one no IOMMU confines, does not start.
//   moat,reserved-memory
//                   <ipa-hi ipa-lo size-hi size-lo>: one range of the guest's own RAM its kernel is
//                   told not to use (a /reserved-memory child with `no-map` in the guest tree), so
//                   it is not "System RAM" to Linux and user space may reach it through /dev/mem
//                   (e.g. a buffer for a passed-through device's DMA driven from user space).
//                   It stays guest RAM in every respect moat controls: mapped in the guest's
//                   stage 2 and in its DMA domain. Page-aligned, non-empty, inside the guest's
//                   RAM; place_guest_modules() refuses it over the kernel, initrd or tree.
//   moat,pci-force-assign-without-iommu
//                   (empty) assign the guest's functions even when no IOMMU moat drives stands
//                   between them and memory (Xen's xen,force-assign-without-iommu, for PCI): the
//                   report then says that guest's DMA is unconfined.
// Any other `moat,` property is an error (a typo must not be silently ignored).
//
// Xen properties moat refuses, because ignoring them would give the guest something else than it
// asked for: `direct-map`, `xen,static-mem`, `xen,enhanced` other than "disabled" (Xen's PV
// interfaces: moat serves none of them, see README). `passthrough` must be "enabled" or
// "disabled" and changes nothing (it asks for an IOMMU, which moat always uses). Xen's tuning
// properties (`nr_spis`, `max_grant_frames`, `max_maptrack_frames`, `domain-cpupool`, ...) are
// ignored with a note; so is any other unknown property outside the `moat,` prefix.
//
// What is checked (each failure: one line naming the node and property, that guest skipped,
// the others parsed): compatible and required properties present and well-formed (`memory`,
// `cpus`, cell counts of every `reg`), `memory` a whole number of 4 KiB pages, non-zero, within
// the pool that remains after the guests before it, large enough for the guest's modules and a
// 2 MiB block for its tree, and fitting the guest map; `cpus` in
// 1..limits.max_vcpus; exactly one kernel module, at most one ramdisk and one device tree; each
// module non-empty, inside host RAM, not overlapping moat's image, the boot tree, a reserved
// range or another module (of any guest).
//
// How the image uses it (the order matters: the modules lie in RAM the pool would otherwise take):
//   1. plan_memory(tree, image, dtb, plan); limits = dom0less_limits(plan, <pool bytes>, <CPUs>),
//      where the pool bytes are plan.free_bytes() less the modules (moat-dt dom0less reads the
//      tree once with an unlimited pool to learn the module ranges, then again with that figure);
//   2. parse_dom0less(); keep dom0less_module_ranges() out of the pool before fill_pool();
//   3. per guest: read the kernel Image header (text_offset at 8, image_size at 16, magic
//      "ARM\x64" at 56) at kernel.addr, place_guest_modules(), copy the kernel and the initrd from
//      their host-physical modules into the guest's RAM at the placed addresses,
//      build_linux_guest_dt() into guest RAM at place.dtb (cap place.dtb_max), and enter vCPU 0 at
//      place.kernel with x0 = place.dtb (Linux's arm64 boot protocol; MMU off, caches may be off).
//   The `multiboot,device-tree` module (Xen's partial tree for platform-device passthrough) is
//   located here and read by parse_partial_dt() (xen-compat/dom0less_partial.hpp).
#pragma once
#include "common/boot_memory.hpp"
#include "common/fdt.hpp"

namespace moat::xen {

constexpr unsigned kDom0lessMaxGuests = 8;
constexpr unsigned kDom0lessMaxVcpus = 8;
constexpr unsigned kDom0lessNameMax = 32;
constexpr unsigned kDom0lessBootargsMax = 512;
constexpr unsigned kDom0lessMaxPci = 8;

// A PCI function as the user names it: segment (the host bridge's linux,pci-domain, 0 when it
// has none), bus, device, function.
struct PciBdf {
    uint16_t seg = 0;
    uint8_t bus = 0, dev = 0, fn = 0;
    uint16_t rid() const { return static_cast<uint16_t>(bus << 8 | dev << 3 | fn); }
    bool operator==(const PciBdf&) const = default;
};

// The memory map every dom0less guest sees (the guest DT builder writes it, the hypervisor
// emulates it). Xen's guest layout (docs/hardware.md §6.1), so a guest that ran as a Xen
// dom0less domU finds its devices at the same addresses. Interrupts are GIC INTIDs.
namespace guest_map {
constexpr uint64_t kGicdBase = 0x03001000, kGicdSize = 0x10000;      // GICv3 distributor
// Redistributor of vCPU n at kGicrBase + n * kGicrStride (RD + SGI frames); the tree's region
// is vcpus * stride, so the last vCPU's GICR_TYPER must say Last.
constexpr uint64_t kGicrBase = 0x03020000, kGicrStride = 0x20000;
constexpr uint64_t kPl011Base = 0x22000000, kPl011Size = 0x1000;     // vPL011 (`arm,pl011`, `arm,primecell`)
constexpr uint32_t kPl011Intid = 32;                                  // SPI 0, level-high
constexpr uint32_t kPl011ClockHz = 24000000;                          // the apb_pclk/uartclk the tree names
constexpr uint32_t kPl011PeriphId = 0x00241011;                       // PL011 r1p5, also in `arm,primecell-periphid`
constexpr uint32_t kTimerSecIntid = 29, kTimerNsIntid = 30, kTimerVirtIntid = 27, kTimerHypIntid = 26;  // PPIs 13, 14, 11, 10, level-high
// The PCI host bridge of a guest with moat,pci functions (hyp/vpci.hpp traps it): an ECAM of bus 0,
// and the assigned BARs at their host-physical addresses (gpa == pa, so the guest keeps them,
// `linux,pci-probe-only`) inside a window the guest tree declares. INTx pins A..D of device d
// reach SPI kPciIntxIntid + (d + pin) % 4, the swizzle of QEMU's virt board.
constexpr uint64_t kPciEcamBase = 0x04000000, kPciEcamSize = 0x100000;
constexpr uint32_t kPciIntxIntid = 35;                                 // SPIs 3..6, level-high
constexpr uint64_t kGuestRamBase = 0x40000000;                        // default moat,ram-base
constexpr uint64_t kGuestRamLimit = 0x10000000000;                    // 40-bit guest-physical space
constexpr uint32_t kPhandleGic = 65000, kPhandleClock = 65002;
// PSCI function ids the guest tree advertises (PSCI 1.0 via hvc, SMC32/SMC64 calling convention).
constexpr uint32_t kPsciVersion = 0x84000000, kPsciCpuOff = 0x84000002, kPsciFeatures = 0x8400000a;
constexpr uint32_t kPsciCpuOn64 = 0xc4000003, kPsciAffinityInfo64 = 0xc4000004;
constexpr uint32_t kPsciSystemOff = 0x84000008, kPsciSystemReset = 0x84000009;
// vCPU n's MPIDR affinity (what `cpus/cpu@N` reg says): Aff0 = n & 0xf, Aff1 = n >> 4.
constexpr uint64_t vcpu_mpidr(unsigned n) { return uint64_t{(n >> 4) & 0xff} << 8 | (n & 0xf); }
}  // namespace guest_map

// One boot module as the host tree gives it: host-physical, where the boot loader put it.
struct Dom0lessModule {
    bool present = false;
    uint64_t addr = 0, size = 0;
    uint64_t end() const { return addr + size; }
};

struct Dom0lessGuest {
    char name[kDom0lessNameMax] = {};      // the node's name ("domU1"): console prefix, messages
    char path[dt::kPathMax] = {};          // "/chosen/domU1"
    int node = -1;                         // offset in the host tree
    uint64_t memory = 0;                   // bytes (`memory` KiB * 1024)
    unsigned vcpus = 0;                    // `cpus`
    bool vpl011 = false;                   // `vpl011` present
    uint64_t ram_base = guest_map::kGuestRamBase;  // moat,ram-base
    Dom0lessModule kernel, ramdisk, dtb;   // multiboot,kernel (always present in a parsed guest) / ramdisk / device-tree
    char bootargs[kDom0lessBootargsMax] = {};      // "" when none
    unsigned npci = 0;                     // moat,pci
    PciBdf pci[kDom0lessMaxPci];
    bool pci_force_unconfined = false;     // moat,pci-force-assign-without-iommu
    uint64_t resv_base = 0, resv_size = 0; // moat,reserved-memory (guest-physical; size 0: none)
};

struct Dom0lessConfig {
    unsigned nguests = 0;                  // guests that passed every check, in tree order
    Dom0lessGuest guests[kDom0lessMaxGuests];
    unsigned nskipped = 0;                 // `xen,domain` nodes refused (each reported)
};

// What a guest's config is checked against.
struct Dom0lessLimits {
    const MemRange* ram = nullptr;         // host RAM (plan.ram); a module must lie inside one range
    unsigned nram = 0;
    const MemRange* reserved = nullptr;    // moat's image, the boot tree, reserved memory (plan.reserved)
    const char* const* reserved_why = nullptr;  // a name for each, for messages (may be nullptr)
    unsigned nreserved = 0;
    uint64_t pool_bytes = 0;               // what the guests' RAM comes from, shared in tree order
    unsigned max_vcpus = kDom0lessMaxVcpus;  // the most vCPUs one guest may have (capped at kDom0lessMaxVcpus)
};

// The limits a memory plan gives (its RAM and reserved ranges), with the pool and CPU counts.
Dom0lessLimits dom0less_limits(const MemoryPlan& plan, uint64_t pool_bytes, unsigned max_vcpus);

// Reads every `xen,domain` child of /chosen. A guest with a problem is reported to `err` (one
// line per problem, "dom0less: /chosen/domU1: memory: ...") and skipped; the others are kept.
// Notes (ignored Xen properties) go to `notes` when given. Returns ok when there are no
// `xen,domain` nodes at all or every one was accepted, invalid_argument when any was skipped,
// no_space past kDom0lessMaxGuests (the extra guests are reported and skipped).
Status parse_dom0less(const dt::Tree& t, const Dom0lessLimits& limits, Dom0lessConfig& out, Sink& err,
                      Sink* notes = nullptr);

// Every module range of every parsed guest (to keep out of the page pool before it is filled).
unsigned dom0less_module_ranges(const Dom0lessConfig& c, MemRange* out, unsigned max);

// Where a guest's boot modules go in its RAM (guest-physical), as Linux's arm64 boot protocol
// wants them: the kernel Image at ram_base + text_offset (from its header) with image_size
// bytes (header's image_size, 0 = the module size), the device tree in the last 2 MiB-aligned
// 2 MiB of RAM, the initrd page-aligned just below it. Fails (naming the guest) when they do not
// fit or would overlap.
struct GuestPlacement {
    uint64_t kernel = 0, kernel_size = 0;  // entry = kernel (x0 = dtb)
    uint64_t initrd = 0, initrd_size = 0;  // initrd_size 0: none
    uint64_t dtb = 0, dtb_max = 0;         // dtb_max: room for the guest tree (<= 2 MiB)
};
Status place_guest_modules(const Dom0lessGuest& g, uint64_t text_offset, uint64_t image_size, GuestPlacement& out,
                           Sink& err);

// The guest's PCI host bridge, when it has functions: the 32-bit memory window (guest-physical =
// host-physical) that holds every assigned BAR. The window must lie in the device window below
// kGuestRamBase, clear of the GIC, the vPL011 and the ECAM.
struct PartialTree;  // xen-compat/dom0less_partial.hpp

struct GuestPciDt {
    uint64_t win_base = 0, win_size = 0;
};

// The Linux guest's device tree (the memory map above): memory, cpus (enable-method psci), psci
// (hvc, arm,psci-1.0), GICv3, timer, the vPL011 when g.vpl011, chosen (bootargs, stdout-path,
// linux,initrd-start/end from `place`), /reserved-memory with one `no-map` child for
// moat,reserved-memory, and with `pci` a `pci-host-ecam-generic` bridge
// (bus 0, the window, the INTx interrupt-map, `linux,pci-probe-only` in chosen). No `hypervisor`
// node: moat is not Xen to this guest, and no IOMMU: moat's own translates the guest's DMA.
// With `pt` (the guest's partial tree, parsed), its /passthrough node and everything below it
// (minus the xen, properties) and its /aliases are copied in, and the GIC carries the partial
// tree's /gic phandle when it gives one (Xen's 65000 otherwise, which the copies' interrupt-parent
// names). Written into out[0..cap); `size` set. Errors name the guest.
Status build_linux_guest_dt(const Dom0lessGuest& g, const GuestPlacement& place, void* out, size_t cap, size_t& size,
                            Sink& err, const GuestPciDt* pci = nullptr, const PartialTree* pt = nullptr);

}  // namespace moat::xen
