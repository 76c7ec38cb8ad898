// Loads a compiled test device tree (tests/unit/data/*.dts -> build/host/testdata/*.dtb).
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "common/fdt.hpp"

inline std::vector<uint64_t> load_dtb(const std::string& name) {
    const char* dir = std::getenv("MOAT_TESTDATA");
    // A name ending in .dtb is a path (the real trees under .deps/trees); others are test data.
    bool is_path = name.size() > 4 && name.compare(name.size() - 4, 4, ".dtb") == 0;
    std::string path = is_path ? name : std::string(dir ? dir : "build/host/testdata") + "/" + name + ".dtb";
    std::ifstream f(path, std::ios::binary);
    EXPECT_TRUE(f.good()) << "cannot read " << path << " (run from the repository root, or set MOAT_TESTDATA)";
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::vector<uint64_t> words((bytes.size() + 7) / 8);  // 8-byte aligned, as a loader would place it
    if (!bytes.empty()) memcpy(words.data(), bytes.data(), bytes.size());
    return words;
}

inline size_t dtb_bytes(const std::vector<uint64_t>& w) { return w.size() * 8; }
