// The little runtime a freestanding C++ image needs on x86_64: the console (COM1), the string
// functions libfdt and the compiler call (Debian has no picolibc for x86_64, so the arch supplies
// them) and the way out (isa-debug-exit). What every arch shares (the failure hooks, static
// constructors) is in arch/freestanding/runtime.cpp.
#include "arch/console.hpp"
#include "arch/cpu.hpp"
#include "arch/x86_64/console.hpp"
#include "arch/x86_64/pio.hpp"
#include "common/format.hpp"

namespace moat::arch {

namespace {
Serial* g_console;
}

void set_console(Serial* s) { g_console = s; }

void console_write(const char* s, size_t n) {
    if (g_console) g_console->write(s, n);
}

[[noreturn]] void halt(int code) {
    // -device isa-debug-exit,iobase=0xf4,iosize=0x04: QEMU exits with (code << 1) | 1.
    pio::out32(kDebugExitPort, static_cast<uint32_t>(code));
    for (;;) asm volatile("cli\n\thlt");
}

}  // namespace moat::arch

// The string functions, as rep-string instructions (so the compiler cannot turn a loop here back
// into a call to the function itself).
extern "C" {

void* memcpy(void* d, const void* s, size_t n) {
    void* r = d;
    asm volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
    return r;
}

void* memmove(void* d, const void* s, size_t n) {
    auto dd = reinterpret_cast<uintptr_t>(d), ss = reinterpret_cast<uintptr_t>(s);
    if (dd <= ss || dd >= ss + n) return memcpy(d, s, n);
    void* r = d;
    const char* se = static_cast<const char*>(s) + n - 1;
    char* de = static_cast<char*>(d) + n - 1;
    asm volatile("std\n\trep movsb\n\tcld" : "+D"(de), "+S"(se), "+c"(n) : : "memory");
    return r;
}

void* memset(void* d, int c, size_t n) {
    void* r = d;
    asm volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return r;
}

int memcmp(const void* a, const void* b, size_t n) {
    const auto* x = static_cast<const volatile unsigned char*>(a);
    const auto* y = static_cast<const volatile unsigned char*>(b);
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

void* memchr(const void* p, int c, size_t n) {
    const auto* b = static_cast<const volatile unsigned char*>(p);
    for (size_t i = 0; i < n; i++)
        if (b[i] == static_cast<unsigned char>(c)) return const_cast<unsigned char*>(&b[i]);
    return nullptr;
}

size_t strnlen(const char* s, size_t max) {
    const volatile char* p = s;
    size_t n = 0;
    while (n < max && p[n]) n++;
    return n;
}

size_t strlen(const char* s) { return strnlen(s, ~size_t{0}); }

int strncmp(const char* a, const char* b, size_t n) {
    const volatile unsigned char* x = reinterpret_cast<const unsigned char*>(a);
    const volatile unsigned char* y = reinterpret_cast<const unsigned char*>(b);
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
        if (!x[i]) return 0;
    }
    return 0;
}

int strcmp(const char* a, const char* b) { return strncmp(a, b, ~size_t{0}); }

char* strchr(const char* s, int c) {
    for (const volatile char* p = s;; p++) {
        if (*p == static_cast<char>(c)) return const_cast<char*>(p);
        if (!*p) return nullptr;
    }
}

char* strrchr(const char* s, int c) {
    const char* last = nullptr;
    for (const volatile char* p = s;; p++) {
        if (*p == static_cast<char>(c)) last = const_cast<const char*>(p);
        if (!*p) return const_cast<char*>(last);
    }
}

}  // extern "C"
