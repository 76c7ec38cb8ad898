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
#include "arch/spinlock.hpp"

namespace moat {

class LockGuard {
public:
    explicit LockGuard(Spinlock& l) : l_(l) { l_.lock(); }
    ~LockGuard() { l_.unlock(); }
    LockGuard(const LockGuard&) = delete;
    LockGuard& operator=(const LockGuard&) = delete;
private:
    Spinlock& l_;
};

class IrqLockGuard {
public:
    explicit IrqLockGuard(IrqSpinlock& l) : l_(l) { l_.lock(); }
    ~IrqLockGuard() { l_.unlock(); }
    IrqLockGuard(const IrqLockGuard&) = delete;
    IrqLockGuard& operator=(const IrqLockGuard&) = delete;
private:
    IrqSpinlock& l_;
};

}  // namespace moat
