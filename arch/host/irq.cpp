// Interrupts in host builds: a per-thread mask and the GIC-like HostIrqController (see
// arch/irq.hpp for the semantics tests rely on).
#include "arch/irq.hpp"

#include <stdio.h>
#include <stdlib.h>

#include <atomic>

#include "common/format.hpp"

namespace moat::arch {

namespace {
thread_local bool t_masked = false;

// Controllers holding a line this thread could not take while masked; drained at unmask.
constexpr unsigned kMaxDeferred = 16;
thread_local host::HostIrqController* t_deferred[kMaxDeferred];
thread_local unsigned t_ndeferred = 0;

void defer(host::HostIrqController* c) {
    for (unsigned i = 0; i < t_ndeferred; i++)
        if (t_deferred[i] == c) return;
    if (t_ndeferred == kMaxDeferred) {
        fprintf(stderr, "host irq: more than %u controllers deferred on one thread\n", kMaxDeferred);
        abort();
    }
    t_deferred[t_ndeferred++] = c;
}

void forget(host::HostIrqController* c) {
    unsigned i = 0;
    while (i < t_ndeferred)
        if (t_deferred[i] == c) t_deferred[i] = t_deferred[--t_ndeferred];
        else i++;
}

bool is_level(Trigger t) { return t == Trigger::level_high || t == Trigger::level_low; }

// Runs fn(ctx) as a CPU takes an interrupt: masked for the duration.
void take(IrqHandler fn, void* ctx) {
    bool was = t_masked;
    t_masked = true;
    fn(ctx);
    t_masked = was;
}

std::atomic<IrqController*> g_controller{nullptr};
}  // namespace

IrqFlags irq_save() {
    bool was = t_masked;
    t_masked = true;
    return was;
}

void irq_restore(IrqFlags was_masked) {
    t_masked = was_masked;
    // Each drain may defer again (a handler raising another line); take until nothing is left.
    while (!t_masked && t_ndeferred) {
        host::HostIrqController* c = t_deferred[--t_ndeferred];
        c->deliver_pending();
    }
}

bool irqs_masked() { return t_masked; }

void wait_for_interrupt() {
    IrqFlags was = irq_save();
    irq_restore(false);
    irq_restore(was);
}

IrqController* irq_controller() { return g_controller.load(std::memory_order_acquire); }

namespace host {

void set_irq_controller(HostIrqController* c) { g_controller.store(c, std::memory_order_release); }

HostIrqController::HostIrqController(unsigned lines, uint8_t triggers)
    : lines_(lines < kMaxLines ? lines : kMaxLines), triggers_(triggers) {}

HostIrqController::~HostIrqController() {
    forget(this);
    IrqController* self = this;
    g_controller.compare_exchange_strong(self, nullptr);
}

Status HostIrqController::request(unsigned intid, Trigger trigger, unsigned priority, IrqHandler fn, void* ctx) {
    if (intid >= lines_) return Status::out_of_range;
    auto t = static_cast<uint8_t>(trigger);
    bool one_kind = t == 1 || t == 2 || t == 4 || t == 8;
    if (!fn || !one_kind || !(t & triggers_) || priority > kMaxPriority) return Status::invalid_argument;
    std::lock_guard g(m_);
    Line& l = line_[intid];
    if (l.fn) return Status::in_use;
    l.fn = fn;
    l.ctx = ctx;
    l.trigger = trigger;
    l.priority = priority;
    l.enabled = l.pending = l.active = l.asserted = false;
    return Status::ok;
}

Status HostIrqController::release(unsigned intid) {
    if (intid >= lines_) return Status::out_of_range;
    std::lock_guard g(m_);
    Line& l = line_[intid];
    if (!l.fn) return Status::not_found;
    l.fn = nullptr;
    l.ctx = nullptr;
    l.enabled = l.pending = l.active = l.asserted = false;
    return Status::ok;
}

void HostIrqController::enable(unsigned intid) {
    if (intid >= lines_) return;
    {
        std::lock_guard g(m_);
        if (!line_[intid].fn) return;
        line_[intid].enabled = true;
    }
    kick(intid);
}

void HostIrqController::mask(unsigned intid) {
    if (intid >= lines_) return;
    std::lock_guard g(m_);
    line_[intid].enabled = false;
}

void HostIrqController::eoi(unsigned intid) {
    bool stray, tell = false;
    {
        std::lock_guard g(m_);
        Line* l = intid < lines_ ? &line_[intid] : nullptr;
        stray = !l || !l->active;
        if (stray) {
            stray_eois_++;
            tell = !told_stray_eoi_;
            told_stray_eoi_ = true;
        } else {
            l->active = false;
            l->eois++;
            if (is_level(l->trigger)) l->pending = l->asserted;
        }
    }
    if (tell) print("host-irq: EOI of INTID %u, which is not active (reported once)\n", intid);
    if (!stray) kick(intid);
}

void HostIrqController::raise(unsigned intid) {
    bool spurious, tell = false;
    {
        std::lock_guard g(m_);
        Line* l = intid < lines_ ? &line_[intid] : nullptr;
        spurious = !l || !l->fn;
        if (spurious) {
            spurious_++;
            tell = !told_spurious_;
            told_spurious_ = true;
        } else {
            bool level = is_level(l->trigger);
            if (level) l->asserted = true;
            // An edge while active is latched (active and pending); an active level line
            // becomes pending again at its EOI if still asserted.
            if (!(level && l->active)) l->pending = true;
        }
    }
    if (tell) print("host-irq: spurious INTID %u (no handler bound; reported once)\n", intid);
    if (!spurious) kick(intid);
}

void HostIrqController::lower(unsigned intid) {
    if (intid >= lines_) return;
    std::lock_guard g(m_);
    Line& l = line_[intid];
    if (l.asserted) {
        l.asserted = false;
        l.pending = false;  // a level line is only pending while the device asserts it
    }
}

void HostIrqController::kick(unsigned intid) {
    {
        std::lock_guard g(m_);
        if (!deliverable(line_[intid])) return;
    }
    if (t_masked) return defer(this);
    deliver_pending();
}

void HostIrqController::deliver_pending() {
    if (t_masked) return defer(this);
    bool tell = false;
    for (unsigned n = 0;; n++) {
        IrqHandler fn;
        void* ctx;
        {
            std::lock_guard g(m_);
            Line* best = nullptr;
            for (unsigned i = 0; i < lines_; i++)
                if (deliverable(line_[i]) && (!best || line_[i].priority < best->priority)) best = &line_[i];
            if (!best) break;
            if (n == kStormLimit) {
                best->enabled = false;  // as a kernel disables a line nobody quiets
                storms_++;
                tell = !told_storm_;
                told_storm_ = true;
                break;
            }
            best->active = true;
            best->pending = false;
            best->deliveries++;
            fn = best->fn;
            ctx = best->ctx;
        }
        take(fn, ctx);
    }
    forget(this);  // a handler's EOI may have deferred to us; the loop has taken it since
    if (tell) print("host-irq: interrupt storm, %u deliveries in a row (reported once)\n", kStormLimit);
}

bool HostIrqController::bound(unsigned intid) const {
    std::lock_guard g(m_);
    const Line* l = line(intid);
    return l && l->fn;
}
bool HostIrqController::enabled(unsigned intid) const {
    std::lock_guard g(m_);
    const Line* l = line(intid);
    return l && l->enabled;
}
bool HostIrqController::pending(unsigned intid) const {
    std::lock_guard g(m_);
    const Line* l = line(intid);
    return l && l->pending;
}
bool HostIrqController::active(unsigned intid) const {
    std::lock_guard g(m_);
    const Line* l = line(intid);
    return l && l->active;
}
uint64_t HostIrqController::deliveries(unsigned intid) const {
    std::lock_guard g(m_);
    const Line* l = line(intid);
    return l ? l->deliveries : 0;
}
uint64_t HostIrqController::eois(unsigned intid) const {
    std::lock_guard g(m_);
    const Line* l = line(intid);
    return l ? l->eois : 0;
}
uint64_t HostIrqController::spurious() const {
    std::lock_guard g(m_);
    return spurious_;
}
uint64_t HostIrqController::stray_eois() const {
    std::lock_guard g(m_);
    return stray_eois_;
}
uint64_t HostIrqController::storms() const {
    std::lock_guard g(m_);
    return storms_;
}

}  // namespace host
}  // namespace moat::arch
