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
