// A PCIe host bridge with an ECAM config space, as the DT's `pci-host-ecam-generic` node
// describes it: enumerates the root bus and, depth first, every bus behind a PCI-PCI bridge or
// PCIe root port (numbering the buses and giving each bridge a memory window that holds what is
// behind it), sizes and assigns memory BARs from the host's 32-bit window, and enables memory
// decoding and bus mastering for the devices asked for. Requester ids (bus:dev.fn, the bus as
// numbered here) become stream ids through the host's `iommu-map` (common/fdt).
// A bridge that cannot be configured (no bus number left, or its window does not fit) stays
// closed, decoding and mastering off, and the devices behind it are listed as blocked: enable()
// refuses them, and no stream of theirs is ever attached, so their DMA aborts at the IOMMU.
// A PCI expander bridge (pxb-pcie: a host bridge function on the root bus whose buses the tree
// does not describe) is refused the same way: its buses are not walked.
#pragma once
#include "common/fdt.hpp"

namespace moat::pci {

constexpr unsigned kMaxDevices = 32;
constexpr unsigned kMaxBridges = 16;

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
    int8_t behind = -1;    // the bridge whose secondary bus this is on (-1: the root bus)
    int8_t bridge = -1;    // this function is that bridge (-1: an endpoint)
    bool blocked = false;  // behind a bridge moat could not configure: never enabled
    uint16_t rid() const { return static_cast<uint16_t>(bus << 8 | dev << 3 | fn); }
};

// A PCI-PCI bridge (type 1 header: a PCIe root port, a switch port) as enumeration set it up.
struct Bridge {
    unsigned device;               // its own function, in Host::at()
    int8_t parent;                 // the bridge it is behind (-1: the root bus)
    uint8_t secondary, subordinate;
    uint64_t need = 0, align = 0;  // window the BARs behind it take (1 MiB granules), its alignment
    uint64_t base = 0, size = 0, next = 0;  // the window given, and where the next BAR goes
    bool ok = true;
    char why[96] = {};             // when not ok: what could not be configured
};

// Config space header offsets and command bits.
enum class Cfg : uint16_t {
    id = 0x00,         // vendor [15:0], device [31:16]
    command = 0x04,    // command [15:0], status [31:16] (write-1-to-clear)
    class_rev = 0x08,  // revision [7:0], class code [31:8]
    header = 0x0c,     // header type [23:16] (bit 7: multi-function; [6:0] 0 endpoint, 1 PCI-PCI bridge)
    bar0 = 0x10,
    // Type 1 (bridge) header.
    bus_numbers = 0x18,  // primary [7:0], secondary [15:8], subordinate [23:16]
    mem_window = 0x20,   // memory base [15:0], limit [31:16]: bits [15:4] of each are address bits [31:20]
    pref_window = 0x24,  // prefetchable base/limit (same layout): left closed
    io_window = 0x1c,    // I/O base [7:0], limit [15:8]: left closed
};
constexpr uint32_t kHeaderBridge = 1;
constexpr uint64_t kBridgeGranule = 1 * MiB;  // memory windows are 1 MiB aligned and sized
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
    // blocked for a device behind a bridge that could not be configured.
    Status enable(Device& d);
    // Turns bus mastering off: the device can no longer start DMA.
    void disable_bus_master(const Device& d);

    unsigned count() const { return ndev_; }
    Device& at(unsigned i) { return devs_[i]; }
    unsigned bridge_count() const { return nbr_; }
    const Bridge& bridge(unsigned i) const { return br_[i]; }
    // Functions found that moat refuses to walk behind (pxb-pcie host bridges), for the report.
    unsigned refused_hosts() const { return nrefused_; }
    Device* find(uint16_t vendor, uint16_t device);
    int node() const { return node_; }
    uint64_t ecam_base() const { return ecam_; }
    uint64_t window_base() const { return win_base_; }
    uint64_t window_size() const { return win_size_; }

    uint32_t read32(const Device& d, uint16_t off) const;
    void write32(const Device& d, uint16_t off, uint32_t v) const;

private:
    uintptr_t cfg_addr(unsigned bus, unsigned dev, unsigned fn, uint16_t off) const;
    Status scan_bus(unsigned bus, int parent, unsigned depth);
    Status size_bars(Device& d);
    void open_windows();
    void close_bridge(Bridge& b, const char* why);
    int node_ = -1;
    uint64_t ecam_ = 0, ecam_size_ = 0;
    unsigned bus_first_ = 0, bus_last_ = 0, next_bus_ = 0;
    uint64_t win_base_ = 0, win_size_ = 0, win_next_ = 0;
    Device devs_[kMaxDevices] = {};
    unsigned ndev_ = 0;
    Bridge br_[kMaxBridges] = {};
    unsigned nbr_ = 0;
    unsigned nrefused_ = 0;
};

}  // namespace moat::pci
