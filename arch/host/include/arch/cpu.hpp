#pragma once
#include <stddef.h>
#include <stdint.h>

#include "common/status.hpp"

namespace moat::arch {

inline unsigned current_el() { return 0; }
unsigned pa_bits();            // 48 unless a test sets it
void set_pa_bits(unsigned);    // test hook
[[noreturn]] void halt(int code);

// The same CPU constants as the targets, so per-CPU layouts match.
constexpr unsigned kMaxCpus = 8;
constexpr size_t kCacheLine = 64;

// A host thread poses as one CPU: its id is thread-local, 0 until set.
unsigned cpu_id();
// As on the targets; out_of_range: id >= kMaxCpus (nothing changed).
Status cpu_init(unsigned id);

}  // namespace moat::arch

namespace moat::arch::host {
// Test hook: this thread runs as CPU `id` from now on (id < kMaxCpus, else the test aborts).
void set_cpu_id(unsigned id);
}  // namespace moat::arch::host
