// Locks. IrqSpinlock, built on this lock and arch/irq.hpp, and which one to use where: common/lock.hpp.
#pragma once
#include <stdint.h>

namespace moat {

// A ticket lock: CPUs get it in the order they asked.
class Spinlock {
public:
    void lock() {
        uint32_t me = __atomic_fetch_add(&next_, 1u, __ATOMIC_RELAXED);
        while (__atomic_load_n(&owner_, __ATOMIC_ACQUIRE) != me) asm volatile("pause");
    }
    void unlock() { __atomic_store_n(&owner_, owner_ + 1, __ATOMIC_RELEASE); }
private:
    uint32_t next_ = 0, owner_ = 0;
};

}  // namespace moat
