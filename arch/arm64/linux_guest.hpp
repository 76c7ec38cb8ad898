// The arm64 hook that runs the dom0less guests (Debian's Linux among them) at EL1: see
// linux_guest.cpp for what each guest gets.
#pragma once
#include "common/fdt.hpp"
#include "common/page_pool.hpp"
#include "xen-compat/dom0less.hpp"

namespace moat {

// Builds every guest of `cfg` it can (one that cannot be built is reported and left out), runs
// them until the last one ends, and ends moat with status 0 when every guest powered off.
[[noreturn]] void run_dom0less_guests(const dt::Tree& host, PagePool& pool, const xen::Dom0lessConfig& cfg);

}  // namespace moat
