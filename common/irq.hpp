// The interrupt seam: what a driver asks of the platform's interrupt controller. Drivers bind
// their lines from probe through arch::irq_controller() (arch/irq.hpp); while it returns nullptr
// they keep polling. A handler runs with interrupts masked on its CPU, so any lock it shares with
// thread context must be an IrqSpinlock (common/lock.hpp), and it ends its delivery with
// eoi() of its line (common/fault_irq.hpp does that for the IOMMU drivers).
#pragma once
#include "common/status.hpp"
namespace moat {
enum class Trigger : uint8_t { edge_rising = 1, edge_falling = 2, level_high = 4, level_low = 8 };  // the DT `interrupts` flag values
using IrqHandler = void (*)(void* ctx);
// One interrupt controller. Lines are INTIDs (GIC numbering: SGI 0-15, PPI 16-31, SPI 32+).
class IrqController {
public:
    virtual const char* name() const = 0;
    // Binds `intid` to fn(ctx); the line stays masked until enable(). in_use: already bound;
    // out_of_range: beyond what the controller has; invalid_argument: a trigger it cannot do.
    virtual Status request(unsigned intid, Trigger trigger, unsigned priority, IrqHandler fn, void* ctx) = 0;
    virtual Status release(unsigned intid) = 0;
    virtual void enable(unsigned intid) = 0;
    virtual void mask(unsigned intid) = 0;
    virtual void eoi(unsigned intid) = 0;
protected:
    ~IrqController() = default;
};
}  // namespace moat
