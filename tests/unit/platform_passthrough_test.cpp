// Platform-device passthrough, Xen's partial-tree form: the partial tree read and checked
// (xen-compat/dom0less_partial.hpp), its devices against the host (hyp/platform_passthrough.hpp),
// the guest tree it yields (build_linux_guest_dt), and, on Linux's own R-Car M3-W+ Salvator-XS
// tree with the IPMMU register models, an SDHI's uTLB routed to the guest's DMA domain so that
// the model's walk of moat's tables puts its DMA at the guest's RAM, and its SPI 168 forwarded
// into a guest GIC sized to cover it.
#include <libfdt.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "dt_support.hpp"
#include "arch/irq.hpp"
#include "hyp/irq_forward.hpp"
#include "hyp/platform_passthrough.hpp"
#include "ipmmu_rig.hpp"
#include "xen-compat/dom0less_partial.hpp"

using namespace moat;
using namespace moat::xen;
using dt_test::StrSink;

namespace {

// A partial tree written with libfdt's read-write API, one property at a time.
struct Partial {
    std::vector<uint8_t> b = std::vector<uint8_t>(16384);
    Partial() {
        EXPECT_EQ(fdt_create_empty_tree(b.data(), static_cast<int>(b.size())), 0);
        cells("/", "#address-cells", {2});
        cells("/", "#size-cells", {2});
    }
    int node(const char* path) {
        int n = fdt_path_offset(b.data(), path);
        if (n >= 0) return n;
        std::string p(path);
        size_t slash = p.rfind('/');
        int parent = node(slash == 0 ? "/" : p.substr(0, slash).c_str());
        n = fdt_add_subnode(b.data(), parent, p.substr(slash + 1).c_str());
        EXPECT_GE(n, 0) << path;
        return n;
    }
    Partial& cells(const char* path, const char* name, std::initializer_list<uint32_t> v) {
        std::vector<fdt32_t> be;
        for (uint32_t c : v) be.push_back(cpu_to_fdt32(c));
        EXPECT_EQ(fdt_setprop(b.data(), node(path), name, be.data(), static_cast<int>(be.size() * 4)), 0);
        return *this;
    }
    Partial& str(const char* path, const char* name, const char* s) {
        EXPECT_EQ(fdt_setprop(b.data(), node(path), name, s, static_cast<int>(strlen(s) + 1)), 0);
        return *this;
    }
    Partial& empty(const char* path, const char* name) {
        EXPECT_EQ(fdt_setprop_empty(b.data(), node(path), name), 0);
        return *this;
    }
    Partial& del(const char* path, const char* name) {
        EXPECT_EQ(fdt_delprop(b.data(), node(path), name), 0);
        return *this;
    }
    const void* blob() { return b.data(); }
    size_t size() { return b.size(); }
};

constexpr const char* kRtc = "/passthrough/rtc@1c000000";

// The QEMU run's partial tree: the PL031 at guest-physical 0x1c000000 (host 0x9010000), its
// clock a fixed-clock of its own, forced (no IOMMU in front of it on virt).
Partial rtc_tree() {
    Partial p;
    p.str("/passthrough", "compatible", "simple-bus").empty("/passthrough", "ranges");
    p.cells("/passthrough", "#address-cells", {2}).cells("/passthrough", "#size-cells", {2});
    p.str("/passthrough/apb-clk", "compatible", "fixed-clock").cells("/passthrough/apb-clk", "#clock-cells", {0});
    p.cells("/passthrough/apb-clk", "clock-frequency", {24000000}).cells("/passthrough/apb-clk", "phandle", {0x8000});
    p.str(kRtc, "compatible", "arm,pl031");
    p.cells(kRtc, "reg", {0, 0x1c000000, 0, 0x1000});
    p.cells(kRtc, "interrupt-parent", {0xfde8}).cells(kRtc, "interrupts", {0, 2, 4});
    p.cells(kRtc, "clocks", {0x8000}).str(kRtc, "clock-names", "apb_pclk");
    p.cells(kRtc, "xen,reg", {0, 0x9010000, 0, 0x1000, 0, 0x1c000000});
    p.str(kRtc, "xen,path", "/pl031@9010000").empty(kRtc, "xen,force-assign-without-iommu");
    p.str("/aliases", "rtc0", kRtc);
    p.str("/extra", "compatible", "moat,ignored");
    return p;
}

Dom0lessGuest guest(const char* name = "domU1") {
    Dom0lessGuest g;
    format_to(g.name, sizeof g.name, "%s", name);
    format_to(g.path, sizeof g.path, "/chosen/%s", name);
    g.memory = 128 * MiB;
    g.vcpus = 1;
    g.vpl011 = true;
    g.kernel = {true, 0x4a000000, 30 * MiB};
    return g;
}

// Parses p for domU1: the status, the errors; the parsed tree in pt.
struct Parsed {
    PartialTree pt;
    StrSink err, notes;
    Status st;
    Parsed(Partial& p, const Dom0lessGuest& g = guest()) { st = parse_partial_dt(g, p.blob(), p.size(), pt, err, &notes); }
    bool says(const std::string& s) const { return err.text.find(s) != std::string::npos; }
};

TEST(PartialDt, TheRtcTreeIsReadWithItsRangesSpisAndHostPath) {
    Partial p = rtc_tree();
    Parsed r(p);
    ASSERT_EQ(r.st, Status::ok) << r.err.text;
    EXPECT_EQ(r.err.text, "");
    EXPECT_NE(r.notes.text.find("dom0less: /chosen/domU1: partial device tree: /extra: ignored"), std::string::npos) << r.notes.text;
    ASSERT_EQ(r.pt.ndevices, 1u);  // the clock has no xen,path: copied, not a device
    const PtDevice& d = r.pt.dev[0];
    EXPECT_STREQ(d.name, kRtc);
    EXPECT_STREQ(d.host_path, "/pl031@9010000");
    EXPECT_TRUE(d.force);
    ASSERT_EQ(d.nranges, 1u);
    EXPECT_EQ(d.ranges[0].host, 0x9010000u);
    EXPECT_EQ(d.ranges[0].size, 0x1000u);
    EXPECT_EQ(d.ranges[0].guest, 0x1c000000u);
    ASSERT_EQ(d.nirqs, 1u);
    EXPECT_EQ(d.intids[0], 34u);
    EXPECT_EQ(r.pt.gic_phandle, guest_map::kPhandleGic);
    EXPECT_GE(r.pt.aliases, 0);
}

TEST(PartialDt, OneCellAddressesAndSeveralRanges) {
    Partial p;
    p.cells("/passthrough", "#address-cells", {1}).cells("/passthrough", "#size-cells", {1}).empty("/passthrough", "ranges");
    p.cells("/passthrough/dev@10000000", "xen,reg", {0xe6000000, 0x2000, 0x10000000, 0xe6100000, 0x1000, 0x10004000});
    p.str("/passthrough/dev@10000000", "xen,path", "/soc/dev@e6000000");
    Parsed r(p);
    ASSERT_EQ(r.st, Status::ok) << r.err.text;
    ASSERT_EQ(r.pt.dev[0].nranges, 2u);
    EXPECT_EQ(r.pt.dev[0].ranges[1].host, 0xe6100000u);
    EXPECT_EQ(r.pt.dev[0].ranges[1].guest, 0x10004000u);
}

// Each bad partial tree: not accepted, and the line naming the node and property.
struct Bad {
    const char* what;
    void (*edit)(Partial&);
    const char* says;
};

const Bad kBad[] = {
    {"unaligned", [](Partial& p) { p.cells(kRtc, "xen,reg", {0, 0x9010800, 0, 0x1000, 0, 0x1c000000}); },
     "partial device tree: /passthrough/rtc@1c000000: xen,reg: range 0 <0x9010800 0x1000 0x1c000000> is not 4 KiB-aligned"},
    {"short", [](Partial& p) { p.cells(kRtc, "xen,reg", {0, 0x9010000, 0, 0x1000, 0}); },
     "/passthrough/rtc@1c000000: xen,reg: 20 bytes, expected <host-address size guest-address> triples of 6 cells"},
    {"empty", [](Partial& p) { p.cells(kRtc, "xen,reg", {0, 0x9010000, 0, 0, 0, 0x1c000000}); },
     "/passthrough/rtc@1c000000: xen,reg: range 0 is empty (size 0)"},
    {"over RAM", [](Partial& p) { p.cells(kRtc, "xen,reg", {0, 0x9010000, 0, 0x1000, 0, 0x40001000}).del(kRtc, "reg"); },
     "/passthrough/rtc@1c000000: xen,reg: range 0: guest [0x40001000, 0x40002000) overlaps the guest's RAM [0x40000000, 0x48000000)"},
    {"over GIC", [](Partial& p) { p.cells(kRtc, "xen,reg", {0, 0x9010000, 0, 0x1000, 0, 0x03001000}).del(kRtc, "reg"); },
     "xen,reg: range 0: guest [0x3001000, 0x3002000) overlaps the guest's GIC distributor"},
    {"over vPL011", [](Partial& p) { p.cells(kRtc, "xen,reg", {0, 0x9010000, 0, 0x1000, 0, 0x22000000}).del(kRtc, "reg"); },
     "overlaps the guest's vPL011 [0x22000000, 0x22001000)"},
    {"past the limit", [](Partial& p) { p.cells(kRtc, "xen,reg", {0, 0x9010000, 0, 0x1000, 0x100, 0}).del(kRtc, "reg"); },
     "xen,reg: range 0 <0x9010000 0x1000 0x10000000000> wraps or runs past the guest-physical limit"},
    {"two devices, one guest range",
     [](Partial& p) {
         p.cells("/passthrough/b@1c000000", "xen,reg", {0, 0x9030000, 0, 0x1000, 0, 0x1c000000});
         p.str("/passthrough/b@1c000000", "xen,path", "/pl061@9030000");
     },
     "xen,reg: range 0: guest [0x1c000000, 0x1c001000) overlaps /passthrough/"},
    {"two devices, one host range",
     [](Partial& p) {
         p.cells("/passthrough/b@1d000000", "xen,reg", {0, 0x9010000, 0, 0x1000, 0, 0x1d000000});
         p.str("/passthrough/b@1d000000", "xen,path", "/other");
     },
     "xen,reg: range 0: host [0x9010000, 0x9011000) is also passed through by /passthrough/"},
    {"no xen,path", [](Partial& p) { p.del(kRtc, "xen,path"); },
     "/passthrough/rtc@1c000000: xen,path: missing; xen,reg and xen,force-assign-without-iommu need the host node it names"},
    {"relative xen,path", [](Partial& p) { p.str(kRtc, "xen,path", "pl031@9010000"); },
     "/passthrough/rtc@1c000000: xen,path: expected one string, the host node's full path"},
    {"unknown xen property", [](Partial& p) { p.empty(kRtc, "xen,force"); },
     "/passthrough/rtc@1c000000: xen,force: not a property moat knows"},
    {"reg outside xen,reg", [](Partial& p) { p.cells(kRtc, "reg", {0, 0x1c001000, 0, 0x1000}); },
     "/passthrough/rtc@1c000000: reg: entry 0 [0x1c001000, 0x1c002000) is not inside a guest range of its xen,reg"},
    {"other interrupt parent", [](Partial& p) { p.cells(kRtc, "interrupt-parent", {0x8000}); },
     "/passthrough/rtc@1c000000: interrupt-parent: 0x8000, expected the guest GIC's phandle 0xfde8 (65000)"},
    {"a PPI", [](Partial& p) { p.cells(kRtc, "interrupts", {1, 13, 4}); },
     "/passthrough/rtc@1c000000: interrupts: entry 0 <1 13 0x4> is not a GIC SPI"},
    {"an SPI past INTID 1019", [](Partial& p) { p.cells(kRtc, "interrupts", {0, 988, 4}); },
     "/passthrough/rtc@1c000000: interrupts: entry 0 <0 988 0x4> is not a GIC SPI (type 0, 0..987)"},
    {"the vPL011's SPI", [](Partial& p) { p.cells(kRtc, "interrupts", {0, 0, 4}); },
     "/passthrough/rtc@1c000000: interrupts: SPI 0 (INTID 32) is the guest's own vPL011's"},
    {"the GIC's phandle", [](Partial& p) { p.cells("/passthrough/apb-clk", "phandle", {0xfde8}); },
     "/passthrough/apb-clk: phandle: 0xfde8 is the guest GIC's"},
    {"nested xen,reg",
     [](Partial& p) { p.cells("/passthrough/rtc@1c000000/sub", "xen,reg", {0, 0x9010000, 0, 0x1000, 0, 0x1c000000}); },
     "/passthrough/rtc@1c000000/sub: xen,reg / xen,path: only direct children of /passthrough are passed through"},
    {"three address cells", [](Partial& p) { p.cells("/passthrough", "#address-cells", {3}); },
     "/passthrough: #address-cells: expected 1 or 2"},
};

class PartialDtBad : public ::testing::TestWithParam<Bad> {};

TEST_P(PartialDtBad, IsRefusedNamingNodeAndProperty) {
    Partial p = rtc_tree();
    GetParam().edit(p);
    Parsed r(p);
    EXPECT_EQ(r.st, Status::invalid_argument);
    EXPECT_TRUE(r.says("dom0less: /chosen/domU1: partial device tree: /")) << r.err.text;
    EXPECT_TRUE(r.says(GetParam().says)) << r.err.text;
    EXPECT_TRUE(r.says("dom0less: /chosen/domU1: not started (")) << r.err.text;
    EXPECT_EQ(r.pt.ndevices, 0u);
}

INSTANTIATE_TEST_SUITE_P(Each, PartialDtBad, ::testing::ValuesIn(kBad), [](const ::testing::TestParamInfo<Bad>& i) {
    std::string n;
    for (const char* c = i.param.what; *c; c++) n += isalnum(static_cast<unsigned char>(*c)) ? *c : '_';
    return n;
});

TEST(PartialDt, OneSpiListedTwiceIsOneLine) {
    // ZynqMP's GEMs list SPI 63 twice in Linux's tree (two interrupt names, one line).
    Partial p = rtc_tree();
    p.cells(kRtc, "interrupts", {0, 2, 4, 0, 2, 4});
    Parsed r(p);
    ASSERT_EQ(r.st, Status::ok) << r.err.text;
    EXPECT_EQ(r.pt.dev[0].nirqs, 2u);
}

TEST(PartialDt, NotADeviceTreeIsRefused) {
    std::vector<uint8_t> junk(256, 0xab);
    PartialTree pt;
    StrSink err;
    EXPECT_EQ(parse_partial_dt(guest(), junk.data(), junk.size(), pt, err), Status::invalid_argument);
    EXPECT_NE(err.text.find("dom0less: /chosen/domU1: partial device tree: ?: not a usable device tree: "), std::string::npos)
        << err.text;
}

TEST(PartialDt, ThePciEcamAndIntxLinesOfAGuestWithFunctionsAreItsOwn) {
    Dom0lessGuest g = guest();
    g.npci = 1;
    Partial p = rtc_tree();
    p.cells(kRtc, "xen,reg", {0, 0x9010000, 0, 0x1000, 0, 0x04000000}).del(kRtc, "reg");
    p.cells(kRtc, "interrupts", {0, 3, 4});
    Parsed r(p, g);
    EXPECT_TRUE(r.says("overlaps the guest's PCI ECAM [0x4000000, 0x4100000)")) << r.err.text;
    EXPECT_TRUE(r.says("interrupts: SPI 3 (INTID 35) is the guest's own PCI INTx line")) << r.err.text;
}

// ---------------------------------------------------------------- the guest tree

struct GuestTree {
    std::vector<uint64_t> buf = std::vector<uint64_t>(8192);
    size_t size = 0;
    StrSink err;
    Status st;
    GuestTree(const Dom0lessGuest& g, const PartialTree* pt) {
        GuestPlacement place;
        EXPECT_EQ(place_guest_modules(g, 0, 40 * MiB, place, err), Status::ok) << err.text;
        st = build_linux_guest_dt(g, place, buf.data(), buf.size() * 8, size, err, nullptr, pt);
        if (st == Status::ok) {
            EXPECT_EQ(fdt_check_full(buf.data(), size), 0);
        }
    }
    int node(const char* p) const { return fdt_path_offset(buf.data(), p); }
    bool has(const char* p, const char* prop) const { return fdt_getprop(buf.data(), node(p), prop, nullptr) != nullptr; }
    uint32_t u32(const char* p, const char* prop) const {
        int len;
        const void* v = fdt_getprop(buf.data(), node(p), prop, &len);
        return v && len >= 4 ? dt::be32(v, 0) : 0xdeadbeef;
    }
    std::string str(const char* p, const char* prop) const {
        const char* s = static_cast<const char*>(fdt_getprop(buf.data(), node(p), prop, nullptr));
        return s ? s : "<absent>";
    }
};

TEST(PartialDtGuest, PassthroughIsCopiedWithoutXenPropertiesAndTheGicCarriesPhandle65000) {
    Partial p = rtc_tree();
    Parsed r(p);
    ASSERT_EQ(r.st, Status::ok) << r.err.text;
    GuestTree t(guest(), &r.pt);
    ASSERT_EQ(t.st, Status::ok) << t.err.text;
    EXPECT_EQ(t.str("/passthrough", "compatible"), "simple-bus");
    EXPECT_TRUE(t.has("/passthrough", "ranges"));
    EXPECT_EQ(t.u32("/passthrough", "#address-cells"), 2u);
    EXPECT_EQ(t.str(kRtc, "compatible"), "arm,pl031");
    EXPECT_EQ(t.u32(kRtc, "interrupt-parent"), 0xfde8u);
    EXPECT_EQ(t.u32("/passthrough/apb-clk", "phandle"), 0x8000u);
    EXPECT_FALSE(t.has(kRtc, "xen,reg"));
    EXPECT_FALSE(t.has(kRtc, "xen,path"));
    EXPECT_FALSE(t.has(kRtc, "xen,force-assign-without-iommu"));
    EXPECT_EQ(t.u32("/interrupt-controller@3001000", "phandle"), 0xfde8u);
    EXPECT_EQ(t.str("/aliases", "rtc0"), kRtc);
    EXPECT_EQ(t.str("/aliases", "serial0"), "/pl011@22000000");
    EXPECT_LT(t.node("/extra"), 0);  // Xen copies only /passthrough and /aliases
}

TEST(PartialDtGuest, TheGicTakesThePartialTreesGicPhandle) {
    Partial p = rtc_tree();
    p.cells("/gic", "phandle", {0x1234}).cells(kRtc, "interrupt-parent", {0x1234});
    Parsed r(p);
    ASSERT_EQ(r.st, Status::ok) << r.err.text;
    EXPECT_EQ(r.pt.gic_phandle, 0x1234u);
    GuestTree t(guest(), &r.pt);
    ASSERT_EQ(t.st, Status::ok) << t.err.text;
    EXPECT_EQ(t.u32("/interrupt-controller@3001000", "phandle"), 0x1234u);
    EXPECT_EQ(t.u32("/", "interrupt-parent"), 0x1234u);
    EXPECT_LT(t.node("/gic"), 0);
}

TEST(PartialDtGuest, ARangeOverThePciWindowIsRefused) {
    Dom0lessGuest g = guest();
    g.npci = 1;
    Partial p = rtc_tree();
    p.cells(kRtc, "xen,reg", {0, 0x9010000, 0, 0x1000, 0, 0x10100000}).cells(kRtc, "reg", {0, 0x10100000, 0, 0x1000});
    Parsed r(p, g);
    ASSERT_EQ(r.st, Status::ok) << r.err.text;
    GuestPlacement place;
    StrSink err;
    ASSERT_EQ(place_guest_modules(g, 0, 40 * MiB, place, err), Status::ok);
    std::vector<uint64_t> buf(8192);
    size_t size = 0;
    GuestPciDt win{0x10000000, 0x200000};
    EXPECT_EQ(build_linux_guest_dt(g, place, buf.data(), buf.size() * 8, size, err, &win, &r.pt), Status::out_of_range);
    EXPECT_NE(err.text.find("dom0less: /chosen/domU1: partial device tree: /passthrough/rtc@1c000000: xen,reg: guest "
                            "[0x10100000, 0x10101000) overlaps the guest's PCI window [0x10000000, 0x10200000)"),
              std::string::npos) << err.text;
}

// ---------------------------------------------------------------- against the host

struct Host {
    dt_test::Loaded dt{"platform_host"};
    PlatformHost ph{dt.tree, *dt.topo, nullptr};
};

struct Resolved {
    Partial p;
    PartialTree pt;
    GuestPlatform plat;
    StrSink err;
    Status st = Status::bad_dt;
    Resolved(Host& h, Partial tree, const char* name = "domU1") : p(std::move(tree)) {
        Dom0lessGuest g = guest(name);
        if (parse_partial_dt(g, p.blob(), p.size(), pt, err) != Status::ok) return;
        st = h.ph.resolve(g, pt, plat, err);
    }
    bool says(const std::string& s) const { return err.text.find(s) != std::string::npos; }
};

TEST(PlatformHost, TheRtcForcedIsAssignedUnconfinedAndSaysSo) {
    Host h;
    Resolved r(h, rtc_tree());
    ASSERT_EQ(r.st, Status::ok) << r.err.text;
    ASSERT_EQ(r.plat.n, 1u);
    EXPECT_TRUE(r.plat.unconfined);
    EXPECT_TRUE(r.plat.dev[0].unconfined);
    EXPECT_EQ(r.plat.dev[0].nstreams, 0u);
    EXPECT_EQ(r.plat.dev[0].host_node, h.dt.tree.find_path("/pl031@9010000"));
    EXPECT_TRUE(r.says("passthrough: domU1: /passthrough/rtc@1c000000 (/pl031@9010000) assigned WITHOUT an IOMMU "
                       "(xen,force-assign-without-iommu): it has no iommus; its DMA is unconfined")) << r.err.text;
}

TEST(PlatformHost, WithoutForceADeviceNoIommuConfinesIsRefused) {
    Host h;
    Partial p = rtc_tree();
    p.del(kRtc, "xen,force-assign-without-iommu");
    Resolved r(h, std::move(p));
    EXPECT_EQ(r.st, Status::denied);
    EXPECT_TRUE(r.says("passthrough: domU1: /passthrough/rtc@1c000000: xen,path: /pl031@9010000: it has no iommus, so no IOMMU "
                       "moat drives would confine its DMA; refused (xen,force-assign-without-iommu assigns it anyway)"))
        << r.err.text;
    EXPECT_TRUE(r.says("passthrough: domU1: not started (its partial device tree)"));
    EXPECT_EQ(r.plat.n, 0u);
}

TEST(PlatformHost, AnIommuMoatDoesNotDriveConfinesNothing) {
    Host h;  // no IommuSet: the SMMU dma@9100000 names is not probed
    Partial p = rtc_tree();
    p.cells(kRtc, "xen,reg", {0, 0x9100000, 0, 0x1000, 0, 0x1c000000}).str(kRtc, "xen,path", "/dma@9100000");
    p.del(kRtc, "interrupts").del(kRtc, "xen,force-assign-without-iommu");
    Resolved r(h, std::move(p));
    EXPECT_EQ(r.st, Status::denied);
    EXPECT_TRUE(r.says("/dma@9100000: its IOMMU /smmuv3@9050000 is not one moat drives, so no IOMMU moat drives would confine"))
        << r.err.text;
}

TEST(PlatformHost, WhatMoatUsesIsRefusedByName) {
    struct Case { const char* path; uint32_t base; const char* says; };
    const Case cases[] = {
        {"/pl011@9000000", 0x9000000, "xen,path: /pl011@9000000 is moat's console UART moat uses itself; no guest may have it"},
        {"/intc@8000000", 0x8000000, "xen,path: /intc@8000000 is the GIC moat uses itself"},
        {"/smmuv3@9050000", 0x9050000, "xen,path: /smmuv3@9050000 is an IOMMU moat uses itself"},
        {"/nowhere@1", 0x9010000, "xen,path: \"/nowhere@1\" is no node of the host device tree"},
        {"/off@9200000", 0x9200000, "xen,path: the host node /off@9200000 is disabled"},
    };
    for (const Case& c : cases) {
        Host h;
        Partial p = rtc_tree();
        p.cells(kRtc, "xen,reg", {0, c.base, 0, 0x1000, 0, 0x1c000000}).str(kRtc, "xen,path", c.path);
        Resolved r(h, std::move(p));
        EXPECT_EQ(r.st, Status::denied) << c.path;
        EXPECT_TRUE(r.says(std::string("passthrough: domU1: /passthrough/rtc@1c000000: ") + c.says)) << r.err.text;
    }
}

TEST(PlatformHost, APciHostBridgeIsNoPlatformDevice) {
    Host h;
    Partial p = rtc_tree();
    p.cells(kRtc, "xen,reg", {0, 0x3f000000, 0, 0x1000, 0, 0x1c000000}).str(kRtc, "xen,path", "/pcie@3f000000");
    p.del(kRtc, "interrupts");
    Resolved r(h, std::move(p));
    EXPECT_EQ(r.st, Status::denied);
    EXPECT_TRUE(r.says("xen,path: /pcie@3f000000 is a PCI host bridge (iommu-map); its functions are passed through with moat,pci"))
        << r.err.text;
}

TEST(PlatformHost, AHostRangeOutsideTheNodesRegOrOverMoatsIsRefused) {
    Host h;
    Partial p = rtc_tree();
    p.cells(kRtc, "xen,reg", {0, 0x9011000, 0, 0x1000, 0, 0x1c000000});  // the page after the PL031's
    Resolved r(h, std::move(p));
    EXPECT_EQ(r.st, Status::denied);
    EXPECT_TRUE(r.says("/passthrough/rtc@1c000000: xen,reg: range 0: host [0x9011000, 0x9012000) is not inside a reg entry of "
                       "/pl031@9010000")) << r.err.text;

    Host h2;
    h2.ph.own_range(0x9010000, 0x1000, "moat's test range");
    Resolved r2(h2, rtc_tree());
    EXPECT_EQ(r2.st, Status::denied);
    EXPECT_TRUE(r2.says("xen,reg: range 0: host [0x9010000, 0x9011000) overlaps moat's test range [0x9010000, 0x9011000)"))
        << r2.err.text;
}

TEST(PlatformHost, InterruptsMustBeTheHostNodesSpis) {
    Host h;
    Partial p = rtc_tree();
    p.cells(kRtc, "interrupts", {0, 3, 4});
    Resolved r(h, std::move(p));
    EXPECT_EQ(r.st, Status::denied);
    EXPECT_TRUE(r.says("/passthrough/rtc@1c000000: interrupts: SPIs 3, but the host node /pl031@9010000 has SPI 2 (moat routes "
                       "a device's SPIs 1:1, as Xen does)")) << r.err.text;
    Host h2;
    Partial q = rtc_tree();
    q.del(kRtc, "interrupts");
    Resolved r2(h2, std::move(q));
    EXPECT_TRUE(r2.says("interrupts: SPIs (none), but the host node /pl031@9010000 has SPI 2")) << r2.err.text;
}

TEST(PlatformHost, ASecondGuestNamingTheSameNodeIsRefusedUntilTheFirstReleasesIt) {
    Host h;
    Resolved a(h, rtc_tree(), "domU1");
    ASSERT_EQ(a.st, Status::ok) << a.err.text;
    Resolved b(h, rtc_tree(), "domU2");
    EXPECT_EQ(b.st, Status::denied);
    EXPECT_TRUE(b.says("passthrough: domU2: /passthrough/rtc@1c000000: xen,path: /pl031@9010000 is already assigned to domU1"))
        << b.err.text;
    h.ph.release("domU1");
    Resolved c(h, rtc_tree(), "domU2");
    EXPECT_EQ(c.st, Status::ok) << c.err.text;
}

// ---------------------------------------------------------------- R-Car M3-W+ Salvator-XS, IPMMU models

std::string tree_path(const char* name) {
    const char* dir = getenv("MOAT_TREES");
    return std::string(dir ? dir : ".deps/trees") + "/" + name + ".dtb";
}

constexpr const char* kSdhi = "/passthrough/mmc@ee160000";

// SDHI3 (/soc/mmc@ee160000, IPMMU-DS1 uTLB 0x23, SPI 168) at the same guest-physical address.
Partial sdhi_tree() {
    Partial p;
    p.str("/passthrough", "compatible", "simple-bus").empty("/passthrough", "ranges");
    p.cells("/passthrough", "#address-cells", {2}).cells("/passthrough", "#size-cells", {2});
    p.str(kSdhi, "compatible", "renesas,sdhi-r8a77961").cells(kSdhi, "reg", {0, 0xee160000, 0, 0x2000});
    p.cells(kSdhi, "interrupt-parent", {0xfde8}).cells(kSdhi, "interrupts", {0, 168, 4});
    p.cells(kSdhi, "xen,reg", {0, 0xee160000, 0, 0x2000, 0, 0xee160000});
    p.str(kSdhi, "xen,path", "/soc/mmc@ee160000");
    return p;
}

TEST(PlatformSalvator, AnSdhiBehindTheIpmmuDmasIntoTheGuestsRam) {
    const char* name = "r8a77961-salvator-xs";
    FILE* f = fopen(tree_path(name).c_str(), "rb");
    if (!f) FAIL() << tree_path(name) << " is missing: run tools/install-deps.sh (it needs Debian's archive)";
    fclose(f);
    ipmmu_test::DtRig r(tree_path(name).c_str(), 0x5220);
    ASSERT_EQ(r.probe(), 0u) << r.report.text;
    PlatformHost ph(r.dt.tree, *r.dt.topo, &r.set);
    // moat's own: the IOMMUs (the constructor), and what the caller adds (here a RAM bank).
    ph.own_range(0x48000000, 0x38000000, "RAM");

    Partial p = sdhi_tree();
    Dom0lessGuest g = guest();
    PartialTree pt;
    StrSink err;
    ASSERT_EQ(parse_partial_dt(g, p.blob(), p.size(), pt, err), Status::ok) << err.text;
    GuestPlatform plat;
    ASSERT_EQ(ph.resolve(g, pt, plat, err), Status::ok) << err.text;
    EXPECT_EQ(err.text, "");
    ASSERT_EQ(plat.n, 1u);
    EXPECT_FALSE(plat.unconfined);
    ASSERT_EQ(plat.dev[0].nstreams, 1u);
    IpmmuVmsa* ds1 = r.ipmmu("/soc/iommu@e7740000");
    EXPECT_EQ(plat.dev[0].iommu[0], ds1);
    EXPECT_EQ(plat.dev[0].sid[0], 0x23u);
    ipmmu_test::IpmmuModel& m = r.model_at(0xe7740000);
    const uint32_t blocked = m.imuctr(0x23);
    EXPECT_TRUE(ds1->utlb_blocked(0x23));

    // The guest's RAM: 64 KiB of the pool at a host-physical address unlike its guest-physical one.
    PagePool& pool = *r.mem.pool;
    constexpr uint64_t kRam = 16 * kPageSize, kIpa = 0x40000000;
    Result<uint64_t> ram = pool.alloc(16);
    ASSERT_TRUE(ram.ok());
    ASSERT_NE(ram.value, kIpa);
    size_t before = pool.used_pages();
    {
        GuestDmaDomain dma(pool, nullptr);
        StrSink rep;
        ASSERT_EQ(dma.build("domU1", GuestPci{}, &plat, kIpa, ram.value, kRam, rep), Status::ok) << rep.text;
        ASSERT_EQ(dma.domains(), 1u);
        EXPECT_TRUE(dma.domain(0)->attached(*ds1, 0x23));
        EXPECT_NE(rep.text.find("on iommu@e7740000"), std::string::npos) << rep.text;
        EXPECT_NE(rep.text.find("16 pages; streams 0x23 (/soc/mmc@ee160000)"), std::string::npos) << rep.text;
        // The uTLB now routes to the domain's context, not the blocking one.
        EXPECT_NE(m.imuctr(0x23), blocked);
        EXPECT_FALSE(ds1->utlb_blocked(0x23));
        const uint64_t offs[] = {0, 0x1238, kRam - 8};
        for (uint64_t off : offs) {
            uint8_t b[8];
            memset(b, static_cast<int>(0x40 | (off & 0xf)), sizeof b);
            ipmmu_test::IpmmuModel::Dma w = m.dma_write(0x23, kIpa + off, b, sizeof b);
            ASSERT_TRUE(w.ok) << std::hex << off;
            EXPECT_FALSE(w.bypassed);
            EXPECT_EQ(w.pa, ram.value + off);
            EXPECT_EQ(memcmp(static_cast<uint8_t*>(pool.virt(ram.value + off)), b, sizeof b), 0);
        }
        // Past the guest's RAM, and its host-physical address itself: nothing there.
        uint8_t z[8] = {};
        EXPECT_FALSE(m.dma_write(0x23, kIpa + kRam, z, sizeof z).ok);
        EXPECT_FALSE(m.dma_write(0x23, ram.value, z, sizeof z).ok);
        EXPECT_EQ(static_cast<uint8_t*>(pool.virt(ram.value))[0], 0x40);
        FaultLog log;
        EXPECT_GE(ds1->poll_faults(log), 1u);

        // A second guest naming the same node: refused by name.
        PartialTree pt2;
        GuestPlatform plat2;
        StrSink err2;
        Dom0lessGuest g2 = guest("domU2");
        ASSERT_EQ(parse_partial_dt(g2, p.blob(), p.size(), pt2, err2), Status::ok) << err2.text;
        EXPECT_EQ(ph.resolve(g2, pt2, plat2, err2), Status::denied);
        EXPECT_NE(err2.text.find("passthrough: domU2: /passthrough/mmc@ee160000: xen,path: /soc/mmc@ee160000 is already "
                                 "assigned to domU1"), std::string::npos) << err2.text;

        StrSink down;
        ASSERT_EQ(dma.teardown(&down), Status::ok);
        EXPECT_NE(down.text.find("1 stream detached to abort: ok"), std::string::npos) << down.text;
    }
    EXPECT_EQ(pool.used_pages(), before);  // every table page back
    EXPECT_TRUE(ds1->utlb_blocked(0x23));
    uint8_t z[8] = {};
    EXPECT_FALSE(m.dma_write(0x23, kIpa, z, sizeof z).ok);
}

// The SDHI's SPI 168 (INTID 200) is beyond the 64 SPIs a guest's GIC has by default: the guest
// builder sizes the guest's GIC to cover it (VGic::spis_covering, as arch/arm64/linux_guest.cpp
// does for every device line), and the line is forwarded 1:1 and delivered.
TEST(PlatformSalvator, TheSdhisSpi168IsForwardedIntoAGicSizedToCoverIt) {
    Partial p = sdhi_tree();
    PartialTree pt;
    StrSink err;
    ASSERT_EQ(parse_partial_dt(guest(), p.blob(), p.size(), pt, err), Status::ok) << err.text;
    ASSERT_EQ(pt.ndevices, 1u);
    ASSERT_EQ(pt.dev[0].nirqs, 1u);
    const uint32_t intid = pt.dev[0].intids[0];
    EXPECT_EQ(intid, 200u);

    arch::HostIrqController ic;
    hyp::IrqForwarder fwd;
    fwd.set_controller(&ic);
    const uint64_t mpidr[1] = {0};
    Why why;
    hyp::VGic small;  // what every guest had before: INTIDs 32..95
    small.reset(1, mpidr);
    EXPECT_EQ(fwd.forward_spi(small, "domU0", intid, intid, true, why), Status::out_of_range);
    EXPECT_STREQ(why.text(), "guest domU0: virtual INTID 200 is not one of its SPIs (32..95)");
    EXPECT_FALSE(ic.enabled(intid));

    hyp::VGic vgic;
    vgic.reset(1, mpidr, hyp::VGic::spis_covering(intid));
    EXPECT_EQ(vgic.spis(), 192u);  // INTIDs 32..223
    uint64_t typer = 0;
    ASSERT_TRUE(vgic.dist_read(0x4, 4, typer));
    EXPECT_EQ(typer & 0x1f, 6u);  // ITLinesNumber: 32 * 7 lines
    ASSERT_EQ(fwd.forward_spi(vgic, "domU1", intid, intid, true, why), Status::ok) << why.text();
    EXPECT_TRUE(ic.enabled(intid));
    ASSERT_TRUE(vgic.dist_write(0x0, 4, (1u << 4) | 2));
    ASSERT_TRUE(vgic.dist_write(0x80 + 4 * 6, 4, 1u << 8));
    ASSERT_TRUE(vgic.dist_write(0x100 + 4 * 6, 4, 1u << 8));
    ic.raise(intid);
    EXPECT_FALSE(ic.enabled(intid));  // masked while the guest has it
    uint64_t lrs[4] = {};
    (void)vgic.lr_sync(0, lrs, 4);
    ASSERT_EQ(hyp::VGic::kLrVintid.get(lrs[0]), 200u);
    ic.lower(intid);                              // the guest's driver quieted the SDHI
    lrs[0] = hyp::VGic::kLrState.set(lrs[0], 0);  // and deactivated the interrupt
    (void)vgic.lr_sync(0, lrs, 4);
    fwd.resample(vgic);
    EXPECT_TRUE(ic.enabled(intid));  // unmasked, looked at again
    EXPECT_EQ(fwd.arrivals_on(intid), 1u);
    EXPECT_EQ(fwd.unbind(vgic), 1u);
}

TEST(PlatformSalvator, TheIpmmuItselfAndForcingAConfinedDevice) {
    const char* name = "r8a77961-salvator-xs";
    FILE* f = fopen(tree_path(name).c_str(), "rb");
    if (!f) FAIL() << tree_path(name) << " is missing";
    fclose(f);
    ipmmu_test::DtRig r(tree_path(name).c_str(), 0x5220);
    ASSERT_EQ(r.probe(), 0u) << r.report.text;
    PlatformHost ph(r.dt.tree, *r.dt.topo, &r.set);
    Dom0lessGuest g = guest();
    {
        Partial p = sdhi_tree();
        p.cells(kSdhi, "xen,reg", {0, 0xe7740000, 0, 0x1000, 0, 0xee160000}).str(kSdhi, "xen,path", "/soc/iommu@e7740000");
        p.cells(kSdhi, "reg", {0, 0xee160000, 0, 0x1000}).del(kSdhi, "interrupts");
        PartialTree pt;
        GuestPlatform plat;
        StrSink err;
        ASSERT_EQ(parse_partial_dt(g, p.blob(), p.size(), pt, err), Status::ok) << err.text;
        EXPECT_EQ(ph.resolve(g, pt, plat, err), Status::denied);
        EXPECT_NE(err.text.find("xen,path: /soc/iommu@e7740000 is an IOMMU moat uses itself"), std::string::npos) << err.text;
    }
    {
        Partial p = sdhi_tree();
        p.empty(kSdhi, "xen,force-assign-without-iommu");
        PartialTree pt;
        GuestPlatform plat;
        StrSink err;
        ASSERT_EQ(parse_partial_dt(g, p.blob(), p.size(), pt, err), Status::ok) << err.text;
        ASSERT_EQ(ph.resolve(g, pt, plat, err), Status::ok) << err.text;
        EXPECT_FALSE(plat.unconfined);
        EXPECT_EQ(plat.dev[0].nstreams, 1u);
        EXPECT_NE(err.text.find("xen,force-assign-without-iommu: /soc/mmc@ee160000 is behind an IOMMU moat drives; its DMA is "
                                "confined all the same"), std::string::npos) << err.text;
    }
}

}  // namespace
