// The arch layer for host builds: models instead of devices, a deterministic clock, a console
// captured for tests.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>

#include "arch/cache.hpp"
#include "arch/console.hpp"
#include "arch/cpu.hpp"
#include "arch/mmio.hpp"
#include "arch/time.hpp"

namespace moat {

namespace cache {
CleanLog& clean_log() {
    static CleanLog log;
    return log;
}
}  // namespace cache

namespace arch {

// Atomic: host threads posing as CPUs all poll the one clock.
uint64_t now_ns() {
    static std::atomic<uint64_t> t{0};
    return t.fetch_add(kHostTickNs, std::memory_order_relaxed) + kHostTickNs;
}

static unsigned g_pa_bits = 48;
unsigned pa_bits() { return g_pa_bits; }
void set_pa_bits(unsigned b) { g_pa_bits = b; }

// As on a target, halting ends everything where it stands: no static destructor runs (they would
// shut drivers down against register models already destroyed).
[[noreturn]] void halt(int code) {
    fflush(stdout);
    fflush(stderr);
    _exit(code);
}

static std::string& captured() {
    static std::string s;
    return s;
}
static bool g_echo = false;
static std::mutex g_console_mutex;  // threads posing as CPUs print too
void console_write(const char* s, size_t n) {
    std::lock_guard<std::mutex> g(g_console_mutex);
    captured().append(s, n);
    if (g_echo) fwrite(s, 1, n, stdout);
}
const char* console_captured() { return captured().c_str(); }
void console_clear() { captured().clear(); }
void console_echo(bool on) { g_echo = on; }

}  // namespace arch

namespace mmio {

namespace {
struct Mapping {
    uintptr_t base;
    uint64_t size;
    Device* dev;
};
constexpr int kMaxMappings = 64;
Mapping g_map[kMaxMappings];
uint64_t g_strays;
uintptr_t g_last_stray;

Mapping* find(uintptr_t a) {
    for (auto& m : g_map)
        if (m.dev && a >= m.base && a - m.base < m.size) return &m;
    return nullptr;
}

uint64_t read(uintptr_t a, unsigned bytes) {
    if (Mapping* m = find(a)) return m->dev->read(a - m->base, bytes);
    g_strays++;
    g_last_stray = a;
    return bytes == 8 ? ~0ull : 0xffffffffu;
}

void write(uintptr_t a, uint64_t v, unsigned bytes) {
    if (Mapping* m = find(a)) return m->dev->write(a - m->base, v, bytes);
    g_strays++;
    g_last_stray = a;
}
}  // namespace

bool attach(uintptr_t base, uint64_t size, Device* dev) {
    for (auto& m : g_map)
        if (m.dev && base < m.base + m.size && m.base < base + size) return false;
    for (auto& m : g_map)
        if (!m.dev) {
            m = Mapping{base, size, dev};
            return true;
        }
    return false;
}

void detach(Device* dev) {
    for (auto& m : g_map)
        if (m.dev == dev) m = Mapping{};
}

uint64_t stray_accesses() { return g_strays; }
uintptr_t last_stray_address() { return g_last_stray; }
void reset_strays() { g_strays = 0; g_last_stray = 0; }

uint32_t read32(uintptr_t a) { return static_cast<uint32_t>(read(a, 4)); }
uint64_t read64(uintptr_t a) { return read(a, 8); }
void write32(uintptr_t a, uint32_t v) { write(a, v, 4); }
void write64(uintptr_t a, uint64_t v) { write(a, v, 8); }

}  // namespace mmio
}  // namespace moat
