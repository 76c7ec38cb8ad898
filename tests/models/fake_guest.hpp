// A guest's memory without a CPU: guest frames [first_gfn, first_gfn + pages) backed by
// consecutive pool pages. The P2M that the PV-IOMMU dispatcher sees in host tests, the trace
// replayer and the fuzzer. Every other frame, the hypervisor's pool included, is not the guest's.
#pragma once
#include <string.h>

#include "xen-compat/pv_iommu.hpp"

namespace moat::model {

class FakeGuest : public xen::GuestMemory {
public:
    static constexpr uint64_t kRamGfn = 0x40000;  // guest RAM at 1 GiB, as Xen lays it out
    static constexpr uint64_t kHoleGfn = 0x3ffff; // just below RAM: a frame with nothing behind it

    FakeGuest(PagePool& pool, uint64_t pages, uint64_t first_gfn = kRamGfn) : pool_(pool), first_(first_gfn), pages_(pages) {
        Result<uint64_t> r = pool.alloc(pages, 512);
        ok_ = r.ok();
        base_pa_ = r.value;
    }
    ~FakeGuest() {
        if (ok_) (void)pool_.free(base_pa_, pages_);
    }
    FakeGuest(const FakeGuest&) = delete;
    FakeGuest& operator=(const FakeGuest&) = delete;

    bool ok() const { return ok_; }
    uint64_t first_gfn() const { return first_; }
    uint64_t pages() const { return pages_; }
    uint64_t mfn_of(uint64_t gfn) const { return (base_pa_ >> kPageShift) + (gfn - first_); }
    void* host(uint64_t gpa, size_t n) const {
        uint64_t lo = first_ << kPageShift, hi = lo + (pages_ << kPageShift);
        if (!ok_ || gpa < lo || gpa > hi || n > hi - gpa) return nullptr;
        return static_cast<uint8_t*>(pool_.virt(base_pa_)) + (gpa - lo);
    }

    bool read(uint64_t gpa, void* dst, size_t n) override {
        void* p = host(gpa, n);
        if (!p) return false;
        memcpy(dst, p, n);
        return true;
    }
    bool write(uint64_t gpa, const void* src, size_t n) override {
        void* p = host(gpa, n);
        if (!p) return false;
        memcpy(p, src, n);
        return true;
    }
    Status ram_frame(uint64_t gfn, uint64_t& mfn) override {
        frame_questions++;
        if (!ok_ || gfn < first_ || gfn - first_ >= pages_) return gfn == kHoleGfn ? Status::not_found : Status::denied;
        mfn = mfn_of(gfn);
        return Status::ok;
    }
    // One contiguous bank: a run is answered at once, as the image's Vm does.
    Status ram_run(uint64_t gfn, uint64_t frames, uint64_t& mfn) override {
        run_questions++;
        return bank_run(first_, ok_ ? pages_ : 0, base_pa_ >> kPageShift, gfn, frames, mfn);
    }
    // What the dispatcher asked, for tests that bound its work per call.
    uint64_t frame_questions = 0, run_questions = 0;

private:
    PagePool& pool_;
    uint64_t first_, pages_;
    uint64_t base_pa_ = 0;
    bool ok_ = false;
};

}  // namespace moat::model
