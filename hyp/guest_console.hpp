// A guest's console, emulated: the guest's vPL011 writes go through moat, which prints them as
// whole lines prefixed "(d<domid>) ", the way Xen marks a guest's console lines. The guest never
// touches the hypervisor's UART, so nothing it prints can pass for one of moat's lines: control
// characters are shown as '.' (an escape sequence) or dropped (a carriage return), never sent.
#pragma once
#include "common/format.hpp"

namespace moat::hyp {

class GuestConsole {
public:
    static constexpr size_t kLine = 160;           // longer lines are cut into several
    static constexpr uint64_t kSize = 0x1000;       // the vPL011's register window
    static constexpr uint32_t kDr = 0x00, kFr = 0x18;
    static constexpr uint32_t kFrTxfe = 1u << 7, kFrRxfe = 1u << 4;

    GuestConsole(unsigned domid, Sink& out) : domid_(domid), out_(out) {}
    // A guest known by its name (a dom0less node's): its lines read "(name) ...".
    GuestConsole(const char* name, Sink& out) : domid_(0), name_(name), out_(out) {}

    // A 32-bit (or narrower) access at `offset` in the window. Writes to DR print; every other
    // register reads as an idle PL011 with an empty FIFO (FR: TXFE | RXFE) and ignores writes.
    void write(uint64_t offset, uint64_t value) {
        if (offset == kDr) put(static_cast<char>(value & 0xff));
    }
    uint64_t read(uint64_t offset) const { return offset == kFr ? kFrTxfe | kFrRxfe : 0; }

    void put(char c) {
        if (c == '\n') return flush();
        if (c == '\r') return;  // a line ends at '\n'; a CR is never sent, so it rewrites nothing
        if (c != '\t' && (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f)) c = '.';
        line_[n_++] = c;
        if (n_ == kLine) flush();
    }
    // What is buffered, as a line of its own (at the guest's exit, or when the line is full).
    void flush() {
        if (name_) format(out_, "(%s) ", name_);
        else format(out_, "(d%u) ", domid_);
        out_.write(line_, n_);
        out_.write("\n", 1);
        n_ = 0;
    }
    bool pending() const { return n_ != 0; }

private:
    unsigned domid_;
    const char* name_ = nullptr;
    Sink& out_;
    char line_[kLine];
    size_t n_ = 0;
};

}  // namespace moat::hyp
