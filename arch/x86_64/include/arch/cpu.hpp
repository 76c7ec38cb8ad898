#pragma once
#include <stddef.h>
#include <stdint.h>

#include "common/status.hpp"

namespace moat::arch {

// x86 has no exception levels; moat runs in long mode at CPL 0, reported as level 0 like the host.
inline unsigned current_el() { return 0; }
// Physical address bits the CPU supports (CPUID 0x80000008 EAX[7:0]; 36 without that leaf).
unsigned pa_bits();

constexpr unsigned kMaxCpus = 8;
constexpr size_t kCacheLine = 64;

// This CPU's logical id: each CPU's FS base points at its own CpuLocal block (cpu_init), whose
// word at offset 8 is the id; the block also carries the stack canary libfdt reads at %fs:0x28.
inline unsigned cpu_id() {
    uint32_t v;
    asm volatile("movl %%fs:8, %0" : "=r"(v));
    return v;
}
// Called once on each CPU as it comes up (the boot CPU with 0). out_of_range: id >= kMaxCpus.
Status cpu_init(unsigned id);

// Ends the run: isa-debug-exit (QEMU exits with (code << 1) | 1), else interrupts off and hlt.
[[noreturn]] void halt(int code);

}  // namespace moat::arch
