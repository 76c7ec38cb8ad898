// CPU identity: the dense logical id each CPU carries in TPIDR_EL2, and its MPIDR affinity.
#include "arch/cpu.hpp"

namespace moat::arch {

namespace {
// Written by each CPU for its own id only, before it is announced to the others.
uint64_t g_affinity[kMaxCpus] = {~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull, ~0ull};
static_assert(kMaxCpus == 8, "g_affinity's initializer lists one entry per CPU");
}  // namespace

Status cpu_init(unsigned id) {
    if (id >= kMaxCpus) return Status::out_of_range;
    g_affinity[id] = mpidr_affinity();
    asm volatile("msr tpidr_el2, %0" : : "r"(static_cast<uint64_t>(id)) : "memory");
    return Status::ok;
}

uint64_t cpu_affinity(unsigned id) { return id < kMaxCpus ? g_affinity[id] : ~0ull; }

}  // namespace moat::arch
