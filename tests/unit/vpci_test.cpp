// The guest's trapped ECAM (hyp/vpci.hpp) over a fake host config space that records every
// write: assigned functions read through with moat's BARs, others are absent, BAR sizing works
// and BAR moves, read-only fields and forbidden command bits never reach the device.
#include <gtest/gtest.h>

#include <string.h>

#include <map>
#include <string>
#include <vector>

#include "hyp/vpci.hpp"

using namespace moat;
using namespace moat::hyp;
using xen::PciBdf;

namespace {

struct StrSink : Sink {
    std::string text;
    void write(const char* s, size_t n) override { text.append(s, n); }
};

// Host config space: 4 KiB per function, little-endian, every write recorded.
struct FakeHost final : ConfigSpace {
    std::map<unsigned, std::vector<uint8_t>> fns;
    struct W { unsigned dev; uint16_t off; unsigned bytes; uint32_t v; };
    std::vector<W> writes;
    std::vector<uint8_t>& at(unsigned dev) {
        auto& v = fns[dev];
        v.resize(4096, 0);
        return v;
    }
    void set(unsigned dev, uint16_t off, uint32_t v) { memcpy(&at(dev)[off], &v, 4); }
    uint32_t get(unsigned dev, uint16_t off, unsigned bytes = 4) {
        uint32_t v = 0;
        memcpy(&v, &at(dev)[off], bytes);
        return v;
    }
    uint32_t read(const PciBdf& f, uint16_t off, unsigned bytes) override {
        if (!fns.count(f.dev)) return 0xffffffffu;
        return get(f.dev, off, bytes);
    }
    void write(const PciBdf& f, uint16_t off, unsigned bytes, uint32_t v) override {
        writes.push_back({f.dev, off, bytes, v});
        memcpy(&at(f.dev)[off], &v, bytes);
    }
};

uint64_t ecam(unsigned dev, unsigned fn, unsigned reg) { return uint64_t{dev} << 15 | fn << 12 | reg; }

struct Rig {
    FakeHost host;
    VPci v{host};
    pci::Bar virtio[6] = {}, edu[6] = {};
    Rig() {
        // 00:02.0 virtio-blk (modern): BAR1 4 KiB mem32, BAR4 16 KiB mem64 prefetchable.
        host.set(2, 0x00, 0x10421af4);
        host.set(2, 0x04, 0x00100000);  // status: capability list
        host.set(2, 0x08, 0x01000001);
        host.set(2, 0x14, 0x10001000);
        host.set(2, 0x20, 0x1000400c);
        host.set(2, 0x34, 0x40);
        host.set(2, 0x3c, 0x00000100);  // pin INTA
        host.set(2, 0x40, 0x12345678);  // a capability
        virtio[1] = {0x10001000, 0x1000, false, false};
        virtio[4] = {0x10004000, 0x4000, true, false};
        // 00:03.0 edu: BAR0 1 MiB mem32.
        host.set(3, 0x00, 0x11e81234);
        host.set(3, 0x10, 0x10100000);
        edu[0] = {0x10100000, 0x100000, false, false};
        host.set(4, 0x00, 0x00011af4);   // present on the host, not assigned
        host.set(5, 0x00, 0x000c1b36);   // a bridge
        host.set(5, 0x0c, 0x00010000);
    }
    uint32_t rd(uint64_t off, unsigned bytes = 4) {
        uint32_t val = 0xdeadbeef;
        EXPECT_TRUE(v.read(off, bytes, val));
        return val;
    }
    void wr(uint64_t off, uint32_t val, unsigned bytes = 4) { EXPECT_TRUE(v.write(off, bytes, val)); }
};

TEST(VPci, AssignedFunctionsReadThroughWithMoatsBarsOthersAreAbsent) {
    Rig r;
    StrSink err;
    ASSERT_EQ(r.v.add({0, 0, 2, 0}, r.virtio, err), Status::ok) << err.text;
    ASSERT_EQ(r.v.add({0, 0, 3, 0}, r.edu, err), Status::ok) << err.text;
    EXPECT_EQ(r.rd(ecam(2, 0, 0)), 0x10421af4u);
    EXPECT_EQ(r.rd(ecam(2, 0, 2), 2), 0x1042u);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x08)), 0x01000001u);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x14)), 0x10001000u);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x20)), 0x1000400cu);  // 64-bit prefetchable, low half
    EXPECT_EQ(r.rd(ecam(2, 0, 0x24)), 0u);           // high half
    EXPECT_EQ(r.rd(ecam(2, 0, 0x10)), 0u);           // BAR0 not implemented
    EXPECT_EQ(r.rd(ecam(2, 0, 0x3d), 1), 1u);        // INTA
    EXPECT_EQ(r.rd(ecam(2, 0, 0x40)), 0x12345678u);  // capabilities pass through
    EXPECT_EQ(r.rd(ecam(3, 0, 0x10)), 0x10100000u);
    // Unassigned (present on the host or not), another function of an assigned device: all ones.
    EXPECT_EQ(r.rd(ecam(4, 0, 0)), 0xffffffffu);
    EXPECT_EQ(r.rd(ecam(5, 0, 0)), 0xffffffffu);
    EXPECT_EQ(r.rd(ecam(2, 1, 0)), 0xffffffffu);
    EXPECT_EQ(r.rd(ecam(9, 0, 0), 2), 0xffffu);
    EXPECT_EQ(r.rd(ecam(4, 0, 0x3c), 1), 0xffu);
    EXPECT_EQ(r.v.absent_accesses(), 5u);

    uint64_t a, s;
    ASSERT_TRUE(r.v.bar_range(0, a, s));
    EXPECT_EQ(a, 0x10001000u);
    EXPECT_EQ(s, 0x1000u);
    ASSERT_TRUE(r.v.bar_range(1, a, s));
    EXPECT_EQ(a, 0x10004000u);
    EXPECT_EQ(s, 0x4000u);
    ASSERT_TRUE(r.v.bar_range(2, a, s));
    EXPECT_EQ(a, 0x10100000u);
    EXPECT_EQ(s, 0x100000u);
    EXPECT_FALSE(r.v.bar_range(3, a, s));
}

TEST(VPci, BarSizingWorksAndMovesAreRefusedWithoutTouchingTheDevice) {
    Rig r;
    StrSink err;
    ASSERT_EQ(r.v.add({0, 0, 2, 0}, r.virtio, err), Status::ok);
    size_t before = r.host.writes.size();
    // Linux's sizing of the 64-bit BAR4: all ones in each half, read the mask, write back.
    r.wr(ecam(2, 0, 0x20), 0xffffffff);
    r.wr(ecam(2, 0, 0x24), 0xffffffff);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x20)), 0xffffc00cu);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x24)), 0xffffffffu);
    r.wr(ecam(2, 0, 0x20), 0x1000400c);
    r.wr(ecam(2, 0, 0x24), 0);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x20)), 0x1000400cu);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x24)), 0u);
    r.wr(ecam(2, 0, 0x14), 0xffffffff);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x14)), 0xfffff000u);
    r.wr(ecam(2, 0, 0x14), 0x10001000);
    r.wr(ecam(2, 0, 0x10), 0xffffffff);  // an unimplemented BAR sized: still 0
    EXPECT_EQ(r.rd(ecam(2, 0, 0x10)), 0u);
    EXPECT_EQ(r.v.refused_writes(), 0u);
    // Moves: elsewhere in the window, over moat's image, a high half: refused, nothing changes.
    r.wr(ecam(2, 0, 0x14), 0x10200000);
    r.wr(ecam(2, 0, 0x20), 0x4020000c);
    r.wr(ecam(2, 0, 0x24), 0x1);
    r.wr(ecam(2, 0, 0x16), 0x2000, 2);
    EXPECT_EQ(r.v.refused_writes(), 4u);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x14)), 0x10001000u);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x20)), 0x1000400cu);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x24)), 0u);
    EXPECT_EQ(r.host.writes.size(), before);  // no BAR write ever reached the device
    EXPECT_EQ(r.host.get(2, 0x14), 0x10001000u);
}

TEST(VPci, CommandIsFilteredReadOnlyFieldsAndOtherFunctionsAreNeverWritten) {
    Rig r;
    StrSink err;
    ASSERT_EQ(r.v.add({0, 0, 2, 0}, r.virtio, err), Status::ok);
    r.host.writes.clear();
    // Memory + master + INTx disable pass; I/O space (bit 0) and bit 9 (fast back-to-back) do not.
    r.wr(ecam(2, 0, 0x04), 0x0607, 2);
    EXPECT_EQ(r.host.get(2, 0x04, 2), 0x0406u);
    EXPECT_EQ(r.v.refused_writes(), 1u);
    // A dword write: command filtered, status (write 1 to clear) passed as its own 16 bits.
    r.wr(ecam(2, 0, 0x04), 0x80000006);
    ASSERT_EQ(r.host.writes.size(), 3u);
    EXPECT_EQ(r.host.writes[2].off, 0x06);
    EXPECT_EQ(r.host.writes[2].bytes, 2u);
    EXPECT_EQ(r.host.writes[2].v, 0x8000u);
    r.host.writes.clear();
    // Identity, class, ROM, capability pointer, header type: not written.
    r.wr(ecam(2, 0, 0x00), 0x12345678);
    r.wr(ecam(2, 0, 0x08), 0);
    r.wr(ecam(2, 0, 0x30), 0xfffff801);
    r.wr(ecam(2, 0, 0x34), 0x80, 1);
    r.wr(ecam(2, 0, 0x0e), 0x81, 1);
    EXPECT_TRUE(r.host.writes.empty());
    EXPECT_EQ(r.rd(ecam(2, 0, 0x30)), 0u);
    // The interrupt line is the guest's scratch byte; the pin stays the device's.
    r.wr(ecam(2, 0, 0x3c), 0xff0025);
    EXPECT_EQ(r.rd(ecam(2, 0, 0x3c)), 0x00000125u);
    // Another function's config space (present on the host): ignored, never reaches it.
    r.wr(ecam(4, 0, 0x04), 0x6);
    r.wr(ecam(4, 0, 0x10), 0x40000000);
    EXPECT_TRUE(r.host.writes.empty());
    EXPECT_EQ(r.host.get(4, 0x04), 0u);
    // The function's own capability space passes through, at the width given.
    r.wr(ecam(2, 0, 0x42), 0xabcd, 2);
    ASSERT_EQ(r.host.writes.size(), 1u);
    EXPECT_EQ(r.host.writes[0].off, 0x42);
    EXPECT_EQ(r.host.writes[0].bytes, 2u);
}

TEST(VPci, MisalignedOrOddWidthAccessesAreRefusedForAnAbort) {
    Rig r;
    StrSink err;
    ASSERT_EQ(r.v.add({0, 0, 2, 0}, r.virtio, err), Status::ok);
    uint32_t v;
    EXPECT_FALSE(r.v.read(ecam(2, 0, 0x02), 4, v));
    EXPECT_FALSE(r.v.read(ecam(2, 0, 0x01), 2, v));
    EXPECT_FALSE(r.v.read(ecam(2, 0, 0x00), 8, v));
    EXPECT_FALSE(r.v.write(ecam(2, 0, 0x03), 2, 0));
    EXPECT_FALSE(r.v.read(VPci::kEcamSize, 4, v));  // past bus 0
    EXPECT_TRUE(r.host.writes.empty());
}

TEST(VPci, BridgesStrayBusesLoneFunctionsAndSharedPagesAreRefusedByName) {
    Rig r;
    StrSink err;
    pci::Bar none[6] = {};
    EXPECT_EQ(r.v.add({0, 0, 5, 0}, none, err), Status::denied);
    EXPECT_NE(err.text.find("vpci: 0000:00:05.0: header type 1: bridges are not assigned to guests"), std::string::npos) << err.text;
    EXPECT_EQ(r.v.add({0, 1, 0, 0}, none, err), Status::unsupported);
    EXPECT_NE(err.text.find("vpci: 0000:01:00.0: not on the root bus"), std::string::npos) << err.text;
    EXPECT_EQ(r.v.add({0, 0, 2, 1}, none, err), Status::invalid_argument);
    EXPECT_NE(err.text.find("vpci: 0000:00:02.1: function 0 of device 02 is not assigned first"), std::string::npos) << err.text;
    pci::Bar odd[6] = {};
    odd[0] = {0x10000800, 0x800, false, false};
    EXPECT_EQ(r.v.add({0, 0, 3, 0}, odd, err), Status::invalid_argument);
    EXPECT_NE(err.text.find("BAR0 [0x10000800, +0x800) does not start a page"), std::string::npos) << err.text;
    EXPECT_EQ(r.v.count(), 0u);
    ASSERT_EQ(r.v.add({0, 0, 2, 0}, r.virtio, err), Status::ok);
    EXPECT_EQ(r.v.add({0, 0, 2, 0}, r.virtio, err), Status::in_use);
}

// Each refusal is recorded for moat's report: the function, offset, width and value the guest
// wrote, and what stays; writes to functions the guest was not given are recorded as ignored.
// Linux's own sizing of the (unimplemented) ROM and its latency-timer write are not refusals.
TEST(VPci, RefusalsAreRecordedWithFunctionOffsetAndWhatStays) {
    Rig r;
    StrSink err;
    ASSERT_EQ(r.v.add({0, 0, 2, 0}, r.virtio, err), Status::ok);
    ASSERT_EQ(r.v.add({0, 0, 3, 0}, r.edu, err), Status::ok);
    auto said = [&] {
        StrSink s;
        VPci::describe(r.v.last_refusal(), 0, 0, s);
        return s.text;
    };
    r.wr(ecam(2, 0, 0x30), 0xfffff800);
    r.wr(ecam(2, 0, 0x30), 0);
    r.wr(ecam(2, 0, 0x0d), 0x40, 1);
    EXPECT_EQ(r.v.refusals(), 0u);
    r.wr(ecam(3, 0, 0x10), 0x20000000);
    EXPECT_EQ(r.v.refusals(), 1u);
    EXPECT_EQ(said(), "config write to 0000:00:03.0 offset 0x010 (4 bytes, 0x20000000) refused: BAR0 stays at 0x10100000, where moat placed it");
    r.wr(ecam(2, 0, 0x24), 0x1);
    EXPECT_EQ(said(), "config write to 0000:00:02.0 offset 0x024 (4 bytes, 0x1) refused: the high half of BAR4 stays 0x0 (BAR at 0x10004000, where moat placed it)");
    r.wr(ecam(3, 0, 0x04), 0x0201, 2);
    EXPECT_EQ(said(), "config write to 0000:00:03.0 offset 0x004 (2 bytes, 0x201) filtered: command bits 0x201 are not the guest's (memory, bus master, parity, SERR, INTx disable are)");
    r.wr(ecam(3, 0, 0x0e), 0x80, 1);
    EXPECT_EQ(said(), "config write to 0000:00:03.0 offset 0x00e (1 bytes, 0x80) refused: read-only to the guest");
    EXPECT_EQ(r.v.refused_writes(), 4u);
    r.wr(ecam(4, 0, 0x10), 0x10100000);
    EXPECT_EQ(said(), "config write to 0000:00:04.0 offset 0x010 (4 bytes, 0x10100000) ignored: no function of the guest's there");
    r.wr(ecam(3, 1, 0x04), 0x6, 2);
    EXPECT_EQ(said(), "config write to 0000:00:03.1 offset 0x004 (2 bytes, 0x6) ignored: no function of the guest's there");
    EXPECT_EQ(r.v.absent_writes(), 2u);
    EXPECT_EQ(r.v.refusals(), 6u);
    // Accepted writes leave the record alone: the caller reports only when the count moved.
    r.wr(ecam(3, 0, 0x04), 0x6, 2);
    EXPECT_EQ(r.v.refusals(), 6u);
    EXPECT_EQ(r.host.get(4, 0x10), 0u);  // nothing reached the unassigned function
}

}  // namespace
