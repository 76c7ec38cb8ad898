// Scoped locking. Which lock to use:
// - Spinlock / LockGuard for state that only thread context touches (domain lists, driver
//   configuration). Cheapest, but an interrupt handler on the same CPU that takes it while the
//   interrupted code holds it deadlocks.
// - IrqSpinlock / IrqLockGuard for anything an interrupt handler also takes (fault records, event
//   queues a handler drains, controller line tables). It masks interrupts on this CPU before
//   spinning and restores the previous state after releasing, so a handler never runs inside the
//   section on this CPU; other CPUs still serialize on the ticket lock.
// Keep IrqSpinlock sections short: they delay every interrupt on the CPU that holds one.
#pragma once
#include "arch/irq.hpp"
#include "arch/spinlock.hpp"

namespace moat {

// The arch's Spinlock taken with interrupts masked on this CPU, so that a handler which also
// takes it can never interrupt its holder here. Interrupts are masked before spinning (a handler
// must not come in between getting the lock and masking). The saved state lives in the lock:
// only the holder writes it, after acquiring, and reads it before releasing. Nested IrqSpinlocks
// must be released in reverse order (IrqLockGuard does that). Portable: the arch gives the
// ticket lock and irq_save()/irq_restore().
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
    arch::IrqFlags saved_{};
};

// Holds a lock for a scope.
template <class Lock>
class Guard {
public:
    explicit Guard(Lock& l) : l_(l) { l_.lock(); }
    ~Guard() { l_.unlock(); }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
private:
    Lock& l_;
};
using LockGuard = Guard<Spinlock>;
using IrqLockGuard = Guard<IrqSpinlock>;

}  // namespace moat
