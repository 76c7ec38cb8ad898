// The DMAR parser on hand-built tables: QEMU's shape (one INCLUDE_PCI_ALL unit), a two-unit
// table with an RMRR, the structures it skips, and each bad case the issue names (checksum,
// truncation, a scope overrunning its structure) plus the other bounds it checks.
#include <gtest/gtest.h>

#include <string.h>

#include <vector>

#include "common/acpi_dmar.hpp"

using namespace moat;
using namespace moat::acpi;

namespace {

struct Builder {
    std::vector<uint8_t> b;
    explicit Builder(uint8_t haw_minus_1 = 38) {
        b.assign(48, 0);
        memcpy(b.data(), "DMAR", 4);
        b[8] = 1;  // revision
        memcpy(b.data() + 10, "MOATTS", 6);
        b[36] = haw_minus_1;
        b[37] = dmar::kFlagIntrRemap;
    }
    void le(size_t at, uint64_t v, unsigned n) {
        for (unsigned i = 0; i < n; i++) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
    }
    void put(uint64_t v, unsigned n) {
        size_t at = b.size();
        b.resize(at + n);
        le(at, v, n);
    }
    size_t begin(uint16_t type) {
        size_t at = b.size();
        put(type, 2);
        put(0, 2);
        return at;
    }
    void end(size_t at) { le(at + 2, b.size() - at, 2); }
    void drhd(uint64_t base, bool all, uint16_t seg = 0) {
        put(all ? dmar::kDrhdIncludePciAll : 0, 1);
        put(0, 1);
        put(seg, 2);
        put(base, 8);
    }
    void rmrr(uint64_t base, uint64_t limit) {
        put(0, 2);
        put(0, 2);
        put(base, 8);
        put(limit, 8);
    }
    void scope(uint8_t type, uint8_t bus, std::vector<std::pair<uint8_t, uint8_t>> path) {
        put(type, 1);
        put(6 + 2 * path.size(), 1);
        put(0, 2);
        put(0, 1);
        put(bus, 1);
        for (auto& p : path) put(p.first, 1), put(p.second, 1);
    }
    std::vector<uint8_t>& done() {
        le(4, b.size(), 4);
        b[9] = 0;
        uint8_t sum = 0;
        for (uint8_t c : b) sum = static_cast<uint8_t>(sum + c);
        b[9] = static_cast<uint8_t>(-sum);
        return b;
    }
};

Status parse(const std::vector<uint8_t>& t, Dmar& d, Why& why, size_t len = 0) {
    return parse_dmar(t.data(), len ? len : t.size(), d, why);
}

TEST(AcpiDmar, QemuShapeOneIncludeAllUnit) {
    Builder t;
    size_t s = t.begin(dmar::kDrhd);
    t.drhd(0xfed90000, true);
    t.end(s);
    Dmar d;
    Why why;
    ASSERT_EQ(parse(t.done(), d, why), Status::ok) << why.text();
    EXPECT_EQ(d.haw, 39u);
    ASSERT_EQ(d.ndrhd, 1u);
    EXPECT_EQ(d.drhd[0].base, 0xfed90000u);
    EXPECT_TRUE(d.drhd[0].include_all);
    EXPECT_EQ(d.drhd[0].offset, 48u);
    EXPECT_EQ(d.unit_for(0, 0x0010), &d.drhd[0]) << "edu at 00:02.0 falls under INCLUDE_PCI_ALL";
    EXPECT_EQ(d.unit_for(1, 0x0010), nullptr) << "another segment has no unit";
}

TEST(AcpiDmar, ScopedUnitsRmrrAndSkippedStructures) {
    Builder t;
    size_t s = t.begin(dmar::kDrhd);
    t.drhd(0xfed91000, false);
    t.scope(dmar::kScopeEndpoint, 0, {{2, 0}});
    t.scope(dmar::kScopeBridge, 0, {{0x1c, 0}, {0, 0}});
    t.end(s);
    s = t.begin(dmar::kDrhd);
    t.drhd(0xfed90000, true);
    t.scope(dmar::kScopeIoapic, 0xf0, {{0x1f, 7}});
    t.end(s);
    s = t.begin(dmar::kRmrr);
    t.rmrr(0x7d000000, 0x7d7fffff);
    t.scope(dmar::kScopeEndpoint, 0, {{0x14, 0}});
    t.end(s);
    s = t.begin(dmar::kAtsr);
    t.put(0, 4);
    t.end(s);
    s = t.begin(dmar::kSatc);
    t.put(0, 4);
    t.end(s);
    Dmar d;
    Why why;
    ASSERT_EQ(parse(t.done(), d, why), Status::ok) << why.text();
    ASSERT_EQ(d.ndrhd, 2u);
    EXPECT_EQ(d.drhd[0].nscopes, 2u);
    EXPECT_EQ(d.scopes[d.drhd[0].first_scope + 1].npath, 2u);
    EXPECT_EQ(d.unit_for(0, 0x0010), &d.drhd[0]) << "named by the first unit's scope";
    EXPECT_EQ(d.unit_for(0, 0x00a0), &d.drhd[1]) << "everything else: INCLUDE_PCI_ALL";
    ASSERT_EQ(d.nrmrr, 1u);
    EXPECT_EQ(d.rmrr[0].base, 0x7d000000u);
    EXPECT_EQ(d.rmrr[0].limit, 0x7d7fffffu);
    EXPECT_TRUE(d.rmrr_names(d.rmrr[0], 0x00a0));
    EXPECT_FALSE(d.rmrr_names(d.rmrr[0], 0x0010));
    EXPECT_EQ(d.skipped_atsr, 1u);
    EXPECT_EQ(d.skipped_satc, 1u);
}

// Each bad case: refused, `why` names DMAR and the offset, nothing is left in the result.
void expect_bad(const std::vector<uint8_t>& t, const char* offset, const char* what, size_t len = 0) {
    Dmar d;
    d.ndrhd = 3;
    Why why;
    EXPECT_EQ(parse(t, d, why, len), Status::invalid_argument);
    EXPECT_NE(strstr(why.text(), "DMAR: offset "), nullptr) << why.text();
    EXPECT_NE(strstr(why.text(), offset), nullptr) << why.text();
    EXPECT_NE(strstr(why.text(), what), nullptr) << why.text();
    EXPECT_EQ(d.ndrhd, 0u);
    EXPECT_EQ(d.nrmrr, 0u);
}

Builder one_unit() {
    Builder t;
    size_t s = t.begin(dmar::kDrhd);
    t.drhd(0xfed90000, false);
    t.scope(dmar::kScopeEndpoint, 0, {{2, 0}});
    t.end(s);
    return t;
}

TEST(AcpiDmar, BadChecksum) {
    Builder t = one_unit();
    std::vector<uint8_t> b = t.done();
    b[60] ^= 0x40;
    expect_bad(b, "offset 9:", "checksum");
}

TEST(AcpiDmar, Truncated) {
    Builder t = one_unit();
    std::vector<uint8_t> b = t.done();
    expect_bad(b, "offset 4:", "truncated", b.size() - 1);
    expect_bad(b, "offset 0:", "48-byte DMAR header", 40);
}

TEST(AcpiDmar, ScopeOverrunsItsStructure) {
    Builder t;
    size_t s = t.begin(dmar::kDrhd);
    t.drhd(0xfed90000, false);
    t.scope(dmar::kScopeEndpoint, 0, {{2, 0}});
    t.end(s);
    t.b[s + 2] = 16 + 6;  // the DRHD now ends inside its scope
    t.b.resize(s + 16 + 6);
    expect_bad(t.done(), "offset 64:", "overruns its structure");
}

TEST(AcpiDmar, OtherBounds) {
    {  // a structure longer than what is left of the table
        Builder t = one_unit();
        t.b[48 + 2] = 200;
        expect_bad(t.done(), "offset 50:", "overruns the table");
    }
    {  // a structure shorter than its fixed fields (and a zero length cannot loop)
        Builder t = one_unit();
        t.b[48 + 2] = 0;
        expect_bad(t.done(), "offset 50:", "fixed fields");
    }
    {  // a scope shorter than one hop
        Builder t;
        size_t s = t.begin(dmar::kDrhd);
        t.drhd(0xfed90000, false);
        t.scope(dmar::kScopeEndpoint, 0, {});
        t.end(s);
        expect_bad(t.done(), "offset 64:", "below the 8 bytes");
    }
    {  // half a path entry
        Builder t;
        size_t s = t.begin(dmar::kDrhd);
        t.drhd(0xfed90000, false);
        t.scope(dmar::kScopeEndpoint, 0, {{2, 0}});
        t.put(0, 1);
        t.end(s);
        t.b[64 + 1] = 9;
        expect_bad(t.done(), "offset 64:", "half a path entry");
    }
    {  // an unaligned register base
        Builder t;
        size_t s = t.begin(dmar::kDrhd);
        t.drhd(0xfed90010, true);
        t.end(s);
        expect_bad(t.done(), "offset 56:", "register base");
    }
    {  // two INCLUDE_PCI_ALL units on one segment
        Builder t;
        size_t s = t.begin(dmar::kDrhd);
        t.drhd(0xfed90000, true);
        t.end(s);
        s = t.begin(dmar::kDrhd);
        t.drhd(0xfed91000, true);
        t.end(s);
        expect_bad(t.done(), "offset 68:", "second INCLUDE_PCI_ALL");
    }
    {  // an RMRR whose limit does not end a page, and one naming no device
        Builder t;
        size_t s = t.begin(dmar::kRmrr);
        t.rmrr(0x7d000000, 0x7d000ffe);
        t.scope(dmar::kScopeEndpoint, 0, {{0x14, 0}});
        t.end(s);
        expect_bad(t.done(), "offset 64:", "RMRR limit");
        Builder u;
        s = u.begin(dmar::kRmrr);
        u.rmrr(0x7d000000, 0x7d000fff);
        u.end(s);
        expect_bad(u.done(), "offset 48:", "names no device");
    }
    {  // not a DMAR at all
        Builder t = one_unit();
        std::vector<uint8_t> b = t.done();
        memcpy(b.data(), "APIC", 4);
        expect_bad(b, "offset 0:", "signature");
    }
    {  // a device path entry that is no PCI function
        Builder t;
        size_t s = t.begin(dmar::kDrhd);
        t.drhd(0xfed90000, false);
        t.scope(dmar::kScopeEndpoint, 0, {{40, 0}});
        t.end(s);
        expect_bad(t.done(), "offset 70:", "no PCI device");
    }
}

}  // namespace
