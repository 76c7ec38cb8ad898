// Barriers named by what they order (see arch/arm64/include/arch/barrier.hpp for what each one
// promises). On the host every observer is another thread of the same process, so a C++ fence of
// the matching strength is each one's meaning; there is no instruction-named form here, so that
// portable code cannot come to depend on one.
#pragma once
#include <atomic>

namespace moat::barrier {

inline void publish_table() { std::atomic_thread_fence(std::memory_order_release); }
inline void before_invalidate() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void memory_before_mmio() { std::atomic_thread_fence(std::memory_order_release); }
inline void complete_mmio() { std::atomic_thread_fence(std::memory_order_seq_cst); }

}  // namespace moat::barrier
