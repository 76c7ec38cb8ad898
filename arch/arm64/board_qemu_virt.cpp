// QEMU `virt`: PL011 at 0x09000000; RAM from 1 GiB up to the 256 GiB mark where the high
// MMIO regions (GIC redistributors, ECAM, PCIe window) begin.
#include "arch/arm64/board.hpp"
#include "arch/arm64/console_select.hpp"
#include "drivers/serial/pl011.hpp"

namespace moat::board {

const char* const kName = "qemu-virt";
const uint64_t kRamWindowBase = 0x40000000ull;
const uint64_t kRamWindowEnd = 0x4000000000ull;

namespace {
Pl011 g_early(0x09000000);
}

void early_console_init() { arch::set_console(&g_early); }

}  // namespace moat::board
