// QEMU's `edu` PCI device (1234:11e8): a DMA master for tests. It copies between RAM (through
// the IOMMU: the address it is given is an IOVA) and a 4 KiB buffer inside the device at
// 0x40000. Addresses outside that window abort QEMU, so this driver refuses them.
#pragma once
#include "common/status.hpp"

namespace moat {

class Edu {
public:
    static constexpr uint16_t kVendor = 0x1234, kDevice = 0x11e8;
    static constexpr uint64_t kBufBase = 0x40000, kBufSize = 0x1000;
    static constexpr uint32_t kId = 0x010000ed;  // major 1, minor 0, "ed"

    enum class Reg : uint32_t {
        ID = 0x00,        // 32-bit identification
        LIVENESS = 0x04,  // reads back the inverse of what was written
        DMA_SRC = 0x80,   // 64-bit
        DMA_DST = 0x88,   // 64-bit
        DMA_COUNT = 0x90, // 64-bit
        DMA_CMD = 0x98,   // 64-bit: RUN b0, DIR b1 (1: device -> RAM), IRQ b2
    };
    static constexpr uint64_t kCmdRun = 1, kCmdToRam = 2;

    explicit Edu(uintptr_t bar0) : bar_(bar0) {}
    // The id register and the liveness check answer as an edu does.
    bool identify() const;
    // RAM (iova) -> device buffer, and device buffer -> RAM (iova). Waits for completion.
    Status to_device(uint64_t iova, uint64_t dev_off, uint32_t count);
    Status to_ram(uint64_t dev_off, uint64_t iova, uint32_t count);
    uint64_t transfers() const { return transfers_; }

private:
    Status dma(uint64_t src, uint64_t dst, uint32_t count, bool to_ram);
    uintptr_t bar_;
    uint64_t transfers_ = 0;
};

}  // namespace moat
