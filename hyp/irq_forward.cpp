// IrqForwarder: physical SPIs delivered to the guest that owns their device.
#include "hyp/irq_forward.hpp"

namespace moat::hyp {

namespace {
constexpr uint32_t kFirstSpi = 32, kEndSpi = 1020;
}

IrqForwarder::Line* IrqForwarder::find(uint32_t pintid) {
    for (Line& l : line_)
        if (l.users && l.p == pintid) return &l;
    return nullptr;
}

const VGic* IrqForwarder::owner(uint32_t pintid) const {
    for (const Line& l : line_)
        if (l.users && l.p == pintid) return l.guest;
    return nullptr;
}

Status IrqForwarder::reserve(uint32_t pintid, const char* what) {
    for (unsigned i = 0; i < nreserved_; i++)
        if (reserved_[i].p == pintid) return Status::ok;
    if (nreserved_ == kMaxReserved) return Status::no_space;
    reserved_[nreserved_++] = Reserved{pintid, what};
    return Status::ok;
}

Status IrqForwarder::forward_spi(VGic& guest, const char* name, uint32_t pintid, uint32_t vintid, bool level, Why& why) {
    const char* trig = level ? "level" : "edge";
    if (pintid < kFirstSpi || pintid >= kEndSpi)
        return why.set(Status::out_of_range, "guest %s: physical INTID %u is not an SPI (32..1019)", name, pintid);
    if (vintid < kFirstSpi || vintid >= guest.lines())
        return why.set(Status::out_of_range, "guest %s: virtual INTID %u is not one of its SPIs (32..%u)", name, vintid,
                       guest.lines() - 1);
    for (unsigned i = 0; i < nreserved_; i++)
        if (reserved_[i].p == pintid)
            return why.set(Status::in_use, "guest %s: SPI %u (INTID %u) is %s's, which moat itself uses", name, pintid - 32,
                           pintid, reserved_[i].what);
    if (Line* l = find(pintid)) {
        if (l->guest != &guest)
            return why.set(Status::denied, "guest %s: SPI %u (INTID %u) is already forwarded to guest %s", name, pintid - 32,
                           pintid, l->name);
        if (l->v != vintid || l->level != level)
            return why.set(Status::in_use, "guest %s: SPI %u (INTID %u) is already its INTID %u (%s), not INTID %u (%s)", name,
                           pintid - 32, pintid, l->v, l->level ? "level" : "edge", vintid, trig);
        l->users++;
        return Status::ok;
    }
    for (const Line& l : line_)
        if (l.users && l.guest == &guest && l.v == vintid)
            return why.set(Status::in_use, "guest %s: its INTID %u already carries physical INTID %u", name, vintid, l.p);
    if (!ic_) return why.set(Status::not_ready, "guest %s: no interrupt controller to take physical INTID %u from", name, pintid);
    Line* slot = nullptr;
    for (Line& l : line_)
        if (!l.users && !slot) slot = &l;
    if (!slot) return why.set(Status::no_space, "guest %s: physical INTID %u: %u lines are forwarded already", name, pintid, kMaxLines);
    *slot = Line{this, &guest, name, pintid, vintid, level, false, 1, 0};
    Status st = ic_->request(pintid, level ? Trigger::level_high : Trigger::edge_rising, kPriority, &on_irq, slot);
    if (st != Status::ok) {
        *slot = Line{};
        if (st == Status::in_use)
            return why.set(st, "guest %s: SPI %u (INTID %u) is one moat itself uses", name, pintid - 32, pintid);
        return why.set(st, "guest %s: %s refused SPI %u (INTID %u, %s): %s", name, ic_->name(), pintid - 32, pintid, trig,
                       to_string(st));
    }
    if (level) (void)guest.set_forwarded(vintid, true);
    ic_->enable(pintid);
    return Status::ok;
}

// Runs with interrupts masked on this CPU, as every handler; the guest's vGIC is only touched
// with them masked, so nothing here races with lr_sync().
void IrqForwarder::on_irq(void* ctx) {
    Line& l = *static_cast<Line*>(ctx);
    IrqController& ic = *l.self->ic_;
    l.arrivals++;
    l.self->total_++;
    if (l.level) {
        ic.mask(l.p);  // until the guest is done with it
        l.masked = true;
        ic.eoi(l.p);
        l.guest->set_level(0, l.v, true);
    } else {
        ic.eoi(l.p);
        l.guest->pulse(0, l.v);
    }
}

void IrqForwarder::resample(VGic& guest) {
    if (!guest.resample_pending() || !ic_) return;
    for (Line& l : line_) {
        if (!l.users || l.guest != &guest || !l.level || !guest.take_resample(l.v)) continue;
        if (l.masked) {
            l.masked = false;
            ic_->enable(l.p);
        }
    }
}

unsigned IrqForwarder::unbind(VGic& guest) {
    unsigned n = 0;
    for (Line& l : line_) {
        if (!l.users || l.guest != &guest) continue;
        if (ic_) (void)ic_->release(l.p);  // masks it
        if (l.level) (void)guest.set_forwarded(l.v, false);
        l = Line{};
        n++;
    }
    return n;
}

uint64_t IrqForwarder::arrivals(const VGic& guest) const {
    uint64_t n = 0;
    for (const Line& l : line_)
        if (l.users && l.guest == &guest) n += l.arrivals;
    return n;
}

uint64_t IrqForwarder::arrivals_on(uint32_t pintid) const {
    for (const Line& l : line_)
        if (l.users && l.p == pintid) return l.arrivals;
    return 0;
}

unsigned IrqForwarder::lines(const VGic& guest) const {
    unsigned n = 0;
    for (const Line& l : line_)
        if (l.users && l.guest == &guest) n++;
    return n;
}

}  // namespace moat::hyp
