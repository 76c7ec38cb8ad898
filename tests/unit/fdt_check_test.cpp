// The structural pre-check (common/fdt_check.*): every hostile tree saved in tests/dt/hostile
// (the red team's inputs and fuzzer timeouts/crashes) is refused before libfdt sees it, and the
// trees moat really boots with pass.
#include <gtest/gtest.h>
#include <libfdt.h>

#include <dirent.h>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/fdt.hpp"
#include "common/fdt_check.hpp"
#include "dt_fixture.hpp"

using namespace moat;

namespace {

std::vector<uint8_t> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<std::string> hostile_files() {
    std::vector<std::string> out;
    const char* dir = "tests/dt/hostile";
    if (DIR* d = opendir(dir)) {
        while (dirent* e = readdir(d))
            if (e->d_name[0] != '.' && std::strcmp(e->d_name, "make.py") != 0) out.push_back(std::string(dir) + "/" + e->d_name);
        closedir(d);
    }
    return out;
}

void put32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
    for (unsigned i = 0; i < 4; i++) b[off + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
uint32_t get32(const std::vector<uint8_t>& b, size_t off) {
    return uint32_t{b[off]} << 24 | uint32_t{b[off + 1]} << 16 | uint32_t{b[off + 2]} << 8 | b[off + 3];
}

std::vector<uint8_t> topology() {
    auto words = load_dtb("topology");
    const auto* p = reinterpret_cast<const uint8_t*>(words.data());
    return {p, p + dtb_bytes(words)};
}

// Offset of the first FDT_PROP token of the structure block.
size_t first_prop(const std::vector<uint8_t>& b) {
    size_t off = get32(b, 8);
    while (get32(b, off) != 3) off += 4;
    return off;
}

}  // namespace

TEST(FdtCheck, EverySavedHostileTreeIsRefusedByTheToolPathAndTheImagePath) {
    auto files = hostile_files();
    ASSERT_GE(files.size(), 2u) << "run from the repository root";
    for (const auto& f : files) {
        auto blob = read_file(f);
        Why why;
        EXPECT_EQ(dt::check_structure(blob.data(), blob.size(), why), Status::bad_dt) << f;
        dt::Tree t;
        EXPECT_EQ(t.open(blob.data(), blob.size()), Status::bad_dt) << f;
        EXPECT_EQ(t.blob(), nullptr);
    }
}

TEST(FdtCheck, APropertyLengthPastTheBlockIsRefusedNotLooped) {
    auto blob = read_file("tests/dt/hostile/prop_len_fffffff4.dtb");
    ASSERT_FALSE(blob.empty());
    dt::Tree t;
    EXPECT_EQ(t.open(blob.data(), blob.size()), Status::bad_dt);
    EXPECT_NE(std::string(t.error()).find("has length 0xfffffff4, past the end of the structure block"), std::string::npos)
        << t.error();
    // The same tree with the length put back is good: only the one field made it hostile.
    put32(blob, first_prop(blob) + 4, 4);
    EXPECT_EQ(fdt_check_full(blob.data(), blob.size()), 0);
    EXPECT_EQ(t.open(blob.data(), blob.size()), Status::ok) << t.error();
}

TEST(FdtCheck, AnOldVersionIsRefusedBeforeItsRootNameIsRead) {
    auto blob = read_file("tests/dt/hostile/v4_root_without_slash.dtb");
    ASSERT_FALSE(blob.empty());
    dt::Tree t;
    EXPECT_EQ(t.open(blob.data(), blob.size()), Status::bad_dt);
    EXPECT_NE(std::string(t.error()).find("version 4"), std::string::npos) << t.error();
}

TEST(FdtCheck, TheTreesMoatBootsWithPass) {
    for (const char* name : {"topology", "board_zcu102", "board_salvator_x"}) {
        auto blob = load_dtb(name);
        Why why;
        EXPECT_EQ(dt::check_structure(blob.data(), dtb_bytes(blob), why), Status::ok) << name << ": " << why.text();
    }
}

TEST(FdtCheck, EachHostileFieldIsNamed) {
    const auto good = topology();
    struct Case {
        const char* what;
        void (*spoil)(std::vector<uint8_t>&);
        const char* expect;
    };
    const Case cases[] = {
        {"struct size past the end", [](std::vector<uint8_t>& b) { put32(b, 36, 0x7ffffff0); }, "structure block"},
        {"strings past the end", [](std::vector<uint8_t>& b) { put32(b, 32, 0xfffffff0); }, "strings block"},
        {"name offset outside strings", [](std::vector<uint8_t>& b) { put32(b, first_prop(b) + 8, 0x7fffffff); },
         "name offset"},
        {"root named", [](std::vector<uint8_t>& b) { b[get32(b, 8) + 4] = 'x'; }, "root node has a"},
        {"last compatible version 18", [](std::vector<uint8_t>& b) { put32(b, 24, 18); }, "unsupported"},
        {"FDT_END cut off", [](std::vector<uint8_t>& b) { put32(b, 36, get32(b, 36) - 4); }, "no FDT_END"},
        {"an extra END_NODE", [](std::vector<uint8_t>& b) { put32(b, get32(b, 8) + get32(b, 36) - 4, 2); },
         "FDT_END_NODE without a node"},
        {"reserve map misaligned", [](std::vector<uint8_t>& b) { put32(b, 16, 41); }, "reserve map"},
        {"reserve map into the structure block", [](std::vector<uint8_t>& b) { put32(b, get32(b, 8) - 4, 1); },
         "reserve map not terminated before the next block"},
        {"a reserve map entry of size 0", [](std::vector<uint8_t>& b) { put32(b, get32(b, 16) + 8, 0), put32(b, get32(b, 16) + 12, 0); },
         "has size 0"},
        {"strings inside the structure block", [](std::vector<uint8_t>& b) { put32(b, 12, get32(b, 8)); }, "overlap"},
    };
    for (const auto& c : cases) {
        auto b = good;
        c.spoil(b);
        Why why;
        EXPECT_EQ(dt::check_structure(b.data(), b.size(), why), Status::bad_dt) << c.what;
        EXPECT_NE(std::string(why.text()).find(c.expect), std::string::npos) << c.what << ": " << why.text();
    }
}

TEST(FdtCheck, EveryWordOfATreeSetToHostileValuesIsSafe) {
    // Every aligned word of the structure block set to each hostile value: refused or accepted,
    // never read past the exact-size copy (ASan) nor looped.
    const auto good = topology();
    const uint32_t values[] = {0, 1, 2, 3, 4, 9, 0xfffffff4, 0xffffffff, 0x80000000, 0x7ffffffc};
    for (size_t off = 0; off + 4 <= good.size(); off += 4)
        for (uint32_t v : values) {
            auto b = good;
            put32(b, off, v);
            dt::Tree t;
            if (t.open(b.data(), b.size()) == Status::ok) {
                EXPECT_EQ(fdt_check_full(b.data(), b.size()), 0) << off;
            }
        }
}
