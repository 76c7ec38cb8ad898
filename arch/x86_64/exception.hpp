#pragma once
#include <stdint.h>

namespace moat::arch {

// What vectors.S saves, lowest address first, then what the CPU pushed.
struct TrapFrame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
};

// Loads the IDT: every exception vector reports and ends the run.
void exceptions_init();

}  // namespace moat::arch
