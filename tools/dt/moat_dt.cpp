// moat-dt: device trees for guests and dom0, and what protects DMA, from the host's shell.
// The work is done by the portable core in xen-compat/ (the same code the EL2 image runs);
// this file parses arguments, reads and writes files, and sets the exit status:
// 0 ok, 1 problems found, 2 unusable input (or a usage error).
#include <cerrno>
#include <cstring>

#include "tools/dt/cli.hpp"
#include "xen-compat/dom0_dt.hpp"
#include "xen-compat/guest_config.hpp"
#include "xen-compat/guest_dt.hpp"
#include "xen-compat/wiring_check.hpp"

namespace moat::tool {

namespace {

const char* const kUsage =
    "usage: moat-dt <command> [options]\n"
    "\n"
    "commands:\n"
    "  guest CONFIG -o OUT.dtb [--host HOST.dtb]   build a guest's device tree from a config file\n"
    "  dom0 HOST.dtb -o OUT.dtb [--driven PATH]... [--keep PATH]...\n"
    "                                               filter a host device tree for dom0\n"
    "  report DTB [--json] [--strict] [--driven PATH]... [--keep PATH]... [--soc-revision ESx.y]\n"
    "                                               which devices can master DMA, and what protects them\n"
    "  check DTB                                    check the IOMMU wiring of a device tree\n"
    "  dom0less HOST.dtb [--image ADDR,SIZE] [--guest-dtb DIR]\n"
    "                                               the dom0less guests a host tree describes, as moat reads them\n"
    "  help [COMMAND]                               this text, or a command's\n"
    "\n"
    "exit status: 0 ok, 1 problems found, 2 unusable input or usage error\n"
    "`moat-dt COMMAND --help` describes each command; tools/dt/README.md has the config format.\n";

const char* const kGuestHelp =
    "usage: moat-dt guest CONFIG -o OUT.dtb [--host HOST.dtb]\n"
    "\n"
    "Builds the device tree a guest boots with, from CONFIG (INI-style; see tools/dt/README.md and\n"
    "tools/dt/examples/): memory, vCPUs, GIC, console, the Xen hypervisor node, virtio-mmio devices\n"
    "with `iommus = <&xen_iommu BACKEND>` when their backend is not dom0, a virtio-pci host bridge\n"
    "with `iommu-map`, and [passthrough] devices copied from HOST.dtb without their IOMMU.\n"
    "The result is read back and compared with the config before anything is written.\n"
    "A [passthrough] device must be behind an IOMMU moat drives (decided as `report` decides it):\n"
    "otherwise its DMA would reach all of the host's memory, and it is refused, as Xen refuses it,\n"
    "unless its section says `force-assign-without-iommu = true` (then the guest's DMA is unconfined,\n"
    "and moat-dt says so). An IOMMU moat drives cannot be passed through.\n"
    "\n"
    "  -o, --output FILE   where to write the DTB (required)\n"
    "  --host FILE         the host DTB [passthrough] paths refer to\n"
    "  --soc-revision ESx.y  what only the board can tell (as for report)\n"
    "\n"
    "exit status: 0 written, 1 not written: the read-back differs (a bug: please report),\n"
    "             2 config or host tree unusable, or a device refused (messages name the config line)\n";

const char* const kDom0Help =
    "usage: moat-dt dom0 HOST.dtb -o OUT.dtb [--driven PATH]... [--keep PATH]...\n"
    "\n"
    "Writes the device tree dom0 boots with: HOST.dtb without the IOMMU nodes moat drives, and\n"
    "without the `iommus` / `iommu-map` entries (and `iommu-map-mask`) that point at them. Entries\n"
    "for IOMMUs moat does not drive stay. Prints which XENFEAT dom0 gets and why:\n"
    "XENFEAT_not_direct_mapped (16) when every DMA master is behind an IOMMU moat drives,\n"
    "XENFEAT_direct_mapped (17) otherwise.\n"
    "\n"
    "  -o, --output FILE   where to write the DTB (required)\n"
    "  --driven PATH       moat drives exactly these IOMMUs (repeatable; default: every IOMMU\n"
    "                      whose compatible moat has a driver for)\n"
    "  --keep PATH         leave this IOMMU to dom0 (repeatable)\n"
    "  --soc-revision ESx.y  the SoC's cut, which the tree cannot say (R-Car H3 and M3-W: moat drives\n"
    "                      their IPMMUs only from ES3.0); without it such protection is reported as\n"
    "                      conditional\n"
    "\n"
    "exit status: 0 written, 1 written but some references could not be filtered cleanly or the\n"
    "             wiring is broken (each problem names its node), 2 unusable input\n";

const char* const kReportHelp =
    "usage: moat-dt report DTB [--json] [--strict] [--driven PATH]... [--keep PATH]...\n"
    "\n"
    "Lists every node that can master DMA, classified as protected (which IOMMU, which stream ids),\n"
    "unprotected or unknown, with the reason, and which XENFEAT a dom0 with this tree would get.\n"
    "The heuristics for \"can master DMA\" are in xen-compat/protection.hpp and tools/dt/README.md.\n"
    "\n"
    "  --json              machine-readable output\n"
    "  --strict            exit 1 unless every device is protected\n"
    "  --driven PATH, --keep PATH, --soc-revision ESx.y   as for `dom0`\n"
    "\n"
    "exit status: 0 reported, 1 broken IOMMU wiring found (or, with --strict, a device not\n"
    "             protected), 2 unusable input\n";

const char* const kCheckHelp =
    "usage: moat-dt check DTB [--soc-revision ESx.y]\n"
    "\n"
    "Checks the IOMMU wiring: dangling phandles, a target without #iommu-cells or with a cell count\n"
    "its binding does not allow, too few argument cells, stream ids out of range, malformed or\n"
    "overlapping `iommu-map` ranges, a cache IPMMU whose `renesas,ipmmu-main` is not a root, and a\n"
    "stream claimed by two masters. One line per problem, naming the node.\n"
    "\n"
    "exit status: 0 no problem, 1 problems found, 2 unusable input\n";

int usage_error(const std::string& what, const char* help) {
    std::fprintf(stderr, "moat-dt: %s\n\n%s", what.c_str(), help);
    return kUnusable;
}

// Arguments of one command: positionals, -o, --host, --driven/--keep, and flags.
struct Args {
    std::vector<std::string> positional;
    std::string output, host;
    DrivenOptions driven;
    bool json = false, strict = false, help = false;

    // Returns kOk, or the exit status of a usage error (already printed).
    int parse(int argc, char** argv, const char* help_text, const std::vector<std::string>& allowed) {
        auto allow = [&](const std::string& o) {
            for (const std::string& a : allowed)
                if (a == o) return true;
            return false;
        };
        for (int i = 0; i < argc; i++) {
            std::string a = argv[i];
            auto value = [&](std::string& dst) {
                if (i + 1 >= argc) return false;
                dst = argv[++i];
                return true;
            };
            std::string v;
            if (a == "-h" || a == "--help") help = true;
            else if (a.size() > 1 && a[0] == '-' && !allow(a)) return usage_error("unknown option '" + a + "'", help_text);
            else if (a == "-o" || a == "--output") { if (!value(output)) return usage_error(a + " needs a file", help_text); }
            else if (a == "--host") { if (!value(host)) return usage_error(a + " needs a file", help_text); }
            else if (a == "--driven" || a == "--keep") {
                if (!value(v)) return usage_error(a + " needs a node path", help_text);
                (a == "--driven" ? driven.driven : driven.keep).push_back(v);
            }
            else if (a == "--soc-revision") {
                if (!value(v) || !driven.set_revision(v)) return usage_error(a + " needs ESx.y (e.g. ES3.0) or a PRR cut (0x20)", help_text);
            }
            else if (a == "--json") json = true;
            else if (a == "--strict") strict = true;
            else positional.push_back(a);
        }
        return kOk;
    }
};

// Every [passthrough] device, judged as `report` judges it: behind an IOMMU moat drives, or
// refused unless forced (then marked unconfined). Returns the number refused; nothing is written.
unsigned check_passthrough(const HostTree& h, DrivenOptions& opts, xen::GuestDesc& g, const std::string& cfg) {
    xen::DrivenSet driven;
    if (!opts.resolve(h, driven)) return 1;
    auto report = std::make_unique<xen::ProtectionReport>();
    if (xen::classify(h.tree, *h.topo, driven, *report) != Status::ok) return 1;
    unsigned refused = 0;
    for (unsigned i = 0; i < g.npassthrough; i++) {
        xen::GuestPassthrough& p = g.passthrough[i];
        int node = h.tree.find_path(p.host_path);
        if (node < 0) continue;  // complete_guest() names it
        int io = h.topo->iommu_index(node);
        if (io >= 0 && driven.has(static_cast<unsigned>(io))) {
            std::fprintf(stderr, "moat-dt: %s:%u: passthrough %s: an IOMMU moat drives cannot be given to a guest\n", cfg.c_str(),
                         p.line, p.host_path);
            refused++;
            continue;
        }
        const xen::DeviceEntry* e = report->find(node);
        if (!e || e->dma == xen::Dma::protected_dma) continue;  // not a DMA master, or confined
        StringSink why;
        xen::describe_reason(h.tree, *h.topo, *e, why);
        if (!p.force) {
            std::fprintf(stderr,
                         "moat-dt: %s:%u: passthrough %s: %s (%s): its DMA would reach all of the host's memory; refused "
                         "(set force-assign-without-iommu = true in its [passthrough] to assign it anyway)\n",
                         cfg.c_str(), p.line, p.host_path, xen::state_name(*e), why.text.c_str());
            refused++;
            continue;
        }
        p.unconfined = true;
        std::fprintf(stderr, "moat-dt: %s:%u: passthrough %s: %s; assigned because forced: the guest's DMA through it is "
                             "UNCONFINED (host-physical addresses, all of memory)\n",
                     cfg.c_str(), p.line, p.host_path, xen::state_name(*e));
    }
    return refused;
}

int cmd_guest(int argc, char** argv) {
    Args a;
    if (int rc = a.parse(argc, argv, kGuestHelp, {"-o", "--output", "--host", "--soc-revision"})) return rc;
    if (a.help) return std::fputs(kGuestHelp, stdout), kOk;
    if (a.positional.size() != 1) return usage_error("guest needs one CONFIG file", kGuestHelp);
    if (a.output.empty()) return usage_error("guest needs -o OUT.dtb", kGuestHelp);
    const std::string& cfg = a.positional[0];
    std::string text;
    if (!read_file(cfg, text)) return kUnusable;
    auto g = std::make_unique<xen::GuestDesc>();
    std::string name = cfg.substr(cfg.find_last_of('/') == std::string::npos ? 0 : cfg.find_last_of('/') + 1);
    FileSink err(stderr);
    if (xen::parse_guest_config(text.data(), text.size(), name.c_str(), *g, err) != Status::ok) return kUnusable;
    std::unique_ptr<HostTree> host;
    if (!a.host.empty()) {
        host = std::make_unique<HostTree>(a.host);
        if (!host->ok) return kUnusable;
    }
    const dt::Tree* ht = host ? &host->tree : nullptr;
    if (host && g->npassthrough && check_passthrough(*host, a.driven, *g, cfg)) return kUnusable;
    StringSink notes;
    std::vector<uint64_t> out;
    size_t size = 0;
    Status st = Status::no_space;
    for (size_t cap = 64 * 1024; st == Status::no_space && cap <= 16 * 1024 * 1024; cap *= 4) {
        out.assign(cap / 8, 0);
        StringSink errs;
        notes.text.clear();
        st = xen::build_guest_dt(*g, ht, out.data(), cap, size, errs, &notes);
        if (st != Status::ok && st != Status::no_space) return std::fputs(errs.text.c_str(), stderr), kUnusable;
    }
    if (st != Status::ok) return std::fprintf(stderr, "moat-dt: %s: the guest tree does not fit in 16 MiB\n", cfg.c_str()), kUnusable;
    std::fputs(notes.text.c_str(), stderr);
    dt::Tree back;
    StringSink diff;
    unsigned mismatches = back.open(out.data(), size) == Status::ok ? xen::verify_guest_dt(back, *g, ht, diff) : 1;
    if (mismatches) {  // checked before anything is written: a differing tree is never left behind
        std::fprintf(stderr, "moat-dt: the tree read back differs from %s in %u place%s; nothing written:\n%s", cfg.c_str(),
                     mismatches, mismatches > 1 ? "s" : "", diff.text.c_str());
        return kProblems;
    }
    if (!write_file(a.output, out.data(), size)) return kUnusable;
    unsigned granted = 0;
    for (unsigned i = 0; i < g->nvirtio; i++) granted += g->virtio[i].uses_grants();
    for (unsigned i = 0; i < g->pci.ndevices; i++) granted += g->pci.devices[i].uses_grants();
    std::printf("moat-dt: wrote %s (%zu bytes): %u vCPU%s, GICv%u, %u virtio-mmio, %u virtio-pci, %u passthrough; "
                "%u device%s use%s Xen grants%s\n",
                a.output.c_str(), size, g->vcpus, g->vcpus > 1 ? "s" : "", g->gic_version, g->nvirtio, g->pci.ndevices,
                g->npassthrough, granted, granted == 1 ? "" : "s", granted == 1 ? "s" : "",
                granted ? " (node /xen_iommu)" : "");
    return kOk;
}

int cmd_dom0(int argc, char** argv) {
    Args a;
    if (int rc = a.parse(argc, argv, kDom0Help, {"-o", "--output", "--driven", "--keep", "--soc-revision"})) return rc;
    if (a.help) return std::fputs(kDom0Help, stdout), kOk;
    if (a.positional.size() != 1) return usage_error("dom0 needs one HOST.dtb", kDom0Help);
    if (a.output.empty()) return usage_error("dom0 needs -o OUT.dtb", kDom0Help);
    HostTree h(a.positional[0]);
    if (!h.ok) return kUnusable;
    xen::DrivenSet driven;
    if (!a.driven.resolve(h, driven)) return kUnusable;
    std::vector<uint64_t> out(h.blob.size() + 8192);
    xen::Dom0Result res;
    StringSink log;
    Status st = xen::filter_dom0(h.tree, *h.topo, driven, out.data(), out.size() * 8, res, log);
    std::fputs(h.discovery.text.c_str(), stderr);
    std::fputs(a.driven.notes.text.c_str(), stderr);
    std::fputs(log.text.c_str(), stderr);
    if (st != Status::ok) return kUnusable;
    if (!write_file(a.output, out.data(), res.size)) return kUnusable;
    auto report = std::make_unique<xen::ProtectionReport>();
    (void)xen::classify(h.tree, *h.topo, driven, *report);
    xen::XenfeatDecision d = xen::decide_xenfeat(*report);
    StringSink why;
    xen::explain_xenfeat(h.tree, *h.topo, *report, d, why);
    std::printf("moat-dt: wrote %s (%zu bytes): removed %u IOMMU node%s, %u iommus/iommu-map propert%s, trimmed %u, "
                "%u alias%s\n",
                a.output.c_str(), res.size, res.removed_nodes, res.removed_nodes == 1 ? "" : "s", res.removed_props,
                res.removed_props == 1 ? "y" : "ies", res.trimmed_props, res.removed_aliases, res.removed_aliases == 1 ? "" : "es");
    std::printf("dom0: %s\n", why.text.c_str());
    return res.problems || h.topo->problems || a.driven.over_capacity ? kProblems : kOk;
}

int cmd_report(int argc, char** argv) {
    Args a;
    if (int rc = a.parse(argc, argv, kReportHelp, {"--json", "--strict", "--driven", "--keep", "--soc-revision"})) return rc;
    if (a.help) return std::fputs(kReportHelp, stdout), kOk;
    if (a.positional.size() != 1) return usage_error("report needs one DTB", kReportHelp);
    HostTree h(a.positional[0]);
    if (!h.ok) return kUnusable;
    xen::DrivenSet driven;
    if (!a.driven.resolve(h, driven)) return kUnusable;
    auto report = std::make_unique<xen::ProtectionReport>();
    if (xen::classify(h.tree, *h.topo, driven, *report) != Status::ok) return kUnusable;
    StringSink wiring;
    unsigned problems = h.topo->problems + a.driven.over_capacity + xen::check_wiring(h.tree, *h.topo, wiring);
    if (a.json) {
        print_report_json(h, a.driven, driven, *report, wiring.text, stdout);
    } else {
        print_report_table(h, a.driven, driven, *report, stdout);
        if (problems) std::printf("\nwiring problems (%u):\n%s%s", problems, h.discovery.text.c_str(), wiring.text.c_str());
    }
    if (problems) return kProblems;
    return a.strict && (report->totals[1] || report->totals[2] || report->dropped) ? kProblems : kOk;
}

int cmd_check(int argc, char** argv) {
    Args a;
    if (int rc = a.parse(argc, argv, kCheckHelp, {"--soc-revision"})) return rc;
    if (a.help) return std::fputs(kCheckHelp, stdout), kOk;
    if (a.positional.size() != 1) return usage_error("check needs one DTB", kCheckHelp);
    HostTree h(a.positional[0]);
    if (!h.ok) return kUnusable;
    xen::DrivenSet driven;
    if (!a.driven.resolve(h, driven)) return kUnusable;
    StringSink wiring;
    unsigned problems = h.topo->problems + a.driven.over_capacity + xen::check_wiring(h.tree, *h.topo, wiring);
    std::fputs(h.discovery.text.c_str(), stdout);
    std::fputs(a.driven.notes.text.c_str(), stdout);
    std::fputs(wiring.text.c_str(), stdout);
    unsigned streams = 0;
    for (unsigned i = 0; i < h.topo->nmasters; i++) streams += h.topo->masters[i].nstreams;
    if (problems) {
        std::printf("%s: %u problem%s\n", h.file.c_str(), problems, problems > 1 ? "s" : "");
        return kProblems;
    }
    std::printf("%s: IOMMU wiring ok: %u IOMMU%s, %u master%s, %u stream reference%s\n", h.file.c_str(), h.topo->niommus,
                h.topo->niommus == 1 ? "" : "s", h.topo->nmasters, h.topo->nmasters == 1 ? "" : "s", streams, streams == 1 ? "" : "s");
    return kOk;
}

}  // namespace

bool read_file(const std::string& path, std::string& out) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return std::fprintf(stderr, "moat-dt: %s: %s\n", path.c_str(), std::strerror(errno)), false;
    out.clear();
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    bool ok = !std::ferror(f);
    std::fclose(f);
    if (!ok) std::fprintf(stderr, "moat-dt: %s: read error\n", path.c_str());
    return ok;
}

bool write_file(const std::string& path, const void* data, size_t size) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return std::fprintf(stderr, "moat-dt: %s: %s\n", path.c_str(), std::strerror(errno)), false;
    bool ok = std::fwrite(data, 1, size, f) == size;
    ok = std::fclose(f) == 0 && ok;
    if (!ok) std::fprintf(stderr, "moat-dt: %s: write error\n", path.c_str());
    return ok;
}

HostTree::HostTree(const std::string& path) : file(path) {
    std::string bytes;
    if (!read_file(path, bytes)) return;
    size = bytes.size();
    blob.assign((size + 7) / 8 + 1, 0);
    if (size) std::memcpy(blob.data(), bytes.data(), size);
    if (tree.open(blob.data(), size) != Status::ok) {
        std::fprintf(stderr, "moat-dt: %s: %s\n", path.c_str(), tree.error());
        return;
    }
    if (discover(tree, *topo, discovery) != Status::ok) {
        std::fprintf(stderr, "moat-dt: %s: discovery failed\n", path.c_str());
        return;
    }
    ok = true;
}

bool DrivenOptions::set_revision(const std::string& v) {
    unsigned major = 0, minor = 0, cut = 0;
    char tail;
    if (std::sscanf(v.c_str(), "ES%u.%u%c", &major, &minor, &tail) == 2 && major >= 1 && major <= 16 && minor <= 15)
        cut = ((major - 1) << 4) | minor;
    else if (std::sscanf(v.c_str(), "0x%x%c", &cut, &tail) != 1 || cut > 0xff)
        return false;
    silicon = Silicon{true, cut};
    revision = v;
    return true;
}

bool DrivenOptions::resolve(const HostTree& h, xen::DrivenSet& out) {
    out = driven.empty() ? xen::registry_driven(*h.topo) : xen::DrivenSet{};
    auto lookup = [&](const std::string& p, const char* opt) {
        int node = h.tree.find_path(p.c_str());
        int idx = node >= 0 ? h.topo->iommu_index(node) : -1;
        if (idx < 0)
            std::fprintf(stderr, "moat-dt: %s %s: %s\n", opt, p.c_str(),
                         node < 0 ? "no such node" : "not an IOMMU (no #iommu-cells, disabled, or unusable)");
        return idx;
    };
    for (const std::string& p : driven) {
        int i = lookup(p, "--driven");
        if (i < 0) return false;
        out.driven[i] = true;
    }
    for (const std::string& p : keep) {
        int i = lookup(p, "--keep");
        if (i < 0) return false;
        out.driven[i] = false;
    }
    notes.text.clear();
    over_capacity = xen::settle(h.tree, *h.topo, silicon, out, notes);
    return true;
}

}  // namespace moat::tool

int main(int argc, char** argv) {
    using namespace moat::tool;
    if (argc < 2) return std::fputs(kUsage, stderr), kUnusable;
    std::string cmd = argv[1];
    if (cmd == "-h" || cmd == "--help") return std::fputs(kUsage, stdout), kOk;
    if (cmd == "help") {
        std::string what = argc > 2 ? argv[2] : "";
        const char* text = what == "guest" ? kGuestHelp : what == "dom0" ? kDom0Help : what == "report" ? kReportHelp
                           : what == "check" ? kCheckHelp : what == "dom0less" ? kDom0lessHelp : kUsage;
        return std::fputs(text, stdout), kOk;
    }
    if (cmd == "guest") return cmd_guest(argc - 2, argv + 2);
    if (cmd == "dom0") return cmd_dom0(argc - 2, argv + 2);
    if (cmd == "report") return cmd_report(argc - 2, argv + 2);
    if (cmd == "check") return cmd_check(argc - 2, argv + 2);
    if (cmd == "dom0less") return cmd_dom0less(argc - 2, argv + 2);
    std::fprintf(stderr, "moat-dt: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return kUnusable;
}
