// Helpers shared by the dt_*_test.cpp files: a string sink and a loaded, discovered tree.
#pragma once
#include <memory>
#include <string>

#include "common/discovery.hpp"
#include "dt_fixture.hpp"

// In a namespace of their own: other test files may have helpers of the same names.
namespace dt_test {

struct StrSink final : moat::Sink {
    void write(const char* s, size_t n) override { text.append(s, n); }
    std::string text;
};

// A test tree opened and run through discovery, with the report discovery wrote.
struct Loaded {
    std::vector<uint64_t> blob;
    moat::dt::Tree tree;
    std::unique_ptr<moat::Topology> topo = std::make_unique<moat::Topology>();
    StrSink report;

    explicit Loaded(const std::string& name) : blob(load_dtb(name)) {
        EXPECT_EQ(tree.open(blob.data(), dtb_bytes(blob)), moat::Status::ok) << tree.error();
        EXPECT_EQ(moat::discover(tree, *topo, report), moat::Status::ok);
    }
    int node(const char* path) const {
        int n = tree.find_path(path);
        EXPECT_GE(n, 0) << path;
        return n;
    }
};

}  // namespace dt_test
