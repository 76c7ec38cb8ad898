// Every IOMMU instance of every driver, probed from the discovered topology through the registry
// (common/registry.hpp), and every master's references translated by its instance's xlate.
// Portable: the image's boot flow and the host tests use it alike.
#pragma once
#include "common/discovery.hpp"
#include "common/iommu.hpp"

namespace moat {

class IommuSet {
public:
    IommuSet() = default;
    ~IommuSet() { release_all(); }
    IommuSet(const IommuSet&) = delete;
    IommuSet& operator=(const IommuSet&) = delete;

    // Probes every driven IOMMU of env.topo. An instance whose probe says not_ready is tried
    // again after the others, until a round makes no progress. Each outcome is one line on
    // env.report: "<driver>: <name> <describe>" or "<driver>: <path>: <why>; its masters stay
    // blocked". Returns the number of instances refused.
    unsigned probe_all(ProbeEnv& env);

    // Every reference of every master, through its instance's xlate; a reference refused is one
    // line "dt: <master>: ...; device left blocked", and that master is refused whole from then on
    // (stream() and stream_of_rid() say so): its good references go with the bad one. References
    // to refused or undriven IOMMUs are not counted again. Returns the number of masters refused.
    unsigned check_masters(const dt::Tree& t, const Topology& topo, Sink& report);

    // The instance of topo.iommus[index], or nullptr (not driven, refused, or not probed).
    Iommu* at(unsigned index) const { return index < kMaxIommus ? inst_[index] : nullptr; }
    Iommu* at_node(int node) const;
    Status status(unsigned index) const { return index < kMaxIommus ? status_[index] : Status::not_found; }
    unsigned probed() const;
    unsigned problems() const { return problems_; }
    bool master_refused(const MasterInfo& m) const { return refused(m); }

    // The instance and StreamId of reference `ref` of `m` (for iommu-map references: the stream id
    // `sid`, which must lie in the reference's range). denied for a master check_masters refused.
    Status stream(const MasterInfo& m, unsigned ref, uint32_t sid, Iommu*& out, StreamId& id, Why& why) const;
    // The instance and StreamId a PCI requester id of host bridge `m` reaches through iommu-map.
    Status stream_of_rid(const dt::Tree& t, const MasterInfo& m, uint32_t rid, Iommu*& out, StreamId& id, Why& why) const;

    // Shuts every instance down (streams blocked) and gives its storage back.
    void release_all();

private:
    const Topology* topo_ = nullptr;
    Iommu* inst_[kMaxIommus] = {};
    Status status_[kMaxIommus] = {};
    bool refused_[kMaxMasters] = {};  // by index into topo.masters
    bool refused(const MasterInfo& m) const;
    unsigned problems_ = 0;
};

}  // namespace moat
