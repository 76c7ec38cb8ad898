#include "common/status.hpp"

namespace moat {

const char* to_string(Status s) {
    switch (s) {
    case Status::ok: return "ok";
    case Status::no_memory: return "no memory";
    case Status::no_space: return "no space";
    case Status::in_use: return "in use";
    case Status::not_found: return "not found";
    case Status::invalid_argument: return "invalid argument";
    case Status::out_of_range: return "out of range";
    case Status::bad_dt: return "bad device tree";
    case Status::unsupported: return "unsupported";
    case Status::timeout: return "timeout";
    case Status::not_ready: return "not ready";
    case Status::denied: return "denied";
    case Status::busy: return "busy";
    case Status::hw_error: return "hardware error";
    case Status::bad_acpi: return "bad ACPI table";
    }
    return "unknown status";
}

}  // namespace moat
