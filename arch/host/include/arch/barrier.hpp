#pragma once
#include <atomic>

namespace moat::barrier {

inline void dsb_sy() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void dsb_ish() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void dsb_ishst() { std::atomic_thread_fence(std::memory_order_release); }
inline void dmb_ish() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void dmb_oshst() { std::atomic_thread_fence(std::memory_order_release); }
inline void isb() {}

}  // namespace moat::barrier
