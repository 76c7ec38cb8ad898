// Port I/O: only x86 has it, so only arch/x86_64 names it.
#pragma once
#include <stdint.h>

namespace moat::arch::pio {

inline uint8_t in8(uint16_t port) { uint8_t v; asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory"); return v; }
inline void out8(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory"); }
inline void out32(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory"); }

// A UART's registers at consecutive ports from `base` (Ns16550's Regs).
struct PortRegs {
    uint16_t base;
    uint8_t read8(unsigned reg) const { return in8(static_cast<uint16_t>(base + reg)); }
    void write8(unsigned reg, uint8_t v) const { out8(static_cast<uint16_t>(base + reg), v); }
};

}  // namespace moat::arch::pio
