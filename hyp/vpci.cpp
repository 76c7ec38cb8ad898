// VPci: the guest's trapped ECAM window, decoded (see vpci.hpp for what the guest sees).
#include "hyp/vpci.hpp"

namespace moat::hyp {

namespace {

constexpr uint16_t kBar0 = 0x10, kBarEnd = 0x28, kRom = 0x30, kIntr = 0x3c, kCmd = 0x04, kStatus = 0x06;
constexpr uint16_t kHeaderOff = 0x0c;
constexpr uint16_t kCapsStart = 0x40;  // from here on the function's own space, passed through

void fn_line(Sink& s, const xen::PciBdf& f) { format(s, "vpci: %04x:%02x:%02x.%u: ", f.seg, f.bus, f.dev, f.fn); }

}  // namespace

Status VPci::add(const xen::PciBdf& f, const pci::Bar* bars, Sink& err) {
    if (n_ == kMaxFunctions) return fn_line(err, f), format(err, "more than %u functions\n", kMaxFunctions), Status::no_space;
    if (f.bus != 0)
        return fn_line(err, f), format(err, "not on the root bus; only bus 0 is passed through\n"), Status::unsupported;
    uint32_t hdr = host_.read(f, kHeaderOff, 4) >> 16 & 0x7f;
    if (hdr != 0)
        return fn_line(err, f), format(err, "header type %u: bridges are not assigned to guests\n", hdr), Status::denied;
    if (f.fn != 0 && !find(f.dev, 0))
        return fn_line(err, f), format(err, "function 0 of device %02x is not assigned first; the guest would not find it\n", f.dev),
               Status::invalid_argument;
    if (find(f.dev, f.fn)) return fn_line(err, f), format(err, "added twice\n"), Status::in_use;
    Fn& x = fns_[n_];
    x = Fn{};
    x.bdf = f;
    for (unsigned i = 0; i < 6; i++) {
        x.bars[i] = bars[i];
        if (bars[i].size && !bars[i].io && bars[i].addr % kPageSize)
            return fn_line(err, f),
                   format(err, "BAR%u [0x%lx, +0x%lx) does not start a page; its page may hold another function's registers\n", i,
                          bars[i].addr, bars[i].size),
                   Status::invalid_argument;
        x.flags[i] = host_.read(f, static_cast<uint16_t>(kBar0 + 4 * i), 4) & 0xf;
    }
    n_++;
    return Status::ok;
}

VPci::Fn* VPci::find(unsigned dev, unsigned fn) {
    for (unsigned i = 0; i < n_; i++)
        if (fns_[i].bdf.dev == dev && fns_[i].bdf.fn == fn) return &fns_[i];
    return nullptr;
}

uint32_t VPci::bar_dword(const Fn& f, unsigned i) const {
    if (i > 0 && f.bars[i - 1].mem64 && f.bars[i - 1].size) {  // the high half of a 64-bit BAR
        const pci::Bar& b = f.bars[i - 1];
        return static_cast<uint32_t>((f.sizing[i] ? ~(b.size - 1) : b.addr) >> 32);
    }
    const pci::Bar& b = f.bars[i];
    if (!b.size || b.io) return 0;
    uint64_t v = f.sizing[i] ? ~(b.size - 1) : b.addr;
    return (static_cast<uint32_t>(v) & ~0xfu) | f.flags[i];
}

void VPci::bar_write(Fn& f, unsigned i, uint32_t v) {
    if (i > 0 && f.bars[i - 1].mem64 && f.bars[i - 1].size) {
        uint32_t mine = static_cast<uint32_t>(f.bars[i - 1].addr >> 32);
        if (v == 0xffffffffu) f.sizing[i] = true;
        else if (v == mine) f.sizing[i] = false;
        else refuse(Refusal::Why::bar_high_move, f.bars[i - 1].addr, i - 1);
        return;
    }
    const pci::Bar& b = f.bars[i];
    if (!b.size || b.io) return;  // not implemented (for the guest): sizing writes go nowhere
    uint32_t a = v & ~0xfu;
    if (a == 0xfffffff0u) f.sizing[i] = true;
    else if (a == (static_cast<uint32_t>(b.addr) & ~0xfu)) f.sizing[i] = false;
    else refuse(Refusal::Why::bar_move, b.addr, i);  // a move: the BAR stays where moat put it
}

uint32_t VPci::read_dword(Fn& f, uint16_t off) {
    if (off >= kBar0 && off < kBarEnd) return bar_dword(f, (off - kBar0) / 4u);
    switch (off) {
    case kRom: case 0x38: case 0x28: return 0;
    case kIntr: return (host_.read(f.bdf, kIntr, 4) & ~0xffu) | f.irq_line;
    default: return host_.read(f.bdf, off, 4);
    }
}

bool VPci::read(uint64_t off, unsigned bytes, uint32_t& val) {
    if ((bytes != 1 && bytes != 2 && bytes != 4) || off % bytes || off >= kEcamSize) return false;
    uint16_t reg = static_cast<uint16_t>(off & 0xfff);
    Fn* f = find(static_cast<unsigned>(off >> 15 & 31), static_cast<unsigned>(off >> 12 & 7));
    uint32_t width = bytes == 4 ? 0xffffffffu : (1u << (8 * bytes)) - 1;
    if (!f) {
        absent_++;
        val = width;  // nobody claims it: all ones
        return true;
    }
    if (reg >= kCapsStart) {
        val = host_.read(f->bdf, reg, bytes) & width;
        return true;
    }
    val = read_dword(*f, static_cast<uint16_t>(reg & ~3u)) >> (8 * (reg & 3)) & width;
    return true;
}

bool VPci::write(uint64_t off, unsigned bytes, uint32_t val) {
    if ((bytes != 1 && bytes != 2 && bytes != 4) || off % bytes || off >= kEcamSize) return false;
    uint16_t reg = static_cast<uint16_t>(off & 0xfff);
    Fn* f = find(static_cast<unsigned>(off >> 15 & 31), static_cast<unsigned>(off >> 12 & 7));
    at_ = Refusal{static_cast<uint8_t>(off >> 15 & 31), static_cast<uint8_t>(off >> 12 & 7), reg, static_cast<uint8_t>(bytes), val};
    if (!f) {
        absent_++;
        absent_writes_++;
        last_ = at_;  // ignored, as a write nobody claims
        return true;
    }
    if (reg >= kCapsStart) {
        host_.write(f->bdf, reg, bytes, val);
        return true;
    }
    uint16_t dw = static_cast<uint16_t>(reg & ~3u);
    unsigned shift = 8 * (reg & 3u);
    uint32_t mask = (bytes == 4 ? 0xffffffffu : (1u << (8 * bytes)) - 1) << shift;
    uint32_t v = val << shift;
    if (dw >= kBar0 && dw < kBarEnd) {
        unsigned i = (dw - kBar0) / 4u;
        bar_write(*f, i, (bar_dword(*f, i) & ~mask) | (v & mask));
        return true;
    }
    switch (dw) {
    case kCmd: {
        if (mask & 0xffffu) {
            uint32_t cur = host_.read(f->bdf, kCmd, 2);
            uint32_t merged = (cur & ~mask) | (v & mask & 0xffffu);
            if (uint32_t dropped = (merged ^ cur) & ~uint32_t{kCmdWritable} & 0xffffu) refuse(Refusal::Why::command_bits, dropped);
            host_.write(f->bdf, kCmd, 2, (cur & ~uint32_t{kCmdWritable}) | (merged & kCmdWritable));
        }
        if (mask & 0xffff0000u) {  // status: write 1 to clear, the function's own
            if (bytes == 4) host_.write(f->bdf, kStatus, 2, val >> 16);
            else host_.write(f->bdf, reg, bytes, val);
        }
        return true;
    }
    case kHeaderOff:  // cache line size only; latency timer, header type and BIST are not the guest's
        if (mask & 0xffu) host_.write(f->bdf, kHeaderOff, 1, v & 0xffu);
        // The latency timer is dropped unreported: Linux's pci_set_master writes it on every
        // conventional function (read-only zero on PCIe); header type and BIST are refused.
        if (mask & 0xffff0000u) refuse(Refusal::Why::read_only);
        return true;
    case kIntr:
        if (mask & 0xffu) f->irq_line = static_cast<uint8_t>(v);
        return true;
    case kRom:  // not implemented for the guest: sizing (all ones, then 0, as Linux does) goes nowhere, as for a BAR
        return true;
    default:
        refuse(Refusal::Why::read_only);  // identity, class, subsystem, capability pointer: read-only to the guest
        return true;
    }
}

void VPci::refuse(Refusal::Why why, uint64_t kept, unsigned bar) {
    refused_++;
    last_ = at_;
    last_.why = why, last_.kept = kept, last_.bar = bar;
}

void VPci::describe(const Refusal& r, uint16_t seg, uint8_t bus, Sink& out) {
    format(out, "config write to %04x:%02x:%02x.%u offset 0x%03x (%u bytes, 0x%x) ", seg, bus, r.dev, r.fn, r.off, r.bytes, r.val);
    switch (r.why) {
    case Refusal::Why::absent: format(out, "ignored: no function of the guest's there"); break;
    case Refusal::Why::bar_move: format(out, "refused: BAR%u stays at 0x%lx, where moat placed it", r.bar, r.kept); break;
    case Refusal::Why::bar_high_move:
        format(out, "refused: the high half of BAR%u stays 0x%x (BAR at 0x%lx, where moat placed it)", r.bar,
               static_cast<uint32_t>(r.kept >> 32), r.kept);
        break;
    case Refusal::Why::command_bits:
        format(out, "filtered: command bits 0x%lx are not the guest's (memory, bus master, parity, SERR, INTx disable are)", r.kept);
        break;
    case Refusal::Why::read_only: format(out, "refused: read-only to the guest"); break;
    }
}

bool VPci::bar_range(unsigned i, uint64_t& addr, uint64_t& size) const {
    unsigned k = 0;
    for (unsigned j = 0; j < n_; j++)
        for (unsigned b = 0; b < 6; b++) {
            const pci::Bar& bar = fns_[j].bars[b];
            if (!bar.size || bar.io) continue;
            if (k++ == i) {
                addr = bar.addr, size = align_up(bar.size, kPageSize);  // drivers/pci gives each BAR whole pages
                return true;
            }
        }
    return false;
}

}  // namespace moat::hyp
