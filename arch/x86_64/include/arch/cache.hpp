// Cache maintenance for memory a non-coherent observer shares with the CPU: a VT-d unit whose
// ECAP.C is clear walks tables from memory without snooping, so every table write is flushed
// with clflush (the line is written back and invalidated) and fenced.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace moat::cache {

// CLFLUSH line size in bytes, from CPUID.1:EBX[15:8] (units of 8 bytes); read once at boot.
size_t flush_line();

inline void flush_range(const void* p, size_t n) {
    size_t line = flush_line();
    uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~(line - 1), end = reinterpret_cast<uintptr_t>(p) + n;
    asm volatile("mfence" ::: "memory");
    for (; a < end; a += line) asm volatile("clflush (%0)" : : "r"(a) : "memory");
    asm volatile("mfence" ::: "memory");
}

// The CPU wrote [p, p + n) and a non-coherent device will read it.
inline void sync_for_device(const void* p, size_t n) { flush_range(p, n); }
// A non-coherent device wrote [p, p + n) and the CPU will read it: no stale line may hide it.
inline void sync_for_cpu(const void* p, size_t n) { flush_range(p, n); }

}  // namespace moat::cache
