#include "common/fault_log.hpp"

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
    ring_[total_ % kCapacity] = r;
    total_++;
}

const FaultRecord& FaultLog::at(unsigned i) const {
    uint64_t first = total_ > kCapacity ? total_ - kCapacity : 0;
    return ring_[(first + i) % kCapacity];
}

void FaultLog::print(Sink& out, unsigned from, unsigned max, const char* prefix) const {
    for (unsigned i = from; i < size() && i - from < max; i++) {
        const FaultRecord& r = at(i);
        format(out, "%sfault: %s stream 0x%x %s at 0x%lx: %s (%s, code 0x%x)\n", prefix, r.iommu ? r.iommu : "?", r.stream,
               r.write ? "write" : "read", r.address, to_string(r.kind), r.detail ? r.detail : "-", r.raw);
    }
    if (dropped()) format(out, "%sfault: %lu older records dropped\n", prefix, dropped());
}

}  // namespace moat
