#pragma once
#include <stddef.h>

namespace moat::arch {

// Writes to the console chosen at boot (the 16550 at I/O port 0x3f8 on q35).
void console_write(const char* s, size_t n);

}  // namespace moat::arch
