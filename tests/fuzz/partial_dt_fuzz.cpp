// libFuzzer target: arbitrary bytes as a dom0less guest's partial device tree (Xen's
// multiboot,device-tree module), through parse_partial_dt and the Linux guest tree built with it.
// What the parser accepts must keep its promises (every range page-aligned, non-empty, clear of the
// guest's RAM and devices and of every other range; SPIs only), and the guest tree it
// yields must open again with no xen, property in it. Nothing may crash, hang or read outside the blob.
#include <libfdt.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_support.hpp"
#include "xen-compat/dom0less_partial.hpp"

using namespace moat;
using fuzz::NullSink;

namespace {

bool overlap(uint64_t a, uint64_t as, uint64_t b, uint64_t bs) { return a < b + bs && b < a + as; }

xen::Dom0lessGuest make_guest() {
    xen::Dom0lessGuest g;
    std::strcpy(g.name, "domU1");
    std::strcpy(g.path, "/chosen/domU1");
    g.memory = 128 * MiB;
    g.vcpus = 2;
    g.vpl011 = true;
    g.kernel = {true, 0x4a000000, 8 * MiB};
    return g;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> blob(data, data + size);  // exactly `size` bytes: ASan sees any over-read
    static const xen::Dom0lessGuest g = make_guest();
    static xen::PartialTree pt;
    NullSink err;
    if (xen::parse_partial_dt(g, blob.empty() ? nullptr : blob.data(), size, pt, err, &err) != Status::ok) {
        if (pt.ndevices) abort();  // a refused tree leaves no device
        return 0;
    }
    namespace m = xen::guest_map;
    for (unsigned d = 0; d < pt.ndevices; d++) {
        const xen::PtDevice& dev = pt.dev[d];
        if (dev.host_path[0] != '/') abort();
        for (unsigned k = 0; k < dev.nranges; k++) {
            const xen::PtRange& r = dev.ranges[k];
            if (!r.size || (r.host | r.size | r.guest) % 4096 || r.guest + r.size > m::kGuestRamLimit) abort();
            if (overlap(r.guest, r.size, g.ram_base, g.memory) || overlap(r.guest, r.size, m::kGicdBase, m::kGicdSize) ||
                overlap(r.guest, r.size, m::kPl011Base, m::kPl011Size))
                abort();
            for (unsigned e = 0; e < pt.ndevices; e++)
                for (unsigned j = 0; j < pt.dev[e].nranges; j++)
                    if ((e != d || j != k) && (overlap(r.guest, r.size, pt.dev[e].ranges[j].guest, pt.dev[e].ranges[j].size) ||
                                               overlap(r.host, r.size, pt.dev[e].ranges[j].host, pt.dev[e].ranges[j].size)))
                        abort();
        }
        for (unsigned k = 0; k < dev.nirqs; k++)
            if (dev.intids[k] < 32 || dev.intids[k] == m::kPl011Intid) abort();
    }
    xen::GuestPlacement place;
    if (xen::place_guest_modules(g, 0, g.kernel.size, place, err) != Status::ok) abort();
    static uint8_t out[64 * 1024];
    size_t n = 0;
    if (xen::build_linux_guest_dt(g, place, out, sizeof out, n, err, nullptr, &pt) != Status::ok) return 0;  // too big: refused
    dt::Tree gt;
    if (gt.open(out, n) != Status::ok) abort();
    int depth = 0;
    for (int node = 0; node >= 0; node = fdt_next_node(out, node, &depth))
        for (int p = fdt_first_property_offset(out, node); p >= 0; p = fdt_next_property_offset(out, p)) {
            const char* name = nullptr;
            (void)fdt_getprop_by_offset(out, p, &name, nullptr);
            if (name && std::strncmp(name, "xen,", 4) == 0) abort();
        }
    return 0;
}
