// libFuzzer target: arbitrary sequences of PV-IOMMU sub-ops with arbitrary struct bytes, from an
// unprivileged guest, against the real dispatcher, IoDomain and page-table engine. Besides the
// sanitizers' checks it asserts what a guest must never achieve: an errno outside the ABI's set,
// a context table page leaked, or a frame that is not its own RAM mapped into any context.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "tests/models/fake_guest.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace moat;
using namespace moat::xen;

namespace {

class NullIommu final : public Iommu {
public:
    const char* name() const override { return "null"; }
    const IommuCaps& caps() const override { return caps_; }
    const char* why() const override { return ""; }
    void describe(Sink&) const override {}
    Status xlate(const uint32_t* a, unsigned, StreamId& out, Why&) const override { return out = a[0], Status::ok; }
    IommuStats stats() const override { return {}; }
    Status attach(IoDomain&, StreamId) override { return Status::ok; }
    Status detach(IoDomain&, StreamId) override { return Status::ok; }
    Status flush(IoDomain&, const iopt::Gather&) override { return Status::ok; }
    Result<iopt::Format> domain_format(DomainUse, unsigned ias) const override { return iopt::vmsa_s1(ias, 44, true); }
    unsigned poll_faults(FaultLog&) override { return 0; }
private:
    IommuCaps caps_{true, false, 48, 44, true, true, 0xffff};
};

struct Env {
    model::HostPool mem{1024, model::HostPool::kPhysBase, 2 * MiB};
    std::unique_ptr<PagePool>& pool = mem.pool;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static Env env;
    PagePool& pool = *env.pool;
    size_t baseline = pool.used_pages();
    {
        model::FakeGuest mem(pool, 64);  // 256 KiB of guest RAM at gfn 0x40000
        NullIommu iommu;
        PvIommuConfig cfg;
        cfg.budget_pages = 64;
        PvIommuHost host;
        PvIommuGuest guest(1, false, mem, pool, cfg);
        if (guest.init_default(mem.first_gfn(), mem.pages()) != Status::ok) abort();
        (void)guest.assign(0, 0, 8, iommu, 8);
        (void)host.add(guest);
        uint64_t args = (mem.first_gfn() << kPageShift) + 0x800;
        size_t pos = 0;
        for (int calls = 0; pos < size && calls < 64; calls++) {
            uint8_t op = data[pos++];
            size_t n = size - pos < 56 ? size - pos : 56;
            uint8_t buf[56] = {};
            memcpy(buf, data + pos, n);
            pos += n;
            // Mostly valid sub-ops, sometimes anything; the struct lives in RAM unless the top bit says otherwise.
            uint64_t subop = (op & 0x40) ? op : op % 13;
            uint64_t where = (op & 0x80) ? (uint64_t{buf[0]} << 24) : args;
            (void)mem.write(args, buf, sizeof buf);
            CallResult r{0, true};
            for (int k = 0; r.preempted && k < 64; k++) r = iommu_op(host, guest, subop, where);
            if (!fuzz::abi_errno(r.ret)) abort();
        }
        // Nothing outside the guest's RAM is reachable through any context.
        for (unsigned c = 0; c < PvIommuGuest::kMaxContexts; c++) {
            IoDomain* d = guest.context(c);
            if (!d) continue;
            for (uint64_t dfn = 0; dfn < 0x100; dfn++) {
                for (uint64_t base : {uint64_t{0}, mem.first_gfn()}) {
                    auto t = d->lookup((base + dfn) << kPageShift);
                    if (!t.ok()) continue;
                    uint64_t mfn = t.value.pa >> kPageShift;
                    if (mfn < mem.mfn_of(mem.first_gfn()) || mfn >= mem.mfn_of(mem.first_gfn()) + mem.pages()) abort();
                }
            }
        }
    }
    if (pool.used_pages() != baseline) abort();  // every context page, and the guest's RAM, came back
    return 0;
}
