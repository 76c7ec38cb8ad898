// Data-cache maintenance for memory that a non-coherent observer (an IOMMU walker) reads.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace moat::cache {

inline size_t dcache_line() {
    uint64_t ctr;
    asm volatile("mrs %0, ctr_el0" : "=r"(ctr));
    return size_t{4} << ((ctr >> 16) & 0xf);
}

// Clean [p, p + n) to the point of coherency and wait for completion.
inline void clean_range(const void* p, size_t n) {
    size_t line = dcache_line();
    uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~(line - 1), end = reinterpret_cast<uintptr_t>(p) + n;
    for (; a < end; a += line) asm volatile("dc cvac, %0" : : "r"(a) : "memory");
    asm volatile("dsb sy" ::: "memory");
}

// Clean and invalidate [p, p + n): before the CPU reads what a non-coherent device wrote.
inline void clean_invalidate_range(const void* p, size_t n) {
    size_t line = dcache_line();
    uintptr_t a = reinterpret_cast<uintptr_t>(p) & ~(line - 1), end = reinterpret_cast<uintptr_t>(p) + n;
    for (; a < end; a += line) asm volatile("dc civac, %0" : : "r"(a) : "memory");
    asm volatile("dsb sy" ::: "memory");
}

}  // namespace moat::cache
