// Host time is a counter that advances a fixed step per reading, so bounded waits time out
// after a deterministic number of polls whatever the machine's load.
#pragma once
#include <stdint.h>

namespace moat::arch {

constexpr uint64_t kHostTickNs = 1000;
uint64_t now_ns();
inline void relax() {}

}  // namespace moat::arch
