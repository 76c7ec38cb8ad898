// Locks in host builds: a mutex stands in for the ticket lock, and "interrupts masked" is the
// thread-local state of arch/irq.hpp. Which one to use where: common/lock.hpp.
#pragma once
#include <mutex>

#include "arch/irq.hpp"

namespace moat {

class Spinlock {
public:
    void lock() { m_.lock(); }
    void unlock() { m_.unlock(); }
private:
    std::mutex m_;
};

// As on the targets: masks (this thread's) interrupts before taking the lock, restores the
// previous state after releasing it; a HostIrqController raise in between is held pending and
// delivered at the restore.
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
    arch::IrqFlags saved_ = false;
};

}  // namespace moat
