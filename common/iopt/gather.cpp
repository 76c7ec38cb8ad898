#include "common/iopt/gather.hpp"

namespace moat::iopt {

void Gather::add_merging(uint64_t iova, uint64_t size, unsigned granule_shift, bool removed) {
    if (size == 0) return;
    granule_shift_ = min(granule_shift_, granule_shift);
    removed_ = removed_ || removed;
    uint64_t end = iova + size;
    // Merge with every range it touches; one call on a contiguous range therefore stays one range.
    unsigned i = 0;
    while (i < nranges_) {
        Range& r = ranges_[i];
        if (iova <= r.end() && r.iova <= end) {
            iova = min(iova, r.iova);
            end = max(end, r.end());
            ranges_[i] = ranges_[--nranges_];  // absorbed: retry the merged range against the rest
            i = 0;
            continue;
        }
        i++;
    }
    if (nranges_ < kMaxRanges) {
        ranges_[nranges_++] = Range{iova, end - iova};
        return;
    }
    // Too many disjoint ranges: keep one that covers them all.
    for (unsigned k = 0; k < nranges_; k++) {
        iova = min(iova, ranges_[k].iova);
        end = max(end, ranges_[k].end());
    }
    ranges_[0] = Range{iova, end - iova};
    nranges_ = 1;
    overflowed_ = true;
}

}  // namespace moat::iopt
