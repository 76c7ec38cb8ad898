// The structural check moat makes of a flattened device tree before libfdt reads any of it.
// Debian 12's libfdt (1.6.1) trusts property lengths and the root name while it walks the
// structure block, so its own full check can loop or read outside the blob on a hostile tree
// (docs/hardware.md §7.6). This walk bounds every token, length and name by the blocks the
// header declares, in size_t arithmetic that cannot wrap, and needs nothing but the bytes.
#pragma once
#include "common/status.hpp"
#include "common/why.hpp"

namespace moat::dt {

// Versions moat reads: 16 and 17 (the current format); older ones store full paths as node
// names and are refused. `why` says what was wrong and at which structure-block offset.
constexpr uint32_t kOldestVersion = 16;
constexpr uint32_t kNewestCompatible = 17;

// Checks the header (magic, totalsize <= size, version, block offsets and sizes), the memory
// reservation map, every token of the structure block (one root, named "", nodes balanced,
// every property inside the block, every property name inside the strings block and
// terminated) and that FDT_END closes it. ok means libfdt may be given the tree.
Status check_structure(const void* blob, size_t size, Why& why);

}  // namespace moat::dt
