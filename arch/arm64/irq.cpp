// The arm64 interrupt controller seam: arch::irq_controller() is the GICv3 once the boot flow's
// hook has initialised it (arch/arm64/gic_v3.cpp), and nullptr before (drivers then poll).
#include "arch/irq.hpp"
