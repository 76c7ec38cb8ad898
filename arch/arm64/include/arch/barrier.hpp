#pragma once

namespace moat::barrier {

inline void dsb_sy() { asm volatile("dsb sy" ::: "memory"); }
inline void dsb_ish() { asm volatile("dsb ish" ::: "memory"); }
inline void dsb_ishst() { asm volatile("dsb ishst" ::: "memory"); }
inline void dmb_ish() { asm volatile("dmb ish" ::: "memory"); }
inline void dmb_oshst() { asm volatile("dmb oshst" ::: "memory"); }
inline void isb() { asm volatile("isb" ::: "memory"); }

}  // namespace moat::barrier
