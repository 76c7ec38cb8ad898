// The guest device-tree builder (xen-compat/guest_dt.hpp): what it writes, read back through
// libfdt and the typed reader, and what it refuses.
#include <libfdt.h>

#include "dt_support.hpp"
#include "xen-compat/guest_dt.hpp"
#include "xen-compat/wiring_check.hpp"

using namespace moat;
using namespace moat::xen;
using namespace dt_test;

namespace {

std::unique_ptr<GuestDesc> base_guest() {
    auto g = std::make_unique<GuestDesc>();
    format_to(g->name, sizeof g->name, "test");
    format_to(g->bootargs, sizeof g->bootargs, "console=ttyAMA0");
    g->vcpus = 2;
    EXPECT_EQ(set_guest_memory(*g, 512 * MiB), Status::ok);
    return g;
}

void add_virtio(GuestDesc& g, uint16_t backend, Grants grants = Grants::automatic) {
    g.virtio[g.nvirtio++] = GuestVirtioMmio{0, 0, backend, grants, 0};
}
void add_pci(GuestDesc& g, uint16_t rid, uint16_t backend, Grants grants = Grants::automatic) {
    g.pci.present = true;
    g.pci.devices[g.pci.ndevices++] = GuestPciDevice{rid, backend, grants, 0};
}

// A built guest tree, opened for reading.
struct Built {
    std::vector<uint64_t> buf = std::vector<uint64_t>(8192);
    size_t size = 0;
    StrSink err, notes;
    Status status;
    dt::Tree t;

    Built(GuestDesc& g, const dt::Tree* host = nullptr) {
        status = build_guest_dt(g, host, buf.data(), buf.size() * 8, size, err, &notes);
        if (status == Status::ok) {
            EXPECT_EQ(fdt_check_full(buf.data(), size), 0);
            EXPECT_EQ(t.open(buf.data(), size), Status::ok) << t.error();
        }
    }
    int node(const char* p) const { return fdt_path_offset(buf.data(), p); }
    std::vector<uint32_t> cells(const char* path, const char* prop) const {
        int len;
        const void* p = fdt_getprop(buf.data(), node(path), prop, &len);
        std::vector<uint32_t> v;
        for (int i = 0; p && i < len / 4; i++) v.push_back(fdt32_ld(static_cast<const fdt32_t*>(p) + i));
        return v;
    }
    unsigned nprops(const char* path) const {
        unsigned n = 0;
        int off;
        fdt_for_each_property_offset(off, buf.data(), node(path)) n++;
        return n;
    }
};

unsigned verify(const Built& b, const GuestDesc& g, const dt::Tree* host = nullptr, std::string* diff = nullptr) {
    StrSink s;
    unsigned n = verify_guest_dt(b.t, g, host, s);
    if (diff) *diff = s.text;
    EXPECT_EQ(n == 0, s.text.empty());
    return n;
}

TEST(DtGuest, VirtioMmioGetsGrantsOnlyForUntrustedBackends) {
    auto g = base_guest();
    add_virtio(*g, 0);                 // toolstack domain: no grants
    add_virtio(*g, 1);                 // driver domain: grants
    add_virtio(*g, 0, Grants::on);     // forced on
    add_virtio(*g, 2, Grants::off);    // forced off
    Built b(*g);
    ASSERT_EQ(b.status, Status::ok) << b.err.text;
    std::string diff;
    EXPECT_EQ(verify(b, *g, nullptr, &diff), 0u) << diff;

    // Xen's conventions: windows of 0x200 from 0x02000000, SPIs 33.., edge rising, dma-coherent.
    EXPECT_EQ(b.cells("/virtio@2000000", "reg"), (std::vector<uint32_t>{0, 0x02000000, 0, 0x200}));
    EXPECT_EQ(b.cells("/virtio@2000200", "interrupts"), (std::vector<uint32_t>{0, 2, 1}));  // SPI 34
    EXPECT_GE(fdt_getprop(b.buf.data(), b.node("/virtio@2000600"), "dma-coherent", nullptr) != nullptr, true);
    EXPECT_TRUE(b.cells("/virtio@2000000", "iommus").empty());
    EXPECT_EQ(b.cells("/virtio@2000200", "iommus"), (std::vector<uint32_t>{65001, 1}));
    EXPECT_EQ(b.cells("/virtio@2000400", "iommus"), (std::vector<uint32_t>{65001, 0}));
    EXPECT_TRUE(b.cells("/virtio@2000600", "iommus").empty());

    // One grant node, with what the binding allows and nothing else.
    EXPECT_EQ(b.nprops("/xen_iommu"), 3u);
    EXPECT_STREQ(static_cast<const char*>(fdt_getprop(b.buf.data(), b.node("/xen_iommu"), "compatible", nullptr)), "xen,grant-dma");
    EXPECT_EQ(b.cells("/xen_iommu", "#iommu-cells"), (std::vector<uint32_t>{1}));
    EXPECT_EQ(b.cells("/xen_iommu", "phandle"), (std::vector<uint32_t>{65001}));

    // The hypervisor node, as Linux looks for it.
    int len;
    const char* c = static_cast<const char*>(fdt_getprop(b.buf.data(), b.node("/hypervisor"), "compatible", &len));
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(std::string(c, static_cast<size_t>(len)), std::string("xen,xen-4.19\0xen,xen\0", 21));
    EXPECT_EQ(b.cells("/hypervisor", "reg"), (std::vector<uint32_t>{0, 0x38000000, 0, 0x01000000}));
    EXPECT_EQ(b.cells("/hypervisor", "interrupts"), (std::vector<uint32_t>{1, 15, 8}));  // PPI 31
    EXPECT_EQ(b.cells("/interrupt-controller@3001000", "phandle"), (std::vector<uint32_t>{65000}));
    EXPECT_EQ(b.cells("/memory@40000000", "reg"), (std::vector<uint32_t>{0, 0x40000000, 0, 0x20000000}));

    // Its own wiring passes the checker, shared backend ids included.
    auto topo = std::make_unique<Topology>();
    StrSink report, problems;
    ASSERT_EQ(discover(b.t, *topo, report), Status::ok);
    EXPECT_EQ(topo->problems, 0u) << report.text;
    EXPECT_EQ(check_wiring(b.t, *topo, problems), 0u) << problems.text;
}

TEST(DtGuest, NoGrantsNoGrantNode) {
    auto g = base_guest();
    add_virtio(*g, 0);
    add_pci(*g, 0x08, 0);
    Built b(*g);
    ASSERT_EQ(b.status, Status::ok) << b.err.text;
    EXPECT_LT(b.node("/xen_iommu"), 0);
    EXPECT_LT(fdt_node_offset_by_phandle(b.buf.data(), 65001), 0);
    EXPECT_TRUE(b.cells("/pcie@33000000", "iommu-map").empty());
    EXPECT_EQ(verify(b, *g), 0u);
}

TEST(DtGuest, PciBridgeOneEntryPerDeviceWhenBackendsDiffer) {
    auto g = base_guest();
    add_pci(*g, 0x08, 1);  // 00:01.0
    add_pci(*g, 0x10, 2);  // 00:02.0
    add_pci(*g, 0x18, 0);  // 00:03.0, trusted: left out of the map, so it bypasses
    Built b(*g);
    ASSERT_EQ(b.status, Status::ok) << b.err.text;
    EXPECT_EQ(b.cells("/pcie@33000000", "iommu-map"), (std::vector<uint32_t>{0x08, 65001, 1, 1, 0x10, 65001, 2, 1}));
    EXPECT_TRUE(b.cells("/pcie@33000000", "iommu-map-mask").empty());
    EXPECT_EQ(b.cells("/pcie@33000000", "bus-range"), (std::vector<uint32_t>{0, 0}));
    std::string diff;
    EXPECT_EQ(verify(b, *g, nullptr, &diff), 0u) << diff;
    int iommu;
    uint32_t sid;
    int bridge = b.t.find_path("/pcie@33000000");
    ASSERT_EQ(b.t.map_rid(bridge, 0x10, iommu, sid), Status::ok);
    EXPECT_EQ(sid, 2u);
    EXPECT_EQ(b.t.map_rid(bridge, 0x18, iommu, sid), Status::not_found);
}

TEST(DtGuest, PciBridgeOneBackendFoldsEveryRequesterId) {
    auto g = base_guest();
    add_pci(*g, 0x08, 3);
    add_pci(*g, 0x10, 3);
    Built b(*g);
    ASSERT_EQ(b.status, Status::ok) << b.err.text;
    // An iommu-map entry maps ids linearly, so "all to domain 3" needs the mask to fold them.
    EXPECT_EQ(b.cells("/pcie@33000000", "iommu-map"), (std::vector<uint32_t>{0, 65001, 3, 1}));
    EXPECT_EQ(b.cells("/pcie@33000000", "iommu-map-mask"), (std::vector<uint32_t>{0}));
    EXPECT_EQ(verify(b, *g), 0u);
}

TEST(DtGuest, PassthroughIsCopiedWithoutTheHostIommu) {
    Loaded host("board_zcu102");
    auto g = base_guest();
    g->gic_version = 2;
    g->npassthrough = 2;
    format_to(g->passthrough[0].host_path, dt::kPathMax, "/axi/mmc@ff170000");  // same address and SPI
    format_to(g->passthrough[1].host_path, dt::kPathMax, "/axi/ethernet@ff0b0000");
    g->passthrough[1].nregs = 1;
    g->passthrough[1].regs[0] = 0x23000000;
    g->passthrough[1].nirqs = 2;
    g->passthrough[1].intids[0] = 100;
    g->passthrough[1].intids[1] = 101;
    Built b(*g, &host.tree);
    ASSERT_EQ(b.status, Status::ok) << b.err.text;
    std::string diff;
    EXPECT_EQ(verify(b, *g, &host.tree, &diff), 0u) << diff;
    EXPECT_EQ(b.cells("/passthrough/mmc@ff170000", "reg"), (std::vector<uint32_t>{0, 0xff170000, 0, 0x1000}));
    EXPECT_EQ(b.cells("/passthrough/mmc@ff170000", "interrupts"), (std::vector<uint32_t>{0, 49, 4}));
    EXPECT_TRUE(b.cells("/passthrough/mmc@ff170000", "iommus").empty());
    EXPECT_EQ(b.cells("/passthrough/ethernet@23000000", "interrupts"), (std::vector<uint32_t>{0, 68, 4, 0, 69, 4}));
    EXPECT_TRUE(b.cells("/passthrough/ethernet@23000000", "iommus").empty());
    EXPECT_NE(b.notes.text.find("passthrough /axi/ethernet@ff0b0000: not copied: iommus"), std::string::npos) << b.notes.text;
    EXPECT_LT(b.node("/xen_iommu"), 0);
    EXPECT_EQ(b.cells("/interrupt-controller@3001000", "reg"),
              (std::vector<uint32_t>{0, 0x03001000, 0, 0x1000, 0, 0x03002000, 0, 0x2000}));
}

TEST(DtGuest, VerifyCatchesATamperedTree) {
    auto g = base_guest();
    add_virtio(*g, 1);
    Built b(*g);
    ASSERT_EQ(b.status, Status::ok);
    std::vector<uint64_t> copy(b.buf.size() + 64);
    ASSERT_EQ(fdt_open_into(b.buf.data(), copy.data(), static_cast<int>(copy.size() * 8)), 0);
    fdt32_t wrong[2] = {cpu_to_fdt32(65001), cpu_to_fdt32(7)};
    ASSERT_EQ(fdt_setprop(copy.data(), fdt_path_offset(copy.data(), "/virtio@2000000"), "iommus", wrong, 8), 0);
    ASSERT_EQ(fdt_setprop_u32(copy.data(), fdt_path_offset(copy.data(), "/xen_iommu"), "extra", 1), 0);
    dt::Tree t;
    ASSERT_EQ(t.open(copy.data(), copy.size() * 8), Status::ok);
    StrSink diff;
    EXPECT_EQ(verify_guest_dt(t, *g, nullptr, diff), 2u) << diff.text;
    EXPECT_NE(diff.text.find("virtio-mmio 0: iommus names phandle 0xfde9 with 1 cells (first 7), expected the grant node and backend 1"),
              std::string::npos) << diff.text;
    EXPECT_NE(diff.text.find("/xen_iommu has 4 properties"), std::string::npos) << diff.text;
}

TEST(DtGuest, LargeMemoryUsesXensSecondBank) {
    auto g = base_guest();
    ASSERT_EQ(set_guest_memory(*g, 5 * GiB), Status::ok);
    ASSERT_EQ(g->nram, 2u);
    Built b(*g);
    ASSERT_EQ(b.status, Status::ok) << b.err.text;
    EXPECT_EQ(b.cells("/memory@200000000", "reg"), (std::vector<uint32_t>{0x2, 0, 0, 0x80000000}));
    EXPECT_EQ(verify(b, *g), 0u);
}

TEST(DtGuest, RefusesWhatCannotWorkAndSaysWhere) {
    Loaded host("board_zcu102");
    auto g = base_guest();
    g->source = "guest.cfg";
    g->line = 1;
    g->virtio[g->nvirtio++] = GuestVirtioMmio{0, 32, 1, Grants::automatic, 7};         // SPI 32 is the console's
    g->virtio[g->nvirtio++] = GuestVirtioMmio{0x40000000, 0, 1, Grants::automatic, 9};  // inside RAM
    g->npassthrough = 2;
    format_to(g->passthrough[0].host_path, dt::kPathMax, "/axi/nothing@0");
    g->passthrough[0].line = 12;
    format_to(g->passthrough[1].host_path, dt::kPathMax, "/axi/mmc@ff160000");
    g->passthrough[1].nregs = 1;
    g->passthrough[1].regs[0] = 0x23000800;  // not the host's offset in its page
    g->passthrough[1].line = 15;
    StrSink err;
    EXPECT_EQ(complete_guest(*g, &host.tree, err), Status::invalid_argument);
    for (const char* e : {"guest.cfg:7: virtio-mmio 0: interrupt 32 is already used by console (vPL011) (line 1)\n",
                          "guest.cfg:9: virtio-mmio 1 at 0x40000000 (size 0x200) overlaps memory bank 0 at 0x40000000",
                          "guest.cfg:12: passthrough /axi/nothing@0: no such node in the host device tree\n",
                          "guest.cfg:15: passthrough /axi/mmc@ff160000: guest address 0x23000800 and host address 0xff160000 differ within their page\n"})
        EXPECT_NE(err.text.find(e), std::string::npos) << "missing: " << e << "\ngot:\n" << err.text;
}

TEST(DtGuest, RunsOutOfXensVirtioSpisLoudly) {
    auto g = base_guest();
    for (int i = 0; i < 12; i++) add_virtio(*g, 1);
    StrSink err;
    EXPECT_EQ(complete_guest(*g, nullptr, err), Status::invalid_argument);
    EXPECT_NE(err.text.find("guest: virtio-mmio 11: SPIs 33..43 are all taken; give irq = explicitly"), std::string::npos) << err.text;
}

TEST(DtGuest, TooSmallABufferIsNoSpace) {
    auto g = base_guest();
    add_virtio(*g, 1);
    std::vector<uint64_t> small(64);
    size_t size;
    StrSink err;
    EXPECT_EQ(build_guest_dt(*g, nullptr, small.data(), small.size() * 8, size, err), Status::no_space);
    EXPECT_NE(err.text.find("does not fit in 512 bytes"), std::string::npos) << err.text;
}

}  // namespace
