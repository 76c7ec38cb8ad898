// A guest's PL011, emulated (`vpl011`): the registers Linux's amba-pl011 driver and its tty
// layer use, behind trapped loads and stores, host-testable. Output goes to the guest's console
// (hyp/guest_console.hpp: whole lines, prefixed with the guest's name). There is no input: the
// receive FIFO is always empty and receive interrupts never rise.
//
// The transmit side is modelled as a FIFO of kFifo characters whose "wire" moves only when the
// guest looks at it, never with time, so what the guest sees (and how many TX interrupts its
// driver takes) depends on what it writes and nothing else, however its vCPUs are scheduled:
//  - a poll of FR that finds the FIFO full reports it full (TXFF, BUSY) once, then it is empty;
//  - a read of RIS or MIS (an interrupt handler asking what is pending) reports the state, then
//    the FIFO is empty: a handler that refills it and asks again is told TX is still due;
//  - idle() (the guest waits, WFI) empties it only when the guest waits for the TX interrupt
//    (TXIM enabled, FIFO above the trigger level), a state Linux's driver never leaves it in,
//    so another driver cannot wait for ever either.
// Its TX interrupt (RIS.TX) is high while the FIFO holds no more than half of kFifo, as the
// PL011's default trigger level (IFLS) says; IMSC masks it; the line to the GIC is RIS & IMSC
// (irq()). So a driver that fills the FIFO, enables TXIM and waits is woken by an interrupt, as
// on hardware; a polling console is never slowed.
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
    // The wire caught up: the transmit FIFO is empty again.
    void drain() { level_ = 0; }
    // The guest waits (WFI): the wire catches up if the guest waits for it (see above).
    void idle() {
        if ((imsc_ & kIntTx) && !(ris() & kIntTx)) drain();
    }
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
