// Xilinx ZCU102 (Zynq UltraScale+ MPSoC): the console is UART0 (Cadence) at 0xff000000, which
// FSBL/TF-A and U-Boot have already set up. DDR is 2 GiB low at 0x0_0000_0000 (the tree leaves
// out the top MiB, 0x7ff0_0000 up, for the PMU firmware) and 2 GiB high at 0x8_0000_0000.
// The early MMU maps one window as Normal memory in 1 GiB blocks and everything else as Device
// memory; 0x8000_0000-0xffff_ffff between the two banks is the PL, PCIe and the PS peripherals
// (GIC at 0xf901_0000, MMU-500 at 0xfd80_0000, UART0 at 0xff00_0000), so a window reaching the
// high bank would map them as Normal memory. The window is the low bank, where U-Boot loads the
// image (FIT load address 0x4808_0000) and the tree; the high bank is reported as unused.
// The window starts at 0: the early map makes the GiB at address 0 Normal memory like the rest
// (a block is Normal when it overlaps [base, end)).
#include "arch/arm64/board.hpp"
#include "arch/arm64/console_select.hpp"
#include "drivers/serial/cadence.hpp"

namespace moat::board {

const char* const kName = "zcu102";
const uint64_t kRamWindowBase = 0x00000000ull;
const uint64_t kRamWindowEnd = 0x80000000ull;

namespace {
Cadence g_early(0xff000000);
}

void early_console_init() { arch::set_console(&g_early); }

}  // namespace moat::board
