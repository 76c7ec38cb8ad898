// The guest config file: INI-style `key = value` lines under `[section]` headers, parsed into
// a GuestDesc. Portable (no heap, no libc beyond string.h) so that the image could read one
// from a boot module; the host tool `moat-dt guest` uses it. tools/dt/README.md documents the
// format; tools/dt/examples/ has examples.
//
//   [guest]        name, memory, vcpus, gic, console, bootargs, xen-version, grant-table,
//                  evtchn-irq                                   (exactly one section)
//   [virtio-mmio]  backend, grants, base, irq                   (one section per device)
//   [pci]          ecam, mem, irq                               (the virtio-pci host bridge)
//   [pci-device]   bdf, backend, grants                         (one per device; implies [pci])
//   [passthrough]  path, reg, irq                               (one per host device)
//
// `#` or `;` starts a comment (outside double quotes). Numbers are decimal or 0x-hex; sizes
// take a K, M or G suffix. Every error names the line: "guest.cfg:12: unknown key 'vcpu' in
// [guest] (did you mean 'vcpus'?)".
#pragma once
#include "xen-compat/guest_dt.hpp"

namespace moat::xen {

// Parses text[0..len) into `out` (reset to the defaults first; out.source = file). Every
// problem is written to `err` as one line "file:line: what"; returns invalid_argument if any.
Status parse_guest_config(const char* text, size_t len, const char* file, GuestDesc& out, Sink& err);

}  // namespace moat::xen
