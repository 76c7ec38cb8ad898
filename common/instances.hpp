// Fixed storage for a driver's instances: no heap, a capacity set at compile time, and a slot
// given back when an instance is released. A full storage is the caller's refusal to report.
#pragma once
#include <new>

#include "common/why.hpp"

namespace moat {

template <class T, unsigned N>
class Instances {
public:
    static constexpr unsigned kCapacity = N;

    template <class... Args>
    T* make(Args&... args) {
        for (unsigned i = 0; i < N; i++)
            if (!used_[i]) {
                used_[i] = true;
                return new (slot(i)) T(args...);
            }
        return nullptr;
    }
    // `p` must come from make(); nullptr is ignored.
    void release(T* p) {
        for (unsigned i = 0; i < N; i++)
            if (used_[i] && reinterpret_cast<T*>(slot(i)) == p) {
                p->~T();
                used_[i] = false;
            }
    }
    // The registry's probe for drivers whose class has probe(cfg) and why(): an instance from
    // the storage, probed, or nullptr with `why` naming the refusal (a full storage included).
    template <class Config, class... Args>
    T* probe(const Config& cfg, const char* what, Why& why, Args&... args) {
        T* t = make(args...);
        if (!t) return why.set(Status::no_space, "more than %u %s instances", N, what), nullptr;
        if (t->probe(cfg) != Status::ok) {
            why.set(t->why_status(), "%s", t->why());
            release(t);
            return nullptr;
        }
        return t;
    }

    unsigned in_use() const {
        unsigned n = 0;
        for (bool u : used_) n += u;
        return n;
    }

private:
    void* slot(unsigned i) { return storage_[i]; }
    alignas(T) unsigned char storage_[N][sizeof(T)];
    bool used_[N] = {};
};

}  // namespace moat
