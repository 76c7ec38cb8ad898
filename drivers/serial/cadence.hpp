// Xilinx/Cadence UART (`cdns,uart-r1p12`, `xlnx,xuartps`; the ZynqMP's UART0 at 0xff000000 on
// ZCU102). Firmware (FSBL, TF-A, U-Boot) has set the line up; moat only transmits: wait for room
// in the transmit FIFO (Channel_sts.TXFULL clear), write the byte to TX_RX_FIFO, and at the end
// of a write wait for the FIFO to drain (TXEMPTY) so that nothing is lost when moat stops. Every
// wait is bounded. Offsets and bits from UG1087 (Zynq UltraScale+ register reference).
// The one exception to "firmware set it up": a transmitter left disabled (the reset state, as
// when QEMU's xlnx-zcu102 boots the image directly) is enabled, like Linux's earlycon does; the
// receiver and the line settings are left as they are.
//
// Header-only on purpose, like scif.hpp: drivers/serial/select.cpp names it, and the PV test
// guest links select.o without the rest of drivers/serial.
#pragma once
#include "arch/mmio.hpp"
#include "common/wait.hpp"
#include "drivers/serial/serial.hpp"

namespace moat {

class Cadence final : public Serial {
public:
    static constexpr uint64_t kCharTimeoutNs = 10 * 1000 * 1000;  // far beyond a 64-byte FIFO at 9600 baud

    enum class Reg32 : uint32_t {
        CR = 0x00,    // Control_reg0: TX_EN b4, TX_DIS b5 (left as firmware set them)
        SR = 0x2c,    // Channel_sts: FIFO flags, raw and unlatched
        FIFO = 0x30,  // TX_RX_FIFO: a write queues the byte in [7:0]
    };
    static constexpr uint32_t kCrTxEn = 1u << 4, kCrTxDis = 1u << 5;
    // Self-clearing commands (RXRST, TXRST, RSTTO, STTBRK, STPBRK): never written back.
    static constexpr uint32_t kCrCommands = 1u << 0 | 1u << 1 | 1u << 6 | 1u << 7 | 1u << 8;
    static constexpr uint32_t kSrTxEmpty = 1u << 3;  // transmit FIFO empty
    static constexpr uint32_t kSrTxFull = 1u << 4;   // transmit FIFO full

    constexpr explicit Cadence(uintptr_t base = 0) : base_(base) {}
    void set_base(uintptr_t base) { base_ = base; }
    const char* name() const override { return "cadence"; }
    // Characters dropped because the FIFO never drained (bounded wait per character).
    uint64_t dropped() const { return dropped_; }

    void write(const char* s, size_t n) override {
        if (!base_) return;
        uint32_t cr = rd(Reg32::CR);
        if ((cr & kCrTxDis) || !(cr & kCrTxEn))
            mmio::write32(base_ + static_cast<uint32_t>(Reg32::CR), (cr & ~(kCrTxDis | kCrCommands)) | kCrTxEn);
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\n') putc('\r');
            putc(s[i]);
        }
        (void)wait_until(kCharTimeoutNs, [&] { return (rd(Reg32::SR) & kSrTxEmpty) != 0; });
    }

private:
    void putc(char c) {
        if (wait_until(kCharTimeoutNs, [&] { return (rd(Reg32::SR) & kSrTxFull) == 0; }) != Status::ok) {
            dropped_++;
            return;
        }
        mmio::write32(base_ + static_cast<uint32_t>(Reg32::FIFO), static_cast<uint8_t>(c));
    }
    uint32_t rd(Reg32 r) const { return mmio::read32(base_ + static_cast<uint32_t>(r)); }

    uintptr_t base_;
    uint64_t dropped_ = 0;
};

}  // namespace moat
