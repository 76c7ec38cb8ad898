#pragma once
#include <stddef.h>

namespace moat::arch {

// Host builds write to a capture buffer that tests can read, and to stdout when asked to.
void console_write(const char* s, size_t n);

}  // namespace moat::arch

namespace moat::arch {
const char* console_captured();   // everything written since the last clear
void console_clear();
void console_echo(bool on);       // also copy to stdout (host tools)
}  // namespace moat::arch
