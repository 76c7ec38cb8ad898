// Device register access on x86_64: single loads and stores of the given width (the registers
// are mapped uncached, so each is one bus access, in program order).
#pragma once
#include <stdint.h>

namespace moat::mmio {

inline uint32_t read32(uintptr_t a) { uint32_t v; asm volatile("movl (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
inline uint64_t read64(uintptr_t a) { uint64_t v; asm volatile("movq (%1), %0" : "=r"(v) : "r"(a) : "memory"); return v; }
inline void write32(uintptr_t a, uint32_t v) { asm volatile("movl %0, (%1)" : : "r"(v), "r"(a) : "memory"); }
inline void write64(uintptr_t a, uint64_t v) { asm volatile("movq %0, (%1)" : : "r"(v), "r"(a) : "memory"); }

}  // namespace moat::mmio
