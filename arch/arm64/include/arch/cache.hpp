// Data-cache maintenance for memory a non-coherent observer (an IOMMU walker, a DMA master) shares
// with the CPU, named by direction as portable code needs it; the Arm operations are this file's.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace moat::cache {

inline size_t dcache_line() {
    uint64_t ctr;
    asm volatile("mrs %0, ctr_el0" : "=r"(ctr));
    return size_t{4} << ((ctr >> 16) & 0xf);
}

// The CPU wrote [p, p + n) and a non-coherent device will read it: clean to the point of
// coherency and wait for completion.
inline void sync_for_device(const void* p, size_t n) {
    size_t line = dcache_line();
    uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~(line - 1), end = reinterpret_cast<uintptr_t>(p) + n;
    for (; a < end; a += line) asm volatile("dc cvac, %0" : : "r"(a) : "memory");
    asm volatile("dsb sy" ::: "memory");
}

// A non-coherent device wrote [p, p + n) and the CPU will read it: clean and invalidate, so no
// stale line hides what reached memory.
inline void sync_for_cpu(const void* p, size_t n) {
    size_t line = dcache_line();
    uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~(line - 1), end = reinterpret_cast<uintptr_t>(p) + n;
    for (; a < end; a += line) asm volatile("dc civac, %0" : : "r"(a) : "memory");
    asm volatile("dsb sy" ::: "memory");
}

}  // namespace moat::cache
