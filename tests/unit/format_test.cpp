#include <gtest/gtest.h>

#include <string>

#include "arch/arm64/esr.hpp"
#include "common/fault_log.hpp"
#include "common/format.hpp"

using namespace moat;

namespace {

std::string fmt(const char* f, uint64_t v) {
    char buf[64];
    format_to(buf, sizeof buf, f, v);
    return buf;
}

TEST(Format, IntegersWidthsAndFlags) {
    EXPECT_EQ(fmt("%lx", 0xdeadbeefull), "deadbeef");
    EXPECT_EQ(fmt("0x%010lx", 0x9050000ull), "0x0009050000");
    EXPECT_EQ(fmt("%lu", 18446744073709551615ull), "18446744073709551615");
    EXPECT_EQ(fmt("[%6lu]", 42ull), "[    42]");
    EXPECT_EQ(fmt("[%-6lu]", 42ull), "[42    ]");
    char buf[32];
    format_to(buf, sizeof buf, "%d %i %s %c %%", -7, 0, "ok", 'x');
    EXPECT_STREQ(buf, "-7 0 ok x %");
    format_to(buf, sizeof buf, "%ld", int64_t{INT64_MIN});
    EXPECT_STREQ(buf, "-9223372036854775808");
}

TEST(Format, BufferSinkTruncatesAndTerminates) {
    char buf[8];
    size_t n = format_to(buf, sizeof buf, "%s", "a long string");
    EXPECT_EQ(n, 7u);
    EXPECT_STREQ(buf, "a long ");
}

TEST(Esr, DecodesDataAborts) {
    // EC 0x25 (data abort, same EL), WnR = 0, DFSC 0x04 (translation fault, level 0)
    uint64_t esr = (0x25ull << 26) | (1ull << 25) | 0x04;
    EXPECT_STREQ(arch::esr::class_name(esr), "data abort at the same EL");
    EXPECT_TRUE(arch::esr::is_abort(esr));
    EXPECT_STREQ(arch::esr::fault_status(esr), "translation fault");
    EXPECT_EQ(arch::esr::fault_level(esr), 0u);
    EXPECT_FALSE(arch::esr::is_write(esr));
    EXPECT_TRUE(arch::esr::is_write(esr | (1u << 6)));
    EXPECT_STREQ(arch::esr::fault_status((0x24ull << 26) | 0x0f), "permission fault");
    EXPECT_STREQ(arch::esr::fault_status((0x24ull << 26) | 0x21), "alignment fault");
    EXPECT_STREQ(arch::esr::class_name(0x16ull << 26), "HVC from AArch64");
    EXPECT_FALSE(arch::esr::is_abort(0x16ull << 26));
}

}  // namespace

// The fault log's report: each record printed as it comes, at most `burst` per window, one line
// for the rest, and a stream past the quarantine bound asked for once.
TEST(FaultLogReport, RateLimitedWithOneLineForTheRestAndQuarantineAskedOnce) {
    struct S final : Sink {
        std::string text;
        void write(const char* s, size_t n) override { text.append(s, n); }
    } out;
    FaultLog log;
    log.report_to(&out, "> ", ReportPolicy{3, ~0ull / 2, 5});
    for (unsigned i = 0; i < 10; i++) log.record(FaultRecord{"smmu", 7, 0x1000 + i, FaultKind::translation, true, 0x10, "F_TRANSLATION"});
    log.record(FaultRecord{"smmu", 9, 0x2000, FaultKind::permission, false, 0x13, "F_PERMISSION"});
    EXPECT_EQ(log.reported(), 3u);
    EXPECT_EQ(log.flush_suppressed(), 8u);
    EXPECT_EQ(log.flush_suppressed(), 0u);  // said once
    Quarantine q{};
    ASSERT_TRUE(log.quarantine(q));
    EXPECT_STREQ(q.iommu, "smmu");
    EXPECT_EQ(q.stream, 7u);
    EXPECT_EQ(q.faults, 5u);
    EXPECT_FALSE(log.quarantine(q));  // stream 9 stayed below the bound, stream 7 is asked once
    size_t lines = 0;
    for (char c : out.text) lines += c == '\n';
    EXPECT_EQ(lines, 5u) << out.text;  // 3 faults, the quarantine, the suppressed count
    EXPECT_NE(out.text.find("> fault: smmu stream 0x7 write at 0x1000: translation fault (F_TRANSLATION, code 0x10)\n"),
              std::string::npos);
    EXPECT_NE(out.text.find("> fault: smmu stream 0x7: 5 faults in one window; quarantine asked by policy\n"), std::string::npos);
    EXPECT_NE(out.text.find("> fault: 8 more faults suppressed"), std::string::npos) << out.text;
    EXPECT_EQ(log.total(), 11u);
}
