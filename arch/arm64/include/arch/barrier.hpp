// Barriers named by what they order. Portable code (common/, drivers/, xen-compat/, hyp/) uses only
// the names in the first group; which instruction each takes is this file's business, and the
// host and (later) x86_64 arch folders give the same names their own meaning.
#pragma once

namespace moat::barrier {

// Table entries written so far are observed by a coherent walker before the next store (the one
// that links them): a store-store order in the outer shareable domain, where IOMMU walkers are.
inline void publish_table() { asm volatile("dmb oshst" ::: "memory"); }
// Every earlier store (tables, cleans included) has completed before an invalidation is issued:
// a TLBI, an IOMMU command or invalidation register write must not overtake what it is for.
inline void before_invalidate() { asm volatile("dsb sy" ::: "memory"); }
// Memory a device reads (a queue entry, a descriptor, a table) is written before the MMIO write
// that tells the device to look. Full system, stores only: the device may sit outside the inner
// shareable domain, so an inner-shareable barrier is not enough.
inline void memory_before_mmio() { asm volatile("dsb st" ::: "memory"); }
// An earlier MMIO write has reached its device before the CPU goes on (polling for its effect).
inline void complete_mmio() { asm volatile("dsb sy" ::: "memory"); }

// Arch-internal: the instructions themselves, for arch/arm64 code that speaks in them.
inline void dsb_sy() { asm volatile("dsb sy" ::: "memory"); }
inline void dsb_ish() { asm volatile("dsb ish" ::: "memory"); }
inline void dsb_ishst() { asm volatile("dsb ishst" ::: "memory"); }
inline void dmb_ish() { asm volatile("dmb ish" ::: "memory"); }
inline void isb() { asm volatile("isb" ::: "memory"); }

}  // namespace moat::barrier
