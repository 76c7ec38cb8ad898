// libFuzzer target: moat-dt's dom0 filter and protection report. Arbitrary bytes as the host's
// tree; one that opens is discovered and filtered for dom0 with every known IOMMU hidden, and
// the output must open cleanly again. Nothing may crash, hang or read out of bounds.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/discovery.hpp"
#include "xen-compat/dom0_dt.hpp"
#include "xen-compat/protection.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace moat;

using fuzz::NullSink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> blob(data, data + size);  // exactly `size` bytes: ASan sees any over-read
    dt::Tree t;
    if (t.open(blob.empty() ? nullptr : blob.data(), size) != Status::ok) return 0;
    static Topology topo;
    NullSink log;
    if (discover(t, topo, log) != Status::ok) return 0;
    xen::DrivenSet driven = xen::registry_driven(topo);
    std::vector<uint8_t> out(t.size() + 4096);
    xen::Dom0Result res;
    if (xen::filter_dom0(t, topo, driven, out.data(), out.size(), res, log) != Status::ok) return 0;
    dt::Tree back;
    if (back.open(out.data(), res.size) != Status::ok) abort();  // what moat writes, moat can read
    return 0;
}
