// Secondary CPUs: started through PSCI CPU_ON (the conduit the tree's psci node names: "smc" at
// EL2, where an "hvc" would trap to moat itself), each on its own stack, with the boot CPU's EL2
// map and vectors (smp_entry.S), its own logical id and per-CPU data, its GIC redistributor and
// CPU interface, and its own tick. A CPU that has not said it is up within kUpTimeoutNs is
// reported and left out; the rest carry on. Idle CPUs wait for one piece of work at a time
// (run_on_cpu), in wfi when the tick runs. Facts: docs/hardware.md §9.6.
#include "arch/arm64/smp.hpp"

#include "arch/arm64/gic_v3.hpp"
#include "arch/arm64/timer.hpp"
#include "arch/cpu.hpp"
#include "arch/irq.hpp"
#include "arch/time.hpp"
#include "common/format.hpp"

extern "C" char secondary_entry[];

// Every secondary CPU's stack; CPU id's top is at (id + 1) * 16 KiB (slot 0 is unused: the boot
// CPU keeps head.S's). In .bss, so zeroed by head.S before any cache was on.
extern "C" {
alignas(16) uint8_t moat_cpu_stacks[moat::arch::kMaxCpus * 16 * 1024];
}

namespace moat::arch {

namespace {

constexpr size_t kStackBytes = 16 * KiB;  // smp_entry.S computes the same
static_assert(sizeof moat_cpu_stacks == kMaxCpus * kStackBytes);
constexpr uint64_t kUpTimeoutNs = 1000 * 1000 * 1000;
constexpr uint32_t kPsciVersion = 0x84000000, kPsciCpuOn64 = 0xc4000003;

struct Slot {
    uint64_t mpidr;
    bool online;              // set by the CPU itself, last thing before it takes work
    bool gic, tick;           // what its bring-up got
    uintptr_t redist;
    void (*fn)(void*);        // work handed over (nullptr: idle)
    void* arg;
};
Slot g_slot[kMaxCpus];
unsigned g_stuck = kMaxCpus;  // moat.selftest=cpu-stuck: this CPU (the last named) never says it is up

int64_t smc(uint64_t fid, uint64_t a1, uint64_t a2, uint64_t a3) {
    register uint64_t x0 asm("x0") = fid, x1 asm("x1") = a1, x2 asm("x2") = a2, x3 asm("x3") = a3;
    asm volatile("smc #0" : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x3) : : "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12",
                 "x13", "x14", "x15", "x16", "x17", "memory");
    return static_cast<int64_t>(x0);
}

const char* psci_error(int64_t e) {
    switch (e) {
    case -1: return "NOT_SUPPORTED";
    case -2: return "INVALID_PARAMETERS";
    case -3: return "DENIED";
    case -4: return "ALREADY_ON";
    case -5: return "ON_PENDING";
    case -6: return "INTERNAL_FAILURE";
    case -9: return "INVALID_ADDRESS";
    default: return "unknown error";
    }
}

bool bootarg_has(const dt::Tree& t, const char* word) {
    int chosen = t.find_path("/chosen");
    int len = 0;
    const char* args = chosen >= 0 ? static_cast<const char*>(t.prop(chosen, "bootargs", &len)) : nullptr;
    if (!args || len <= 0 || args[len - 1] != 0) return false;
    size_t n = __builtin_strlen(word);
    for (const char* p = args; *p;) {
        while (*p == ' ') p++;
        const char* w = p;
        while (*p && *p != ' ') p++;
        if (static_cast<size_t>(p - w) == n && __builtin_memcmp(w, word, n) == 0) return true;
    }
    return false;
}

// The psci node's conduit and CPU_ON function id; false (said why) when moat cannot use it.
bool psci_from_dt(const dt::Tree& t, uint32_t& cpu_on) {
    int node = -1, depth = 0;
    for (int n = t.next_node(-1, &depth); n >= 0 && node < 0; n = t.next_node(n, &depth))
        if ((t.compatible(n, "arm,psci-1.0") || t.compatible(n, "arm,psci-0.2") || t.compatible(n, "arm,psci")) && t.available(n))
            node = n;
    if (node < 0) return print("smp:      no psci node: the other CPUs stay off\n"), false;
    const char* method = t.string_at(node, "method", 0);
    if (!method || __builtin_strcmp(method, "smc") != 0) {
        print("smp:      psci method \"%s\": moat runs at EL2 and calls firmware with smc only; the other CPUs stay off\n",
              method ? method : "(none)");
        return false;
    }
    if (t.compatible(node, "arm,psci-0.2") || t.compatible(node, "arm,psci-1.0")) {
        cpu_on = kPsciCpuOn64;
    } else if (t.u32(node, "cpu_on", cpu_on) != Status::ok) {
        print("smp:      psci 0.1 node without cpu_on: the other CPUs stay off\n");
        return false;
    }
    int64_t v = smc(kPsciVersion, 0, 0, 0);
    print("smp:      psci %ld.%ld via smc, CPU_ON 0x%x\n", v >> 16, v & 0xffff, cpu_on);
    return true;
}

// The MPIDR affinity a cpu node's reg names; false when it is not one.
bool cpu_mpidr(const dt::Tree& t, int cpus, int node, uint64_t& mpidr) {
    int len = 0;
    const char* type = static_cast<const char*>(t.prop(node, "device_type", &len));
    if (!type || len != 4 || __builtin_memcmp(type, "cpu", 4) != 0) return false;
    unsigned ac = 1;
    if (t.address_cells(cpus, ac) != Status::ok || ac < 1 || ac > 2) return false;
    const auto* reg = static_cast<const uint8_t*>(t.prop(node, "reg", &len));
    if (!reg || len != static_cast<int>(4 * ac)) return false;
    mpidr = 0;
    for (int i = 0; i < len; i++) mpidr = mpidr << 8 | reg[i];
    return true;
}

}  // namespace

unsigned start_cpus(const dt::Tree& t) {
    g_slot[0] = Slot{mpidr_affinity(), true, gic() != nullptr, wfi_wakes_by_time(), gic() ? gic()->redist_base() : 0, nullptr, nullptr};
    int cpus = t.find_path("/cpus");
    if (cpus < 0) return 1;
    uint32_t cpu_on = 0;
    unsigned named = 0, online = 1;
    for (int n = t.first_subnode(cpus); n >= 0; n = t.next_subnode(n)) {
        uint64_t m;
        if (cpu_mpidr(t, cpus, n, m)) named++;
    }
    if (named <= 1) return 1;
    if (!psci_from_dt(t, cpu_on)) return 1;
    if (bootarg_has(t, "moat.selftest=cpu-stuck")) g_stuck = named - 1;
    console_shared();  // from here on, lines from several CPUs
    unsigned next = 1;
    for (int n = t.first_subnode(cpus); n >= 0; n = t.next_subnode(n)) {
        uint64_t mpidr;
        if (!cpu_mpidr(t, cpus, n, mpidr) || mpidr == g_slot[0].mpidr) continue;
        char path[dt::kPathMax];
        t.path(n, path, sizeof path);
        if (next == kMaxCpus) {
            print("smp:      %s (mpidr 0x%lx): moat runs on %u CPUs at most; left out\n", path, mpidr, kMaxCpus);
            continue;
        }
        unsigned id = next++;
        g_slot[id] = Slot{mpidr, false, false, false, 0, nullptr, nullptr};
        int64_t r = smc(cpu_on, mpidr, reinterpret_cast<uintptr_t>(secondary_entry), id);
        if (r != 0) {
            print("smp:      cpu%u %s (mpidr 0x%lx): PSCI CPU_ON returned %ld (%s); left out\n", id, path, mpidr, r, psci_error(r));
            continue;
        }
        uint64_t start = now_ns();
        bool up = false;
        while (!(up = __atomic_load_n(&g_slot[id].online, __ATOMIC_ACQUIRE)) && now_ns() - start < kUpTimeoutNs) relax();
        if (!up) {
            print("smp:      cpu%u %s (mpidr 0x%lx) did not come up within %lu ms; left out\n", id, path, mpidr,
                  kUpTimeoutNs / 1000000);
            continue;
        }
        const Slot& s = g_slot[id];
        print("smp:      cpu%u (mpidr 0x%lx) up: own stack, EL2 MMU and vectors, redistributor 0x%lx%s\n", id, mpidr,
              static_cast<uint64_t>(s.redist), s.tick ? ", tick on" : s.gic ? ", no tick" : ", no GIC (polls)");
        online++;
    }
    print("smp:      %u of %u CPUs online\n", online, named);
    // Each started CPU's own tick must really interrupt it (its redistributor, its PPI, its
    // CNTHP): two ticks each within a bound, or it is said which did not.
    unsigned quiet = 0;
    for (unsigned id = 1; id < next; id++) {
        const Slot& s = g_slot[id];
        if (!__atomic_load_n(&s.online, __ATOMIC_ACQUIRE) || !s.tick) continue;
        uint64_t start = now_ns();
        while (ticks_on(id) < 2 && now_ns() - start < kUpTimeoutNs) relax();
        if (ticks_on(id) < 2) {
            print("smp:      cpu%u took %lu ticks in %lu ms: its timer interrupt does not arrive\n", id, ticks_on(id),
                  kUpTimeoutNs / 1000000);
            quiet++;
        }
    }
    if (online > 1 && !quiet) print("smp:      every started CPU takes its own tick\n");
    return online;
}

bool run_on_cpu(unsigned cpu, void (*fn)(void*), void* arg) {
    if (cpu == 0 || cpu >= kMaxCpus || !fn || !__atomic_load_n(&g_slot[cpu].online, __ATOMIC_ACQUIRE)) return false;
    if (__atomic_load_n(&g_slot[cpu].fn, __ATOMIC_ACQUIRE)) return false;  // busy
    g_slot[cpu].arg = arg;
    __atomic_store_n(&g_slot[cpu].fn, fn, __ATOMIC_RELEASE);
    asm volatile("dsb ish\n\tsev" ::: "memory");
    return true;
}

bool cpu_idle(unsigned cpu) {
    return cpu < kMaxCpus && __atomic_load_n(&g_slot[cpu].online, __ATOMIC_ACQUIRE) && !__atomic_load_n(&g_slot[cpu].fn, __ATOMIC_ACQUIRE);
}

}  // namespace moat::arch

// From smp_entry.S, MMU on, on this CPU's stack, interrupts masked.
extern "C" [[noreturn]] void moat_secondary(uint64_t id) {
    using namespace moat::arch;
    unsigned me = static_cast<unsigned>(id);
    (void)cpu_init(me);  // id < kMaxCpus: start_cpus never hands out more
    Slot& s = g_slot[me];
    if (GicV3* g = gic()) {
        moat::Why why;
        s.gic = g->init_cpu(why) == moat::Status::ok;
        if (!s.gic) moat::print("smp:      cpu%u: %s; it polls\n", me, why.text());
        s.redist = g->redist_base();
        s.tick = s.gic && tick_start_cpu();
    }
    if (me == g_stuck) {
        // The selftest's stuck CPU: never says it is up, never takes work.
        for (;;) asm volatile("wfe");
    }
    __atomic_store_n(&s.online, true, __ATOMIC_RELEASE);
    for (;;) {
        void (*fn)(void*) = __atomic_load_n(&s.fn, __ATOMIC_ACQUIRE);
        if (fn) {
            fn(s.arg);
            __atomic_store_n(&s.fn, static_cast<void (*)(void*)>(nullptr), __ATOMIC_RELEASE);
            continue;
        }
        if (s.tick) wait_for_interrupt();  // the tick ends it within a period
        else asm volatile("wfe");
    }
}
