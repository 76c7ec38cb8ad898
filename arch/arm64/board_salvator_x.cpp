// Renesas Salvator-X with R-Car H3 (r8a7795): the console is SCIF2 at 0xe6e88000, which TF-A and
// U-Boot have already set up. DRAM is four banks: 0x0_4800_0000-0x0_7fff_ffff (the first 128 MiB
// of the bank belong to firmware), then 1 GiB at 0x5_0000_0000, 0x6_0000_0000, 0x7_0000_0000.
// The early MMU maps one window as Normal memory in 1 GiB blocks and everything else as Device
// memory, and a window reaching the high banks would swallow the SoC's registers at
// 0xe000_0000-0xffff_ffff. So the window is the low bank, where U-Boot loads the image
// (0x4808_0000) and the tree; the high banks are reported as unused.
#include "arch/arm64/board.hpp"
#include "arch/arm64/console_select.hpp"
#include "drivers/serial/scif.hpp"

namespace moat::board {

const char* const kName = "salvator-x";
const uint64_t kRamWindowBase = 0x48000000ull;
const uint64_t kRamWindowEnd = 0x80000000ull;

namespace {
Scif g_early(0xe6e88000);
}

void early_console_init() { arch::set_console(&g_early); }

}  // namespace moat::board
