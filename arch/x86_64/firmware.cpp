#include "arch/x86_64/firmware.hpp"

#include "arch/cpu.hpp"
#include "arch/x86_64/iommu_units.hpp"
#include "common/acpi_tree.hpp"
#include "common/format.hpp"
#include "hyp/boot.hpp"

namespace moat::arch {

namespace {

constexpr uint64_t kLowMemoryEnd = 1 * MiB;     // BIOS data, EBDA, option ROMs, the start info: not moat's
constexpr uint64_t k4G = 4 * GiB;
constexpr unsigned kMaxMemmap = 128;
constexpr size_t kMaxCmdline = 1024;
// q35 decodes PCI memory from the top of low RAM to the IOAPIC at 0xfec00000, ECAM excepted.
// SeaBIOS assigns the BARs of the devices it finds upward from the end of ECAM (0xc0000000);
// the BARs moat assigns itself (edu's) come from the upper part, so they do not land on those.
constexpr uint64_t kPciWindowBase = 0xe0000000;
constexpr uint64_t kPciWindowEnd = 0xfec00000;

alignas(8) uint8_t g_tree[64 * KiB];
char g_cmdline[kMaxCmdline];
acpi::Tables g_acpi;
acpi::FirmwareDesc g_desc;

[[noreturn]] void unusable(const char* what) {
    print("moat: %s; cannot continue\n", what);
    halt(hyp::kExitTreeUnusable);
}

// Keeps [pa, pa + len) out of the pool when it lies in RAM the pool would get (the memory map
// does not always know where the BIOS put its tables); pages already kept are not listed twice.
void reserve(acpi::FirmwareDesc& d, uint64_t pa, uint64_t len) {
    uint64_t b = align_down(pa, kPageSize), e = align_up(pa + len, kPageSize);
    bool in_ram = false;
    for (unsigned i = 0; i < d.nram; i++) in_ram |= b < d.ram[i].base + d.ram[i].size && e > d.ram[i].base;
    if (!in_ram) return;
    for (unsigned i = 0; i < d.nreserved; i++) {
        acpi::RamRange& r = d.reserved[i];
        if (b <= r.base + r.size && e >= r.base) {  // overlapping or adjacent: one range
            uint64_t nb = min(b, r.base), ne = max(e, r.base + r.size);
            r = {nb, ne - nb};
            return;
        }
    }
    if (d.nreserved < sizeof d.reserved / sizeof d.reserved[0]) d.reserved[d.nreserved++] = {b, e - b};
}

}  // namespace

FirmwareTree firmware_tree(uint64_t start_info_pa, uint64_t ram_window_end) {
    if (start_info_pa == 0 || start_info_pa + sizeof(HvmStartInfo) > k4G)
        unusable("no PVH start info (boot with QEMU -kernel: moat is entered through its PVH note)");
    const auto& si = *reinterpret_cast<const HvmStartInfo*>(start_info_pa);
    if (si.magic != kHvmStartMagic) {
        print("moat: PVH start info at 0x%lx: magic 0x%08x, not 0x%08x\n", start_info_pa, si.magic, kHvmStartMagic);
        unusable("not entered by a PVH loader");
    }
    print("pvh:      start info at 0x%lx, version %u, %u memory map entries, RSDP at 0x%lx\n", start_info_pa, si.version,
          si.version >= 1 ? si.memmap_entries : 0, si.rsdp_paddr);
    acpi::FirmwareDesc& d = g_desc;
    d.model = "QEMU q35 (from ACPI)";

    // The command line: the flow reads moat.selftest=... from /chosen/bootargs, as on arm64.
    if (si.cmdline_paddr && si.cmdline_paddr < k4G - kMaxCmdline) {
        const char* c = reinterpret_cast<const char*>(si.cmdline_paddr);
        size_t n = 0;
        while (n + 1 < kMaxCmdline && c[n]) {
            g_cmdline[n] = c[n];
            n++;
        }
        g_cmdline[n] = 0;
    }
    d.bootargs = g_cmdline;

    // RAM from the memory map; the tables' window is everything up to the top of RAM/ACPI memory.
    if (si.version < 1 || si.memmap_entries == 0 || si.memmap_entries > kMaxMemmap || si.memmap_paddr >= k4G)
        unusable("the PVH start info has no usable memory map (version 1 with 1..128 entries)");
    const auto* mm = reinterpret_cast<const HvmMemmapEntry*>(si.memmap_paddr);
    uint64_t acpi_top = 0;
    for (uint32_t i = 0; i < si.memmap_entries; i++) {
        const HvmMemmapEntry& e = mm[i];
        if (add_overflows(e.addr, e.size)) continue;
        uint64_t end = e.addr + e.size;
        print("pvh:      memory 0x%010lx-0x%010lx type %u\n", e.addr, end - 1, e.type);
        if ((e.type == 1 || e.type == 3 || e.type == 4) && end <= k4G) acpi_top = max(acpi_top, end);
        if (e.type != 1 || end <= kLowMemoryEnd) continue;
        uint64_t base = max(e.addr, kLowMemoryEnd);
        if (d.nram == acpi::kMaxRam) {
            print("pvh:      RAM 0x%lx-0x%lx: more than %u RAM ranges; not used\n", base, end - 1, acpi::kMaxRam);
            continue;
        }
        d.ram[d.nram++] = {base, end - base};
    }
    if (d.nram == 0) unusable("the PVH memory map lists no RAM above 1 MiB");
    // SeaBIOS keeps its ACPI tables in a reserved range right after the top of low RAM: the
    // window runs through such a range too.
    for (uint32_t i = 0; i < si.memmap_entries; i++)
        if (mm[i].type == 2 && mm[i].addr == acpi_top && !add_overflows(mm[i].addr, mm[i].size) && mm[i].addr + mm[i].size <= k4G)
            acpi_top = mm[i].addr + mm[i].size;

    // ACPI.
    acpi::PhysWindow win{0, acpi_top, 0};
    Why why;
    if (g_acpi.open(win, si.rsdp_paddr, console(), why) != Status::ok) unusable(why.text());
    unsigned problems = g_acpi.skipped();
    print("acpi:     RSDP 0x%lx revision %u (%s), %s at 0x%lx:", si.rsdp_paddr, g_acpi.rsdp_revision(), g_acpi.oem,
          g_acpi.root_name(), g_acpi.root_pa());
    for (unsigned i = 0; i < g_acpi.count(); i++) print(" %s", g_acpi.at(i).sig);
    print("\n");
    reserve(d, g_acpi.root_pa(), g_acpi.root_length());
    for (unsigned i = 0; i < g_acpi.count(); i++) reserve(d, g_acpi.at(i).pa, g_acpi.at(i).length);

    if (const acpi::Table* mcfg = g_acpi.find("MCFG")) {
        if (acpi::parse_mcfg(*mcfg, d.ecam, acpi::kMaxMcfg, d.necam, why) != Status::ok) {
            print("acpi: %s; PCI is not enumerated, its devices stay as the firmware left them\n", why.text());
            d.necam = 0;
            problems++;
        }
        for (unsigned i = 0; i < d.necam; i++)
            print("acpi:     MCFG segment %u buses %u-%u, ECAM 0x%lx (%lu MiB)\n", d.ecam[i].segment, d.ecam[i].bus_start,
                  d.ecam[i].bus_end, d.ecam[i].window(), d.ecam[i].size() / MiB);
    } else {
        print("acpi:     no MCFG: no PCI enumeration\n");
    }
    d.pci_window_base = kPciWindowBase;
    d.pci_window_size = kPciWindowEnd - kPciWindowBase;
    (void)ram_window_end;

    problems += iommu_units(g_acpi, d);

    if (acpi::build_tree(d, g_tree, sizeof g_tree, why) != Status::ok) unusable(why.text());
    return {reinterpret_cast<uintptr_t>(g_tree), problems};
}

}  // namespace moat::arch
