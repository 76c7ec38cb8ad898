// Faults the IOMMUs reported, kept in a fixed ring so that a device hammering an unmapped
// address can never exhaust memory or flood the console: the oldest records are overwritten
// and counted as dropped.
#pragma once
#include "common/format.hpp"

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
};

class FaultLog {
public:
    static constexpr unsigned kCapacity = 64;
    void record(const FaultRecord& r);
    uint64_t total() const { return total_; }
    uint64_t dropped() const { return total_ > kCapacity ? total_ - kCapacity : 0; }
    unsigned size() const { return total_ < kCapacity ? static_cast<unsigned>(total_) : kCapacity; }
    // i = 0 is the oldest record still held.
    const FaultRecord& at(unsigned i) const;
    void clear() { total_ = 0; }
    void print(Sink& out, unsigned from = 0, unsigned max = kCapacity, const char* prefix = "") const;
private:
    FaultRecord ring_[kCapacity] = {};
    uint64_t total_ = 0;
};

}  // namespace moat
