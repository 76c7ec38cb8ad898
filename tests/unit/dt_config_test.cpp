// The guest config parser (xen-compat/guest_config.hpp): what it accepts, and that every
// error names its line.
#include <fstream>
#include <sstream>

#include "dt_support.hpp"
#include "xen-compat/guest_config.hpp"

using namespace moat;
using namespace moat::xen;
using namespace dt_test;

namespace {

struct Parsed {
    std::unique_ptr<GuestDesc> g = std::make_unique<GuestDesc>();
    StrSink err;
    Status status;
    explicit Parsed(const std::string& text) { status = parse_guest_config(text.data(), text.size(), "guest.cfg", *g, err); }
};

TEST(DtConfig, ParsesEverySection) {
    Parsed p(R"(# a comment
[guest]
name = demo            ; trailing comment
memory = 4G
vcpus = 3
gic = v2
console = none
bootargs = "root=/dev/vda # not a comment"
xen-version = 4.18
grant-table = 0x38000000 0x800000
evtchn-irq = 30

[virtio-mmio]
backend = 1
grants = no
base = 0x2000400
irq = 40

[pci]
ecam = 0x33000000 0x200000
mem = 0x34000000, 0x1000000
irq = 50

[pci-device]
bdf = 01:1f.7
backend = 2

[passthrough]
path = /soc/mmc@ee140000
reg = 0x23000000 0x23100000
irq = 100,101
)");
    ASSERT_EQ(p.status, Status::ok) << p.err.text;
    const GuestDesc& g = *p.g;
    EXPECT_STREQ(g.name, "demo");
    EXPECT_EQ(g.nram, 2u);
    EXPECT_EQ(g.ram[0].size, 3 * GiB);
    EXPECT_EQ(g.ram[1].base, 0x200000000u);
    EXPECT_EQ(g.ram[1].size, 1 * GiB);
    EXPECT_EQ(g.vcpus, 3u);
    EXPECT_EQ(g.gic_version, 2u);
    EXPECT_EQ(g.console, Console::none);
    EXPECT_STREQ(g.bootargs, "root=/dev/vda # not a comment");
    EXPECT_EQ(g.xen_minor, 18);
    EXPECT_EQ(g.gnttab_size, 0x800000u);
    EXPECT_EQ(g.evtchn_intid, 30u);
    ASSERT_EQ(g.nvirtio, 1u);
    EXPECT_EQ(g.virtio[0].backend, 1);
    EXPECT_EQ(g.virtio[0].grants, Grants::off);
    EXPECT_EQ(g.virtio[0].base, 0x2000400u);
    EXPECT_EQ(g.virtio[0].intid, 40u);
    EXPECT_EQ(g.virtio[0].line, 13u);
    EXPECT_TRUE(g.pci.present);
    EXPECT_EQ(g.pci.ecam_size, 0x200000u);
    EXPECT_EQ(g.pci.mem_size, 0x1000000u);
    ASSERT_EQ(g.pci.ndevices, 1u);
    EXPECT_EQ(g.pci.devices[0].rid, 0x1ff);
    EXPECT_EQ(g.pci.devices[0].line, 24u);
    ASSERT_EQ(g.npassthrough, 1u);
    EXPECT_STREQ(g.passthrough[0].host_path, "/soc/mmc@ee140000");
    EXPECT_EQ(g.passthrough[0].nregs, 2u);
    EXPECT_EQ(g.passthrough[0].regs[1], 0x23100000u);
    EXPECT_EQ(g.passthrough[0].nirqs, 2u);
    EXPECT_EQ(g.passthrough[0].intids[1], 101u);
}

void expect_error(const std::string& text, const std::string& message) {
    Parsed p(text);
    EXPECT_EQ(p.status, Status::invalid_argument) << text;
    EXPECT_NE(p.err.text.find(message + "\n"), std::string::npos) << "expected: " << message << "\ngot: " << p.err.text;
}

TEST(DtConfig, ErrorsNameTheLine) {
    const std::string head = "[guest]\nmemory = 256M\n";  // lines 1-2
    expect_error(head + "vcpu = 2\n", "guest.cfg:3: unknown key 'vcpu' in [guest] (did you mean 'vcpus'?)");
    expect_error(head + "frobnicate = 1\n", "guest.cfg:3: unknown key 'frobnicate' in [guest]");
    expect_error(head + "vcpus = two\n", "guest.cfg:3: vcpus: 'two' is not a vCPU count (1..32)");
    expect_error(head + "vcpus = 33\n", "guest.cfg:3: vcpus: '33' is not a vCPU count (1..32)");
    expect_error(head + "gic = v4\n", "guest.cfg:3: gic: 'v4' is not v2 or v3");
    expect_error(head + "\n[virtio-mmio]\nbackend = 0x7ff0\n", "guest.cfg:5: backend: '0x7ff0' is not a domain id (0..32751)");
    expect_error(head + "[virtio-mmio]\ngrants = maybe\n", "guest.cfg:4: grants: 'maybe' is not auto, yes or no");
    expect_error(head + "[virtio]\n", "guest.cfg:3: unknown section [virtio] (sections: guest, virtio-mmio, pci, pci-device, passthrough)");
    expect_error("memory = 1G\n[guest]\nmemory = 1G\n", "guest.cfg:1: 'memory' outside a section (start with [guest])");
    expect_error(head + "memory = 512M\n", "guest.cfg:3: memory given twice in this [guest] (first on line 2)");
    expect_error(head + "memory = 12345\n", "guest.cfg:3: memory given twice in this [guest] (first on line 2)");
    expect_error("[guest]\nmemory = 12345\n", "guest.cfg:2: memory: 12345 bytes is not a whole number of 4 KiB pages between 4 KiB and 1019 GiB");
    expect_error("[guest]\nvcpus = 1\n", "guest.cfg:1: [guest] has no memory");
    expect_error(head + "[passthrough]\nreg = 0x1000\n", "guest.cfg:3: [passthrough] has no path");
    expect_error(head + "[passthrough]\npath = soc/mmc\n", "guest.cfg:4: path: 'soc/mmc' is not a node path starting with '/'");
    expect_error(head + "[pci-device]\nbdf = 00:20.0\n", "guest.cfg:4: bdf: '00:20.0' is not a PCI address bb:dd.f (hex; bus < 0x100, device < 0x20, function < 8)");
    expect_error(head + "bootargs = \"unterminated\n", "guest.cfg:3: bootargs: unterminated quote");
    expect_error(head + "just words\n", "guest.cfg:3: expected 'key = value' or '[section]', got 'just words'");
    expect_error("# nothing\n", "guest.cfg: no [guest] section");
    expect_error(head + "[guest]\n", "guest.cfg:3: a second [guest] section (the first is on line 1)");
}

TEST(DtConfig, EveryErrorIsReportedNotJustTheFirst) {
    Parsed p("[guest]\nmemory = 1G\nvcpu = 1\ngic = 5\n[nope]\nx = 1\n");
    EXPECT_EQ(p.status, Status::invalid_argument);
    EXPECT_NE(p.err.text.find("guest.cfg:3:"), std::string::npos);
    EXPECT_NE(p.err.text.find("guest.cfg:4:"), std::string::npos);
    EXPECT_NE(p.err.text.find("guest.cfg:5:"), std::string::npos);
    EXPECT_EQ(p.err.text.find("guest.cfg:6:"), std::string::npos) << "keys of an unknown section are not reported again";
}

TEST(DtConfig, ExamplesParse) {
    for (const char* f : {"tools/dt/examples/virtio-grants.cfg", "tools/dt/examples/zcu102-passthrough.cfg",
                          "tools/dt/examples/salvator-x-sdhi.cfg"}) {
        std::ifstream in(f);
        ASSERT_TRUE(in.good()) << f << " (run from the repository root)";
        std::stringstream ss;
        ss << in.rdbuf();
        auto g = std::make_unique<GuestDesc>();
        StrSink err;
        EXPECT_EQ(parse_guest_config(ss.str().data(), ss.str().size(), f, *g, err), Status::ok) << err.text;
    }
}

TEST(DtConfig, ExampleWithGrantsBuildsAndVerifies) {
    std::ifstream in("tools/dt/examples/virtio-grants.cfg");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    auto g = std::make_unique<GuestDesc>();
    StrSink err;
    ASSERT_EQ(parse_guest_config(text.data(), text.size(), "virtio-grants.cfg", *g, err), Status::ok) << err.text;
    std::vector<uint64_t> out(4096);
    size_t size;
    ASSERT_EQ(build_guest_dt(*g, nullptr, out.data(), out.size() * 8, size, err), Status::ok) << err.text;
    dt::Tree t;
    ASSERT_EQ(t.open(out.data(), size), Status::ok);
    StrSink diff;
    EXPECT_EQ(verify_guest_dt(t, *g, nullptr, diff), 0u) << diff.text;
}

}  // namespace
