// Locks. Exclusives need Normal memory: the image enables its MMU before any lock is taken.
// Which one to use where: common/lock.hpp.
#pragma once
#include <stdint.h>

#include "arch/irq.hpp"

namespace moat {

// A ticket lock: CPUs get it in the order they asked.
class Spinlock {
public:
    void lock() {
        uint32_t me = __atomic_fetch_add(&next_, 1u, __ATOMIC_RELAXED);
        while (__atomic_load_n(&owner_, __ATOMIC_ACQUIRE) != me) asm volatile("wfe");
    }
    void unlock() {
        __atomic_store_n(&owner_, owner_ + 1, __ATOMIC_RELEASE);
        asm volatile("sev");
    }
private:
    uint32_t next_ = 0, owner_ = 0;
};

// The ticket lock taken with interrupts masked on this CPU, so that a handler which also takes
// it can never interrupt its holder here. Interrupts are masked before spinning (a handler must
// not come in between getting the lock and masking). The saved state lives in the lock: only the
// holder writes it, after acquiring, and reads it before releasing. Nested IrqSpinlocks must be
// released in reverse order (IrqLockGuard does that).
class IrqSpinlock {
public:
    void lock() {
        arch::IrqFlags f = arch::irq_save();
        l_.lock();
        saved_ = f;
    }
    void unlock() {
        arch::IrqFlags f = saved_;
        l_.unlock();
        arch::irq_restore(f);
    }
private:
    Spinlock l_;
    arch::IrqFlags saved_ = 0;
};

}  // namespace moat
