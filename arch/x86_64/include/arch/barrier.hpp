// Barriers named by what they order (see arch/arm64/include/arch/barrier.hpp for what each one
// promises). x86 keeps stores in order (TSO) for write-back memory, and a store to uncached MMIO
// is not passed by earlier stores; what TSO does not give is ordering of clflush and of
// non-temporal stores, and store-then-load, which the fences below provide.
#pragma once

namespace moat::barrier {

// Table entries are stored in program order; a coherent walker sees them before the link.
inline void publish_table() { asm volatile("" ::: "memory"); }
// Every earlier store and clflush is globally visible before an invalidation is issued.
inline void before_invalidate() { asm volatile("mfence" ::: "memory"); }
// Memory a device reads is written (and flushed, for a non-coherent one) before the MMIO write.
inline void memory_before_mmio() { asm volatile("mfence" ::: "memory"); }
// An earlier MMIO write has been performed before the CPU goes on (uncached: already in order).
inline void complete_mmio() { asm volatile("mfence" ::: "memory"); }

}  // namespace moat::barrier
