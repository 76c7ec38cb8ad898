// Faults the IOMMUs reported, kept in a fixed ring so that a device hammering an unmapped
// address can never exhaust memory or flood the console: the oldest records are overwritten
// and counted as dropped. With a reporter set, each fault is also printed as it is recorded
// (from an interrupt handler, when the IOMMU has one), at most `burst` lines per `window_ns`;
// the rest of a storm is counted and said in one line when the next window opens (or at
// flush_suppressed()). A device faulting in a loop therefore costs a bounded number of lines.
//
// Several CPUs: record(), quarantine(), report_to(), flush_suppressed(), clear(), total() and
// copy() take the log's IrqSpinlock (handlers record from interrupt context), a leaf lock: a
// driver records while holding its own. at() and print() hand out the ring itself: for a log
// nothing records into at the time (tests, single-CPU reports); concurrent readers use copy().
#pragma once
#include "common/format.hpp"
#include "common/lock.hpp"

namespace moat {

enum class FaultKind : uint8_t {
    translation,      // no mapping
    permission,       // mapping forbids the access
    access_flag,
    address_size,     // IOVA or output beyond the configured size
    walk_abort,       // the table walk itself failed
    bad_stream,       // stream id out of range / no stream table entry
    bad_config,       // malformed STE/CD/context
    stream_disabled,  // the stream's configuration aborts it
    tlb_conflict,
    other,
};

const char* to_string(FaultKind k);

struct FaultRecord {
    const char* iommu;   // instance name, e.g. "smmuv3@9050000"
    uint32_t stream;
    uint64_t address;    // the input address (IOVA) of the faulting access
    FaultKind kind;
    bool write;
    uint32_t raw;        // hardware's own code (SMMUv3 event type, IPMMU IMSTR, SMMUv2 FSR)
    const char* detail;  // hardware's name for it (F_TRANSLATION, ...)
    bool stage2 = false; // the fault was taken walking a stage-2 table (SMMUv3 event S2 bit)
    uint64_t ipa = 0;    // then: the intermediate physical address that stage 2 could not translate
};

struct ReportPolicy {
    unsigned burst = 8;                       // lines per window
    uint64_t window_ns = 1000 * 1000 * 1000;  // 1 s
    // Faults from one stream in one window after which the log asks for that stream to be
    // quarantined (blocked by whoever owns it, in thread context: quarantine()); 0: never.
    unsigned quarantine_after = 0;
};

// A stream the report policy wants blocked.
struct Quarantine {
    const char* iommu;
    uint32_t stream;
    uint64_t faults;  // in the window that tripped it
};

class FaultLog {
public:
    static constexpr unsigned kCapacity = 64;
    void record(const FaultRecord& r);
    // Print every fault as it is recorded, rate-limited; nullptr stops it.
    void report_to(Sink* out, const char* prefix, ReportPolicy policy = {});
    bool reporting() const { return out_ != nullptr; }
    // Says how many were suppressed since the last line, if any; returns that count.
    uint64_t flush_suppressed();
    // The next stream the policy asks to quarantine, once each; false when there is none.
    bool quarantine(Quarantine& out);
    uint64_t reported() const { return reported_; }
    uint64_t suppressed() const { return suppressed_total_; }
    uint64_t total() const {
        IrqLockGuard g(lock_);
        return total_;
    }
    // Copies the records numbered [from, total()) that the ring still holds into out (at most
    // max), oldest first; from moves past what was copied and past what was overwritten
    // (counted in *lost when given). For a thread that drains the log while others record.
    unsigned copy(uint64_t& from, FaultRecord* out, unsigned max, uint64_t* lost = nullptr) const;
    uint64_t dropped() const { return total_ > kCapacity ? total_ - kCapacity : 0; }
    unsigned size() const { return total_ < kCapacity ? static_cast<unsigned>(total_) : kCapacity; }
    // i = 0 is the oldest record still held.
    const FaultRecord& at(unsigned i) const;
    void clear() {
        IrqLockGuard g(lock_);
        total_ = 0;
    }
    void print(Sink& out, unsigned from = 0, unsigned max = kCapacity, const char* prefix = "") const;
    static void print_one(Sink& out, const FaultRecord& r, const char* prefix);
private:
    FaultRecord ring_[kCapacity] = {};
    uint64_t total_ = 0;
    Sink* out_ = nullptr;
    const char* prefix_ = "";
    ReportPolicy policy_;
    uint64_t window_start_ = 0;
    unsigned in_window_ = 0;
    uint64_t suppressed_ = 0, suppressed_total_ = 0, reported_ = 0;
    static constexpr unsigned kTracked = 8;  // streams counted per window; more share the last slot
    struct Tally {
        const char* iommu;
        uint32_t stream;
        uint64_t faults;
        bool asked;
    };
    Tally tally_[kTracked] = {};
    unsigned ntally_ = 0;
    Quarantine asked_[kTracked] = {};
    unsigned nasked_ = 0;
    void count_for_policy(const FaultRecord& r);
    uint64_t flush_locked();
    mutable IrqSpinlock lock_;
};

}  // namespace moat
