#include "xen-compat/dom0_dt.hpp"

#include <libfdt.h>
#include <string.h>

namespace moat::xen {

namespace {

constexpr unsigned kMaxKeptCells = 256;  // one rewritten iommus / iommu-map property

struct Filter {
    const dt::Tree& host;
    const Topology& topo;
    const DrivenSet& driven;
    void* out;
    Dom0Result& res;
    Sink& log;

    bool hidden(int host_node) const {
        int i = topo.iommu_index(host_node);
        return i >= 0 && driven.has(static_cast<unsigned>(i));
    }
    bool hidden_phandle(uint32_t ph) const {
        int n = host.node_by_phandle(ph);
        return n >= 0 && hidden(n);
    }

    __attribute__((format(printf, 3, 4))) void problem(int host_node, const char* fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        host.vreport(log, host_node, fmt, ap);
        va_end(ap);
        res.problems++;
    }

    // The output node with the host node's path (edits never move nodes until the end).
    int out_node(int host_node, char* path) const {
        host.path(host_node, path, dt::kPathMax);
        return fdt_path_offset(out, path);
    }

    Status libfdt_error(int host_node, const char* what, int err) {
        char p[dt::kPathMax];
        format(log, "dt: %s: %s: %s\n", host.path(host_node, p, sizeof p), what, fdt_strerror(err));
        return err == -FDT_ERR_NOSPACE ? Status::no_space : Status::bad_dt;
    }

    // Writes `cells` as the new value of `prop`, or deletes it (and `also`) when empty.
    Status rewrite(int host_node, const char* prop, const uint32_t* cells, unsigned n, const char* also) {
        char path[dt::kPathMax];
        int node = out_node(host_node, path);
        if (node < 0) return libfdt_error(host_node, "not in the output", node);
        if (n == 0) {
            int err = fdt_delprop(out, node, prop);
            if (err) return libfdt_error(host_node, prop, err);
            res.removed_props++;
            if (also && fdt_getprop(out, node, also, nullptr)) {
                if ((err = fdt_delprop(out, node, also)) != 0) return libfdt_error(host_node, also, err);
                res.removed_props++;
            }
            return Status::ok;
        }
        fdt32_t be[kMaxKeptCells];
        for (unsigned i = 0; i < n; i++) be[i] = cpu_to_fdt32(cells[i]);
        int err = fdt_setprop(out, node, prop, be, static_cast<int>(n * 4));
        if (err) return libfdt_error(host_node, prop, err);
        res.trimmed_props++;
        return Status::ok;
    }

    // A property the typed reader refuses: if it names a hidden IOMMU where a phandle can be
    // told apart (up to the first entry that cannot be decoded), dom0 must not see it: it
    // would dangle. Otherwise it is not ours to judge (`check` reports it).
    Status unparsable(int node, const char* prop, const char* also) {
        char why[dt::kErrorMax];
        format_to(why, sizeof why, "%s", host.error());
        int len;
        const auto* p = static_cast<const fdt32_t*>(host.prop(node, prop, &len));
        unsigned cells = p && len > 0 ? static_cast<unsigned>(len) / 4 : 0;
        bool names_hidden = false;
        if (strcmp(prop, "iommu-map") == 0) {
            for (unsigned i = 1; i < cells; i += 4) names_hidden |= hidden_phandle(fdt32_ld(p + i));
        } else {
            for (unsigned i = 0; i < cells && !names_hidden;) {
                int target = host.node_by_phandle(fdt32_ld(p + i));
                uint32_t n;
                // n wraps 1 + n to 0 at 0xffffffff: an absurd count ends the walk, or it never would.
                if (target < 0 || host.u32(target, "#iommu-cells", n) != Status::ok || n > dt::kMaxCells) break;
                names_hidden = hidden(target);
                i += 1 + n;
            }
        }
        if (!names_hidden) return Status::ok;
        problem(node, "%s cannot be parsed (%s); removed because it names an IOMMU moat hides", prop, why);
        return rewrite(node, prop, nullptr, 0, also);
    }

    Status filter_iommus(int node) {
        uint32_t kept[kMaxKeptCells];
        unsigned nk = 0, dropped = 0;
        for (unsigned i = 0;; i++) {
            dt::PhandleArgs a;
            Status st = host.phandle_args(node, "iommus", "#iommu-cells", i, a);
            if (st == Status::not_found && i > 0) break;
            if (st != Status::ok) return unparsable(node, "iommus", nullptr);
            if (hidden(a.node)) {
                dropped++;
                continue;
            }
            if (nk + 1 + a.count > kMaxKeptCells) {
                problem(node, "iommus longer than %u cells, left as it is", kMaxKeptCells);
                return Status::ok;
            }
            kept[nk++] = a.phandle;
            for (unsigned k = 0; k < a.count; k++) kept[nk++] = a.args[k];
        }
        return dropped ? rewrite(node, "iommus", kept, nk, nullptr) : Status::ok;
    }

    Status filter_map(int node) {
        uint32_t kept[kMaxKeptCells];
        unsigned count, nk = 0, dropped = 0;
        if (host.iommu_map_count(node, count) != Status::ok) return unparsable(node, "iommu-map", "iommu-map-mask");
        for (unsigned i = 0; i < count; i++) {
            dt::IommuMapEntry e;
            if (host.iommu_map_entry(node, i, e) != Status::ok)
                return unparsable(node, "iommu-map", "iommu-map-mask");
            if (hidden(e.iommu_node)) {
                dropped++;
                continue;
            }
            if (nk + 4 > kMaxKeptCells) {
                problem(node, "iommu-map longer than %u cells, left as it is", kMaxKeptCells);
                return Status::ok;
            }
            kept[nk++] = e.rid_base, kept[nk++] = e.phandle, kept[nk++] = e.sid_base, kept[nk++] = e.length;
        }
        return dropped ? rewrite(node, "iommu-map", kept, nk, "iommu-map-mask") : Status::ok;
    }

    // A kept node still naming a hidden IOMMU through a property we do not rewrite.
    // A kept IOMMU whose upstream link (renesas,ipmmu-main, as discovery parsed it) names a hidden one.
    void check_other_refs(int node) {
        int i = topo.iommu_index(node);
        if (i < 0 || hidden(node)) return;
        int up = topo.iommus[i].upstream_node;
        if (up >= 0 && hidden(up)) {
            char tp[dt::kPathMax];
            problem(node, "renesas,ipmmu-main names %s, which moat hides, but this IPMMU stays with dom0", host.path(up, tp, sizeof tp));
        }
    }

    bool names_removed(const char* value, int len) const {
        if (len <= 0 || value[len - 1] != 0) return false;
        char p[dt::kPathMax];
        for (unsigned i = 0; i < topo.niommus; i++) {
            if (!driven.has(i)) continue;
            size_t n = strlen(host.path(topo.iommus[i].node, p, sizeof p));
            if (strncmp(value, p, n) == 0 && (value[n] == 0 || value[n] == '/')) return true;
        }
        return false;
    }

    Status drop_path_refs(const char* holder) {
        int node = fdt_path_offset(out, holder);
        if (node < 0) return Status::ok;
        bool again = true;
        while (again) {  // deleting a property invalidates the iteration: start over
            again = false;
            int off;
            fdt_for_each_property_offset(off, out, node) {
                const char* name;
                int len;
                const char* v = static_cast<const char*>(fdt_getprop_by_offset(out, off, &name, &len));
                if (v && names_removed(v, len)) {
                    int err = fdt_delprop(out, node, name);
                    if (err) return libfdt_error(0, holder, err);
                    res.removed_aliases++;
                    again = true;
                    break;
                }
            }
        }
        return Status::ok;
    }

    Status remove_iommus() {
        for (unsigned i = 0; i < topo.niommus; i++) {
            if (!driven.has(i)) continue;
            char path[dt::kPathMax];
            int node = out_node(topo.iommus[i].node, path);
            if (node == -FDT_ERR_NOTFOUND) continue;  // inside an IOMMU removed before it
            if (node < 0) return libfdt_error(topo.iommus[i].node, "not in the output", node);
            int err = fdt_del_node(out, node);
            if (err) return libfdt_error(topo.iommus[i].node, "cannot remove", err);
            res.removed_nodes++;
        }
        return Status::ok;
    }
};

}  // namespace

Status filter_dom0(const dt::Tree& host, const Topology& topo, const DrivenSet& driven, void* out, size_t cap,
                   Dom0Result& res, Sink& log) {
    res = Dom0Result{};
    if (!host.blob()) return Status::bad_dt;
    if (cap > 0x7fffffff) cap = 0x7fffffff;
    int err = fdt_open_into(host.blob(), out, static_cast<int>(cap));
    if (err) {
        format(log, "dt: cannot copy the host tree into %zu bytes: %s\n", cap, fdt_strerror(err));
        return err == -FDT_ERR_NOSPACE ? Status::no_space : Status::bad_dt;
    }
    Filter f{host, topo, driven, out, res, log};
    int depth = 0;
    for (int n = host.next_node(-1, &depth); n >= 0; n = host.next_node(n, &depth)) {
        Status st = Status::ok;
        if (host.has(n, "iommus")) st = f.filter_iommus(n);
        if (st == Status::ok && host.has(n, "iommu-map")) st = f.filter_map(n);
        if (st != Status::ok) return st;
        f.check_other_refs(n);
    }
    Status st = f.drop_path_refs("/aliases");
    if (st == Status::ok) st = f.drop_path_refs("/__symbols__");
    if (st == Status::ok) st = f.remove_iommus();
    if (st != Status::ok) return st;
    if ((err = fdt_pack(out)) != 0) {
        format(log, "dt: cannot pack the dom0 tree: %s\n", fdt_strerror(err));
        return Status::bad_dt;
    }
    res.size = fdt_totalsize(out);
    return Status::ok;
}

XenfeatDecision decide_xenfeat(const ProtectionReport& report) {
    XenfeatDecision d;
    for (unsigned i = 0; i < report.count; i++) {
        const DeviceEntry& e = report.devices[i];
        if (e.dma == Dma::protected_dma) {
            d.protected_count++;
            continue;
        }
        (e.dma == Dma::unprotected ? d.unprotected : d.unknown)++;
        if (d.first < 0) d.first = static_cast<int>(i);
    }
    d.unknown += report.dropped;
    d.feature = d.unprotected || d.unknown ? kXenfeatDirectMapped : kXenfeatNotDirectMapped;
    return d;
}

void explain_xenfeat(const dt::Tree& host, const Topology& topo, const ProtectionReport& report,
                     const XenfeatDecision& d, Sink& out) {
    if (d.feature == kXenfeatNotDirectMapped) {
        if (d.protected_count == 0)
            format(out, "XENFEAT_not_direct_mapped (%u): no device dom0 sees can master DMA", kXenfeatNotDirectMapped);
        else
            format(out, "XENFEAT_not_direct_mapped (%u): all %u DMA masters dom0 sees are translated by IOMMUs moat drives, "
                   "so dom0 needs no 1:1 memory", kXenfeatNotDirectMapped, d.protected_count);
        return;
    }
    format(out, "XENFEAT_direct_mapped (%u): ", kXenfeatDirectMapped);
    if (d.first < 0) {
        format(out, "%u devices past the report's capacity could not be examined, so dom0 must be mapped 1:1", report.dropped);
        return;
    }
    const DeviceEntry& e = report.devices[d.first];
    char p[dt::kPathMax];
    unsigned total = d.protected_count + d.unprotected + d.unknown;
    format(out, "%u of the %u DMA masters dom0 sees reach memory without an IOMMU moat drives (%u unprotected, %u unknown), ",
           d.unprotected + d.unknown, total, d.unprotected, d.unknown);
    format(out, "%s %s: ", d.unprotected + d.unknown > 1 ? "first" : "namely", host.path(e.node, p, sizeof p));
    describe_reason(host, topo, e, out);
    format(out, "; their DMA uses the addresses dom0 programs as machine addresses, so dom0 must be mapped 1:1 (gfn == mfn)");
}

}  // namespace moat::xen
