#pragma once
#include "drivers/serial/serial.hpp"

namespace moat::arch {
void set_console(Serial* s);
Serial* get_console();
}  // namespace moat::arch
