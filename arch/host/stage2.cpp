#include "arch/stage2.hpp"

#include <atomic>

namespace moat::arch {

namespace {
std::atomic<uint64_t> g_calls{0}, g_pages{0};
std::atomic<uint16_t> g_vmid{0};
}  // namespace

Status stage2_invalidate(uint16_t vmid, const iopt::Gather& g) {
    uint64_t pages = 0;
    if (!g.overflowed())
        for (unsigned i = 0; i < g.range_count(); i++) pages += g.range(i).size >> kPageShift;
    g_pages += pages;
    g_vmid = vmid;
    g_calls++;
    return Status::ok;
}

namespace host {
Stage2Calls stage2_calls() { return Stage2Calls{g_calls.load(), g_pages.load(), g_vmid.load()}; }
}  // namespace host

}  // namespace moat::arch
