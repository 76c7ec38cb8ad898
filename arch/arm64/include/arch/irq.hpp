#pragma once
#include "common/irq.hpp"
namespace moat::arch {
IrqController* irq_controller();
}  // namespace moat::arch
