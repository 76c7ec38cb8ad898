// The 16550 UART (x86 COM1 at I/O port 0x3f8 on q35). The registers are reached through `Regs`
// (port I/O on x86, MMIO elsewhere), so the driver itself is portable: Regs::read8/write8 take a
// register index. Polled transmit only; a bounded wait per byte, so a UART that never drains
// costs time, never a hang.
#pragma once
#include "drivers/serial/serial.hpp"

namespace moat {

template <class Regs>
class Ns16550 final : public Serial {
public:
    enum Reg : unsigned { THR = 0, IER = 1, FCR = 2, LCR = 3, MCR = 4, LSR = 5 };
    static constexpr uint8_t kLsrThre = 1u << 5;     // transmit holding register empty
    static constexpr uint8_t kLcrDlab = 1u << 7;     // divisor latch access
    static constexpr uint8_t kLcr8n1 = 0x03;
    static constexpr unsigned kSpinLimit = 100000;   // polls per byte before giving the byte up

    constexpr explicit Ns16550(Regs r) : r_(r) {}
    // 115200 8N1, FIFOs on, interrupts off.
    void init() {
        r_.write8(IER, 0);
        r_.write8(LCR, kLcrDlab);
        r_.write8(THR, 1);  // divisor low: 115200 baud from the 1.8432 MHz clock
        r_.write8(IER, 0);  // divisor high
        r_.write8(LCR, kLcr8n1);
        r_.write8(FCR, 0x07);
        r_.write8(MCR, 0x03);
    }
    void write(const char* s, size_t n) override {
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\n') put('\r');
            put(s[i]);
        }
    }
    const char* name() const override { return "ns16550"; }

private:
    void put(char c) {
        for (unsigned i = 0; i < kSpinLimit && !(r_.read8(LSR) & kLsrThre); i++) {
        }
        r_.write8(THR, static_cast<uint8_t>(c));
    }
    Regs r_;
};

}  // namespace moat
