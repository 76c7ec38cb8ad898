// The IPMMUs of one R-Car Gen3 SoC as the device tree describes them: which node is the root,
// which caches forward to it (and on which IMSSTR bit), which master sits on which uTLB. Builds
// on discover(): every IPMMU node it found is checked against the binding and probed, roots
// first in effect (a cache whose root has not probed yet is retried after the others, the way
// Linux defers a probe), and each problem is reported in one line naming the node. A refused
// IPMMU is left alone and its masters untranslated; nothing else is affected. Each cache is told
// which of its uTLBs the tree's masters use: with block_unattached (the default) they fault
// until attached, in a blocking context whose table comes from the page pool the set is given.
#pragma once
#include "common/discovery.hpp"
#include "drivers/iommu/ipmmu_vmsa.hpp"

namespace moat {

// The product register of the SoC: where the `renesas,prr` node says, else at Gen3's fixed
// address (as Linux does for trees without the node; ours in dts/ has none). `from_dt` says which.
Status read_prr(const dt::Tree& t, uint32_t& prr, bool* from_dt = nullptr);

class IpmmuSet {
public:
    static constexpr unsigned kMaxUnits = 16;
    static constexpr unsigned kMaxMasters = 48;  // per cache: one per uTLB at most

    struct Master {
        int node;
        uint8_t utlb;
    };
    struct Unit {
        int node = -1;
        unsigned topo_index = 0;  // into Topology::iommus
        int root = -1;            // unit index of its root (its own for the root); -1 unknown
        unsigned main_bit = 0;
        Status status = Status::not_ready;  // of the last probe
        unsigned nmasters = 0;
        Master masters[kMaxMasters] = {};
        IpmmuVmsa iommu;
    };

    // Without a page pool no root can build its blocking context: a set built this way refuses
    // its roots ("block_unattached without a page pool"), it never silently lets masters bypass.
    IpmmuSet() = default;
    // block_unattached = false: one more context for domains, and the masters that are not
    // attached pass DMA untranslated (said once per root at probe). Only for quiesced masters.
    explicit IpmmuSet(PagePool& pool, bool block_unattached = true) : pool_(&pool), block_unattached_(block_unattached) {}
    IpmmuSet(const IpmmuSet&) = delete;
    IpmmuSet& operator=(const IpmmuSet&) = delete;

    // Takes every node of `topo` that the registry binds to ipmmu_vmsa and probes it; ok even when
    // some are refused (problems() counts them, each reported). prr: the product register value.
    Status probe_all(const dt::Tree& t, const Topology& topo, uint32_t prr, Sink& report,
                     IpmmuVmsa::Format format = IpmmuVmsa::Format::stage2, unsigned cpu_pa_bits = 40);
    // One node (its unit is added on first use). not_ready: a cache whose root has not probed.
    Status probe_node(const dt::Tree& t, const Topology& topo, unsigned topo_index, uint32_t prr, Sink& report);

    // "root iommu@e67b0000: ..." then "cache iommu@e7740000 -> root iommu@e67b0000 bit 1; masters: ..."
    void print(const dt::Tree& t, Sink& out) const;

    unsigned count() const { return nunits_; }
    const Unit& unit(unsigned i) const { return units_[i]; }
    Unit* find(int node);
    // The probed instance a master's `iommus` entry `index` names, and its uTLB.
    IpmmuVmsa* iommu_of(int master_node, unsigned index, uint32_t& utlb);
    unsigned problems() const { return problems_; }
    void shutdown();

private:
    Unit* add(const dt::Tree& t, const Topology& topo, unsigned topo_index);
    Status check_binding(const dt::Tree& t, const Topology& topo, Unit& u, Sink& report);
    void collect_masters(const dt::Tree& t, const Topology& topo, Unit& u, Sink& report);
    Status refuse(const dt::Tree& t, const Unit& u, Sink& report, Status st, const char* what);

    PagePool* pool_ = nullptr;
    bool block_unattached_ = true;
    IpmmuVmsa::Format format_ = IpmmuVmsa::Format::stage2;
    unsigned cpu_pa_bits_ = 40;
    Unit units_[kMaxUnits];
    unsigned nunits_ = 0;
    unsigned problems_ = 0;
};

// For the image: when discovery found IPMMUs, read the product register, probe them all and print
// their topology ("ipmmu: ..." lines). Touches no register when there is no IPMMU (QEMU virt has
// nothing at the product register's address). Returns the number of problems reported.
unsigned probe_ipmmus(const dt::Tree& t, const Topology& topo, IpmmuSet& set, unsigned cpu_pa_bits, Sink& out);

}  // namespace moat
