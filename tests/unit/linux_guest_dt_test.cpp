// The Linux guest's device tree (build_linux_guest_dt, xen-compat/dom0less.hpp), read back
// through libfdt: what Linux needs to boot on moat's guest map, and no Xen node.
#include <libfdt.h>

#include "dt_support.hpp"
#include "xen-compat/dom0less.hpp"

using namespace moat;
using namespace moat::xen;
using namespace dt_test;

namespace {

Dom0lessGuest linux_guest(unsigned vcpus, bool vpl011) {
    Dom0lessGuest g;
    format_to(g.name, sizeof g.name, "domU1");
    format_to(g.path, sizeof g.path, "/chosen/domU1");
    g.memory = 128 * MiB;
    g.vcpus = vcpus;
    g.vpl011 = vpl011;
    g.kernel = {true, 0x4a000000, 30 * MiB};
    g.ramdisk = {true, 0x4c000000, 3 * MiB};
    format_to(g.bootargs, sizeof g.bootargs, "console=ttyAMA0 earlycon");
    return g;
}

struct Built {
    std::vector<uint64_t> buf = std::vector<uint64_t>(4096);
    size_t size = 0;
    StrSink err;
    Status st;
    GuestPlacement place;
    const void* fdt() const { return buf.data(); }

    explicit Built(const Dom0lessGuest& g, size_t cap = 32768, const GuestPciDt* pci = nullptr) {
        EXPECT_EQ(place_guest_modules(g, 0, 40 * MiB, place, err), Status::ok) << err.text;
        st = build_linux_guest_dt(g, place, buf.data(), cap, size, err, pci);
        if (st == Status::ok) {
            EXPECT_EQ(fdt_check_full(fdt(), size), 0);
        }
    }
    int node(const char* path) const { return fdt_path_offset(fdt(), path); }
    std::string str(const char* path, const char* prop) const {
        int len;
        const char* s = static_cast<const char*>(fdt_getprop(fdt(), node(path), prop, &len));
        return s ? std::string(s, static_cast<size_t>(len)) : std::string("<absent>");
    }
    std::vector<uint32_t> cells(const char* path, const char* prop) const {
        int len;
        const auto* c = static_cast<const fdt32_t*>(fdt_getprop(fdt(), node(path), prop, &len));
        std::vector<uint32_t> v;
        for (int i = 0; c && i < len / 4; i++) v.push_back(fdt32_to_cpu(c[i]));
        return v;
    }
};

using V = std::vector<uint32_t>;

TEST(LinuxGuestDt, MemoryCpusPsciAndChosen) {
    Dom0lessGuest g = linux_guest(2, true);
    Built b(g);
    ASSERT_EQ(b.st, Status::ok) << b.err.text;
    EXPECT_EQ(b.cells("/", "#address-cells"), V{2});
    EXPECT_EQ(b.cells("/", "interrupt-parent"), V{guest_map::kPhandleGic});
    EXPECT_EQ(b.str("/memory@40000000", "device_type"), std::string("memory\0", 7));
    EXPECT_EQ(b.cells("/memory@40000000", "reg"), (V{0, 0x40000000, 0, 128 << 20}));
    EXPECT_EQ(b.cells("/cpus/cpu@0", "reg"), V{0});
    EXPECT_EQ(b.cells("/cpus/cpu@1", "reg"), V{1});
    EXPECT_LT(b.node("/cpus/cpu@2"), 0);
    EXPECT_EQ(b.str("/cpus/cpu@1", "enable-method"), std::string("psci\0", 5));
    EXPECT_EQ(b.str("/psci", "compatible"), std::string("arm,psci-1.0\0arm,psci-0.2\0", 26));
    EXPECT_EQ(b.str("/psci", "method"), std::string("hvc\0", 4));
    EXPECT_EQ(b.str("/chosen", "bootargs"), std::string("console=ttyAMA0 earlycon\0", 25));
    EXPECT_EQ(b.str("/chosen", "stdout-path"), std::string("/pl011@22000000\0", 16));
    // The initrd where place_guest_modules put it: below the tree's 2 MiB block at the top of RAM.
    uint64_t start = b.place.initrd, end = b.place.initrd + 3 * MiB;
    EXPECT_EQ(b.cells("/chosen", "linux,initrd-start"), (V{static_cast<uint32_t>(start >> 32), static_cast<uint32_t>(start)}));
    EXPECT_EQ(b.cells("/chosen", "linux,initrd-end"), (V{static_cast<uint32_t>(end >> 32), static_cast<uint32_t>(end)}));
    EXPECT_EQ(b.place.dtb, 0x40000000u + 126 * MiB);
    EXPECT_EQ(end, b.place.dtb);
}

TEST(LinuxGuestDt, GicV3TimerAndConsole) {
    Built b(linux_guest(3, true));
    ASSERT_EQ(b.st, Status::ok) << b.err.text;
    const char* gic = "/interrupt-controller@3001000";
    EXPECT_EQ(b.str(gic, "compatible"), std::string("arm,gic-v3\0", 11));
    // Distributor, then one redistributor frame pair per vCPU.
    EXPECT_EQ(b.cells(gic, "reg"), (V{0, 0x03001000, 0, 0x10000, 0, 0x03020000, 0, 3 * 0x20000}));
    EXPECT_EQ(b.cells(gic, "#interrupt-cells"), V{3});
    EXPECT_EQ(b.cells(gic, "phandle"), V{guest_map::kPhandleGic});
    EXPECT_GE(b.node(gic), 0);
    EXPECT_NE(fdt_getprop(b.fdt(), b.node(gic), "interrupt-controller", nullptr), nullptr);
    EXPECT_EQ(b.cells("/timer", "interrupts"), (V{1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4}));
    const char* uart = "/pl011@22000000";
    EXPECT_EQ(b.str(uart, "compatible"), std::string("arm,pl011\0arm,primecell\0", 24));
    EXPECT_EQ(b.cells(uart, "reg"), (V{0, 0x22000000, 0, 0x1000}));
    EXPECT_EQ(b.cells(uart, "interrupts"), (V{0, 0, 4}));  // SPI 0 = INTID 32, level-high
    EXPECT_EQ(b.cells(uart, "clocks"), (V{guest_map::kPhandleClock, guest_map::kPhandleClock}));
    EXPECT_EQ(b.str(uart, "clock-names"), std::string("uartclk\0apb_pclk\0", 17));
    EXPECT_EQ(b.cells(uart, "arm,primecell-periphid"), V{0x00241011});
    int clk = fdt_node_offset_by_phandle(b.fdt(), guest_map::kPhandleClock);
    ASSERT_GE(clk, 0);
    EXPECT_EQ(fdt_node_check_compatible(b.fdt(), clk, "fixed-clock"), 0);
    EXPECT_EQ(b.cells("/apb-pclk", "clock-frequency"), V{24000000});
    EXPECT_EQ(b.cells("/apb-pclk", "#clock-cells"), V{0});
    EXPECT_EQ(b.str("/aliases", "serial0"), std::string("/pl011@22000000\0", 16));
}

TEST(LinuxGuestDt, NoXenNodeAndNothingXenAnywhere) {
    Built b(linux_guest(1, true));
    ASSERT_EQ(b.st, Status::ok);
    EXPECT_LT(b.node("/hypervisor"), 0);
    EXPECT_LT(fdt_node_offset_by_compatible(b.fdt(), -1, "xen,xen"), 0);
    // No compatible string anywhere starts with "xen,".
    for (int n = 0; n >= 0; n = fdt_next_node(b.fdt(), n, nullptr)) {
        int len;
        const char* c = static_cast<const char*>(fdt_getprop(b.fdt(), n, "compatible", &len));
        for (int i = 0; c && i < len; i += static_cast<int>(strlen(c + i)) + 1)
            EXPECT_NE(std::string(c + i).rfind("xen,", 0), 0u) << c + i;
    }
}

TEST(LinuxGuestDt, WithoutConsoleOrInitrd) {
    Dom0lessGuest g = linux_guest(1, false);
    g.ramdisk = {};
    g.bootargs[0] = 0;
    Built b(g);
    ASSERT_EQ(b.st, Status::ok);
    EXPECT_LT(b.node("/pl011@22000000"), 0);
    EXPECT_LT(b.node("/apb-pclk"), 0);
    EXPECT_EQ(b.str("/chosen", "stdout-path"), "<absent>");
    EXPECT_EQ(b.str("/chosen", "linux,initrd-start"), "<absent>");
    EXPECT_EQ(b.str("/chosen", "bootargs"), "<absent>");
}

TEST(LinuxGuestDt, GuestRamBaseMovesMemoryAndInitrd) {
    Dom0lessGuest g = linux_guest(1, true);
    g.ram_base = 0x100000000;
    Built b(g);
    ASSERT_EQ(b.st, Status::ok);
    EXPECT_EQ(b.cells("/memory@100000000", "reg"), (V{1, 0, 0, 128 << 20}));
    EXPECT_EQ(b.place.kernel, 0x100000000u);
    EXPECT_EQ(b.cells("/chosen", "linux,initrd-start")[0], 1u);
}

// moat,reserved-memory: a no-map /reserved-memory child (not System RAM to Linux), RAM unchanged.
TEST(LinuxGuestDt, ReservedMemoryIsANoMapChildAndRamStaysWhole) {
    Dom0lessGuest g = linux_guest(1, true);
    g.ram_base = 0x80000000;
    g.resv_base = 0x84000000, g.resv_size = 0x10000;
    Built b(g);
    ASSERT_EQ(b.st, Status::ok) << b.err.text;
    EXPECT_EQ(b.cells("/memory@80000000", "reg"), (V{0, 0x80000000, 0, 128 << 20}));
    EXPECT_EQ(b.cells("/reserved-memory", "#address-cells"), V{2});
    EXPECT_EQ(b.cells("/reserved-memory", "#size-cells"), V{2});
    EXPECT_EQ(b.str("/reserved-memory", "ranges"), "");  // present, empty: identity
    EXPECT_EQ(b.cells("/reserved-memory/moat-carveout@84000000", "reg"), (V{0, 0x84000000, 0, 0x10000}));
    EXPECT_EQ(b.str("/reserved-memory/moat-carveout@84000000", "no-map"), "");
    // Without the property there is no /reserved-memory node at all.
    g.resv_size = 0;
    Built c(g);
    ASSERT_EQ(c.st, Status::ok);
    EXPECT_LT(c.node("/reserved-memory"), 0);
}

TEST(LinuxGuestDt, TooSmallABufferIsNoSpaceNamingTheGuest) {
    Built b(linux_guest(2, true), 256);
    EXPECT_EQ(b.st, Status::no_space);
    EXPECT_EQ(b.size, 0u);
    EXPECT_NE(b.err.text.find("dom0less: /chosen/domU1: the guest device tree does not fit in 256 bytes"), std::string::npos) << b.err.text;
}

TEST(LinuxGuestDt, RefusesAGuestWithoutCpusOrRam) {
    Dom0lessGuest g = linux_guest(0, true);
    GuestPlacement p;
    std::vector<uint64_t> buf(1024);
    size_t size = 1;
    StrSink err;
    EXPECT_EQ(build_linux_guest_dt(g, p, buf.data(), 8192, size, err), Status::invalid_argument);
    EXPECT_EQ(size, 0u);
    EXPECT_NE(err.text.find("/chosen/domU1"), std::string::npos);
}

TEST(LinuxGuestDt, PassthroughGetsAnEcamBridgeWithTheWindowIntxAndProbeOnly) {
    Dom0lessGuest g = linux_guest(1, true);
    EXPECT_EQ(Built(g).node("/pcie@4000000"), -FDT_ERR_NOTFOUND);  // no functions, no bridge
    EXPECT_EQ(Built(g).str("/chosen", "linux,pci-probe-only"), "<absent>");
    GuestPciDt pci{0x10000000, 0x200000};
    Built b(g, 32768, &pci);
    ASSERT_EQ(b.st, Status::ok) << b.err.text;
    EXPECT_EQ(b.str("/pcie@4000000", "compatible"), std::string("pci-host-ecam-generic\0", 22));
    EXPECT_EQ(b.cells("/pcie@4000000", "reg"), (V{0, 0x04000000, 0, 0x100000}));
    EXPECT_EQ(b.cells("/pcie@4000000", "bus-range"), (V{0, 0}));
    EXPECT_EQ(b.cells("/pcie@4000000", "ranges"), (V{0x02000000, 0, 0x10000000, 0, 0x10000000, 0, 0x200000}));
    EXPECT_EQ(b.cells("/chosen", "linux,pci-probe-only"), (V{1}));
    EXPECT_EQ(b.cells("/pcie@4000000", "interrupt-map-mask"), (V{0x1800, 0, 0, 7}));
    V map = b.cells("/pcie@4000000", "interrupt-map");
    ASSERT_EQ(map.size(), 128u);  // 16 entries: 3 + 1 child cells, phandle, 0 GIC address cells, 3 interrupt cells
    EXPECT_EQ(b.cells("/interrupt-controller@3001000", "#address-cells"), (V{0}));
    // Device 2 pin A (entry 8) -> SPI (2 + 0) % 4 + 3 = SPI 5 (INTID 37); device 3 pin A -> SPI 6.
    EXPECT_EQ(V(map.begin() + 64, map.begin() + 72), (V{2 << 11, 0, 0, 1, guest_map::kPhandleGic, 0, 5, 4}));
    EXPECT_EQ(V(map.begin() + 96, map.begin() + 104), (V{3 << 11, 0, 0, 1, guest_map::kPhandleGic, 0, 6, 4}));
    EXPECT_EQ(b.node("/iommu"), -FDT_ERR_NOTFOUND);

    // A window over the vPL011, or above RAM's base, is refused by name.
    GuestPciDt over{0x21000000, 0x2000000};
    Built bad(g, 32768, &over);
    EXPECT_EQ(bad.st, Status::out_of_range);
    EXPECT_NE(bad.err.text.find("dom0less: /chosen/domU1: the PCI window [0x21000000, 0x23000000) does not fit"),
              std::string::npos) << bad.err.text;
    GuestPciDt high{0x3ff00000, 0x200000};
    EXPECT_EQ(Built(g, 32768, &high).st, Status::out_of_range);
}

}  // namespace
