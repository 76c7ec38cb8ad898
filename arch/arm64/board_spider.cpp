// Renesas Spider with R-Car S4 (r8a779f0): the console is SCIF3 at 0xe6c50000 (the tree's
// serial0), which TF-A and U-Boot have already set up; Gen4's SCIF has Gen3's register layout.
// DRAM is 0x0_4800_0000-0x0_bfff_ffff (the first 128 MiB of the bank belong to the secure side)
// and 2 GiB at 0x4_8000_0000. The early MMU maps one window as Normal memory in 1 GiB blocks and
// everything else as Device memory; the SoC's registers start at 0xe000_0000 (SCIF3 0xe6c5_0000,
// the IPMMUs 0xee48_0000-0xeefd_ffff, the GICv3 0xf100_0000), in the GiB above the low bank, so
// the window is the low bank (up to 0xc000_0000), where U-Boot loads the image (0x4808_0000)
// and the tree; the high bank is reported as unused.
#include "arch/arm64/board.hpp"
#include "arch/arm64/console_select.hpp"
#include "drivers/serial/scif.hpp"

namespace moat::board {

const char* const kName = "spider";
const uint64_t kRamWindowBase = 0x48000000ull;
const uint64_t kRamWindowEnd = 0xc0000000ull;

namespace {
Scif g_early(0xe6c50000);
}

void early_console_init() { arch::set_console(&g_early); }

}  // namespace moat::board
