// What one guest may take from the shared page pool. Every page moat allocates because of a
// guest (the tables of each of its DMA contexts, the tables a split needs, its stage-2 growth)
// is charged to that guest's quota before it is taken from the pool and uncharged when it goes
// back; past the limit the allocation fails with no_memory, and no other guest is affected.
// Pages quarantined after a teardown the hardware did not confirm stay charged: a guest that
// provokes such failures uses up its own share, not the pool. Limits come from the guest's
// configuration (and PV-IOMMU init's arena_order, docs/hardware.md §5.4).
#pragma once
#include "common/types.hpp"

namespace moat {

class PageQuota {
public:
    static constexpr uint64_t kUnlimited = ~uint64_t{0};
    explicit PageQuota(uint64_t limit = kUnlimited) : limit_(limit) {}
    PageQuota(const PageQuota&) = delete;
    PageQuota& operator=(const PageQuota&) = delete;

    // Takes n pages of the share; false (and nothing taken) when that would pass the limit.
    bool charge(uint64_t n) {
        if (n > limit_ || used_ > limit_ - n) {
            refused_++;
            return false;
        }
        used_ += n;
        if (used_ > peak_) peak_ = used_;
        return true;
    }
    void uncharge(uint64_t n) { used_ = n > used_ ? 0 : used_ - n; }
    // A lower limit applies to what is charged from now on; pages already charged stay.
    void set_limit(uint64_t limit) { limit_ = limit; }

    uint64_t limit() const { return limit_; }
    uint64_t used() const { return used_; }
    uint64_t peak() const { return peak_; }
    uint64_t refused() const { return refused_; }

private:
    uint64_t limit_;
    uint64_t used_ = 0, peak_ = 0, refused_ = 0;
};

}  // namespace moat
