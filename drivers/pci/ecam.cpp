#include "drivers/pci/ecam.hpp"

#include "arch/mmio.hpp"

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

Status Host::enumerate() {
    ndev_ = 0;
    unsigned bus = bus_first_;
    for (unsigned dev = 0; dev < 32; dev++) {
        for (unsigned fn = 0; fn < 8; fn++) {
            uint32_t id = mmio::read32(cfg_addr(bus, dev, fn, static_cast<uint16_t>(Cfg::id)));
            if ((id & 0xffff) == 0xffff) {
                if (fn == 0) break;
                continue;
            }
            if (ndev_ == kMaxDevices) return Status::no_space;
            Device& d = devs_[ndev_++];
            d = Device{};
            d.bus = static_cast<uint8_t>(bus);
            d.dev = static_cast<uint8_t>(dev);
            d.fn = static_cast<uint8_t>(fn);
            d.vendor = static_cast<uint16_t>(id & 0xffff);
            d.device = static_cast<uint16_t>(id >> 16);
            d.class_code = read32(d, static_cast<uint16_t>(Cfg::class_rev)) >> 8;
            uint32_t hdr = read32(d, static_cast<uint16_t>(Cfg::header)) >> 16;
            if (fn == 0 && !(hdr & 0x80)) break;  // not multi-function
        }
    }
    return Status::ok;
}

Device* Host::find(uint16_t vendor, uint16_t device) {
    for (unsigned i = 0; i < ndev_; i++)
        if (devs_[i].vendor == vendor && devs_[i].device == device) return &devs_[i];
    return nullptr;
}

Status Host::enable(Device& d) {
    uint16_t cmd_off = static_cast<uint16_t>(Cfg::command);
    // Decoding off while BARs are sized: a BAR of all ones must not claim addresses.
    write32(d, cmd_off, read32(d, cmd_off) & 0xffff & ~(kCmdMemory | kCmdBusMaster));
    for (unsigned i = 0; i < 6; i++) {
        uint16_t off = static_cast<uint16_t>(static_cast<uint16_t>(Cfg::bar0) + 4 * i);
        uint32_t orig = read32(d, off);
        Bar& bar = d.bars[i];
        bar = Bar{};
        if (orig & 1) {  // I/O space: not used here
            bar.io = true;
            continue;
        }
        bar.mem64 = ((orig >> 1) & 3) == 2;
        write32(d, off, 0xffffffffu);
        uint64_t mask = read32(d, off) & ~0xfu;
        if (bar.mem64) {
            write32(d, static_cast<uint16_t>(off + 4), 0xffffffffu);
            mask |= uint64_t{read32(d, static_cast<uint16_t>(off + 4))} << 32;
        } else {
            mask |= 0xffffffff00000000ull;
        }
        if ((mask & 0xffffffffu) == 0) {  // not implemented
            write32(d, off, orig);
            if (bar.mem64) i++;
            continue;
        }
        bar.size = ~mask + 1;
        // Every BAR gets whole pages of its own: a guest's stage 2 can map it without another's registers.
        uint64_t span = bar.size < kPageSize ? kPageSize : bar.size;
        uint64_t addr = align_up(win_next_, span);
        if (addr + bar.size > win_base_ + win_size_ || addr + bar.size > (1ull << 32)) return Status::no_space;
        win_next_ = addr + span;
        bar.addr = addr;
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
