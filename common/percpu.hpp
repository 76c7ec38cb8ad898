// Per-CPU data: one slot per possible CPU, each on its own cache line so that CPUs writing their
// own slots never contend for a line. Declare a PerCpu at namespace scope (static storage); with a
// literal T it is constant-initialized and needs no constructor run at boot.
#pragma once
#include "arch/cpu.hpp"

namespace moat {

template <class T>
class PerCpu {
public:
    constexpr PerCpu() = default;
    PerCpu(const PerCpu&) = delete;
    PerCpu& operator=(const PerCpu&) = delete;

    // This CPU's slot. Only stable while the caller cannot migrate: today every context in moat
    // is pinned to its CPU, so that holds everywhere.
    T& here() { return on(arch::cpu_id()); }
    // Another CPU's slot, for the owner's peers (e.g. summing counters). cpu < arch::kMaxCpus.
    T& on(unsigned cpu) { return slots_[cpu].value; }
    const T& on(unsigned cpu) const { return slots_[cpu].value; }
    static constexpr unsigned size() { return arch::kMaxCpus; }

private:
    struct alignas(arch::kCacheLine) Slot {
        T value{};
    };
    Slot slots_[arch::kMaxCpus];
};

}  // namespace moat
