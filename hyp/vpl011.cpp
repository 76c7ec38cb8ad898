#include "hyp/vpl011.hpp"

namespace moat::hyp {

bool VPl011::read(uint64_t off, unsigned bytes, uint64_t& val) {
    val = 0;
    if (off >= kSize || bytes > 4 || off % bytes) return false;
    uint64_t reg = off & ~uint64_t{3};
    uint32_t v = 0;
    switch (reg) {
    case DR: break;  // nothing received
    case FR:
        // BUSY only while full: a console that waits for !BUSY after each character (Linux's
        // earlycon) must not wait for a drain that only time brings.
        v = kFrRxfe | (level_ == 0 ? kFrTxfe : 0) | (level_ >= kFifo ? kFrTxff | kFrBusy : 0);
        if (level_ >= kFifo) drain();  // a poller finds it full once; the wire moves meanwhile
        break;
    case IBRD: v = ibrd_; break;
    case FBRD: v = fbrd_; break;
    case LCR_H: v = lcr_; break;
    case CR: v = cr_; break;
    case IFLS: v = ifls_; break;
    case IMSC: v = imsc_; break;
    case RIS:
    case MIS:
        v = reg == RIS ? ris() : ris() & imsc_;
        drain();  // the handler looked: by its next look the wire has caught up
        break;
    case DMACR: v = dmacr_; break;
    default:
        if (reg >= PERIPHID0 && reg < CELLID0) v = (kPeriphId >> (8 * ((reg - PERIPHID0) / 4))) & 0xff;
        else if (reg >= CELLID0) v = (kCellId >> (8 * ((reg - CELLID0) / 4))) & 0xff;
        break;
    }
    val = (v >> (8 * (off & 3))) & (bytes == 4 ? 0xffffffffu : (1u << (8 * bytes)) - 1);
    return true;
}

bool VPl011::write(uint64_t off, unsigned bytes, uint64_t val) {
    if (off >= kSize || bytes > 4 || off % bytes) return false;
    uint32_t v = static_cast<uint32_t>(val);
    switch (off) {
    case DR:
        out_.put(static_cast<char>(v & 0xff));
        chars_++;
        if (level_ < kFifo) level_++;
        break;
    case RSR: break;  // clears receive errors: there are none
    case IBRD: ibrd_ = v & 0xffff; break;
    case FBRD: fbrd_ = v & 0x3f; break;
    case LCR_H: lcr_ = v & 0xff; break;
    case CR: cr_ = v & 0xff87; break;
    case IFLS: ifls_ = v & 0x3f; break;
    case IMSC: imsc_ = v & kIntAll; break;
    case ICR: break;  // TX follows the FIFO level and nothing else latches: there is nothing to clear
    case DMACR: dmacr_ = 0; break;  // no DMA: the driver falls back to PIO
    default: break;  // read-only and reserved registers ignore writes
    }
    return true;
}

}  // namespace moat::hyp
