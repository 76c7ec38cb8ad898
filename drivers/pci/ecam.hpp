// A PCIe host bridge with an ECAM config space, as the DT's `pci-host-ecam-generic` node
// describes it: enumerates the root bus, sizes and assigns memory BARs from the bridge's
// 32-bit window, and enables memory decoding and bus mastering for the devices asked for.
// Requester ids become stream ids through the bridge's `iommu-map` (common/fdt).
#pragma once
#include "common/fdt.hpp"

namespace moat::pci {

constexpr unsigned kMaxDevices = 32;

struct Bar {
    uint64_t addr = 0;
    uint64_t size = 0;   // 0: not implemented
    bool mem64 = false;
    bool io = false;
};

struct Device {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
    uint32_t class_code;  // base class, subclass, prog-if
    Bar bars[6];
    uint16_t rid() const { return static_cast<uint16_t>(bus << 8 | dev << 3 | fn); }
};

// Config space header offsets and command bits.
enum class Cfg : uint16_t {
    id = 0x00,         // vendor [15:0], device [31:16]
    command = 0x04,    // command [15:0], status [31:16] (write-1-to-clear)
    class_rev = 0x08,  // revision [7:0], class code [31:8]
    header = 0x0c,     // header type [23:16]
    bar0 = 0x10,
};
constexpr uint32_t kCmdMemory = 1u << 1;
constexpr uint32_t kCmdBusMaster = 1u << 2;

class Host {
public:
    // Reads reg (ECAM), bus-range and ranges (the 32-bit memory window) of the bridge node.
    Status probe(const dt::Tree& t, int node);
    // Finds the functions on the first bus of the range.
    Status enumerate();
    // Sizes every BAR of `d`, assigns memory BARs from the window, and enables memory decoding
    // and bus mastering. no_space when the window is exhausted.
    Status enable(Device& d);
    // Turns bus mastering off: the device can no longer start DMA.
    void disable_bus_master(const Device& d);

    unsigned count() const { return ndev_; }
    Device& at(unsigned i) { return devs_[i]; }
    Device* find(uint16_t vendor, uint16_t device);
    int node() const { return node_; }
    uint64_t ecam_base() const { return ecam_; }
    uint64_t window_base() const { return win_base_; }
    uint64_t window_size() const { return win_size_; }

    uint32_t read32(const Device& d, uint16_t off) const;
    void write32(const Device& d, uint16_t off, uint32_t v) const;

private:
    uintptr_t cfg_addr(unsigned bus, unsigned dev, unsigned fn, uint16_t off) const;
    int node_ = -1;
    uint64_t ecam_ = 0, ecam_size_ = 0;
    unsigned bus_first_ = 0, bus_last_ = 0;
    uint64_t win_base_ = 0, win_size_ = 0, win_next_ = 0;
    Device devs_[kMaxDevices] = {};
    unsigned ndev_ = 0;
};

}  // namespace moat::pci
