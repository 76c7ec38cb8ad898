// Physical interrupt forwarding: a host SPI P that belongs to a guest's device, delivered to
// that guest as its virtual SPI V. Portable: the image binds P through the GIC moat drives,
// the host tests through arch/host's controller model.
//
// Level lines (no LR HW bit: moat keeps the physical and the virtual state apart, so a guest
// can never deactivate a physical interrupt moat did not hand it, and the same scheme works
// whether or not a guest's vCPU is on the CPU when P fires):
//   P fires -> moat masks P at the distributor, EOIs it, raises V (VGic::set_level);
//   the guest takes V and deactivates it (its LR asked for an EOI maintenance interrupt) ->
//   lr_sync lowers V and notes it -> resample() unmasks P; a line still high fires again.
// So each physical assertion is injected once, one stays masked while the guest handles it,
// and a device that never quiets costs moat one interrupt per guest deactivation, no more.
// Edge lines: P fires -> EOI, V pulsed (edges coalesce while V is pending, as on a GIC).
//
// One physical line goes to one guest. Two of a guest's devices may share it (the same
// virtual line, counted once per user); another guest's, or a line moat itself requested, is
// refused. A guest's lines are masked and released when it ends (unbind).
#pragma once
#include "common/irq.hpp"
#include "common/why.hpp"
#include "hyp/vgic.hpp"

namespace moat::hyp {

class IrqForwarder {
public:
    static constexpr unsigned kMaxLines = 32;
    static constexpr unsigned kMaxReserved = 8;
    static constexpr unsigned kPriority = 0xa0;  // as moat's own guest interrupts (timer, maintenance)

    // The controller P is requested from; nullptr (no interrupt controller) makes forward_spi()
    // refuse with not_ready.
    void set_controller(IrqController* ic) { ic_ = ic; }

    // A line moat itself owns without having requested it (the console UART it polls; a device
    // it drives by polling): forward_spi() refuses it as in_use, naming `what` (kept: it must
    // outlive the forwarder's use). no_space beyond kMaxReserved; ok again for a line reserved.
    Status reserve(uint32_t pintid, const char* what);

    // Forwards physical SPI `pintid` to `guest` (its virtual GIC; `name` for messages, kept, so
    // it must outlive the binding) as its SPI `vintid`, level-high or rising-edge. ok also when
    // this guest already has P as V with the same trigger (one more user). Otherwise nothing
    // changes and `why` says, naming the guest and the lines:
    //   out_of_range      P or V is not an SPI (P: 32..1019; V: one of the guest's SPIs, VGic::lines());
    //   denied            P is forwarded to another guest;
    //   in_use            P is moat's own (requested from the controller, or reserve()d), or this guest
    //                     has P as another V or trigger, or V already carries another line;
    //   no_space          kMaxLines lines are forwarded;
    //   not_ready         there is no interrupt controller;
    //   the controller's status for anything else it refuses.
    // P is enabled at once: an assertion from now on reaches the guest.
    Status forward_spi(VGic& guest, const char* name, uint32_t pintid, uint32_t vintid, bool level, Why& why);

    // After every lr_sync() of any of `guest`'s vCPUs: the physical lines of the level SPIs it
    // deactivated since are unmasked (and fire again if still high).
    void resample(VGic& guest);

    // The guest ends: each of its lines masked at the distributor and released, its virtual
    // line unmarked. Returns how many lines it had.
    unsigned unbind(VGic& guest);

    // Reports: physical arrivals forwarded to `guest` (all its lines), or on one line.
    uint64_t arrivals(const VGic& guest) const;
    uint64_t arrivals_on(uint32_t pintid) const;
    // Every arrival on every line so far: a caller that sees it move knows a guest's line rose.
    uint64_t total() const { return total_; }
    unsigned lines(const VGic& guest) const;
    // The guest P is forwarded to, nullptr when none.
    const VGic* owner(uint32_t pintid) const;

private:
    struct Line {
        IrqForwarder* self = nullptr;
        VGic* guest = nullptr;
        const char* name = nullptr;
        uint32_t p = 0, v = 0;
        bool level = false;
        bool masked = false;  // level: masked by the handler, waiting for the guest's deactivation
        unsigned users = 0;
        uint64_t arrivals = 0;
    };
    static void on_irq(void* ctx);
    Line* find(uint32_t pintid);

    IrqController* ic_ = nullptr;
    Line line_[kMaxLines];
    uint64_t total_ = 0;
    struct Reserved {
        uint32_t p;
        const char* what;
    } reserved_[kMaxReserved] = {};
    unsigned nreserved_ = 0;
};

}  // namespace moat::hyp
