#include "drivers/pci/ecam.hpp"

#include "arch/mmio.hpp"
#include "common/format.hpp"

namespace moat::pci {

namespace {
constexpr uint32_t kSpaceMask = 0x03000000;  // phys.hi ss bits of a PCI address
constexpr uint32_t kSpaceMem32 = 0x02000000;

uint32_t be32(const void* p, unsigned i) {
    const auto* b = static_cast<const uint8_t*>(p) + 4 * i;
    return uint32_t{b[0]} << 24 | uint32_t{b[1]} << 16 | uint32_t{b[2]} << 8 | b[3];
}
}  // namespace

Status Host::probe(const dt::Tree& t, int node) {
    node_ = node;
    dt::Reg reg;
    Status st = t.reg(node, 0, reg);
    if (st != Status::ok) return st;
    ecam_ = reg.addr;
    ecam_size_ = reg.size;
    int len;
    const void* br = t.prop(node, "bus-range", &len);
    if (br && len == 8) {
        bus_first_ = be32(br, 0);
        bus_last_ = be32(br, 1);
    } else {
        bus_first_ = 0;
        bus_last_ = static_cast<unsigned>(ecam_size_ >> 20) - 1;
    }
    if (bus_last_ < bus_first_ || bus_last_ > 255 || ((uint64_t{bus_last_ - bus_first_} + 1) << 20) > ecam_size_)
        return t.fail(node, Status::bad_dt, "bus-range %u-%u does not fit the ECAM size 0x%lx", bus_first_, bus_last_, ecam_size_);
    // ranges: (pci address: 3 cells) (cpu address: parent's cells) (size: 2 cells)
    unsigned pac;
    if ((st = t.address_cells(t.parent(node), pac)) != Status::ok) return st;
    const void* r = t.prop(node, "ranges", &len);
    unsigned entry = 3 + pac + 2;
    if (!r || len <= 0 || static_cast<unsigned>(len) % (entry * 4))
        return t.fail(node, Status::bad_dt, "ranges missing or not whole (pci 3 + cpu %u + size 2 cells) entries", pac);
    for (unsigned i = 0; i < static_cast<unsigned>(len) / (entry * 4); i++) {
        unsigned b = i * entry;
        if ((be32(r, b) & kSpaceMask) != kSpaceMem32) continue;
        uint64_t pci = uint64_t{be32(r, b + 1)} << 32 | be32(r, b + 2);
        uint64_t cpu = 0;
        for (unsigned k = 0; k < pac; k++) cpu = cpu << 32 | be32(r, b + 3 + k);
        uint64_t size = uint64_t{be32(r, b + 3 + pac)} << 32 | be32(r, b + 4 + pac);
        if (pci != cpu) return t.fail(node, Status::unsupported, "32-bit window is not identity mapped (pci 0x%lx, cpu 0x%lx)", pci, cpu);
        win_base_ = win_next_ = cpu;
        win_size_ = size;
        return Status::ok;
    }
    return t.fail(node, Status::bad_dt, "no 32-bit memory window in ranges");
}

uintptr_t Host::cfg_addr(unsigned bus, unsigned dev, unsigned fn, uint16_t off) const {
    return static_cast<uintptr_t>(ecam_ + ((uint64_t{bus - bus_first_} << 20) | (dev << 15) | (fn << 12) | (off & 0xffcu)));
}

uint32_t Host::read32(const Device& d, uint16_t off) const { return mmio::read32(cfg_addr(d.bus, d.dev, d.fn, off)); }
void Host::write32(const Device& d, uint16_t off, uint32_t v) const { mmio::write32(cfg_addr(d.bus, d.dev, d.fn, off), v); }

namespace {
constexpr uint16_t kPxbVendor = 0x1b36, kPxbDevice = 0x000b;  // QEMU's PCIe expander bridge (pxb-pcie)
constexpr uint32_t kClassHostBridge = 0x060000;
constexpr unsigned kMaxDepth = 8;  // bridges below bridges: more than any board here has
constexpr uint32_t kWindowClosed = 0x0000fff0;  // base 0xfff00000 above limit 0: forwards nothing
}  // namespace

Status Host::enumerate() {
    ndev_ = nbr_ = nrefused_ = 0;
    win_next_ = win_base_;
    next_bus_ = bus_first_ + 1;
    Status st = scan_bus(bus_first_, -1, 0);
    if (st != Status::ok) return st;
    open_windows();
    return Status::ok;
}

void Host::close_bridge(Bridge& b, const char* why) {
    b.ok = false;
    if (!b.why[0]) format_to(b.why, sizeof b.why, "%s", why);
    const Device& d = devs_[b.device];
    uint16_t cmd = static_cast<uint16_t>(Cfg::command);
    write32(d, cmd, read32(d, cmd) & 0xffff & ~(kCmdMemory | kCmdBusMaster | 1u));
    write32(d, static_cast<uint16_t>(Cfg::mem_window), kWindowClosed);
}

// Depth first: a bridge gets the next bus number, its subordinate covers every bus left while the
// buses behind it are walked, then shrinks to the last one they took.
Status Host::scan_bus(unsigned bus, int parent, unsigned depth) {
    for (unsigned dev = 0; dev < 32; dev++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            uint32_t id = mmio::read32(cfg_addr(bus, dev, fn, static_cast<uint16_t>(Cfg::id)));
            if ((id & 0xffff) == 0xffff) {
                if (fn == 0) break;
                continue;
            }
            if (ndev_ == kMaxDevices) return Status::no_space;
            unsigned index = ndev_++;
            Device& d = devs_[index];
            d = Device{};
            d.bus = static_cast<uint8_t>(bus);
            d.dev = static_cast<uint8_t>(dev);
            d.fn = static_cast<uint8_t>(fn);
            d.vendor = static_cast<uint16_t>(id & 0xffff);
            d.device = static_cast<uint16_t>(id >> 16);
            d.class_code = read32(d, static_cast<uint16_t>(Cfg::class_rev)) >> 8;
            d.behind = static_cast<int8_t>(parent);
            d.blocked = parent >= 0 && !br_[parent].ok;
            uint32_t hdr = read32(d, static_cast<uint16_t>(Cfg::header)) >> 16;
            if ((hdr & 0x7f) == kHeaderBridge) {
                if (nbr_ == kMaxBridges) return Status::no_space;
                d.bridge = static_cast<int8_t>(nbr_);
                Bridge& b = br_[nbr_++];
                b = Bridge{};
                b.device = index;
                b.parent = static_cast<int8_t>(parent);
                // Closed until open_windows() gives it a window: no decoding, no mastering.
                uint16_t cmd = static_cast<uint16_t>(Cfg::command);
                write32(d, cmd, read32(d, cmd) & 0xffff & ~(kCmdMemory | kCmdBusMaster | 1u));
                write32(d, static_cast<uint16_t>(Cfg::mem_window), kWindowClosed);
                write32(d, static_cast<uint16_t>(Cfg::pref_window), kWindowClosed);
                write32(d, static_cast<uint16_t>(Cfg::io_window), 0xf0);
                uint16_t busreg = static_cast<uint16_t>(Cfg::bus_numbers);
                if (d.blocked) {
                    close_bridge(b, "behind a bridge that could not be configured");
                } else if (next_bus_ > bus_last_ || depth + 1 >= kMaxDepth) {
                    write32(d, busreg, bus);  // secondary and subordinate 0: forwards no configuration cycle
                    char why[80];
                    format_to(why, sizeof why, depth + 1 >= kMaxDepth ? "bridges nested deeper than %u" : "no bus number left (bus-range ends at %u)",
                              depth + 1 >= kMaxDepth ? kMaxDepth : bus_last_);
                    close_bridge(b, why);
                } else {
                    b.secondary = static_cast<uint8_t>(next_bus_++);
                    write32(d, busreg, bus | uint32_t{b.secondary} << 8 | bus_last_ << 16);
                    Status st = scan_bus(b.secondary, d.bridge, depth + 1);
                    if (st != Status::ok) return st;
                    b.subordinate = static_cast<uint8_t>(next_bus_ - 1);
                    write32(d, busreg, bus | uint32_t{b.secondary} << 8 | uint32_t{b.subordinate} << 16);
                }
            } else {
                if (d.vendor == kPxbVendor && d.device == kPxbDevice && d.class_code == kClassHostBridge) nrefused_++;
                Status st = size_bars(d);
                if (st != Status::ok) return st;
            }
            if (fn == 0 && !(hdr & 0x80)) break;  // not multi-function
        }
    }
    return Status::ok;
}

// Sizes the memory BARs of an endpoint without assigning them (each written back as it was).
Status Host::size_bars(Device& d) {
    uint16_t cmd_off = static_cast<uint16_t>(Cfg::command);
    uint32_t cmd = read32(d, cmd_off) & 0xffff;
    write32(d, cmd_off, cmd & ~(kCmdMemory | kCmdBusMaster));  // a BAR of all ones must not claim addresses
    for (unsigned i = 0; i < 6; i++) {
        uint16_t off = static_cast<uint16_t>(static_cast<uint16_t>(Cfg::bar0) + 4 * i);
        uint32_t orig = read32(d, off);
        Bar& bar = d.bars[i];
        bar = Bar{};
        if (orig & 1) {
            bar.io = true;
            continue;
        }
        bar.mem64 = ((orig >> 1) & 3) == 2;
        write32(d, off, 0xffffffffu);
        uint64_t mask = read32(d, off) & ~0xfu;
        write32(d, off, orig);
        if (bar.mem64 && i < 5) {
            uint16_t hi = static_cast<uint16_t>(off + 4);
            uint32_t orig_hi = read32(d, hi);
            write32(d, hi, 0xffffffffu);
            mask |= uint64_t{read32(d, hi)} << 32;
            write32(d, hi, orig_hi);
        } else {
            mask |= 0xffffffff00000000ull;
        }
        if ((mask & 0xffffffffu) != 0) bar.size = ~mask + 1;
        if (bar.mem64) i++;
    }
    write32(d, cmd_off, cmd & ~(kCmdMemory | kCmdBusMaster));
    return Status::ok;
}

// Windows: sizes bottom up (bridges were found parents first, so in reverse), then places them top
// down. Inside a bridge's window every item (an endpoint's BAR, a child bridge's window) is placed
// in decreasing alignment, each a multiple of its own alignment: nothing is lost to padding, so a
// window of exactly the summed size holds them. Root-bus endpoints are placed when enabled.
void Host::open_windows() {
    for (unsigned i = nbr_; i-- > 0;) {
        Bridge& b = br_[i];
        uint64_t need = 0, align = kBridgeGranule;
        for (unsigned k = 0; k < ndev_; k++) {
            const Device& d = devs_[k];
            if (d.behind != static_cast<int>(i)) continue;
            if (d.bridge >= 0) {
                const Bridge& c = br_[d.bridge];
                if (c.ok) need += c.need, align = max(align, c.align);
                continue;
            }
            for (const Bar& bar : d.bars)
                if (bar.size && !bar.io) need += bar.size, align = max(align, bar.size);
        }
        b.align = align;
        b.need = need ? align_up(need, align) : 0;
    }
    for (unsigned i = 0; i < nbr_; i++) {
        Bridge& b = br_[i];
        Device& self = devs_[b.device];
        if (b.ok && b.parent >= 0 && !br_[b.parent].ok) close_bridge(b, "behind a bridge that could not be configured");
        if (!b.ok) continue;
        if (b.need) {
            uint64_t addr, end;
            if (b.parent < 0) {
                addr = align_up(win_next_, b.align);
                end = win_base_ + win_size_;
                if (end > (1ull << 32)) end = 1ull << 32;
            } else {
                addr = b.base;  // placed by its parent below
                end = addr + b.size;
            }
            if (b.parent < 0 && (addr < win_next_ || addr + b.need > end || addr + b.need < addr)) {
                char why[96];
                format_to(why, sizeof why, "memory window exhausted: needs 0x%lx, 0x%lx left in the host's window", b.need,
                          end > win_next_ ? end - win_next_ : 0);
                close_bridge(b, why);
                continue;
            }
            if (b.parent < 0) win_next_ = addr + b.need;
            b.base = addr;
            b.size = b.need;
            uint32_t lo = static_cast<uint32_t>(b.base >> 16) & 0xfff0, hi = static_cast<uint32_t>((b.base + b.size - 1) >> 16) & 0xfff0;
            write32(self, static_cast<uint16_t>(Cfg::mem_window), lo | hi << 16);
            // Place what is behind it, largest alignment first.
            uint64_t next = b.base;
            for (uint64_t a = b.align; a >= 16; a >>= 1) {
                for (unsigned k = 0; k < ndev_; k++) {
                    Device& d = devs_[k];
                    if (d.behind != static_cast<int>(i)) continue;
                    if (d.bridge >= 0) {
                        Bridge& c = br_[d.bridge];
                        if (c.ok && c.need && c.align == a) c.base = next, c.size = c.need, next += c.need;
                        continue;
                    }
                    for (Bar& bar : d.bars)
                        if (bar.size && !bar.io && bar.size == a) bar.addr = next, next += bar.size;
                }
            }
            b.next = next;
        }
        uint16_t cmd = static_cast<uint16_t>(Cfg::command);
        write32(self, cmd, (read32(self, cmd) & 0xffff) | (b.need ? kCmdMemory : 0) | kCmdBusMaster);
    }
    for (unsigned k = 0; k < ndev_; k++) {
        Device& d = devs_[k];
        d.blocked = d.behind >= 0 && !br_[d.behind].ok;
    }
}

Device* Host::find(uint16_t vendor, uint16_t device) {
    for (unsigned i = 0; i < ndev_; i++)
        if (devs_[i].vendor == vendor && devs_[i].device == device) return &devs_[i];
    return nullptr;
}

Status Host::enable(Device& d) {
    if (d.blocked) return Status::denied;
    if (d.bridge >= 0) return Status::invalid_argument;  // bridges are configured by enumerate()
    uint16_t cmd_off = static_cast<uint16_t>(Cfg::command);
    // Decoding off while BARs are written.
    write32(d, cmd_off, read32(d, cmd_off) & 0xffff & ~(kCmdMemory | kCmdBusMaster));
    for (unsigned i = 0; i < 6; i++) {
        uint16_t off = static_cast<uint16_t>(static_cast<uint16_t>(Cfg::bar0) + 4 * i);
        Bar& bar = d.bars[i];
        if (bar.io || !bar.size) {
            if (bar.mem64) i++;
            continue;
        }
        uint32_t orig = read32(d, off);
        uint64_t addr = bar.addr;
        if (d.behind < 0) {  // the root bus: from the host's window, now
            // Every BAR gets whole pages of its own: a guest's stage 2 can map it without another's registers.
            uint64_t span = bar.size < kPageSize ? kPageSize : bar.size;
            addr = align_up(win_next_, span);
            if (addr + bar.size > win_base_ + win_size_ || addr + bar.size > (1ull << 32)) return Status::no_space;
            win_next_ = addr + span;
            bar.addr = addr;
        } else if (addr + bar.size > (1ull << 32) || !addr) {
            return Status::no_space;  // open_windows() placed it (a window too big for 32 bits fails here)
        }
        write32(d, off, static_cast<uint32_t>(addr) | (orig & 0xf));
        if (bar.mem64) write32(d, static_cast<uint16_t>(off + 4), static_cast<uint32_t>(addr >> 32));
        if (bar.mem64) i++;
    }
    write32(d, cmd_off, (read32(d, cmd_off) & 0xffff) | kCmdMemory | kCmdBusMaster);
    return Status::ok;
}

void Host::disable_bus_master(const Device& d) {
    uint16_t off = static_cast<uint16_t>(Cfg::command);
    write32(d, off, read32(d, off) & 0xffff & ~kCmdBusMaster);
}

}  // namespace moat::pci
