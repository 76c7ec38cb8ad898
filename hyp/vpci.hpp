// The guest's PCI host bridge: an ECAM window (bus 0 only) whose every access moat traps and
// decodes here. Host-testable; the arch layer forwards the guest's data aborts in the window.
//
// What the guest sees (README "PCI passthrough"; docs/hardware.md §9.7):
//  - each assigned function at its host device/function number on bus 0; every other function
//    reads as absent (all ones, the architected answer of a config read nobody claims) and
//    ignores writes;
//  - the BARs moat assigned, read from moat's copy, never the device's register: the guest may
//    size them (write all ones, read the mask) and write the address back, every other value is
//    refused (counted) and changes nothing, so a BAR never moves out of what the guest's stage 2
//    maps. I/O BARs and the expansion ROM read as not implemented (writes to them go nowhere, unreported);
//  - the command register with only memory decoding, bus mastering, parity/SERR reporting and
//    INTx disable writable; status (write 1 to clear) and the rest of the function's own config
//    space (capabilities, extended space) pass through;
//  - bridges are never assigned, and a function other than 0 only with function 0 of its device
//    (Linux stops scanning a device whose function 0 is absent).
// An access that is not 1, 2 or 4 bytes at natural alignment is refused (false): the caller
// gives the guest an external abort, the architected error.
#pragma once
#include "drivers/pci/ecam.hpp"
#include "xen-compat/dom0less.hpp"

namespace moat::hyp {

// The host's config space for one function (drivers/pci on the image, a fake in tests).
class ConfigSpace {
public:
    virtual uint32_t read(const xen::PciBdf& f, uint16_t off, unsigned bytes) = 0;
    virtual void write(const xen::PciBdf& f, uint16_t off, unsigned bytes, uint32_t v) = 0;

protected:
    ~ConfigSpace() = default;
};

class VPci {
public:
    static constexpr unsigned kMaxFunctions = xen::kDom0lessMaxPci;
    static constexpr uint64_t kEcamSize = 1 * MiB;  // bus 0: 32 devices x 8 functions x 4 KiB
    static constexpr uint16_t kCmdWritable = 1u << 1 | 1u << 2 | 1u << 6 | 1u << 8 | 1u << 10;

    explicit VPci(ConfigSpace& host) : host_(host) {}
    // Adds an assigned function with the BARs moat gave it (`bars`, as drivers/pci sized them).
    // Refusals name the function: not on bus 0, a bridge, function 0 of its device not added
    // first, a BAR that does not start a page (drivers/pci gives each BAR whole pages of its own), too many.
    Status add(const xen::PciBdf& f, const pci::Bar* bars, Sink& err);

    // `off` inside the window, 1, 2 or 4 bytes, naturally aligned; false: refused (abort).
    bool read(uint64_t off, unsigned bytes, uint32_t& val);
    bool write(uint64_t off, unsigned bytes, uint32_t val);

    unsigned count() const { return n_; }
    // The memory BARs to map in the guest's stage 2 (device memory, gpa == host pa), each rounded
    // up to whole pages: one per
    // implemented memory BAR of every function, in order; false past the last.
    bool bar_range(unsigned i, uint64_t& addr, uint64_t& size) const;
    uint64_t refused_writes() const { return refused_; }
    uint64_t absent_accesses() const { return absent_; }
    uint64_t absent_writes() const { return absent_writes_; }

    // What the guest tried that moat did not let through: a refused write (a BAR move, a
    // read-only field, a command bit not the guest's) or a write to a function it was not given.
    // `refusals()` counts both; the caller reports `last_refusal()` when the count moved across a
    // write (rate-limited there: a guest may repeat it in a loop).
    struct Refusal {
        uint8_t dev = 0, fn = 0;
        uint16_t off = 0;   // the register's byte offset in the function's config space
        uint8_t bytes = 0;  // the access width
        uint32_t val = 0;   // what the guest wrote, at that width
        enum class Why : uint8_t { absent, bar_move, bar_high_move, command_bits, read_only } why = Why::absent;
        uint64_t kept = 0;  // bar_move / bar_high_move: the address moat keeps; command_bits: the bits dropped
        unsigned bar = 0;
    };
    uint64_t refusals() const { return refused_ + absent_writes_; }
    const Refusal& last_refusal() const { return last_; }
    // One line (no newline) saying what was refused and what stays, naming function and offset.
    static void describe(const Refusal& r, uint16_t seg, uint8_t bus, Sink& out);

private:
    struct Fn {
        xen::PciBdf bdf;
        pci::Bar bars[6];
        uint32_t flags[6];      // the low bits (memory type, prefetchable) of each BAR dword
        bool sizing[6];         // the guest wrote all ones: the next read gives the size mask
        uint8_t irq_line = 0;   // 0x3c, the guest's own scratch byte
    };
    Fn* find(unsigned dev, unsigned fn);
    uint32_t read_dword(Fn& f, uint16_t off);
    void write_dword(Fn& f, uint16_t off, uint32_t v, uint32_t byte_mask, unsigned bytes, uint16_t at);
    uint32_t bar_dword(const Fn& f, unsigned i) const;
    void bar_write(Fn& f, unsigned i, uint32_t v);
    void refuse(Refusal::Why why, uint64_t kept = 0, unsigned bar = 0);

    Refusal at_;  // the write being decoded (function, offset, width, value)
    Refusal last_;

    ConfigSpace& host_;
    Fn fns_[kMaxFunctions] = {};
    unsigned n_ = 0;
    uint64_t refused_ = 0, absent_ = 0, absent_writes_ = 0;
};

}  // namespace moat::hyp
