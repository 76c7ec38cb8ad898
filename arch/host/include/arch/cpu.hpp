#pragma once
#include <stdint.h>

namespace moat::arch {

inline unsigned current_el() { return 0; }
unsigned pa_bits();            // 48 unless a test sets it
void set_pa_bits(unsigned);    // test hook
[[noreturn]] void halt(int code);

}  // namespace moat::arch
