// The fault interrupts of one IOMMU instance: requested at probe from the lines discovery read,
// all bound to one handler (the driver's fault drain), enabled together once every one was
// granted, and released together. Each delivery runs the handler, then ends with the line's EOI,
// so a driver's handler never needs to know which line fired. Shared by every driver so that
// each only says which lines carry its faults. Without a controller nothing is requested and
// the driver polls.
#pragma once
#include "common/fdt.hpp"
#include "common/format.hpp"
#include "common/irq.hpp"
#include "common/why.hpp"

namespace moat {

class FaultIrqs {
public:
    static constexpr unsigned kMax = 72;  // as many as discovery reads for one IOMMU

    // Requests `n` lines (GIC INTIDs with the tree's trigger flags) for fn(ctx). On a refusal every
    // line already requested is given back and `why` names the line; the driver then polls, and
    // says why in its description (note()). ok with no controller.
    Status request(IrqController* ic, const dt::Irq* lines, unsigned n, IrqHandler fn, void* ctx, Why& why) {
        release();
        note_[0] = 0;
        if (!ic || n == 0) return Status::ok;
        fn_ = fn;
        ctx_ = ctx;
        if (n > kMax) return why.set(Status::no_space, "%u fault interrupts; at most %u are taken", n, kMax);
        for (unsigned i = 0; i < n; i++) {
            // A line several sources share (an MMU-500's global and context faults on one SPI)
            // is bound once; its handler drains every source.
            bool seen = false;
            for (unsigned k = 0; k < count_; k++) seen = seen || intid_[k] == lines[i].intid;
            if (seen) continue;
            Trigger trig = static_cast<Trigger>(lines[i].flags & 0xf);
            slot_[count_] = Slot{this, lines[i].intid};
            Status st = lines[i].kind == dt::IrqKind::other ? Status::unsupported
                                                            : ic->request(lines[i].intid, trig, kPriority, &dispatch, &slot_[count_]);
            if (st != Status::ok) {
                ic_ = ic;
                release();
                why.set(st, "fault interrupt INTID %u refused by %s (%s)", lines[i].intid, ic->name(), to_string(st));
                format_to(note_, sizeof note_, "%s", why.text());
                return st;
            }
            intid_[count_++] = lines[i].intid;
            ic_ = ic;
        }
        return Status::ok;
    }
    // Unmasks every line requested: after the hardware is ready to signal them.
    void enable() {
        for (unsigned i = 0; i < count_; i++) ic_->enable(intid_[i]);
    }
    void release() {
        for (unsigned i = 0; i < count_; i++) {
            ic_->mask(intid_[i]);
            (void)ic_->release(intid_[i]);
        }
        count_ = 0;
        ic_ = nullptr;
    }
    bool active() const { return count_ != 0; }
    // Why the lines are not in use although a controller was there ("" otherwise).
    const char* note() const { return note_; }
    // "faults by interrupt", "faults polled", or "faults polled (<note>)", into buf.
    const char* mode(char* buf, size_t cap) const {
        if (active()) format_to(buf, cap, "faults by interrupt");
        else if (note_[0]) format_to(buf, cap, "faults polled (%s)", note_);
        else format_to(buf, cap, "faults polled");
        return buf;
    }
    // For a driver that gave the lines up itself (the unit would not enable them).
    void refuse(const char* why) { release(); format_to(note_, sizeof note_, "%s", why); }
    uint64_t deliveries() const { return deliveries_; }
    unsigned count() const { return count_; }

private:
    static constexpr unsigned kPriority = 0x80;  // mid-range: faults are reported, not urgent
    struct Slot {
        FaultIrqs* self;
        unsigned intid;
    };
    static void dispatch(void* p) {
        auto* s = static_cast<Slot*>(p);
        s->self->deliveries_++;
        s->self->fn_(s->self->ctx_);
        s->self->ic_->eoi(s->intid);
    }
    IrqController* ic_ = nullptr;
    IrqHandler fn_ = nullptr;
    void* ctx_ = nullptr;
    Slot slot_[kMax] = {};
    uint64_t deliveries_ = 0;
    char note_[96] = {};
    unsigned intid_[kMax] = {};
    unsigned count_ = 0;
};

}  // namespace moat
