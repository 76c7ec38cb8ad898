#include "drivers/pci/edu.hpp"

#include "arch/mmio.hpp"
#include "common/wait.hpp"

namespace moat {

namespace {
constexpr uint64_t kDmaTimeoutNs = 2000ull * 1000 * 1000;  // edu completes 100 ms after RUN
}

bool Edu::identify() const {
    if (mmio::read32(bar_ + static_cast<uint32_t>(Reg::ID)) != kId) return false;
    mmio::write32(bar_ + static_cast<uint32_t>(Reg::LIVENESS), 0x12345678u);
    return mmio::read32(bar_ + static_cast<uint32_t>(Reg::LIVENESS)) == ~0x12345678u;
}

Status Edu::dma(uint64_t src, uint64_t dst, uint32_t count, bool to_ram) {
    uint64_t dev = to_ram ? src : dst;
    if (count == 0 || dev < kBufBase || dev - kBufBase >= kBufSize || count > kBufBase + kBufSize - dev)
        return Status::out_of_range;  // QEMU aborts on a device-side address outside its buffer
    auto reg = [&](Reg r) { return bar_ + static_cast<uint32_t>(r); };
    if (mmio::read64(reg(Reg::DMA_CMD)) & kCmdRun) return Status::busy;
    mmio::write64(reg(Reg::DMA_SRC), src);
    mmio::write64(reg(Reg::DMA_DST), dst);
    mmio::write64(reg(Reg::DMA_COUNT), count);
    mmio::write64(reg(Reg::DMA_CMD), kCmdRun | (to_ram ? kCmdToRam : 0));
    transfers_++;
    return wait_until(kDmaTimeoutNs, [&] { return (mmio::read64(reg(Reg::DMA_CMD)) & kCmdRun) == 0; });
}

Status Edu::to_device(uint64_t iova, uint64_t dev_off, uint32_t count) { return dma(iova, dev_off, count, false); }
Status Edu::to_ram(uint64_t dev_off, uint64_t iova, uint32_t count) { return dma(dev_off, iova, count, true); }

}  // namespace moat
