// Xen's errno values (Linux's numbering, as Xen's public headers define them) and the one
// mapping from moat's Status to what a guest sees. Negative values are returned to guests.
#pragma once
#include "common/status.hpp"

namespace moat::xen {

enum class Errno : int {
    ok = 0,
    eperm = 1,
    enoent = 2,
    e2big = 7,
    enomem = 12,
    eacces = 13,
    efault = 14,
    ebusy = 16,
    enodev = 19,
    einval = 22,
    enospc = 28,
    erange = 34,
    eagain = 11,
    eopnotsupp = 95,
    eaddrinuse = 98,
    eaddrnotavail = 99,
    etimedout = 110,
    eio = 5,
};

constexpr int to_guest(Errno e) { return -static_cast<int>(e); }

constexpr Errno errno_for(Status s) {
    switch (s) {
    case Status::ok: return Errno::ok;
    case Status::no_memory: return Errno::enomem;
    case Status::no_space: return Errno::enospc;
    case Status::in_use: return Errno::eaddrinuse;
    case Status::not_found: return Errno::enoent;
    case Status::invalid_argument: return Errno::einval;
    case Status::out_of_range: return Errno::erange;
    case Status::bad_dt: return Errno::einval;
    case Status::bad_acpi: return Errno::einval;
    case Status::unsupported: return Errno::eopnotsupp;
    case Status::timeout: return Errno::etimedout;
    case Status::not_ready: return Errno::eagain;
    case Status::denied: return Errno::eperm;
    case Status::busy: return Errno::ebusy;
    case Status::hw_error: return Errno::eio;
    }
    return Errno::einval;
}

static_assert(to_guest(errno_for(Status::in_use)) == -98, "EADDRINUSE as Xen defines it");
static_assert(to_guest(errno_for(Status::no_space)) == -28, "ENOSPC as Xen defines it");

}  // namespace moat::xen
