// A guest's PL011, emulated (`vpl011`): the registers Linux's amba-pl011 driver and its tty
// layer use, behind trapped loads and stores, host-testable. Output goes to the guest's console
// (hyp/guest_console.hpp: whole lines, prefixed with the guest's name). There is no input: the
// receive FIFO is always empty and receive interrupts never rise.
//
// The transmit side is modelled as a FIFO of kFifo characters that the "wire" drains when time
// passes for the guest (drain(): the runtime calls it on every guest exit that is not an access
// to this UART, i.e. a timer tick, a WFI, another device), and when the guest polls FR and finds
// it full (a console write spinning on TXFF, reported with BUSY). Its TX interrupt (RIS.TX) is high while the FIFO
// holds no more than half of kFifo, as the PL011's default trigger level (IFLS) says; IMSC masks
// it; the line to the GIC is RIS & IMSC (irq()). So a driver that fills the FIFO, enables TXIM
// and waits is woken by an interrupt, as on hardware; a polling console is never slowed.
// Register facts: docs/hardware.md §9.3.
#pragma once
#include "hyp/guest_console.hpp"

namespace moat::hyp {

class VPl011 {
public:
    static constexpr uint64_t kSize = 0x1000;
    static constexpr unsigned kFifo = 16;  // PL011 r1p5 as the guest tree's periphid says (revision 2: 16 entries)
    static constexpr uint32_t DR = 0x000, RSR = 0x004, FR = 0x018, ILPR = 0x020, IBRD = 0x024, FBRD = 0x028,
                              LCR_H = 0x02c, CR = 0x030, IFLS = 0x034, IMSC = 0x038, RIS = 0x03c, MIS = 0x040,
                              ICR = 0x044, DMACR = 0x048, PERIPHID0 = 0xfe0, CELLID0 = 0xff0;
    static constexpr uint32_t kFrBusy = 1u << 3, kFrRxfe = 1u << 4, kFrTxff = 1u << 5, kFrTxfe = 1u << 7;
    static constexpr uint32_t kIntRx = 1u << 4, kIntTx = 1u << 5, kIntRt = 1u << 6, kIntAll = 0x7ff;
    static constexpr uint32_t kPeriphId = 0x00241011, kCellId = 0xb105f00d;

    explicit VPl011(GuestConsole& out) : out_(out) {}

    // A load or store at `off`. false: not an access a PL011 answers (beyond 32 bits, unaligned),
    // and the caller injects an external abort.
    bool read(uint64_t off, unsigned bytes, uint64_t& val);
    bool write(uint64_t off, unsigned bytes, uint64_t val);
    // Time passed on the wire: the transmit FIFO is empty again.
    void drain() { level_ = 0; }
    // The interrupt line to the GIC (level, high while RIS & IMSC).
    bool irq() const { return (ris() & imsc_) != 0; }
    unsigned level() const { return level_; }
    uint64_t chars() const { return chars_; }

private:
    uint32_t ris() const { return level_ <= kFifo / 2 ? kIntTx : 0; }
    GuestConsole& out_;
    unsigned level_ = 0;
    uint32_t imsc_ = 0, cr_ = 0x300, lcr_ = 0, ibrd_ = 0, fbrd_ = 0, ifls_ = 0x12, dmacr_ = 0;
    uint64_t chars_ = 0;
};

}  // namespace moat::hyp
