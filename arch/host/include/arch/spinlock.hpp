// Locks in host builds: a mutex stands in for the ticket lock, and "interrupts masked" is the
// thread-local state of arch/irq.hpp. IrqSpinlock, built on this lock, and which one to
// use where: common/lock.hpp.
#pragma once
#include <mutex>

namespace moat {

class Spinlock {
public:
    void lock() { m_.lock(); }
    void unlock() { m_.unlock(); }
private:
    std::mutex m_;
};

}  // namespace moat
