// What the image must know about a board before it has read the device tree.
#pragma once
#include <stdint.h>

namespace moat::board {

extern const char* const kName;
// Console used until the device tree names one (and when the tree is unusable).
void early_console_init();
// Physical range that may hold RAM, mapped as Normal memory by the early MMU setup; the rest
// of the address space is mapped as Device memory.
extern const uint64_t kRamWindowBase;
extern const uint64_t kRamWindowEnd;

}  // namespace moat::board
