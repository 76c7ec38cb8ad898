#include "arch/arm64/timer.hpp"

#include "arch/irq.hpp"
#include "common/percpu.hpp"

namespace moat::arch {

namespace {

constexpr uint64_t kCtlEnable = 1u << 0;  // CNTHP_CTL_EL2.ENABLE; IMASK (bit 1) stays clear

IrqController* g_ic = nullptr;
unsigned g_intid = 0;
uint64_t g_period = 0;  // counter ticks per tick
PerCpu<uint64_t> g_ticks;  // each CPU counts its own
void (*g_tick_hook)() = nullptr;

inline uint64_t cntfrq() { uint64_t v; asm volatile("mrs %0, cntfrq_el0" : "=r"(v)); return v ? v : 62500000; }
inline void cnthp_tval(uint64_t v) { asm volatile("msr S3_4_C14_C2_0, %0" : : "r"(v)); }
inline void cnthp_ctl(uint64_t v) { asm volatile("msr S3_4_C14_C2_1, %0\n\tisb" : : "r"(v)); }

// The level line drops once the next deadline is set, before the EOI.
void on_tick(void*) {
    __atomic_store_n(&g_ticks.here(), g_ticks.here() + 1, __ATOMIC_RELAXED);
    cnthp_tval(g_period);
    asm volatile("isb");
    g_ic->eoi(g_intid);
    if (g_tick_hook) g_tick_hook();
}

}  // namespace

Status tick_start(IrqController& ic, const dt::Tree& t, unsigned hz, Why& why) {
    int node = -1, depth = 0;
    for (int n = t.next_node(-1, &depth); n >= 0 && node < 0; n = t.next_node(n, &depth))
        if ((t.compatible(n, "arm,armv8-timer") || t.compatible(n, "arm,armv7-timer")) && t.available(n)) node = n;
    if (node < 0) return why.set(Status::not_found, "no arm,armv8-timer node: no tick");
    dt::Irq irqs[4];
    unsigned n = 0;
    char path[dt::kPathMax];
    if (t.interrupts(node, irqs, 4, n) != Status::ok) return why.set(Status::bad_dt, "%s", t.error());
    if (n < 4 || irqs[3].kind != dt::IrqKind::ppi)
        return why.set(Status::bad_dt, "%s: no hypervisor timer PPI (the fourth interrupt)", t.path(node, path, sizeof path));
    g_ic = &ic;
    g_intid = irqs[3].intid;
    uint64_t period = cntfrq() / hz;
    Trigger trig = (irqs[3].flags & 0xf) == 1 ? Trigger::edge_rising : Trigger::level_high;
    Status st = ic.request(g_intid, trig, 0xa0, &on_tick, nullptr);
    if (st != Status::ok) return why.set(st, "timer PPI INTID %u refused by %s (%s)", g_intid, ic.name(), to_string(st));
    g_period = period;
    cnthp_tval(g_period);
    cnthp_ctl(kCtlEnable);
    ic.enable(g_intid);
    return Status::ok;
}

bool tick_start_cpu() {
    if (!g_period || !g_ic) return false;
    cnthp_tval(g_period);
    cnthp_ctl(kCtlEnable);
    g_ic->enable(g_intid);  // on this CPU's redistributor: the PPI is banked
    return true;
}

uint64_t ticks_on(unsigned cpu) { return cpu < kMaxCpus ? __atomic_load_n(&g_ticks.on(cpu), __ATOMIC_RELAXED) : 0; }
uint64_t ticks() {
    uint64_t n = 0;
    for (unsigned c = 0; c < kMaxCpus; c++) n += ticks_on(c);
    return n;
}
bool wfi_wakes_by_time() { return g_period != 0; }
unsigned tick_intid() { return g_intid; }
void set_tick_hook(void (*fn)()) { g_tick_hook = fn; }

}  // namespace moat::arch
