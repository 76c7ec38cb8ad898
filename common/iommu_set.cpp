#include "common/iommu_set.hpp"

namespace moat {

unsigned IommuSet::probe_all(ProbeEnv& env) {
    release_all();
    topo_ = &env.topo;
    env.probed = this;
    const Topology& topo = env.topo;
    const dt::Tree& t = env.tree;
    for (unsigned i = 0; i < kMaxIommus; i++) status_[i] = i < topo.niommus && topo.iommus[i].driven() ? Status::not_ready : Status::not_found;
    Why why[kMaxIommus];
    // Rounds until nothing more probes: each round probes at least one instance or ends.
    for (bool progress = true; progress;) {
        progress = false;
        for (unsigned i = 0; i < topo.niommus; i++) {
            if (status_[i] != Status::not_ready) continue;
            why[i].clear();
            Iommu* inst = topo.iommus[i].driver->ops->probe(env, i, why[i]);
            if (inst) {
                inst_[i] = inst;
                status_[i] = Status::ok;
                progress = true;
                char line[dt::kErrorMax];
                BufferSink s(line, sizeof line);
                inst->describe(s);
                char label[24];
                format_to(label, sizeof label, "%s:", topo.iommus[i].driver->driver());
                format(env.report, "%-9s %s %s\n", label, t.name(topo.iommus[i].node), line);
            } else if (why[i].status() != Status::not_ready) {
                status_[i] = why[i].status() == Status::ok ? Status::hw_error : why[i].status();
                progress = true;
            }
        }
    }
    char path[dt::kPathMax];
    for (unsigned i = 0; i < topo.niommus; i++) {
        if (status_[i] == Status::ok || status_[i] == Status::not_found) continue;
        // Still waiting: what it waits for never probed.
        format(env.report, "%s: %s: %s; its masters stay blocked\n", topo.iommus[i].driver->driver(),
               t.path(topo.iommus[i].node, path, sizeof path), why[i].empty() ? to_string(status_[i]) : why[i].text());
        problems_++;
    }
    return problems_;
}

Iommu* IommuSet::at_node(int node) const {
    if (!topo_) return nullptr;
    int i = topo_->iommu_index(node);
    return i < 0 ? nullptr : inst_[i];
}

unsigned IommuSet::probed() const {
    unsigned n = 0;
    for (Iommu* i : inst_) n += i != nullptr;
    return n;
}

bool IommuSet::refused(const MasterInfo& m) const {
    if (!topo_ || &m < topo_->masters || &m >= topo_->masters + topo_->nmasters) return false;
    return refused_[&m - topo_->masters];
}

Status IommuSet::stream(const MasterInfo& m, unsigned ref, uint32_t sid, Iommu*& out, StreamId& id, Why& why) const {
    out = nullptr;
    if (refused(m)) return why.set(Status::denied, "a reference of this master was refused: it is left blocked");
    if (ref >= m.nstreams) return why.set(Status::not_found, "no stream reference %u", ref);
    const StreamRef& r = m.streams[ref];
    Iommu* inst = at(r.iommu);
    if (!inst) return why.set(Status::not_ready, "its IOMMU is not driven or was refused");
    Status st;
    if (r.from_map) {
        if (sid - r.sid >= r.count)
            return why.set(Status::out_of_range, "stream id 0x%x is outside iommu-map's 0x%x-0x%x", sid, r.sid, r.sid + r.count - 1);
        st = inst->xlate(&sid, 1, id, why);
    } else {
        st = inst->xlate(r.args, r.nargs, id, why);
    }
    if (st == Status::ok) out = inst;
    return st;
}

Status IommuSet::stream_of_rid(const dt::Tree& t, const MasterInfo& m, uint32_t rid, Iommu*& out, StreamId& id, Why& why) const {
    out = nullptr;
    int target;
    uint32_t sid;
    if (t.map_rid(m.node, rid, target, sid) != Status::ok) return why.set(t.why().status(), "%s", t.error());
    for (unsigned r = 0; r < m.nstreams; r++) {
        const StreamRef& ref = m.streams[r];
        if (ref.from_map && topo_ && topo_->iommus[ref.iommu].node == target && sid - ref.sid < ref.count)
            return stream(m, r, sid, out, id, why);
    }
    return why.set(Status::not_found, "requester id 0x%x maps to no IOMMU moat drives", rid);
}

unsigned IommuSet::check_masters(const dt::Tree& t, const Topology& topo, Sink& report) {
    unsigned refused = 0;
    for (bool& r : refused_) r = false;
    char path[dt::kPathMax];
    for (unsigned k = 0; k < topo.nmasters; k++) {
        const MasterInfo& m = topo.masters[k];
        for (unsigned r = 0; r < m.nstreams; r++) {
            if (!at(m.streams[r].iommu)) continue;
            Iommu* inst;
            StreamId id;
            Why why;
            // A range from iommu-map is checked at both ends: xlate sees the widest id.
            uint32_t sid = m.streams[r].sid + (m.streams[r].from_map ? m.streams[r].count - 1 : 0);
            if (stream(m, r, sid, inst, id, why) == Status::ok) continue;
            format(report, "dt: %s: %s entry %u: %s; device left blocked\n", t.path(m.node, path, sizeof path),
                   m.streams[r].from_map ? "iommu-map" : m.streams[r].legacy ? "mmu-masters" : "iommus", r, why.text());
            refused_[k] = true;
            refused++;
            break;
        }
    }
    problems_ += refused;
    return refused;
}

void IommuSet::release_all() {
    // Caches before roots: release in the reverse order of probing would need the order kept;
    // an instance with an upstream is released first.
    for (int pass = 0; pass < 2; pass++)
        for (unsigned i = 0; i < kMaxIommus; i++) {
            if (!inst_[i] || !topo_) continue;
            bool has_upstream = topo_->iommus[i].upstream_node >= 0;
            if (has_upstream != (pass == 0)) continue;
            topo_->iommus[i].driver->ops->release(inst_[i]);
            inst_[i] = nullptr;
        }
    for (Status& s : status_) s = Status::not_found;
    for (bool& r : refused_) r = false;
    problems_ = 0;
}

}  // namespace moat
