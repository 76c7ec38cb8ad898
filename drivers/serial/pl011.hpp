// Arm PL011 UART (QEMU virt). Firmware or QEMU has set it up; moat only transmits.
#pragma once
#include "drivers/serial/serial.hpp"

namespace moat {

class Pl011 final : public Serial {
public:
    constexpr explicit Pl011(uintptr_t base = 0) : base_(base) {}
    void set_base(uintptr_t base) { base_ = base; }
    void write(const char* s, size_t n) override;
    const char* name() const override { return "pl011"; }
    // Characters dropped because the transmit FIFO never drained (bounded wait per character).
    uint64_t dropped() const { return dropped_; }

    enum class Reg32 : uint32_t {
        DR = 0x000,  // data
        FR = 0x018,  // flags
    };
    static constexpr uint32_t kFrTxff = 1u << 5;  // transmit FIFO full

private:
    void putc(char c);
    uintptr_t base_;
    uint64_t dropped_ = 0;
};

}  // namespace moat
