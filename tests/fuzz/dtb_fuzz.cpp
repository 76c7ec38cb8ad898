// libFuzzer target: arbitrary bytes as a device tree, through everything moat reads from one at
// boot (header and structure checks, memory planning, IOMMU and master discovery with reg,
// interrupts, iommus and iommu-map). Nothing may crash or read outside the blob.
#include <cstdint>
#include <cstring>
#include <vector>

#include "common/boot_memory.hpp"
#include "common/discovery.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace moat;

using fuzz::NullSink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> blob(data, data + size);  // exactly `size` bytes: ASan sees any over-read
    dt::Tree t;
    if (t.open(blob.empty() ? nullptr : blob.data(), size) != Status::ok) return 0;
    static MemoryPlan plan;
    (void)plan_memory(t, {0x40200000, 0x100000}, {0x48000000, size}, plan);
    static Topology topo;
    NullSink out;
    (void)discover(t, topo, out);
    print_topology(t, topo, out);
    for (unsigned i = 0; i < topo.nmasters; i++) {
        int target;
        uint32_t sid;
        if (t.has(topo.masters[i].node, "iommu-map")) (void)t.map_rid(topo.masters[i].node, 0x10, target, sid);
    }
    return 0;
}
