// libFuzzer target: arbitrary bytes as a boot tree, through the dom0less parser moat runs at boot,
// the placement of each accepted guest's modules and the Linux guest tree built for it. What the
// parser accepts must keep its promises (a kernel, RAM, vCPUs in range, modules inside RAM and
// clear of moat and of each other), and what the builder writes must open again. Nothing may
// crash, hang or read outside the blob.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/boot_memory.hpp"
#include "tests/fuzz/fuzz_support.hpp"
#include "xen-compat/dom0less.hpp"

using namespace moat;

using fuzz::NullSink;

namespace {

bool inside(const xen::Dom0lessModule& m, const xen::Dom0lessLimits& l) {
    for (unsigned i = 0; i < l.nram; i++)
        if (m.addr >= l.ram[i].base && m.end() <= l.ram[i].end() && m.end() > m.addr) return true;
    return false;
}
bool overlap(const xen::Dom0lessModule& a, uint64_t base, uint64_t size) { return a.addr < base + size && base < a.end(); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> blob(data, data + size);  // exactly `size` bytes: ASan sees any over-read
    dt::Tree t;
    if (t.open(blob.empty() ? nullptr : blob.data(), size) != Status::ok) return 0;
    static MemoryPlan plan;
    if (plan_memory(t, {0x40200000, 0x200000}, {0x48000000, size}, plan) != Status::ok) return 0;
    xen::Dom0lessLimits lim = xen::dom0less_limits(plan, 512 * MiB, 4);
    static xen::Dom0lessConfig cfg;
    NullSink err;
    (void)xen::parse_dom0less(t, lim, cfg, err, &err);
    uint64_t ram = 0;
    for (unsigned i = 0; i < cfg.nguests; i++) {
        const xen::Dom0lessGuest& g = cfg.guests[i];
        if (!g.kernel.present || g.memory == 0 || g.memory % 4096 || g.vcpus == 0 || g.vcpus > 4) abort();
        const xen::Dom0lessModule* mods[] = {&g.kernel, &g.ramdisk, &g.dtb};
        for (const xen::Dom0lessModule* m : mods) {
            if (!m->present) continue;
            if (m->size == 0 || !inside(*m, lim)) abort();
            for (unsigned r = 0; r < lim.nreserved; r++)
                if (overlap(*m, lim.reserved[r].base, lim.reserved[r].size)) abort();
        }
        ram += g.memory;
        xen::GuestPlacement place;
        if (xen::place_guest_modules(g, 0, g.kernel.size, place, err) != Status::ok) continue;
        if (place.initrd_size && (place.initrd < place.kernel + place.kernel_size || place.initrd + place.initrd_size > place.dtb))
            abort();
        static uint8_t out[64 * 1024];
        size_t n = 0;
        if (xen::build_linux_guest_dt(g, place, out, sizeof out, n, err) != Status::ok) abort();  // a parsed guest always has a tree
        dt::Tree gt;
        if (gt.open(out, n) != Status::ok) abort();
    }
    if (ram > 512 * MiB) abort();  // the pool is shared, never overcommitted
    MemRange r[3 * xen::kDom0lessMaxGuests];
    unsigned nr = xen::dom0less_module_ranges(cfg, r, 3 * xen::kDom0lessMaxGuests);
    for (unsigned a = 0; a < nr; a++)
        for (unsigned b = a + 1; b < nr; b++)
            if (r[a].base < r[b].end() && r[b].base < r[a].end()) abort();  // no two modules share a byte
    return 0;
}
