// Decoding of the exception syndrome register (ESR_ELx): pure functions, host-tested.
#pragma once
#include <stdint.h>

namespace moat::arch::esr {

inline unsigned ec(uint64_t esr) { return static_cast<unsigned>((esr >> 26) & 0x3f); }

inline const char* class_name(uint64_t esr) {
    switch (ec(esr)) {
    case 0x00: return "unknown reason (undefined instruction)";
    case 0x01: return "WFI/WFE";
    case 0x07: return "FP/SIMD access";
    case 0x0e: return "illegal execution state";
    case 0x15: return "SVC from AArch64";
    case 0x16: return "HVC from AArch64";
    case 0x17: return "SMC from AArch64";
    case 0x18: return "system register access";
    case 0x20: return "instruction abort from a lower EL";
    case 0x21: return "instruction abort at the same EL";
    case 0x22: return "PC alignment fault";
    case 0x24: return "data abort from a lower EL";
    case 0x25: return "data abort at the same EL";
    case 0x26: return "SP alignment fault";
    case 0x2f: return "SError";
    case 0x3c: return "BRK instruction";
    default: return "other exception class";
    }
}

inline bool is_abort(uint64_t esr) {
    unsigned c = ec(esr);
    return c == 0x20 || c == 0x21 || c == 0x24 || c == 0x25;
}

// Fault status code of an instruction or data abort (ISS[5:0]).
inline const char* fault_status(uint64_t esr) {
    unsigned fsc = static_cast<unsigned>(esr & 0x3f);
    switch (fsc & 0x3c) {
    case 0x04: return "translation fault";
    case 0x08: return "access flag fault";
    case 0x0c: return "permission fault";
    case 0x00: return "address size fault";
    default: break;
    }
    switch (fsc) {
    case 0x10: return "synchronous external abort";
    case 0x21: return "alignment fault";
    case 0x30: return "TLB conflict abort";
    default: return "other fault";
    }
}

inline unsigned fault_level(uint64_t esr) { return static_cast<unsigned>(esr & 3); }
// A data abort's instruction syndrome (ISS.ISV set: a single load or store of a general
// register, docs/hardware.md §4.7): which register, how wide.
inline bool syndrome_valid(uint64_t esr) { return ec(esr) == 0x24 && ((esr >> 24) & 1) != 0; }
inline unsigned access_reg(uint64_t esr) { return static_cast<unsigned>((esr >> 16) & 31); }  // SRT; 31 = xzr
inline unsigned access_bytes(uint64_t esr) { return 1u << ((esr >> 22) & 3); }                // SAS
inline bool is_write(uint64_t esr) { return ec(esr) == 0x24 || ec(esr) == 0x25 ? ((esr >> 6) & 1) != 0 : false; }

}  // namespace moat::arch::esr
