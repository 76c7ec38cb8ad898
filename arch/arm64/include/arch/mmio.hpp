// Device register access on arm64: single-copy-atomic loads and stores of the given width.
#pragma once
#include <stdint.h>

namespace moat::mmio {

inline uint32_t read32(uintptr_t a) { uint32_t v; asm volatile("ldr %w0, [%1]" : "=r"(v) : "r"(a) : "memory"); return v; }
inline uint64_t read64(uintptr_t a) { uint64_t v; asm volatile("ldr %0, [%1]" : "=r"(v) : "r"(a) : "memory"); return v; }
inline void write32(uintptr_t a, uint32_t v) { asm volatile("str %w0, [%1]" : : "rZ"(v), "r"(a) : "memory"); }
inline void write64(uintptr_t a, uint64_t v) { asm volatile("str %x0, [%1]" : : "rZ"(v), "r"(a) : "memory"); }

}  // namespace moat::mmio
