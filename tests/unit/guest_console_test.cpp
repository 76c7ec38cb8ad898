// The emulated guest console: a guest's output is marked as the guest's, line by line, and
// cannot produce a line that starts like one of moat's, nor rewrite one with control characters.
#include <gtest/gtest.h>

#include <string>

#include "hyp/guest_console.hpp"

using namespace moat;

namespace {
struct StrSink final : Sink {
    void write(const char* s, size_t n) override { text.append(s, n); }
    std::string text;
};
void say(hyp::GuestConsole& c, const std::string& s) {
    for (char ch : s) c.write(hyp::GuestConsole::kDr, static_cast<uint8_t>(ch));
}
}  // namespace

TEST(GuestConsole, EveryLineOfTheGuestIsPrefixedWithItsDomain) {
    StrSink out;
    hyp::GuestConsole c(1, out);
    say(c, "moat: all checks passed; exit 0\nguest: hello\n");
    EXPECT_EQ(out.text, "(d1) moat: all checks passed; exit 0\n(d1) guest: hello\n");
}

TEST(GuestConsole, ControlCharactersCannotRewriteALine) {
    StrSink out;
    hyp::GuestConsole c(2, out);
    say(c, "x\rmoat: forged\x1b[2K\n");
    EXPECT_EQ(out.text, "(d2) xmoat: forged.[2K\n");
    EXPECT_EQ(out.text.find('\r'), std::string::npos);
}

TEST(GuestConsole, LongLinesAreCutAndThePl011LooksIdle) {
    StrSink out;
    hyp::GuestConsole c(1, out);
    say(c, std::string(hyp::GuestConsole::kLine + 3, 'a'));
    EXPECT_TRUE(c.pending());
    c.flush();
    EXPECT_EQ(out.text, "(d1) " + std::string(hyp::GuestConsole::kLine, 'a') + "\n(d1) aaa\n");
    EXPECT_EQ(c.read(hyp::GuestConsole::kFr) & (1u << 5), 0u);  // TXFF clear: the guest never waits
    c.write(0x30, 0x301);  // CR: ignored
    EXPECT_EQ(c.read(0x30), 0u);
}
