// Bounded polling: hardware that never answers produces Status::timeout, never a hang.
#pragma once
#include "arch/time.hpp"
#include "common/status.hpp"

namespace moat {

template <class Done>
Status wait_until(uint64_t timeout_ns, Done done) {
    uint64_t start = arch::now_ns();
    for (;;) {
        if (done()) return Status::ok;
        if (arch::now_ns() - start > timeout_ns) return done() ? Status::ok : Status::timeout;
        arch::relax();
    }
}

}  // namespace moat
