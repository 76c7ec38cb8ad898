// `moat-dt report` output: a table for people, JSON for scripts.
#include <algorithm>

#include "tools/dt/cli.hpp"
#include "xen-compat/dom0_dt.hpp"

namespace moat::tool {

namespace {

std::string path_of(const dt::Tree& t, int node) {
    char p[dt::kPathMax];
    return t.path(node, p, sizeof p);
}

std::string reason_of(const HostTree& h, const xen::DeviceEntry& e) {
    StringSink s;
    xen::describe_reason(h.tree, *h.topo, e, s);
    return s.text;
}

std::string streams_of(const HostTree& h, const xen::DeviceEntry& e) {
    StringSink s;
    xen::describe_streams(*h.topo, e, s);
    return s.text;
}

std::string condition_of(const HostTree& h, const xen::DeviceEntry& e) {
    StringSink s;
    xen::describe_condition(*h.topo, e, s);
    return s.text;
}

std::string xenfeat_line(const HostTree& h, const xen::ProtectionReport& r, xen::XenfeatDecision* out = nullptr) {
    xen::XenfeatDecision d = xen::decide_xenfeat(r);
    if (out) *out = d;
    StringSink s;
    xen::explain_xenfeat(h.tree, *h.topo, r, d, s);
    return s.text;
}

std::string json_string(const std::string& s) {
    std::string o = "\"";
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') o += '\\', o += ch;
        else if (c < 0x20) {
            char b[8];
            std::snprintf(b, sizeof b, "\\u%04x", c);
            o += b;
        } else o += ch;
    }
    return o + "\"";
}

}  // namespace

void print_report_table(const HostTree& h, const DrivenOptions& o, const xen::DrivenSet& driven, const xen::ProtectionReport& r,
                        std::FILE* out) {
    const Topology& topo = *h.topo;
    size_t w = 5;
    for (unsigned i = 0; i < topo.niommus; i++) w = std::max(w, path_of(h.tree, topo.iommus[i].node).size());
    for (unsigned i = 0; i < r.count; i++) w = std::max(w, path_of(h.tree, r.devices[i].node).size());
    int wi = static_cast<int>(w);

    std::fprintf(out, "%-*s  %-22s %-11s %s\n", wi, "IOMMU", "COMPATIBLE", "DRIVER", "MOAT");
    for (unsigned i = 0; i < topo.niommus; i++) {
        const IommuInfo& io = topo.iommus[i];
        bool grants = io.grants();
        std::fprintf(out, "%-*s  %-22s %-11s %s\n", wi, path_of(h.tree, io.node).c_str(), io.compatible ? io.compatible : "-",
                     io.driven() ? io.driver->driver() : "-",
                     grants ? "grants (Xen)" : driven.has(i) ? (driven.conditional[i] ? "drives (if the silicon allows)" : "drives")
                     : driven.refusal[i] != xen::Refusal::none ? "refuses" : "leaves it to its owner");
    }
    if (topo.niommus == 0) std::fprintf(out, "(none)\n");
    std::fputs(o.notes.text.c_str(), out);
    std::fprintf(out, "SoC revision: %s\n", o.revision.empty() ? "not stated (--soc-revision ESx.y)" : o.revision.c_str());
    size_t ws = 7;
    for (unsigned i = 0; i < r.count; i++) ws = std::max(ws, streams_of(h, r.devices[i]).size());
    int wss = static_cast<int>(ws);
    std::fprintf(out, "\n%-*s  %-40s  %-15s  %-*s  %s\n", wi, "DEVICE", "STATE", "BASIS", wss, "STREAMS", "REASON");
    for (unsigned i = 0; i < r.count; i++) {
        const xen::DeviceEntry& e = r.devices[i];
        std::fprintf(out, "%-*s  %-40s  %-15s  %-*s  %s\n", wi, path_of(h.tree, e.node).c_str(), xen::state_name(e),
                     xen::to_string(e.basis), wss, streams_of(h, e).c_str(), reason_of(h, e).c_str());
    }
    if (r.count == 0) std::fprintf(out, "(no device that can master DMA)\n");
    if (r.dropped) std::fprintf(out, "(%u more devices past the report's capacity, counted as unknown)\n", r.dropped);
    std::fprintf(out, "\n%u devices: %u protected, %u unprotected, %u unknown\n", r.count + r.dropped, r.totals[0], r.totals[1],
                 r.totals[2]);
    std::fprintf(out, "dom0 with this tree: %s\n", xenfeat_line(h, r).c_str());
}

void print_report_json(const HostTree& h, const DrivenOptions& o, const xen::DrivenSet& driven, const xen::ProtectionReport& r,
                       const std::string& wiring_problems, std::FILE* out) {
    const Topology& topo = *h.topo;
    std::fprintf(out, "{\n  \"file\": %s,\n  \"soc_revision\": %s,\n  \"iommus\": [", json_string(h.file).c_str(),
                 o.revision.empty() ? "null" : json_string(o.revision).c_str());
    for (unsigned i = 0; i < topo.niommus; i++) {
        const IommuInfo& io = topo.iommus[i];
        static constexpr const char* kRefusal[] = {"null", "\"silicon\"", "\"capacity\"", "\"root_not_driven\""};
        std::fprintf(out, "%s\n    {\"path\": %s, \"compatible\": %s, \"driver\": %s, \"driven\": %s, \"conditional\": %s, "
                     "\"refused\": %s, \"iommu_cells\": %u}",
                     i ? "," : "", json_string(path_of(h.tree, io.node)).c_str(),
                     io.compatible ? json_string(io.compatible).c_str() : "null",
                     io.driven() ? json_string(io.driver->driver()).c_str() : "null", driven.has(i) ? "true" : "false",
                     driven.conditional[i] ? "true" : "false", kRefusal[static_cast<unsigned>(driven.refusal[i])], io.iommu_cells);
    }
    std::fprintf(out, "%s],\n  \"devices\": [", topo.niommus ? "\n  " : "");
    for (unsigned i = 0; i < r.count; i++) {
        const xen::DeviceEntry& e = r.devices[i];
        std::string cond = condition_of(h, e);
        std::fprintf(out, "%s\n    {\"path\": %s, \"class\": \"%s\", \"state\": \"%s\", \"depends_on\": %s, \"basis\": \"%s\", \"streams\": [",
                     i ? "," : "", json_string(path_of(h.tree, e.node)).c_str(), xen::to_string(e.dma), xen::state_name(e),
                     cond.empty() ? "null" : json_string(cond).c_str(), xen::to_string(e.basis));
        if (e.master >= 0 && !topo.masters[e.master].blocked) {
            const MasterInfo& m = topo.masters[e.master];
            for (unsigned s = 0; s < m.nstreams; s++) {
                const StreamRef& ref = m.streams[s];
                std::fprintf(out, "%s{\"iommu\": %s, \"sid\": %u, \"count\": %u", s ? ", " : "",
                             json_string(path_of(h.tree, topo.iommus[ref.iommu].node)).c_str(), ref.sid, ref.count);
                if (ref.from_map) std::fprintf(out, ", \"rid_base\": %u, \"rid_mask\": %u", ref.rid_base, m.map_mask);
                if (ref.nargs > 1) std::fprintf(out, ", \"mask\": %u", ref.args[1]);
                std::fprintf(out, "}");
            }
        }
        std::fprintf(out, "], \"reason\": %s}", json_string(reason_of(h, e)).c_str());
    }
    std::fprintf(out, "%s],\n", r.count ? "\n  " : "");
    std::fprintf(out, "  \"totals\": {\"protected\": %u, \"unprotected\": %u, \"unknown\": %u, \"not_examined\": %u},\n",
                 r.totals[0], r.totals[1], r.totals[2], r.dropped);
    std::fprintf(out, "  \"notes\": %s,\n", json_string(o.notes.text).c_str());  // what settle() took out: not problems
    std::fprintf(out, "  \"problems\": [");
    std::string all = h.discovery.text + wiring_problems;
    size_t start = 0;
    bool first = true;
    while (start < all.size()) {
        size_t end = all.find('\n', start);
        if (end == std::string::npos) end = all.size();
        if (end > start) std::fprintf(out, "%s\n    %s", first ? "" : ",", json_string(all.substr(start, end - start)).c_str());
        first = false;
        start = end + 1;
    }
    xen::XenfeatDecision d;
    std::string why = xenfeat_line(h, r, &d);
    std::fprintf(out, "%s],\n  \"dom0\": {\"xenfeat\": \"%s\", \"value\": %u, \"reason\": %s}\n}\n", all.empty() ? "" : "\n  ",
                 d.feature == xen::kXenfeatDirectMapped ? "XENFEAT_direct_mapped" : "XENFEAT_not_direct_mapped", d.feature,
                 json_string(why).c_str());
}

}  // namespace moat::tool
