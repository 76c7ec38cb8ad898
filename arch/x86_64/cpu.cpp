// CPU identity and facts from CPUID: the per-CPU block FS points at (its id, and the stack
// canary Debian's x86_64 libfdt.a reads at %fs:0x28), the physical address width, the CLFLUSH
// line size.
#include "arch/cache.hpp"
#include "arch/cpu.hpp"
#include "arch/x86_64/cpuid.hpp"

namespace moat::arch {

namespace {

// What %fs addresses on each CPU. The layout is ABI: cpu_id() reads offset 8, and code built
// with the stack protector (libfdt) reads its canary at offset 0x28, as on Linux.
struct CpuLocal {
    CpuLocal* self;
    uint32_t id;
    uint32_t pad0;
    uint64_t pad1[3];
    uint64_t canary;
};
static_assert(__builtin_offsetof(CpuLocal, id) == 8);
static_assert(__builtin_offsetof(CpuLocal, canary) == 0x28);

CpuLocal g_local[kMaxCpus];
size_t g_flush_line = 64;

constexpr uint32_t kMsrFsBase = 0xc0000100;

void wrmsr(uint32_t msr, uint64_t v) {
    asm volatile("wrmsr" : : "c"(msr), "a"(static_cast<uint32_t>(v)), "d"(static_cast<uint32_t>(v >> 32)) : "memory");
}

}  // namespace

Status cpu_init(unsigned id) {
    if (id >= kMaxCpus) return Status::out_of_range;
    CpuLocal& l = g_local[id];
    l.self = &l;
    l.id = id;
    l.canary = 0x6d6f61742d737470ull ^ (reinterpret_cast<uintptr_t>(&l) << 16);
    wrmsr(kMsrFsBase, reinterpret_cast<uintptr_t>(&l));
    Cpuid c = cpuid(1);
    if (c.edx & (1u << 19)) g_flush_line = size_t{8} * ((c.ebx >> 8) & 0xff);  // CLFSH
    if (g_flush_line == 0) g_flush_line = 64;
    return Status::ok;
}

unsigned pa_bits() {
    if (cpuid(0x80000000).eax < 0x80000008) return 36;
    return cpuid(0x80000008).eax & 0xff;
}

}  // namespace moat::arch

namespace moat::cache {
size_t flush_line() { return arch::g_flush_line; }
}  // namespace moat::cache
