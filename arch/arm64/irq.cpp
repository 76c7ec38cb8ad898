// The arm64 interrupt controller seam. No controller is driven yet: drivers see nullptr and poll
// their fault and event registers. The GICv3 driver will return itself here once initialized.
#include "arch/irq.hpp"

namespace moat::arch {

IrqController* irq_controller() { return nullptr; }

}  // namespace moat::arch
