// The ACPI reader against tables built here byte by byte: the good layouts QEMU and SeaBIOS
// produce (RSDP 1.0 + RSDT, RSDP 2.0 + XSDT), and each bad case a firmware or an attacker can
// hand over, each refused naming the table and the byte offset at fault.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/acpi.hpp"

using namespace moat;
using namespace moat::acpi;

namespace {

constexpr uint64_t kBase = 0x1000000;  // the window's physical base in these tests
constexpr uint64_t kRsdp = kBase + 0x100;
constexpr uint64_t kRoot = kBase + 0x1000;
constexpr uint64_t kMcfg = kBase + 0x2000;
constexpr uint64_t kApic = kBase + 0x3000;

class CaptureSink final : public Sink {
public:
    void write(const char* s, size_t n) override { text.append(s, n); }
    std::string text;
};

// Physical memory [kBase, kBase + size) as a byte vector, with helpers that write tables.
struct Firmware {
    std::vector<uint8_t> mem = std::vector<uint8_t>(0x10000);
    PhysWindow window() const { return {kBase, mem.size(), reinterpret_cast<uintptr_t>(mem.data())}; }
    uint8_t* at(uint64_t pa) { return mem.data() + (pa - kBase); }
    void put(uint64_t pa, uint64_t v, unsigned bytes) {
        for (unsigned i = 0; i < bytes; i++) at(pa)[i] = static_cast<uint8_t>(v >> (8 * i));
    }
    static uint8_t sum(const uint8_t* p, size_t n) {
        uint8_t s = 0;
        for (size_t i = 0; i < n; i++) s = static_cast<uint8_t>(s + p[i]);
        return s;
    }
    void fix(uint64_t pa, size_t n, size_t cks) {
        at(pa)[cks] = 0;
        at(pa)[cks] = static_cast<uint8_t>(-sum(at(pa), n));
    }
    // A table header of `len` bytes (body zero), checksum fixed.
    void header(uint64_t pa, const char* sig, uint32_t len) {
        __builtin_memcpy(at(pa), sig, 4);
        put(pa + 4, len, 4);
        at(pa)[8] = 1;
        __builtin_memcpy(at(pa) + 10, "MOATTS", 6);
        fix(pa, len, 9);
    }
    void rsdp(unsigned rev, uint64_t root) {
        __builtin_memcpy(at(kRsdp), "RSD PTR ", 8);
        __builtin_memcpy(at(kRsdp) + 9, "BOCHS ", 6);
        at(kRsdp)[15] = static_cast<uint8_t>(rev);
        if (rev >= 2) {
            put(kRsdp + 16, 0, 4);
            put(kRsdp + 20, 36, 4);
            put(kRsdp + 24, root, 8);
            fix(kRsdp, 20, 8);
            fix(kRsdp, 36, 32);
        } else {
            put(kRsdp + 16, root, 4);
            fix(kRsdp, 20, 8);
        }
    }
    // A root table listing `tables` (XSDT: 8-byte entries, RSDT: 4).
    void root(bool xsdt, std::vector<uint64_t> tables) {
        unsigned esz = xsdt ? 8 : 4;
        uint32_t len = static_cast<uint32_t>(36 + esz * tables.size());
        for (size_t i = 0; i < tables.size(); i++) put(kRoot + 36 + esz * i, tables[i], esz);
        header(kRoot, xsdt ? "XSDT" : "RSDT", len);
    }
    // MCFG with the given (base, segment, start, end) entries.
    void mcfg(std::vector<McfgEntry> es) {
        uint32_t len = static_cast<uint32_t>(44 + 16 * es.size());
        for (size_t i = 0; i < es.size(); i++) {
            uint64_t e = kMcfg + 44 + 16 * i;
            put(e, es[i].base, 8);
            put(e + 8, es[i].segment, 2);
            at(e)[10] = es[i].bus_start;
            at(e)[11] = es[i].bus_end;
        }
        header(kMcfg, "MCFG", len);
    }
    // The q35 layout: RSDP, root, MCFG (segment 0, buses 0-255 at 0xb0000000), an APIC.
    void q35(unsigned rev) {
        mcfg({{0xb0000000, 0, 0, 255}});
        header(kApic, "APIC", 44);
        root(rev >= 2, {kMcfg, kApic});
        rsdp(rev, kRoot);
    }
};

std::string why_of(Firmware& f, Status expect = Status::bad_acpi) {
    Tables t;
    CaptureSink report;
    Why why;
    EXPECT_EQ(t.open(f.window(), kRsdp, report, why), expect);
    return why.text();
}

bool has(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

TEST(Acpi, ReadsRsdtTablesOfAnAcpi10Rsdp) {
    Firmware f;
    f.q35(0);
    Tables t;
    CaptureSink report;
    Why why;
    ASSERT_EQ(t.open(f.window(), kRsdp, report, why), Status::ok) << why.text();
    EXPECT_STREQ(t.root_name(), "RSDT");
    EXPECT_EQ(t.root_pa(), kRoot);
    EXPECT_STREQ(t.oem, "BOCHS ");
    ASSERT_EQ(t.count(), 2u);
    EXPECT_EQ(t.skipped(), 0u);
    const Table* m = t.find("MCFG");
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->pa, kMcfg);
    EXPECT_EQ(m->length, 60u);
    EXPECT_EQ(t.find("DMAR"), nullptr);
    McfgEntry e[kMaxMcfg];
    unsigned n;
    ASSERT_EQ(parse_mcfg(*m, e, kMaxMcfg, n, why), Status::ok) << why.text();
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(e[0].window(), 0xb0000000u);
    EXPECT_EQ(e[0].size(), 256 * MiB);
    EXPECT_TRUE(report.text.empty());
}

TEST(Acpi, PrefersTheXsdtOfARevision2Rsdp) {
    Firmware f;
    f.q35(2);
    Tables t;
    CaptureSink report;
    Why why;
    ASSERT_EQ(t.open(f.window(), kRsdp, report, why), Status::ok) << why.text();
    EXPECT_STREQ(t.root_name(), "XSDT");
    EXPECT_EQ(t.rsdp_revision(), 2u);
    EXPECT_NE(t.find("APIC"), nullptr);
    EXPECT_NE(t.find("MCFG"), nullptr);
}

TEST(Acpi, RefusesAnRsdpWithoutItsSignature) {
    Firmware f;
    f.q35(0);
    f.at(kRsdp)[0] = 'X';
    EXPECT_TRUE(has(why_of(f), "RSDP at 0x1000100: offset 0: no \"RSD PTR \" signature"));
}

TEST(Acpi, RefusesAnRsdpWhoseChecksumIsWrong) {
    Firmware f;
    f.q35(0);
    f.at(kRsdp)[8] ^= 1;
    EXPECT_TRUE(has(why_of(f), "RSDP at 0x1000100: offset 8: checksum of the first 20 bytes"));
}

TEST(Acpi, RefusesARevision2RsdpWhoseExtendedChecksumIsWrong) {
    Firmware f;
    f.q35(2);
    f.at(kRsdp)[32] ^= 1;
    EXPECT_TRUE(has(why_of(f), "RSDP at 0x1000100: offset 32: extended checksum"));
}

TEST(Acpi, RefusesARevision2RsdpWithAShortLength) {
    Firmware f;
    f.q35(2);
    f.put(kRsdp + 20, 20, 4);
    f.fix(kRsdp, 20, 8);
    EXPECT_TRUE(has(why_of(f), "RSDP at 0x1000100: offset 20: length 20"));
}

TEST(Acpi, RefusesAnRsdpOutsideTheWindow) {
    Firmware f;
    Tables t;
    CaptureSink report;
    Why why;
    EXPECT_EQ(t.open(f.window(), kBase + f.mem.size() - 8, report, why), Status::bad_acpi);
    EXPECT_TRUE(has(why.text(), "offset 0: outside the"));
    EXPECT_EQ(t.open(f.window(), 0x1000, report, why), Status::bad_acpi);
}

TEST(Acpi, RefusesARootTableWhoseChecksumIsWrong) {
    Firmware f;
    f.q35(2);
    f.at(kRoot + 36)[0] ^= 0x40;  // an entry changes, the checksum no longer holds
    EXPECT_TRUE(has(why_of(f), "XSDT at 0x1001000: offset 9: checksum"));
}

TEST(Acpi, RefusesARootTableWithAPartialEntry) {
    Firmware f;
    f.q35(2);
    f.put(kRoot + 4, 36 + 8 + 4, 4);
    f.fix(kRoot, 36 + 8 + 4, 9);
    EXPECT_TRUE(has(why_of(f), "XSDT at 0x1001000: offset 4: length 48 leaves a partial 8-byte entry"));
}

TEST(Acpi, RefusesARootTableThatRunsPastTheWindow) {
    Firmware f;
    f.q35(0);
    f.put(kRoot + 4, 0x20000, 4);
    EXPECT_TRUE(has(why_of(f), "RSDT at 0x1001000: offset 4: length 131072 runs past the end"));
}

TEST(Acpi, RefusesARootTableWithAnotherSignature) {
    Firmware f;
    f.q35(0);
    __builtin_memcpy(f.at(kRoot), "RSDX", 4);
    EXPECT_TRUE(has(why_of(f), "RSDT at 0x1001000: offset 0: signature is \"RSDX\""));
}

TEST(Acpi, SkipsAListedTableWhoseChecksumIsWrongAndKeepsTheOthers) {
    Firmware f;
    f.q35(2);
    f.at(kMcfg + 44)[0] ^= 0x10;
    Tables t;
    CaptureSink report;
    Why why;
    ASSERT_EQ(t.open(f.window(), kRsdp, report, why), Status::ok) << why.text();
    EXPECT_EQ(t.find("MCFG"), nullptr);
    EXPECT_NE(t.find("APIC"), nullptr);
    EXPECT_EQ(t.skipped(), 1u);
    EXPECT_TRUE(has(report.text, "acpi: XSDT entry 0 (offset 36): MCFG at 0x1002000: offset 9: checksum")) << report.text;
}

TEST(Acpi, SkipsAListedTableOutsideTheWindowOrTooShort) {
    Firmware f;
    f.q35(2);
    f.root(true, {0xdead0000, kApic, kMcfg});
    f.put(kMcfg + 4, 20, 4);  // shorter than a header
    f.fix(kMcfg, 20, 9);
    f.rsdp(2, kRoot);
    Tables t;
    CaptureSink report;
    Why why;
    ASSERT_EQ(t.open(f.window(), kRsdp, report, why), Status::ok) << why.text();
    EXPECT_EQ(t.count(), 1u);
    EXPECT_EQ(t.skipped(), 2u);
    EXPECT_TRUE(has(report.text, "entry 0 (offset 36): table at 0xdead0000: offset 0: its header lies outside")) << report.text;
    EXPECT_TRUE(has(report.text, "entry 2 (offset 52): MCFG at 0x1002000: offset 4: length 20 is shorter than the 36 bytes"))
        << report.text;
}

TEST(Acpi, ReadTableChecksTheSignatureAndTheLengthItMustHold) {
    Firmware f;
    f.q35(0);
    Table t;
    Why why;
    EXPECT_EQ(read_table(f.window(), kMcfg, "DMAR", 48, t, why), Status::bad_acpi);
    EXPECT_TRUE(has(why.text(), "DMAR at 0x1002000: offset 0: signature is \"MCFG\""));
    EXPECT_EQ(read_table(f.window(), kApic, "APIC", 48, t, why), Status::bad_acpi);
    EXPECT_TRUE(has(why.text(), "APIC at 0x1003000: offset 4: length 44 is shorter than the 48 bytes"));
    f.put(kApic + 4, kMaxTableSize + 1, 4);
    EXPECT_EQ(read_table(f.window(), kApic, "APIC", 36, t, why), Status::bad_acpi);
    EXPECT_TRUE(has(why.text(), "offset 4: length 1048577 is beyond"));
}

Status mcfg_of(Firmware& f, Why& why, unsigned& n, unsigned max = kMaxMcfg) {
    Table t;
    EXPECT_EQ(read_table(f.window(), kMcfg, "MCFG", 36, t, why), Status::ok) << why.text();
    McfgEntry e[kMaxMcfg];
    return parse_mcfg(t, e, max, n, why);
}

TEST(Acpi, RefusesMcfgEntriesThatAreNotWhole) {
    Firmware f;
    f.mcfg({{0xb0000000, 0, 0, 255}});
    f.put(kMcfg + 4, 44 + 12, 4);
    f.fix(kMcfg, 44 + 12, 9);
    Why why;
    unsigned n;
    EXPECT_EQ(mcfg_of(f, why, n), Status::bad_acpi);
    EXPECT_TRUE(has(why.text(), "MCFG at 0x1002000: offset 44: 12 bytes of entries are not whole 16-byte entries"));
}

TEST(Acpi, RefusesAnMcfgShorterThanItsHeader) {
    Firmware f;
    f.header(kMcfg, "MCFG", 40);
    Why why;
    unsigned n;
    EXPECT_EQ(mcfg_of(f, why, n), Status::bad_acpi);
    EXPECT_TRUE(has(why.text(), "MCFG at 0x1002000: offset 4: length 40 is shorter than its 44-byte header"));
}

TEST(Acpi, RefusesAReversedBusRangeNamingItsOffset) {
    Firmware f;
    f.mcfg({{0xb0000000, 0, 0, 255}, {0xc0000000, 1, 9, 3}});
    Why why;
    unsigned n;
    EXPECT_EQ(mcfg_of(f, why, n), Status::bad_acpi);
    EXPECT_TRUE(has(why.text(), "MCFG at 0x1002000: offset 70: bus range 9-3 ends before it starts")) << why.text();
}

TEST(Acpi, RefusesAnUnalignedOrWrappingEcamWindow) {
    Firmware f;
    f.mcfg({{0xb0001000, 0, 0, 255}});
    Why why;
    unsigned n;
    EXPECT_EQ(mcfg_of(f, why, n), Status::bad_acpi);
    EXPECT_TRUE(has(why.text(), "offset 44: ECAM base 0xb0001000 is not 1 MiB aligned"));
    f.mcfg({{0xfffffffffff00000ull, 0, 0, 1}});
    EXPECT_EQ(mcfg_of(f, why, n), Status::bad_acpi);
    EXPECT_TRUE(has(why.text(), "offset 44: ECAM window of base 0xfffffffffff00000 up to bus 1 wraps"));
}

TEST(Acpi, MoreEcamWindowsThanRoomIsNoSpace) {
    Firmware f;
    f.mcfg({{0xb0000000, 0, 0, 0}, {0xc0000000, 1, 0, 0}});
    Why why;
    unsigned n;
    EXPECT_EQ(mcfg_of(f, why, n, 1), Status::no_space);
    EXPECT_TRUE(has(why.text(), "offset 60: more than 1 ECAM windows"));
    EXPECT_EQ(mcfg_of(f, why, n, 2), Status::ok);
    EXPECT_EQ(n, 2u);
}

TEST(Acpi, AWindowMapsOnlyWhatLiesWhollyInside) {
    std::vector<uint8_t> b(64);
    PhysWindow w{0x1000, 64, reinterpret_cast<uintptr_t>(b.data())};
    EXPECT_EQ(w.map(0x1000, 64), b.data());
    EXPECT_EQ(w.map(0x1020, 32), b.data() + 32);
    EXPECT_EQ(w.map(0x1020, 33), nullptr);
    EXPECT_EQ(w.map(0xfff, 1), nullptr);
    EXPECT_EQ(w.map(0x1001, ~0ull), nullptr);
    EXPECT_EQ(w.map(~0ull, 2), nullptr);
}

}  // namespace
