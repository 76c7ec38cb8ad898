// Interrupts in host builds. Each thread poses as a CPU with its own interrupt mask, and
// HostIrqController stands in for the GIC: tests raise and lower lines as a device would, and
// handlers run on the raising thread, synchronously, unless that thread has interrupts masked.
#pragma once
#include <stdint.h>

#include <mutex>

#include "common/irq.hpp"

namespace moat::arch {

// Whether this thread had interrupts masked, to be handed back to irq_restore().
using IrqFlags = bool;
IrqFlags irq_save();
// Unmasking delivers what was raised on this thread while it was masked.
void irq_restore(IrqFlags was_masked);
bool irqs_masked();

// The controller set by host::set_irq_controller(), nullptr by default (drivers then poll).
IrqController* irq_controller();

// As on a target: takes what is pending on this thread (unmasked for the moment), then returns
// masked as it was. It never sleeps: a host test raises lines itself.
void wait_for_interrupt();
inline bool wfi_wakes_by_time() { return true; }  // the host's wait never sleeps

}  // namespace moat::arch

namespace moat::arch::host {

// A GIC-like controller model. Per line: bound (request), enabled, pending, active (delivered,
// not yet EOIed), and for a level line whether the device holds it asserted.
// - Edge: raise() latches pending (raises coalesce while pending); delivered once enabled, the
//   CPU is unmasked and the line not active.
// - Level: pending while asserted, until lower(); a level raised and lowered while masked is
//   never delivered; one still asserted at eoi() is delivered again.
// - Among deliverable lines, the lowest priority value goes first, then the lowest INTID.
// - A handler runs with this thread masked (as on exception entry), so raises and EOIs inside
//   it are delivered after it returns, never nested.
// - raise() on an unbound or nonexistent line counts spurious(); eoi() of a line that is not
//   active counts stray_eois(). Each is reported on the console once; nothing crashes.
// - A line delivered kStormLimit times in one go (a level handler that never quiets its device)
//   is masked, left pending and counted in storms().
// The controller must outlive its use on every thread that raised a line on it.
class HostIrqController final : public IrqController {
public:
    static constexpr unsigned kMaxLines = 1020;  // GICv3 SPIs end at 1019
    static constexpr unsigned kMaxPriority = 255;
    static constexpr unsigned kStormLimit = 1000;
    // A GIC's SPIs are rising-edge or high-level; the other two are refused unless allowed.
    static constexpr uint8_t kGicTriggers =
        static_cast<uint8_t>(Trigger::edge_rising) | static_cast<uint8_t>(Trigger::level_high);

    explicit HostIrqController(unsigned lines = kMaxLines, uint8_t triggers = kGicTriggers);
    ~HostIrqController();
    HostIrqController(const HostIrqController&) = delete;
    HostIrqController& operator=(const HostIrqController&) = delete;

    const char* name() const override { return "host-irq"; }
    // Also invalid_argument for a null handler or a priority above kMaxPriority.
    Status request(unsigned intid, Trigger trigger, unsigned priority, IrqHandler fn, void* ctx) override;
    // not_found: the line is not bound. Clears its state, keeps its counters.
    Status release(unsigned intid) override;
    void enable(unsigned intid) override;
    void mask(unsigned intid) override;
    void eoi(unsigned intid) override;

    // The device side.
    void raise(unsigned intid);
    void lower(unsigned intid);

    // What tests observe (false / 0 for a line that does not exist).
    bool bound(unsigned intid) const;
    bool enabled(unsigned intid) const;
    bool pending(unsigned intid) const;
    bool active(unsigned intid) const;
    uint64_t deliveries(unsigned intid) const;
    uint64_t eois(unsigned intid) const;
    uint64_t spurious() const;
    uint64_t stray_eois() const;
    uint64_t storms() const;

    // Delivers every deliverable line on this thread (the unmask path calls it).
    void deliver_pending();

private:
    struct Line {
        IrqHandler fn = nullptr;
        void* ctx = nullptr;
        Trigger trigger = Trigger::edge_rising;
        unsigned priority = 0;
        bool enabled = false, pending = false, active = false, asserted = false;
        uint64_t deliveries = 0, eois = 0;
    };
    bool deliverable(const Line& l) const { return l.fn && l.enabled && l.pending && !l.active; }
    const Line* line(unsigned intid) const { return intid < lines_ ? &line_[intid] : nullptr; }
    void kick(unsigned intid);  // deliver now, or on unmask if this thread is masked

    mutable std::mutex m_;
    unsigned lines_;
    uint8_t triggers_;
    uint64_t spurious_ = 0, stray_eois_ = 0, storms_ = 0;
    bool told_spurious_ = false, told_stray_eoi_ = false, told_storm_ = false;
    Line line_[kMaxLines];
};

// Test hook: what arch::irq_controller() returns from now on (nullptr: none).
void set_irq_controller(HostIrqController* c);

}  // namespace moat::arch::host

namespace moat::arch {
using host::HostIrqController;
}  // namespace moat::arch
