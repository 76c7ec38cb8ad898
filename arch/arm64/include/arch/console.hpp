#pragma once
#include <stddef.h>

namespace moat::arch {

// Writes to the console chosen at boot (a serial driver), or drops the bytes before one is set.
void console_write(const char* s, size_t n);

}  // namespace moat::arch
