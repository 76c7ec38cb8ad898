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

}  // namespace moat
