// What the libFuzzer targets share: a sink that drops messages, and the errnos the PV-IOMMU
// ABI allows a call to return (docs/hardware.md §5.5), anything else being a finding.
#pragma once
#include "common/format.hpp"

namespace moat::fuzz {

class NullSink final : public Sink {
public:
    void write(const char*, size_t) override {}
};

inline bool abi_errno(long r) {
    switch (r) {
    case 0: case -1: case -2: case -7: case -12: case -13: case -14: case -16: case -19: case -22: case -28: case -34:
    case -95: case -98: case -99:
        return true;
    default:
        return false;
    }
}

}  // namespace moat::fuzz
