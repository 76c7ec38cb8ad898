// Xen's dom0less binding read by parse_dom0less() (xen-compat/dom0less.hpp): what a good guest
// becomes, one refusal per mistake (naming the node and property), and that a refused guest
// leaves the others parsed.
#include <libfdt.h>

#include "common/boot_memory.hpp"
#include "dt_support.hpp"
#include "xen-compat/dom0less.hpp"

using namespace moat;
using namespace moat::xen;
using namespace dt_test;

namespace {

constexpr MemRange kImage{0x40200000, 2 * MiB}, kDtb{0x48000000, 64 * KiB};

// tests/unit/data/dom0less.dts read with the limits a memory plan of it gives.
struct Parsed {
    std::vector<uint64_t> blob = load_dtb("dom0less");
    dt::Tree t;
    MemoryPlan plan;
    std::unique_ptr<Dom0lessConfig> cfg = std::make_unique<Dom0lessConfig>();
    StrSink err, notes;
    Status st;

    explicit Parsed(uint64_t pool = 128 * MiB, unsigned cpus = 4) {
        EXPECT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok) << t.error();
        EXPECT_EQ(plan_memory(t, kImage, kDtb, plan), Status::ok) << t.error();
        st = parse_dom0less(t, dom0less_limits(plan, pool, cpus), *cfg, err, &notes);
    }
    const Dom0lessGuest* guest(const char* name) const {
        for (unsigned i = 0; i < cfg->nguests; i++)
            if (strcmp(cfg->guests[i].name, name) == 0) return &cfg->guests[i];
        return nullptr;
    }
    // The lines of the error text about one node (its path as prefix).
    std::string about(const std::string& path) const {
        std::string out, prefix = "dom0less: " + path + ": ";
        size_t i = 0;
        while (i < err.text.size()) {
            size_t e = err.text.find('\n', i);
            std::string line = err.text.substr(i, e - i);
            if (line.compare(0, prefix.size(), prefix) == 0) out += line.substr(prefix.size()) + "\n";
            i = e == std::string::npos ? err.text.size() : e + 1;
        }
        return out;
    }
};

TEST(Dom0less, GoodGuestsAreReadAsWritten) {
    Parsed p;
    EXPECT_EQ(p.st, Status::invalid_argument);  // the mistakes below are refused
    ASSERT_EQ(p.cfg->nguests, 3u) << p.err.text;
    const Dom0lessGuest* a = p.guest("domU1");
    ASSERT_NE(a, nullptr);
    EXPECT_STREQ(a->path, "/chosen/domU1");
    EXPECT_EQ(a->memory, 64 * MiB);
    EXPECT_EQ(a->vcpus, 2u);
    EXPECT_TRUE(a->vpl011);
    EXPECT_EQ(a->ram_base, guest_map::kGuestRamBase);
    EXPECT_EQ(a->resv_base, 0x42000000u);  // moat,reserved-memory
    EXPECT_EQ(a->resv_size, 64 * KiB);
    EXPECT_TRUE(a->kernel.present);
    EXPECT_EQ(a->kernel.addr, 0x4a000000u);
    EXPECT_EQ(a->kernel.size, 0x1000000u);
    EXPECT_TRUE(a->ramdisk.present);
    EXPECT_EQ(a->ramdisk.addr, 0x4c000000u);
    EXPECT_EQ(a->ramdisk.size, 0x200000u);
    EXPECT_TRUE(a->dtb.present);
    EXPECT_EQ(a->dtb.addr, 0x4d000000u);
    EXPECT_EQ(a->dtb.size, 0x1000u);
    EXPECT_STREQ(a->bootargs, "console=ttyAMA0 rdinit=/init");
    EXPECT_EQ(p.t.name(a->node), std::string("domU1"));
    ASSERT_EQ(a->npci, 2u);
    EXPECT_EQ(a->pci[0], (PciBdf{0, 0, 2, 0}));
    EXPECT_EQ(a->pci[1], (PciBdf{0, 0, 3, 0}));
    EXPECT_EQ(a->pci[1].rid(), 0x18u);
    EXPECT_FALSE(a->pci_force_unconfined);

    const Dom0lessGuest* b = p.guest("domU2");
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->memory, 32 * MiB);  // one-cell memory
    EXPECT_EQ(b->vcpus, 1u);
    EXPECT_FALSE(b->vpl011);
    EXPECT_EQ(b->npci, 0u);
    EXPECT_EQ(b->ram_base, 0x100000000u);  // moat,ram-base, two cells
    EXPECT_EQ(b->resv_size, 0u);            // no moat,reserved-memory
    EXPECT_EQ(b->kernel.addr, 0x50000000u);  // #address-cells = #size-cells = 2
    EXPECT_EQ(b->kernel.size, 0x800000u);
    EXPECT_FALSE(b->ramdisk.present);
    EXPECT_FALSE(b->dtb.present);
    EXPECT_STREQ(b->bootargs, "console=hvc0");  // from the domain node
    EXPECT_NE(p.notes.text.find("dom0less: /chosen/domU2: nr_spis: a Xen setting moat has no use for, ignored"), std::string::npos)
        << p.notes.text;

    const Dom0lessGuest* c = p.guest("domU3");  // after every mistake: still read
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->vcpus, 4u);
    EXPECT_EQ(c->memory, 16 * MiB);
    EXPECT_STREQ(c->bootargs, "");
    EXPECT_TRUE(p.about("/chosen/domU1").empty() && p.about("/chosen/domU2").empty() && p.about("/chosen/domU3").empty())
        << p.err.text;
    EXPECT_EQ(p.guest("not-a-guest"), nullptr);
}

// Each mistake: the line that names it, and the guest is not started.
struct Mistake {
    const char* path;
    const char* says;
};
constexpr Mistake kMistakes[] = {
    {"/chosen/no-kernel", "no module with compatible \"multiboot,kernel\": the guest has nothing to boot"},
    {"/chosen/outside-ram/module@7ff00000", "reg: [0x7ff00000, 0x80100000) is not inside host RAM"},
    {"/chosen/over-image/module@40300000", "reg: [0x40300000, 0x40400000) overlaps moat image [0x40200000, 0x40400000)"},
    {"/chosen/over-reserved/module@7f080000", "reg: [0x7f080000, 0x7f081000) overlaps /reserved-memory [0x7f000000, 0x7f100000)"},
    {"/chosen/over-other-guest/module@4a800000", "reg: [0x4a800000, 0x4a801000) overlaps a module of domU1 at 0x4a000000"},
    {"/chosen/too-big", "memory: 524288 KiB, but the pool has 32768 KiB left for guests (2 before this one)"},
    {"/chosen/cpus-zero", "cpus: 0, expected 1..4"},
    {"/chosen/cpus-many", "cpus: 5, expected 1..4"},
    {"/chosen/bad-reg/module@55000000", "reg: 12 bytes, expected one address and size (#address-cells = 1, #size-cells = 1 of bad-reg)"},
    {"/chosen/bad-cells", "#address-cells: expected 1 or 2 (cells of a module's reg address)"},
    {"/chosen/no-kind/module@56000000", "compatible: \"multiboot,module\" alone names no kind"},
    {"/chosen/two-kernels/module@57100000", "compatible: a second multiboot,kernel module"},
    {"/chosen/two-bootargs", "bootargs: given on the domain node and on its kernel module; keep one (Xen reads the module's)"},
    {"/chosen/moat-typo", "moat,rambase: unknown moat property (moat reads moat,ram-base, moat,pci, moat,pci-force-assign-without-iommu, moat,reserved-memory)"},
    {"/chosen/direct", "direct-map: moat gives every guest its own guest-physical map; a 1:1 map is not supported"},
    {"/chosen/odd-memory", "memory: 16385 KiB is not a whole number of 4 KiB pages"},
    {"/chosen/no-memory", "memory: missing (the guest's RAM in KiB)"},
    {"/chosen/enhanced", "xen,enhanced: \"enabled\": moat does not serve Xen's PV interfaces"},
    {"/chosen/empty-module/module@5e000000", "reg: the kernel module is empty (size 0)"},
    {"/chosen/ram-base-low", "moat,ram-base: 0x20000000 is in the guest's device window (below 0x40000000)"},
    {"/chosen/pci-twice", "moat,pci: 0000:00:04.0 is listed twice"},
    {"/chosen/pci-taken", "moat,pci: 0000:00:03.0 is already assigned to domU1"},
    {"/chosen/pci-range", "moat,pci: entry 0 <0x0 0x0 0x20 0x0>: segment <= 0xffff, bus <= 255, device <= 31"},
    {"/chosen/pci-cells", "moat,pci: 12 bytes, expected <segment bus device function> entries of 4 cells"},
    {"/chosen/resv-outside", "moat,reserved-memory: [0x41000000, 0x41002000) is not inside the guest's RAM [0x40000000, 0x41000000)"},
    {"/chosen/resv-unaligned", "moat,reserved-memory: [0x40000800, +0x1000) is not 4 KiB-aligned (address and size)"},
    {"/chosen/resv-empty", "moat,reserved-memory: the range at 0x40001000 is empty (size 0)"},
    {"/chosen/resv-cells", "moat,reserved-memory: 8 bytes, expected <ipa-hi ipa-lo size-hi size-lo>"},
};

TEST(Dom0less, EveryMistakeNamesNodeAndPropertyAndSkipsOnlyThatGuest) {
    Parsed p;
    unsigned expected = sizeof kMistakes / sizeof *kMistakes;
    EXPECT_EQ(p.cfg->nskipped, expected) << p.err.text;
    for (const Mistake& m : kMistakes) {
        std::string lines = p.about(m.path);
        EXPECT_NE(lines.find(m.says), std::string::npos) << m.path << " said:\n" << lines << "\nall:\n" << p.err.text;
        // The guest (the path up to the module) is reported as not started and is not in the config.
        std::string guest = std::string(m.path).substr(0, std::string(m.path).find('/', 8));
        EXPECT_NE(p.about(guest).find("not started"), std::string::npos) << guest;
        EXPECT_EQ(p.guest(guest.substr(8).c_str()), nullptr) << guest;
    }
}

TEST(Dom0less, OneMistakeIsOneLine) {
    Parsed p;
    // A guest with one mistake reports it once, and its summary counts it.
    EXPECT_EQ(p.about("/chosen/cpus-zero"), "cpus: 0, expected 1..4\nnot started (1 problem)\n");
    EXPECT_EQ(p.about("/chosen/no-kernel"),
              "no module with compatible \"multiboot,kernel\": the guest has nothing to boot\nnot started (1 problem)\n");
}

TEST(Dom0less, PoolIsSharedInTreeOrder) {
    // With 90 MiB, domU1 (64) fits, domU2 (32) does not, and domU3 (16) takes what domU2 left.
    Parsed p(90 * MiB);
    EXPECT_NE(p.guest("domU1"), nullptr);
    EXPECT_EQ(p.guest("domU2"), nullptr);
    EXPECT_NE(p.guest("domU3"), nullptr);
    EXPECT_NE(p.about("/chosen/domU2").find("memory: 32768 KiB, but the pool has 26624 KiB left for guests (1 before this one)"),
              std::string::npos)
        << p.err.text;
}

TEST(Dom0less, CpuLimitIsTheCallers) {
    Parsed p(128 * MiB, 2);
    EXPECT_EQ(p.guest("domU3"), nullptr);  // 4 vCPUs on 2 CPUs
    EXPECT_NE(p.about("/chosen/domU3").find("cpus: 4, expected 1..2"), std::string::npos) << p.err.text;
    EXPECT_NE(p.guest("domU1"), nullptr);
}

TEST(Dom0less, ModuleRangesCoverEveryAcceptedModule) {
    Parsed p;
    MemRange r[16];
    unsigned n = dom0less_module_ranges(*p.cfg, r, 16);
    ASSERT_EQ(n, 5u);  // domU1: 3, domU2: 1, domU3: 1
    EXPECT_EQ(r[0].base, 0x4a000000u);
    EXPECT_EQ(r[2].base, 0x4d000000u);
    EXPECT_EQ(r[4].base, 0x60000000u);
    EXPECT_EQ(dom0less_module_ranges(*p.cfg, r, 2), 2u);  // bounded by the caller's array
}

// Trees built with libfdt's sequential-write API for what one fixture cannot show.
struct Built {
    std::vector<uint64_t> buf = std::vector<uint64_t>(8192);
    void* fdt() { return buf.data(); }
    Built() {
        EXPECT_EQ(fdt_create(fdt(), 65536), 0);
        EXPECT_EQ(fdt_finish_reservemap(fdt()), 0);
        EXPECT_EQ(fdt_begin_node(fdt(), ""), 0);
    }
    void guest(const char* name, uint32_t kib, uint32_t cpus, uint32_t kernel, uint32_t kernel_size = 0x1000) {
        EXPECT_EQ(fdt_begin_node(fdt(), name), 0);
        EXPECT_EQ(fdt_property_string(fdt(), "compatible", "xen,domain"), 0);
        EXPECT_EQ(fdt_property_u32(fdt(), "#address-cells", 1), 0);
        EXPECT_EQ(fdt_property_u32(fdt(), "#size-cells", 1), 0);
        fdt32_t mem[2] = {cpu_to_fdt32(0), cpu_to_fdt32(kib)};
        EXPECT_EQ(fdt_property(fdt(), "memory", mem, sizeof mem), 0);
        EXPECT_EQ(fdt_property_u32(fdt(), "cpus", cpus), 0);
        EXPECT_EQ(fdt_begin_node(fdt(), "module"), 0);
        const char compat[] = "multiboot,kernel\0multiboot,module";
        EXPECT_EQ(fdt_property(fdt(), "compatible", compat, sizeof compat), 0);
        fdt32_t reg[2] = {cpu_to_fdt32(kernel), cpu_to_fdt32(kernel_size)};
        EXPECT_EQ(fdt_property(fdt(), "reg", reg, sizeof reg), 0);
        EXPECT_EQ(fdt_end_node(fdt()), 0);
        EXPECT_EQ(fdt_end_node(fdt()), 0);
    }
    dt::Tree finish() {
        EXPECT_EQ(fdt_end_node(fdt()), 0);
        EXPECT_EQ(fdt_finish(fdt()), 0);
        dt::Tree t;
        EXPECT_EQ(t.open(fdt(), buf.size() * 8), Status::ok) << t.error();
        return t;
    }
};

TEST(Dom0less, NoChosenOrNoGuestsIsNoConfigNotAnError) {
    Built b;
    dt::Tree t = b.finish();
    auto cfg = std::make_unique<Dom0lessConfig>();
    StrSink err;
    MemRange ram{0x40000000, GiB};
    Dom0lessLimits lim;
    lim.ram = &ram, lim.nram = 1, lim.pool_bytes = GiB;
    EXPECT_EQ(parse_dom0less(t, lim, *cfg, err), Status::ok);
    EXPECT_EQ(cfg->nguests, 0u);
    EXPECT_EQ(err.text, "");
}

TEST(Dom0less, MoreGuestsThanSlotsAreReportedAndSkipped) {
    Built b;
    EXPECT_EQ(fdt_begin_node(b.fdt(), "chosen"), 0);
    char name[16];
    for (unsigned i = 0; i < kDom0lessMaxGuests + 2; i++) {
        snprintf(name, sizeof name, "g%u", i);
        b.guest(name, 8192, 1, 0x50000000 + i * 0x100000);
    }
    EXPECT_EQ(fdt_end_node(b.fdt()), 0);
    dt::Tree t = b.finish();
    auto cfg = std::make_unique<Dom0lessConfig>();
    StrSink err;
    MemRange ram{0x40000000, GiB};
    Dom0lessLimits lim;
    lim.ram = &ram, lim.nram = 1, lim.pool_bytes = GiB;
    EXPECT_EQ(parse_dom0less(t, lim, *cfg, err), Status::no_space);
    EXPECT_EQ(cfg->nguests, kDom0lessMaxGuests);
    EXPECT_EQ(cfg->nskipped, 2u);
    EXPECT_NE(err.text.find("dom0less: /chosen/g8: more than 8 guests; not started"), std::string::npos) << err.text;
    EXPECT_NE(err.text.find("dom0less: /chosen/g9: more than 8 guests; not started"), std::string::npos) << err.text;
}

TEST(Dom0less, MemoryMustHoldTheModules) {
    Built b;
    EXPECT_EQ(fdt_begin_node(b.fdt(), "chosen"), 0);
    b.guest("small", 4096, 1, 0x50000000, 0x600000);  // 4 MiB of RAM for a 6 MiB kernel
    b.guest("fits", 16384, 1, 0x51000000, 0x600000);
    EXPECT_EQ(fdt_end_node(b.fdt()), 0);
    dt::Tree t = b.finish();
    auto cfg = std::make_unique<Dom0lessConfig>();
    StrSink err;
    MemRange ram{0x40000000, GiB};
    Dom0lessLimits lim;
    lim.ram = &ram, lim.nram = 1, lim.pool_bytes = GiB;
    EXPECT_EQ(parse_dom0less(t, lim, *cfg, err), Status::invalid_argument);
    ASSERT_EQ(cfg->nguests, 1u);
    EXPECT_STREQ(cfg->guests[0].name, "fits");
    EXPECT_NE(err.text.find("dom0less: /chosen/small: memory: 4096 KiB cannot hold the kernel (6144 KiB), the ramdisk (0 KiB) and the "
                            "guest's device tree"),
              std::string::npos)
        << err.text;
}

TEST(Dom0less, PlacementFollowsLinuxBootProtocol) {
    Dom0lessGuest g;
    format_to(g.path, sizeof g.path, "/chosen/domU1");
    g.memory = 64 * MiB;
    g.kernel = {true, 0x4a000000, 20 * MiB};
    g.ramdisk = {true, 0x4c000000, 3 * MiB + 123};
    GuestPlacement pl;
    StrSink err;
    ASSERT_EQ(place_guest_modules(g, 0, 30 * MiB, pl, err), Status::ok) << err.text;
    EXPECT_EQ(pl.kernel, guest_map::kGuestRamBase);
    EXPECT_EQ(pl.kernel_size, 30 * MiB);  // image_size (with bss) beyond the file
    EXPECT_EQ(pl.dtb, guest_map::kGuestRamBase + 62 * MiB);
    EXPECT_EQ(pl.dtb_max, 2 * MiB);
    EXPECT_EQ(pl.initrd_size, 3 * MiB + 123);
    EXPECT_EQ(pl.initrd % 4096, 0u);
    EXPECT_LE(pl.initrd + pl.initrd_size, pl.dtb);
    EXPECT_GE(pl.initrd, pl.kernel + pl.kernel_size);

    g.memory = 32 * MiB;  // 30 MiB of kernel and a 2 MiB tree block leave no room for 3 MiB of initrd
    EXPECT_EQ(place_guest_modules(g, 0, 30 * MiB, pl, err), Status::no_space);
    EXPECT_NE(err.text.find("dom0less: /chosen/domU1: no room for the initrd between the kernel and the device tree"), std::string::npos)
        << err.text;
    err.text.clear();

    // moat,reserved-memory must stay clear of what is placed: kernel, initrd, the tree's block.
    g.memory = 64 * MiB;
    g.resv_base = guest_map::kGuestRamBase + 40 * MiB, g.resv_size = 64 * KiB;  // between kernel and initrd
    EXPECT_EQ(place_guest_modules(g, 0, 30 * MiB, pl, err), Status::ok) << err.text;
    g.resv_base = guest_map::kGuestRamBase + 29 * MiB;
    EXPECT_EQ(place_guest_modules(g, 0, 30 * MiB, pl, err), Status::invalid_argument);
    EXPECT_NE(err.text.find("dom0less: /chosen/domU1: moat,reserved-memory: [0x41d00000, 0x41d10000) overlaps the kernel at "
                            "[0x40000000, 0x41e00000)"),
              std::string::npos)
        << err.text;
    g.resv_base = guest_map::kGuestRamBase + 60 * MiB;
    EXPECT_EQ(place_guest_modules(g, 0, 30 * MiB, pl, err), Status::invalid_argument);
    EXPECT_NE(err.text.find("moat,reserved-memory: [0x43c00000, 0x43c10000) overlaps the initrd"), std::string::npos) << err.text;
    g.resv_base = guest_map::kGuestRamBase + 63 * MiB;
    EXPECT_EQ(place_guest_modules(g, 0, 30 * MiB, pl, err), Status::invalid_argument);
    EXPECT_NE(err.text.find("moat,reserved-memory: [0x43f00000, 0x43f10000) overlaps the device tree block at [0x43e00000, "
                            "0x44000000)"),
              std::string::npos)
        << err.text;
    g.resv_base = g.resv_size = 0;
    err.text.clear();
    g.memory = 16 * MiB;
    EXPECT_EQ(place_guest_modules(g, 0, 30 * MiB, pl, err), Status::no_space);
    EXPECT_NE(err.text.find("no room for the kernel and a 2 MiB block for the device tree"), std::string::npos) << err.text;
}

}  // namespace
