// Renesas R-Car SCIF (the Salvator-X console is SCIF2 at 0xe6e88000). Firmware (TF-A, U-Boot)
// has set the line up; moat only transmits: wait for room in the transmit FIFO (SCFSR.TDFE),
// write SCFTDR, clear TDFE and TEND, and at the end of a write wait until the line is idle
// (SCFSR.TEND) so that nothing is lost when moat stops. Every wait is bounded.
//
// Header-only on purpose: drivers/serial/select.cpp names it, and the PV test guest links
// select.o without the rest of drivers/serial.
//
// Register widths matter on this UART (8- and 16-bit registers 4 bytes apart), and the arch
// layer only offers 32/64-bit MMIO so far; until it has read16/write16/write8, the accesses
// are single volatile loads and stores of the register's own width, kept in this one class.
#pragma once
#include "common/wait.hpp"
#include "drivers/serial/serial.hpp"

namespace moat {

class Scif final : public Serial {
public:
    static constexpr uint64_t kCharTimeoutNs = 10 * 1000 * 1000;  // far beyond 16 characters at 9600 baud

    enum class Reg16 : uint32_t {
        SCSMR = 0x00,  // serial mode
        SCSCR = 0x08,  // serial control: TE enables the transmitter
        SCFSR = 0x10,  // FIFO status: TEND, TDFE (cleared by writing 0 after reading 1)
        SCFCR = 0x18,  // FIFO control
        SCFDR = 0x1c,  // FIFO data count
        SCLSR = 0x24,  // line status
    };
    enum class Reg8 : uint32_t {
        SCBRR = 0x04,   // bit rate
        SCFTDR = 0x0c,  // transmit FIFO data
        SCFRDR = 0x14,  // receive FIFO data
    };
    static constexpr uint16_t kFsrDr = 1u << 0, kFsrRdf = 1u << 1, kFsrPer = 1u << 2, kFsrFer = 1u << 3, kFsrBrk = 1u << 4;
    static constexpr uint16_t kFsrTdfe = 1u << 5;  // transmit FIFO has room (at or below its trigger)
    static constexpr uint16_t kFsrTend = 1u << 6;  // transmission ended: FIFO and shift register empty
    static constexpr uint16_t kFsrEr = 1u << 7;
    static constexpr uint16_t kScrTe = 1u << 5;

    constexpr explicit Scif(uintptr_t base = 0) : base_(base) {}
    void set_base(uintptr_t base) { base_ = base; }
    const char* name() const override { return "scif"; }
    // Characters dropped because the FIFO never drained (bounded wait per character).
    uint64_t dropped() const { return dropped_; }

    void write(const char* s, size_t n) override {
        if (!base_) return;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\n') putc('\r');
            putc(s[i]);
        }
        (void)wait_until(kCharTimeoutNs, [&] { return (rd(Reg16::SCFSR) & kFsrTend) != 0; });
    }

private:
    void putc(char c) {
        if (wait_until(kCharTimeoutNs, [&] { return (rd(Reg16::SCFSR) & kFsrTdfe) != 0; }) != Status::ok) {
            dropped_++;
            return;
        }
        wr(Reg8::SCFTDR, static_cast<uint8_t>(c));
        // Writing back what was read leaves every other flag as it was (a 1 written is ignored).
        wr(Reg16::SCFSR, static_cast<uint16_t>(rd(Reg16::SCFSR) & ~(kFsrTdfe | kFsrTend)));
    }
    uint16_t rd(Reg16 r) const { return *reinterpret_cast<volatile const uint16_t*>(base_ + static_cast<uint32_t>(r)); }
    void wr(Reg16 r, uint16_t v) const { *reinterpret_cast<volatile uint16_t*>(base_ + static_cast<uint32_t>(r)) = v; }
    void wr(Reg8 r, uint8_t v) const { *reinterpret_cast<volatile uint8_t*>(base_ + static_cast<uint32_t>(r)) = v; }

    uintptr_t base_;
    uint64_t dropped_ = 0;
};

}  // namespace moat
