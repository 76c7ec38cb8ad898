// A master's DMA as every IOMMU model performs it: page by page, each page translated on its own
// (a transfer may run into an unmapped page half way), the bytes moved in pretend physical memory.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "tests/models/vmsa_walker.hpp"

namespace moat::model {

template <class Xlate>
struct DmaRun {
    size_t done = 0;        // bytes moved
    bool complete = false;  // all of them
    bool faulted = false;   // a translation refused a page (`failed` says how)
    Xlate first{};          // the first page's translation, whatever its outcome
    Xlate failed{};
};

// translate(address) -> Xlate with `ok` and `pa`. A page whose PA nothing answers at ends the run
// without a fault: a bus error, not the IOMMU's business.
template <class Xlate, class Translate>
DmaRun<Xlate> dma_pages(PhysMem& mem, uint64_t iova, uint8_t* buf, size_t len, bool write, Translate translate) {
    DmaRun<Xlate> r;
    while (r.done < len) {
        uint64_t a = iova + r.done;
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(len - r.done, 0x1000 - (a & 0xfff)));
        Xlate x = translate(a);
        if (r.done == 0) r.first = x;
        if (!x.ok) {
            r.failed = x;
            r.faulted = true;
            return r;
        }
        bool moved = write ? mem.write(x.pa, buf + r.done, chunk) : mem.read(x.pa, buf + r.done, chunk);
        if (!moved) return r;
        r.done += chunk;
    }
    r.complete = true;
    return r;
}

}  // namespace moat::model
