// An EL1 guest of moat's own that does what Linux never does: an SMC, HVCs moat does not serve,
// a system register moat traps and does not serve, a load and a store at an address that is
// neither its RAM nor one of its devices. Each check prints one line on the vPL011 and the
// program ends with a summary and PSCI SYSTEM_OFF (start.S). What the architecture says the
// guest gets: SMCCC's NOT_SUPPORTED, PSCI 1.x, Xen's -ENOSYS, an UNDEF (ESR_EL1.EC 0) at the
// instruction, a synchronous external abort (EC 0x25, DFSC 0x10) with FAR at the address.
// Freestanding, MMU off, so everything is PC-relative and nothing is relocated.
typedef unsigned long u64;

struct Trap {
    u64 esr, elr, far, taken, other, other_esr;
};
extern volatile struct Trap g_trap;

#define UART_BASE 0x22000000ul  // the vPL011 of every dom0less guest (xen-compat/dom0less.hpp)
#define UNMAPPED 0x3f000000ul   // below RAM (0x40000000), above every emulated device

static void putc_(char c) {
    volatile unsigned* dr = (volatile unsigned*)UART_BASE;
    volatile unsigned* fr = (volatile unsigned*)(UART_BASE + 0x18);
    for (unsigned i = 0; i < 100000 && (*fr & (1u << 5)); i++) {}  // TXFF, bounded
    *dr = (unsigned char)c;
}
static void puts_(const char* s) {
    while (*s) putc_(*s++);
}
static void puthex(u64 v) {
    puts_("0x");
    int started = 0;
    for (int i = 60; i >= 0; i -= 4) {
        unsigned d = (v >> i) & 15;
        if (d || started || i == 0) {
            putc_((char)(d < 10 ? '0' + d : 'a' + d - 10));
            started = 1;
        }
    }
}

static unsigned passed, failed;
static void check(int ok, const char* what) {
    puts_(ok ? "traps: ok   " : "traps: FAIL ");
    puts_(what);
    puts_("\n");
    if (ok) passed++;
    else failed++;
}

static u64 ec(u64 esr) { return (esr >> 26) & 0x3f; }

void traps_main(void) {
    volatile unsigned* cr = (volatile unsigned*)(UART_BASE + 0x30);
    *cr = 0x301;  // UARTEN, TXE, RXE
    puts_("traps: the trap-test guest, its own vectors at EL1\n");

    // (1) An SMC: no firmware behind moat; SMCCC's NOT_SUPPORTED, and on to the next instruction.
    {
        register u64 x0 asm("x0") = 0xc2000042ul;  // a SiP fast call nobody implements
        asm volatile("smc #0" : "+r"(x0) : : "x1", "x2", "x3", "memory");
        puts_("traps: smc #0 (0xc2000042) -> x0 ");
        puthex(x0);
        puts_("\n");
        check(x0 == ~0ul && g_trap.taken == 0, "smc: NOT_SUPPORTED, execution continues");
    }
    // (2) PSCI_VERSION through hvc #0.
    {
        register u64 x0 asm("x0") = 0x84000000ul;
        asm volatile("hvc #0" : "+r"(x0) : : "x1", "x2", "x3", "memory");
        puts_("traps: PSCI_VERSION -> ");
        puthex(x0);
        puts_("\n");
        check((x0 >> 16) == 1 && g_trap.taken == 0, "hvc #0 PSCI_VERSION: 1.x");
    }
    // (3) A Xen hypercall (hvc #0xEA1, its number in x16): -ENOSYS.
    {
        register u64 x0 asm("x0") = 0;
        register u64 x16 asm("x16") = 17;  // Xen's __HYPERVISOR_xen_version
        asm volatile("hvc #0xea1" : "+r"(x0) : "r"(x16) : "x1", "x2", "x3", "memory");
        puts_("traps: hvc #0xea1 -> ");
        puthex(x0);
        puts_("\n");
        check((long)x0 == -38 && g_trap.taken == 0, "hvc #0xea1 (Xen): -ENOSYS");
    }
    // (3b) An HVC immediate nobody defines: NOT_SUPPORTED.
    {
        register u64 x0 asm("x0") = 0x84000000ul;
        asm volatile("hvc #0x42" : "+r"(x0) : : "x1", "x2", "x3", "memory");
        check(x0 == ~0ul && g_trap.taken == 0, "hvc #0x42: NOT_SUPPORTED");
    }
    // (4) CNTP_CTL_EL0: the EL1 physical timer, which moat traps (CNTHCTL_EL2.EL1PCEN clear) and
    // does not serve: an UNDEF at the instruction.
    {
        u64 pc, v = 0x5a5a;
        asm volatile("adr %0, 1f\n1: mrs %1, cntp_ctl_el0" : "=&r"(pc), "+r"(v) : : "memory");
        puts_("traps: mrs cntp_ctl_el0 at ");
        puthex(pc);
        puts_(" -> ESR_EL1 ");
        puthex(g_trap.esr);
        puts_(", ELR_EL1 ");
        puthex(g_trap.elr);
        puts_("\n");
        check(g_trap.taken == 1 && ec(g_trap.esr) == 0 && g_trap.elr == pc && v == 0x5a5a,
              "mrs cntp_ctl_el0: UNDEF (EC 0) at the instruction, skipped");
    }
    // (5) A load from an IPA that is nothing of the guest's: a synchronous external abort.
    {
        u64 pc, v = 0x5a5a;
        asm volatile("adr %0, 1f\n1: ldr %1, [%2]" : "=&r"(pc), "+r"(v) : "r"(UNMAPPED) : "memory");
        puts_("traps: ldr from ");
        puthex(UNMAPPED);
        puts_(" -> ESR_EL1 ");
        puthex(g_trap.esr);
        puts_(", FAR_EL1 ");
        puthex(g_trap.far);
        puts_("\n");
        check(g_trap.taken == 2 && ec(g_trap.esr) == 0x25 && (g_trap.esr & 0x3f) == 0x10 && g_trap.elr == pc &&
                  g_trap.far == UNMAPPED && v == 0x5a5a,
              "load outside RAM and devices: external abort (EC 0x25, DFSC 0x10), skipped");
    }
    // (6) A store there.
    {
        u64 pc;
        asm volatile("adr %0, 1f\n1: str %0, [%1]" : "=&r"(pc) : "r"(UNMAPPED + 8) : "memory");
        puts_("traps: str to ");
        puthex(UNMAPPED + 8);
        puts_(" -> ESR_EL1 ");
        puthex(g_trap.esr);
        puts_(", FAR_EL1 ");
        puthex(g_trap.far);
        puts_("\n");
        check(g_trap.taken == 3 && ec(g_trap.esr) == 0x25 && (g_trap.esr & 0x3f) == 0x10 && ((g_trap.esr >> 6) & 1) &&
                  g_trap.elr == pc && g_trap.far == UNMAPPED + 8,
              "store outside RAM and devices: external abort (EC 0x25, DFSC 0x10, WnR), skipped");
    }
    // (7) Twenty more loads there: each aborted as the first; moat's reports stop at its limit.
    {
        unsigned aborted = 0;
        for (unsigned i = 0; i < 20; i++) {
            u64 before = g_trap.taken, v;
            asm volatile("ldr %0, [%1]" : "=r"(v) : "r"(UNMAPPED + 16 * i) : "memory");
            (void)v;
            aborted += g_trap.taken == before + 1 && ec(g_trap.esr) == 0x25 && g_trap.far == UNMAPPED + 16 * i;
        }
        puts_("traps: 20 more loads, aborted ");
        puthex(aborted);
        puts_("\n");
        check(aborted == 20, "20 more loads: each an external abort");
    }
    check(g_trap.other == 0, "no other exception taken");
    puts_("traps: ");
    puthex(passed);
    puts_(" passed, ");
    puthex(failed);
    puts_(failed ? " failed\n" : " failed; powering off\n");
}
