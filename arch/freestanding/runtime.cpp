// The part of the C++ runtime every freestanding image (arm64, x86_64) needs alike: what the
// compiler and Debian's libfdt.a call when something has gone wrong, and the static constructors
// the entry code runs. Each arch's runtime.cpp keeps what differs (the console, the stack
// canary's home, the way out). Never built for the host, whose C library has all of this.
#include "arch/cpu.hpp"
#include "common/format.hpp"

extern "C" {

[[noreturn]] void __stack_chk_fail() {
    moat::print("moat: stack smashing detected\n");
    moat::arch::halt(4);
}

[[noreturn]] void __cxa_pure_virtual() {
    moat::print("moat: pure virtual call\n");
    moat::arch::halt(4);
}

[[noreturn]] void abort() {
    moat::print("moat: abort\n");
    moat::arch::halt(4);
}

void* __dso_handle = nullptr;

using InitFn = void (*)();
extern InitFn __init_array_start[], __init_array_end[];
void moat_run_constructors() {
    for (InitFn* f = __init_array_start; f != __init_array_end; f++) (*f)();
}

}  // extern "C"
