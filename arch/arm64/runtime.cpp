// The arm64 part of the little runtime a freestanding C++ image needs: console plumbing, the
// stack canary Debian's libfdt.a reads, and the way out (semihosting exit, else PSCI). What every
// arch shares (the failure hooks, static constructors) is in arch/freestanding/runtime.cpp.
#include "arch/arm64/console_select.hpp"
#include "arch/console.hpp"
#include "arch/cpu.hpp"
#include "common/format.hpp"

namespace moat::arch {

namespace {
Serial* g_console;
volatile bool g_halting;
}  // namespace

void set_console(Serial* s) { g_console = s; }
Serial* get_console() { return g_console; }

void console_write(const char* s, size_t n) {
    if (g_console) g_console->write(s, n);
}

unsigned pa_bits() {
    uint64_t mmfr0;
    asm volatile("mrs %0, id_aa64mmfr0_el1" : "=r"(mmfr0));
    static constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48, 52};
    unsigned r = mmfr0 & 0xf;
    return r < 7 ? kBits[r] : 48;
}

bool halting() { return g_halting; }
[[noreturn]] void power_off();

[[noreturn]] void halt(int code) {
    g_halting = true;
    // Semihosting SYS_EXIT with ADP_Stopped_ApplicationExit and the status (QEMU -semihosting).
    static uint64_t block[2];
    block[0] = 0x20026;
    block[1] = static_cast<uint64_t>(static_cast<unsigned>(code));
    register uint64_t x0 asm("x0") = 0x18;
    register uint64_t* x1 asm("x1") = block;
    asm volatile("hlt #0xf000" : "+r"(x0) : "r"(x1) : "memory");
    power_off();
}

// PSCI SYSTEM_OFF (QEMU virt answers SMC from EL2); used when semihosting is not enabled.
[[noreturn]] void power_off() {
    register uint64_t fn asm("x0") = 0x84000008;
    asm volatile("smc #0" : "+r"(fn) : : "memory");
    for (;;) asm volatile("wfi");
}

}  // namespace moat::arch

extern "C" {

uintptr_t __stack_chk_guard = 0x6d6f61742d737470ull;

}  // extern "C"
