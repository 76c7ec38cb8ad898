// One status enum for the whole of moat, named after what went wrong.
#pragma once
#include "common/types.hpp"

namespace moat {

enum class Status : uint8_t {
    ok = 0,
    no_memory,        // the page pool (or a static table) is exhausted
    no_space,         // a hardware resource (context, stream slot, VMID) is exhausted
    in_use,           // the address, stream or resource is already taken
    not_found,        // nothing is mapped / registered there
    invalid_argument, // a caller-supplied value is out of its domain
    out_of_range,     // an address or size exceeds what the object covers
    bad_dt,           // the device tree is malformed for this purpose
    unsupported,      // valid, but this hardware or build does not do it
    timeout,          // a bounded wait on hardware expired
    not_ready,        // a dependency is not probed yet; retry later
    denied,           // the caller has no right to do this
    busy,             // the object still has users
    hw_error,         // the hardware reported an error
    bad_acpi,         // an ACPI table is malformed (checksum, length, a structure past its end)
};

const char* to_string(Status s);

// For operations that may stop part way: how far they got, and why they stopped.
struct [[nodiscard]] Progress {
    uint64_t bytes_done = 0;
    Status status = Status::ok;
    constexpr bool ok() const { return status == Status::ok; }
};

template <class T>
struct [[nodiscard]] Result {
    T value{};
    Status status = Status::ok;
    constexpr Result(T v) : value(v) {}  // NOLINT: implicit by design
    constexpr Result(Status s) : status(s) {}
    constexpr bool ok() const { return status == Status::ok; }
};

}  // namespace moat
