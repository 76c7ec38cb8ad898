// A device tree's IPMMUs on register models, probed as the image probes them (shared by the
// IPMMU driver-contract tests and the real-trees tier).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "arch/mmio.hpp"
#include "common/iommu_set.hpp"
#include "drivers/iommu/ipmmu_vmsa.hpp"
#include "dt_support.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/ipmmu_model.hpp"

namespace ipmmu_test {

using namespace moat;
using model::IpmmuModel;

constexpr uint32_t kPrrH3Es30 = 0x4f20;

// A tree after discovery, register models wherever it puts an IPMMU (each root its own model, of
// the generation its compatible names, each cache in front of the model of the root its
// renesas,ipmmu-main names, or of the first root), the product register at 0xfff00044 (where
// Gen3 has it and Linux's Gen4 trees put it), and the IommuSet under test (after the Topology,
// and released in the destructor while the models are still mapped).
struct DtRig {
    model::HostPool mem{512};
    model::PoolPhysMem phys{*mem.pool};
    dt_test::Loaded dt;
    std::vector<std::unique_ptr<IpmmuModel>> models;
    std::vector<uintptr_t> bases;
    std::unique_ptr<model::PrrModel> prr;
    IommuSet set;
    dt_test::StrSink report;
    bool block_unattached;

    DtRig(const char* name, uint32_t prr_value = kPrrH3Es30, bool block = true) : dt(name), block_unattached(block) {
        EXPECT_TRUE(mem.ok);
        const Topology& topo = *dt.topo;
        IpmmuModel* first_root = nullptr;
        std::vector<int> root_nodes;
        for (unsigned i = 0; i < topo.niommus; i++)
            if (!dt.tree.has(topo.iommus[i].node, "renesas,ipmmu-main")) {
                map(topo.iommus[i], std::make_unique<IpmmuModel>(phys, layout_of(topo.iommus[i].node)));
                root_nodes.push_back(topo.iommus[i].node);
                if (!first_root) first_root = models.back().get();
            }
        for (unsigned i = 0; i < topo.niommus; i++)
            if (dt.tree.has(topo.iommus[i].node, "renesas,ipmmu-main")) {
                IpmmuModel* root = first_root;
                for (size_t r = 0; r < root_nodes.size(); r++)
                    if (root_nodes[r] == topo.iommus[i].upstream_node) root = models[r].get();
                if (!root) continue;
                map(topo.iommus[i], std::make_unique<IpmmuModel>(*root, topo.iommus[i].upstream_arg & 31));
            }
        prr = std::make_unique<model::PrrModel>(prr_value);
        EXPECT_TRUE(mmio::attach(0xfff00044, 4, prr.get()));
    }
    ~DtRig() {
        set.release_all();
        for (auto& m : models) {
            mmio::detach(m.get());
            for (const std::string& v : m->violations()) ADD_FAILURE() << "model: " << v;
        }
        mmio::detach(prr.get());
    }
    // Gen4 by the generic compatible Linux's Gen4 trees carry (or V3U's own), Gen3 otherwise.
    const IpmmuModel::Layout& layout_of(int node) const {
        bool gen4 = dt.tree.compatible(node, "renesas,rcar-gen4-ipmmu-vmsa") || dt.tree.compatible(node, "renesas,ipmmu-r8a779a0");
        return gen4 ? IpmmuModel::kGen4 : IpmmuModel::kGen3;
    }
    void map(const IommuInfo& io, std::unique_ptr<IpmmuModel> m) {
        bases.push_back(static_cast<uintptr_t>(io.regs[0].addr));
        EXPECT_TRUE(mmio::attach(bases.back(), m->size(), m.get()));
        models.push_back(std::move(m));
    }
    ProbeEnv env(PagePool* pool) {
        return ProbeEnv{dt.tree, *dt.topo, pool, 40, nullptr, nullptr, report, nullptr, block_unattached};
    }
    // probe_all, then check_masters: what the image does.
    unsigned probe(PagePool* pool) {
        ProbeEnv e = env(pool);
        unsigned n = set.probe_all(e);
        return n + set.check_masters(dt.tree, *dt.topo, report);
    }
    unsigned probe() { return probe(mem.pool.get()); }
    IpmmuModel& model_at(uintptr_t base) {
        for (size_t i = 0; i < models.size(); i++)
            if (bases[i] == base) return *models[i];
        ADD_FAILURE() << "no model at " << std::hex << base;
        return *models.front();
    }
    uint64_t register_writes() const {
        uint64_t n = 0;
        for (auto& m : models) n += m->register_writes();
        return n;
    }
    unsigned index_of(const char* path) {
        int i = dt.topo->iommu_index(dt.node(path));
        EXPECT_GE(i, 0) << path;
        return static_cast<unsigned>(i);
    }
    IpmmuVmsa* ipmmu(const char* path) { return static_cast<IpmmuVmsa*>(set.at(index_of(path))); }
    const MasterInfo& master(const char* path) {
        int i = dt.topo->master_index(dt.node(path));
        EXPECT_GE(i, 0) << path;
        return dt.topo->masters[i < 0 ? 0 : i];
    }
};

}  // namespace ipmmu_test
