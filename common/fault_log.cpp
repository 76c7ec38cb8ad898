#include "common/fault_log.hpp"

#include "arch/time.hpp"

namespace moat {

const char* to_string(FaultKind k) {
    switch (k) {
    case FaultKind::translation: return "translation fault";
    case FaultKind::permission: return "permission fault";
    case FaultKind::access_flag: return "access flag fault";
    case FaultKind::address_size: return "address size fault";
    case FaultKind::walk_abort: return "table walk abort";
    case FaultKind::bad_stream: return "bad stream id";
    case FaultKind::bad_config: return "bad configuration";
    case FaultKind::stream_disabled: return "stream disabled";
    case FaultKind::tlb_conflict: return "TLB conflict";
    case FaultKind::other: return "other fault";
    }
    return "?";
}

void FaultLog::record(const FaultRecord& r) {
    IrqLockGuard g(lock_);
    ring_[total_ % kCapacity] = r;
    total_++;
    if (!out_) return;
    uint64_t now = arch::now_ns();
    if (now - window_start_ >= policy_.window_ns) {
        (void)flush_locked();
        window_start_ = now;
        in_window_ = 0;
        ntally_ = 0;
    }
    if (policy_.quarantine_after) count_for_policy(r);
    if (in_window_ < policy_.burst) {
        in_window_++;
        reported_++;
        print_one(*out_, r, prefix_);
    } else {
        suppressed_++;
        suppressed_total_++;
    }
}

void FaultLog::count_for_policy(const FaultRecord& r) {
    Tally* t = nullptr;
    for (unsigned i = 0; i < ntally_ && !t; i++)
        if (tally_[i].stream == r.stream && tally_[i].iommu == r.iommu) t = &tally_[i];
    if (!t) {
        if (ntally_ == kTracked) return;  // a window with this many faulting streams counts the first few
        t = &tally_[ntally_++];
        *t = Tally{r.iommu, r.stream, 0, false};
    }
    if (++t->faults < policy_.quarantine_after || t->asked || nasked_ == kTracked) return;
    t->asked = true;
    asked_[nasked_++] = Quarantine{r.iommu, r.stream, t->faults};
    format(*out_, "%sfault: %s stream 0x%x: %lu faults in one window; quarantine asked by policy\n", prefix_,
           r.iommu ? r.iommu : "?", r.stream, t->faults);
}

bool FaultLog::quarantine(Quarantine& q) {
    IrqLockGuard g(lock_);
    if (!nasked_) return false;
    q = asked_[0];
    for (unsigned i = 1; i < nasked_; i++) asked_[i - 1] = asked_[i];
    nasked_--;
    return true;
}

void FaultLog::report_to(Sink* out, const char* prefix, ReportPolicy policy) {
    IrqLockGuard g(lock_);
    if (out_ && !out) (void)flush_locked();
    out_ = out;
    prefix_ = prefix ? prefix : "";
    policy_ = policy;
    window_start_ = arch::now_ns();
    in_window_ = 0;
    ntally_ = 0;
}

uint64_t FaultLog::flush_suppressed() {
    IrqLockGuard g(lock_);
    return flush_locked();
}

uint64_t FaultLog::flush_locked() {
    uint64_t n = suppressed_;
    if (n && out_)
        format(*out_, "%sfault: %lu more faults suppressed (at most %u lines per %lu ms)\n", prefix_, n, policy_.burst,
               policy_.window_ns / 1000000);
    suppressed_ = 0;
    return n;
}

void FaultLog::print_one(Sink& out, const FaultRecord& r, const char* prefix) {
    format(out, "%sfault: %s stream 0x%x %s at 0x%lx: %s (%s, code 0x%x)", prefix, r.iommu ? r.iommu : "?", r.stream,
           r.write ? "write" : "read", r.address, to_string(r.kind), r.detail ? r.detail : "-", r.raw);
    if (r.stage2) format(out, " at stage 2, IPA 0x%lx", r.ipa);
    out.write("\n", 1);
}

unsigned FaultLog::copy(uint64_t& from, FaultRecord* out, unsigned max, uint64_t* lost) const {
    IrqLockGuard g(lock_);
    uint64_t oldest = total_ > kCapacity ? total_ - kCapacity : 0;
    if (from > total_) from = total_;  // cleared since: start again from what is there
    if (from < oldest) {
        if (lost) *lost += oldest - from;
        from = oldest;
    }
    unsigned n = 0;
    for (; from < total_ && n < max; from++) out[n++] = ring_[from % kCapacity];
    return n;
}

const FaultRecord& FaultLog::at(unsigned i) const {
    uint64_t first = total_ > kCapacity ? total_ - kCapacity : 0;
    return ring_[(first + i) % kCapacity];
}

void FaultLog::print(Sink& out, unsigned from, unsigned max, const char* prefix) const {
    for (unsigned i = from; i < size() && i - from < max; i++) print_one(out, at(i), prefix);
    if (dropped()) format(out, "%sfault: %lu older records dropped\n", prefix, dropped());
}

}  // namespace moat
