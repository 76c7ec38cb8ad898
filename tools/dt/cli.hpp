// moat-dt: shared pieces of the host tool (files, sinks, the loaded tree, option parsing).
// Host code: uses the C++ standard library, unlike the portable core it drives.
#pragma once
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/discovery.hpp"
#include "xen-compat/protection.hpp"

namespace moat::tool {

// Exit status of every subcommand.
enum Exit : int { kOk = 0, kProblems = 1, kUnusable = 2 };

struct StringSink final : Sink {
    void write(const char* s, size_t n) override { text.append(s, n); }
    std::string text;
};

struct FileSink final : Sink {
    explicit FileSink(std::FILE* f) : file(f) {}
    void write(const char* s, size_t n) override { std::fwrite(s, 1, n, file); }
    std::FILE* file;
};

// Reads a whole file; false (with a message on stderr) when it cannot.
bool read_file(const std::string& path, std::string& out);
bool write_file(const std::string& path, const void* data, size_t size);

// A DTB loaded, opened and run through discovery. `ok` is false when the file is unusable;
// the reason has been printed.
struct HostTree {
    std::string file;
    std::vector<uint64_t> blob;  // 8-byte aligned copy, as a boot loader would place it
    size_t size = 0;
    dt::Tree tree;
    std::unique_ptr<Topology> topo = std::make_unique<Topology>();
    StringSink discovery;  // problems discovery reported, one line each
    bool ok = false;
    explicit HostTree(const std::string& path);
};

// --driven / --keep: which IOMMUs moat drives. Starts from the registry's; --driven PATH
// (repeatable) replaces it with exactly the named IOMMUs, --keep PATH takes one out.
// --soc-revision ESx.y: what only the board can tell (the R-Car product register's cut).
struct DrivenOptions {
    std::vector<std::string> driven, keep;
    Silicon silicon;
    std::string revision;  // as given, for the output ("" when not stated)
    StringSink notes;      // what xen::settle() took out or made conditional, one line each
    unsigned over_capacity = 0;
    // Resolves the paths against the tree, then settles what moat really drives (xen::settle);
    // false (message printed) for a path that is not an IOMMU discovery accepted.
    bool resolve(const HostTree& h, xen::DrivenSet& out);
    // Parses ESx.y (or a raw cut 0xNN); false for anything else.
    bool set_revision(const std::string& v);
};

// Writes the report for `h` as a table or as JSON.
void print_report_table(const HostTree& h, const DrivenOptions& o, const xen::DrivenSet& driven, const xen::ProtectionReport& r,
                        std::FILE* out);
void print_report_json(const HostTree& h, const DrivenOptions& o, const xen::DrivenSet& driven, const xen::ProtectionReport& r,
                       const std::string& wiring_problems, std::FILE* out);

// moat-dt dom0less (tools/dt/dom0less_cmd.cpp).
extern const char* const kDom0lessHelp;
int cmd_dom0less(int argc, char** argv);

}  // namespace moat::tool
