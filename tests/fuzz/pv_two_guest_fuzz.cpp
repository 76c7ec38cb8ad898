// libFuzzer target: two unprivileged guests issue arbitrary PV-IOMMU sub-ops, interleaved,
// against the real dispatcher and the SMMUv3 driver on its register model; between calls their
// devices DMA at addresses the input picks. A DMA that reaches memory must land in the RAM of
// the guest that owns the device, never the other guest's nor the hypervisor's; errnos stay in
// the ABI's set; each guest stays within its quota; teardown gives every page back.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "drivers/iommu/smmu_v3.hpp"
#include "tests/models/fake_guest.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/smmu_v3_model.hpp"
#include "tests/models/vmsa_walker.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace moat;
using namespace moat::xen;

namespace {

constexpr uintptr_t kBase = 0x09050000;
constexpr uint64_t kQuota = 48;

struct Env {
    model::HostPool mem{4096, model::HostPool::kPhysBase, 2 * MiB};
    model::PoolPhysMem phys{*mem.pool};
    model::SmmuV3Model model{phys, {}};
    SmmuV3 smmu{*mem.pool};
    Env() {
        if (!mem.ok || !mmio::attach(kBase, model::SmmuV3Model::kRegSize, &model)) abort();
        if (smmu.probe(SmmuV3::Config{kBase, model::SmmuV3Model::kRegSize, "smmuv3-model", 63, 48, false}) != Status::ok)
            abort();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Env env;
    PagePool& pool = *env.mem.pool;
    size_t baseline = pool.used_pages();
    {
        PvIommuConfig cfg;
        cfg.budget_pages = 64;
        cfg.quota_pages = kQuota;
        model::FakeGuest mem_a(pool, 64), mem_b(pool, 64);
        model::FakeGuest* mem[2] = {&mem_a, &mem_b};
        PvIommuGuest a(1, false, mem_a, pool, cfg), b(2, false, mem_b, pool, cfg);
        PvIommuGuest* g[2] = {&a, &b};
        PvIommuHost host;
        for (unsigned i = 0; i < 2; i++) {
            if (g[i]->init_default(mem[i]->first_gfn(), mem[i]->pages()) != Status::ok) abort();
            // Two devices each: streams 8, 9 for guest 1 and 16, 17 for guest 2.
            for (unsigned k = 0; k < 2; k++)
                if (g[i]->assign(0, 0, static_cast<uint8_t>(k << 3), env.smmu, 8 * (i + 1) + k) != Status::ok) abort();
            (void)host.add(*g[i]);
        }
        uint64_t args = (model::FakeGuest::kRamGfn << kPageShift) + 0x800;
        size_t pos = 0;
        for (int calls = 0; pos < size && calls < 48; calls++) {
            uint8_t op = data[pos++];
            unsigned who = op >> 7;
            size_t n = size - pos < 56 ? size - pos : 56;
            uint8_t buf[56] = {};
            memcpy(buf, data + pos, n);
            pos += n;
            // Mostly the sub-ops that change state, and frames and addresses small enough to collide.
            uint64_t subop = (op & 0x40) ? (op & 0x3f) % 13 : 2 + (op & 0x3f) % 6;
            buf[8] &= 0x3f, buf[16] &= 0x3f;
            memset(buf + 9, 0, 7);
            memset(buf + 17, 0, 7);
            (void)mem[who]->write(args, buf, sizeof buf);
            CallResult r{0, true};
            for (int k = 0; r.preempted && k < 64; k++) r = iommu_op(host, *g[who], subop, args);
            if (!fuzz::abi_errno(r.ret)) abort();
            if (g[who]->quota().used() > kQuota) abort();
            // A DMA by one of the two guests' devices, at an address from the input.
            uint32_t sid = 8 * (who + 1) + ((op >> 5) & 1);
            uint64_t iova = (uint64_t{buf[8]} | uint64_t{static_cast<uint8_t>(buf[16] & 3)} << 6) << kPageShift;
            if (buf[1] & 1) iova += model::FakeGuest::kRamGfn << kPageShift;  // identity-mapped default context
            uint8_t probe[8] = {0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a};
            model::SmmuV3Model::Dma d = env.model.dma_write(sid, iova, probe, sizeof probe);
            if (d.bypassed) abort();
            if (d.done) {
                uint64_t lo = mem[who]->mfn_of(mem[who]->first_gfn()) << kPageShift;
                uint64_t hi = lo + (mem[who]->pages() << kPageShift);
                if (d.pa < lo || d.pa >= hi) abort();  // DMA outside its owner's RAM
            }
        }
    }
    FaultLog log;
    (void)env.smmu.poll_faults(log);
    env.model.forget_events();
    if (!env.model.violations().empty()) abort();  // the driver used the SMMU as the architecture says
    if (pool.used_pages() != baseline) abort();  // every context page and both guests' RAM came back
    return 0;
}
