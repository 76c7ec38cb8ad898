#include "xen-compat/wiring_check.hpp"

#include <string.h>

namespace moat::xen {

namespace {

struct Checker {
    const dt::Tree& t;
    const Topology& topo;
    Sink& out;
    unsigned problems = 0;

    __attribute__((format(printf, 3, 4))) void problem(int node, const char* fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        t.vreport(out, node, fmt, ap);
        va_end(ap);
        problems++;
    }
    const char* path(int node, char* buf) const { return t.path(node, buf, dt::kPathMax); }

    void check_cells() {
        for (unsigned i = 0; i < topo.niommus; i++) {
            const IommuInfo& io = topo.iommus[i];
            const DriverEntry* d = io.driver;
            const BindingRules* b = d ? &d->rules : nullptr;
            if (b && (io.iommu_cells < b->min_cells || io.iommu_cells > b->max_cells)) {
                if (b->min_cells == b->max_cells)
                    problem(io.node, "#iommu-cells is %u, the %s binding needs %u", io.iommu_cells, d->compatible, b->min_cells);
                else
                    problem(io.node, "#iommu-cells is %u, the %s binding allows %u or %u", io.iommu_cells, d->compatible,
                            b->min_cells, b->max_cells);
            }
        }
        for (unsigned k = 0; k < topo.nmasters; k++) {
            const MasterInfo& m = topo.masters[k];
            for (unsigned s = 0; s < m.nstreams; s++) {
                const StreamRef& r = m.streams[s];
                const IommuInfo& io = topo.iommus[r.iommu];
                const BindingRules* b = io.driver ? &io.driver->rules : nullptr;
                if (!b || io.iommu_cells < b->min_cells || io.iommu_cells > b->max_cells) continue;
                char ip[dt::kPathMax];
                uint64_t last = uint64_t{r.sid} + r.count - 1;
                if (last > b->max_id)
                    problem(m.node, "%s 0x%lx on %s is out of range (at most 0x%x)", b->id_name, last, path(io.node, ip),
                            b->max_id);
                if (r.nargs > 1 && r.args[1] > b->max_arg1)
                    problem(m.node, "stream mask 0x%x on %s is out of range (at most 0x%x)", r.args[1], path(io.node, ip),
                            b->max_arg1);
            }
        }
    }

    // The upstream link a driver declares (renesas,ipmmu-main), as discovery parsed it once.
    void check_upstream() {
        for (unsigned i = 0; i < topo.niommus; i++) {
            const IommuInfo& io = topo.iommus[i];
            char rp[dt::kPathMax];
            if (io.upstream_problem[0]) {
                problem(io.node, "%s", io.upstream_problem);
                continue;
            }
            if (io.upstream_node < 0) continue;
            int up = topo.iommu_index(io.upstream_node);
            if (up < 0 || !topo.iommus[up].driver || topo.iommus[up].driver->upstream != io.driver->upstream)
                problem(io.node, "renesas,ipmmu-main points at %s, which is not an IPMMU", path(io.upstream_node, rp));
            else if (topo.iommus[up].upstream_node >= 0 || topo.iommus[up].upstream_problem[0])
                problem(io.node, "renesas,ipmmu-main points at %s, which is a cache IPMMU, not the root", path(io.upstream_node, rp));
        }
    }

    void check_map_overlaps() {
        for (unsigned k = 0; k < topo.nmasters; k++) {
            const MasterInfo& m = topo.masters[k];
            unsigned ei = 0;
            for (unsigned a = 0; a < m.nstreams; a++) {
                if (!m.streams[a].from_map) continue;
                unsigned ej = ei + 1;
                for (unsigned b = a + 1; b < m.nstreams; b++) {
                    if (!m.streams[b].from_map) continue;
                    const StreamRef &x = m.streams[a], &y = m.streams[b];
                    uint32_t lo = max(x.rid_base, y.rid_base);
                    if (lo - x.rid_base < x.count && lo - y.rid_base < y.count)
                        problem(m.node, "iommu-map entries %u and %u overlap at requester id 0x%x", ei, ej, lo);
                    ej++;
                }
                ei++;
            }
        }
    }

    // Whether two stream references on the same IOMMU can match the same stream; `first` gets
    // one such stream id.
    static bool overlap(const StreamRef& a, const StreamRef& b, uint32_t& first) {
        uint32_t ma = a.nargs > 1 ? a.args[1] : 0, mb = b.nargs > 1 ? b.args[1] : 0;
        if (ma == 0 && mb == 0) {
            first = max(a.sid, b.sid);
            return first - a.sid < a.count && first - b.sid < b.count;
        }
        if (a.count == 1 && b.count == 1) {
            first = a.sid & ~ma;
            return ((a.sid ^ b.sid) & ~(ma | mb)) == 0;
        }
        // A range against a masked id: try the range's ids (bounded by the 16-bit id space).
        const StreamRef& range = a.count > 1 ? a : b;
        const StreamRef& masked = a.count > 1 ? b : a;
        uint32_t mask = a.count > 1 ? mb : ma;
        for (uint32_t i = 0; i < range.count && i < 0x10000; i++)
            if (((range.sid + i) ^ masked.sid) & ~mask) continue;
            else return first = range.sid + i, true;
        return false;
    }

    void check_shared_streams() {
        for (unsigned i = 0; i < topo.nmasters; i++) {
            const MasterInfo& a = topo.masters[i];
            for (unsigned j = i + 1; j < topo.nmasters; j++) {
                const MasterInfo& b = topo.masters[j];
                bool reported = false;
                for (unsigned s = 0; s < a.nstreams && !reported; s++) {
                    for (unsigned u = 0; u < b.nstreams && !reported; u++) {
                        const StreamRef &x = a.streams[s], &y = b.streams[u];
                        uint32_t sid;
                        if (x.iommu != y.iommu || topo.iommus[x.iommu].grants() || !overlap(x, y, sid))
                            continue;
                        char ip[dt::kPathMax], bp[dt::kPathMax];
                        problem(a.node, "stream 0x%x on %s is also claimed by %s", sid, path(topo.iommus[x.iommu].node, ip),
                                path(b.node, bp));
                        reported = true;
                    }
                }
            }
        }
    }
};

}  // namespace

unsigned check_wiring(const dt::Tree& t, const Topology& topo, Sink& out) {
    if (!t.blob()) return 0;
    Checker c{t, topo, out};
    c.check_cells();
    c.check_upstream();
    c.check_map_overlaps();
    c.check_shared_streams();
    return c.problems;
}

}  // namespace moat::xen
