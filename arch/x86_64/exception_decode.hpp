// What an x86 exception means, from its vector and error code: names, and the page-fault and
// selector error-code bits spelled out. Header-only and constexpr, so host tests check it.
#pragma once
#include <stdint.h>

namespace moat::arch::x86 {

struct VectorInfo {
    const char* mnemonic;
    const char* name;
    bool has_error_code;
};

constexpr VectorInfo kVectors[32] = {
    {"#DE", "divide error", false},        {"#DB", "debug", false},
    {"NMI", "non-maskable interrupt", false}, {"#BP", "breakpoint", false},
    {"#OF", "overflow", false},            {"#BR", "bound range exceeded", false},
    {"#UD", "invalid opcode", false},      {"#NM", "device not available", false},
    {"#DF", "double fault", true},         {"--", "coprocessor segment overrun", false},
    {"#TS", "invalid TSS", true},          {"#NP", "segment not present", true},
    {"#SS", "stack-segment fault", true},  {"#GP", "general protection", true},
    {"#PF", "page fault", true},           {"--", "reserved", false},
    {"#MF", "x87 floating-point error", false}, {"#AC", "alignment check", true},
    {"#MC", "machine check", false},       {"#XM", "SIMD floating-point", false},
    {"#VE", "virtualization exception", false}, {"#CP", "control protection", true},
    {"--", "reserved", false}, {"--", "reserved", false}, {"--", "reserved", false}, {"--", "reserved", false},
    {"--", "reserved", false}, {"--", "reserved", false},
    {"#HV", "hypervisor injection", false}, {"#VC", "VMM communication", true},
    {"#SX", "security exception", true},   {"--", "reserved", false},
};

constexpr VectorInfo vector_info(uint64_t v) { return v < 32 ? kVectors[v] : VectorInfo{"--", "external interrupt", false}; }

// Page-fault error code bits.
constexpr uint64_t kPfPresent = 1u << 0;   // 0: the page was not present; 1: a protection violation
constexpr uint64_t kPfWrite = 1u << 1;
constexpr uint64_t kPfUser = 1u << 2;
constexpr uint64_t kPfReserved = 1u << 3;  // a reserved bit was set in a paging entry
constexpr uint64_t kPfFetch = 1u << 4;     // instruction fetch

constexpr const char* pf_cause(uint64_t e) {
    if (e & kPfReserved) return "reserved bit set in a paging entry";
    return (e & kPfPresent) ? "protection violation" : "page not present";
}
constexpr const char* pf_access(uint64_t e) { return (e & kPfFetch) ? "instruction fetch" : (e & kPfWrite) ? "write" : "read"; }
constexpr const char* pf_mode(uint64_t e) { return (e & kPfUser) ? "user" : "supervisor"; }

// Selector error code (#TS, #NP, #SS, #GP): EXT b0, IDT b1, TI b2 (LDT), index [15:3].
constexpr bool sel_external(uint64_t e) { return e & 1; }
constexpr const char* sel_table(uint64_t e) { return (e & 2) ? "IDT" : (e & 4) ? "LDT" : "GDT"; }
constexpr uint64_t sel_index(uint64_t e) { return (e >> 3) & 0x1fff; }
constexpr bool has_selector_code(uint64_t v) { return v == 10 || v == 11 || v == 12 || v == 13; }

}  // namespace moat::arch::x86
