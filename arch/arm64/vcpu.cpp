#include "arch/arm64/vcpu.hpp"

#include <string.h>

extern "C" uint64_t moat_guest_fp[66];  // the trapped guest's q0..q31, FPCR, FPSR (vcpu_asm.S)
extern "C" [[noreturn]] void vcpu_enter_frame(const moat::arch::TrapFrame* f);

namespace moat::arch {

namespace {

#define SYSREG_RW(name, enc)                                                                   \
    inline uint64_t rd_##name() { uint64_t v; asm volatile("mrs %0, " enc : "=r"(v)); return v; } \
    inline void wr_##name(uint64_t v) { asm volatile("msr " enc ", %0" : : "r"(v)); }

SYSREG_RW(ich_hcr, "S3_4_C12_C11_0")
SYSREG_RW(ich_vmcr, "S3_4_C12_C11_7")
SYSREG_RW(ich_ap1r0, "S3_4_C12_C9_0")
inline uint64_t rd_ich_vtr() { uint64_t v; asm volatile("mrs %0, S3_4_C12_C11_1" : "=r"(v)); return v; }

constexpr uint64_t kIchHcrEn = 1u << 0, kIchHcrUie = 1u << 1;
constexpr uint64_t kCntCtlEnable = 1u << 0, kCntCtlImask = 1u << 1, kCntCtlIstatus = 1u << 2;

// HCR_EL2 for a guest (docs/hardware.md §9.5).
constexpr uint64_t kHcrVm = 1ull << 0, kHcrSwio = 1ull << 1, kHcrFmo = 1ull << 3, kHcrImo = 1ull << 4,
                   kHcrAmo = 1ull << 5, kHcrTwi = 1ull << 13, kHcrTwe = 1ull << 14, kHcrTsc = 1ull << 19,
                   kHcrRw = 1ull << 31;
// CNTHCTL_EL2 (E2H = 0): EL1PCTEN (physical counter readable), EL1PCEN clear: the physical
// timer traps, so a guest never programs the timer moat's vCPUs share.
constexpr uint64_t kCnthctlEl1pcten = 1u << 0;

uint64_t lr_read(unsigned i) {
    uint64_t v = 0;
    switch (i) {
#define LR_CASE(n, enc) case n: asm volatile("mrs %0, " enc : "=r"(v)); break;
        LR_CASE(0, "S3_4_C12_C12_0") LR_CASE(1, "S3_4_C12_C12_1") LR_CASE(2, "S3_4_C12_C12_2") LR_CASE(3, "S3_4_C12_C12_3")
        LR_CASE(4, "S3_4_C12_C12_4") LR_CASE(5, "S3_4_C12_C12_5") LR_CASE(6, "S3_4_C12_C12_6") LR_CASE(7, "S3_4_C12_C12_7")
        LR_CASE(8, "S3_4_C12_C13_0") LR_CASE(9, "S3_4_C12_C13_1") LR_CASE(10, "S3_4_C12_C13_2") LR_CASE(11, "S3_4_C12_C13_3")
        LR_CASE(12, "S3_4_C12_C13_4") LR_CASE(13, "S3_4_C12_C13_5") LR_CASE(14, "S3_4_C12_C13_6") LR_CASE(15, "S3_4_C12_C13_7")
#undef LR_CASE
    default: break;
    }
    return v;
}

void lr_write(unsigned i, uint64_t v) {
    switch (i) {
#define LR_CASE(n, enc) case n: asm volatile("msr " enc ", %0" : : "r"(v)); break;
        LR_CASE(0, "S3_4_C12_C12_0") LR_CASE(1, "S3_4_C12_C12_1") LR_CASE(2, "S3_4_C12_C12_2") LR_CASE(3, "S3_4_C12_C12_3")
        LR_CASE(4, "S3_4_C12_C12_4") LR_CASE(5, "S3_4_C12_C12_5") LR_CASE(6, "S3_4_C12_C12_6") LR_CASE(7, "S3_4_C12_C12_7")
        LR_CASE(8, "S3_4_C12_C13_0") LR_CASE(9, "S3_4_C12_C13_1") LR_CASE(10, "S3_4_C12_C13_2") LR_CASE(11, "S3_4_C12_C13_3")
        LR_CASE(12, "S3_4_C12_C13_4") LR_CASE(13, "S3_4_C12_C13_5") LR_CASE(14, "S3_4_C12_C13_6") LR_CASE(15, "S3_4_C12_C13_7")
#undef LR_CASE
    default: break;
    }
}

#define EL1_REGS(X)                                                                                              \
    X(sctlr, "sctlr_el1") X(ttbr0, "ttbr0_el1") X(ttbr1, "ttbr1_el1") X(tcr, "tcr_el1") X(mair, "mair_el1")      \
    X(amair, "amair_el1") X(vbar, "vbar_el1") X(contextidr, "contextidr_el1") X(tpidr_el0, "tpidr_el0")          \
    X(tpidrro_el0, "tpidrro_el0") X(tpidr_el1, "tpidr_el1") X(sp_el0, "sp_el0") X(sp_el1, "sp_el1")              \
    X(elr_el1, "elr_el1") X(spsr_el1, "spsr_el1") X(esr, "esr_el1") X(far, "far_el1") X(afsr0, "afsr0_el1")      \
    X(afsr1, "afsr1_el1") X(par, "par_el1") X(cpacr, "cpacr_el1") X(cntkctl, "cntkctl_el1")                      \
    X(csselr, "csselr_el1") X(mdscr, "mdscr_el1") X(vmpidr, "vmpidr_el2")

}  // namespace

void vcpu_reset(VcpuContext& c, uint64_t entry, uint64_t arg, uint64_t mpidr) {
    c = VcpuContext{};
    c.frame.elr = entry;
    c.frame.spsr = kSpsrEl1hMasked;
    c.frame.x[0] = arg;
    c.sctlr = kSctlrEl1Reset;
    c.cpacr = uint64_t{3} << 20;  // FP/SIMD usable at EL1 and EL0, as firmware leaves it for Linux
    c.vmpidr = (uint64_t{1} << 31) | (mpidr & 0xff00ffffffull);  // bit 31 RES1; U = 0, MT = 0
    c.ich_hcr = kIchHcrEn;
}

void vcpu_save(VcpuContext& c, const TrapFrame& f) {
    c.frame = f;
#define SAVE(field, name) asm volatile("mrs %0, " name : "=r"(c.field));
    EL1_REGS(SAVE)
#undef SAVE
    asm volatile("mrs %0, cntv_ctl_el0" : "=r"(c.cntv_ctl));
    asm volatile("mrs %0, cntv_cval_el0" : "=r"(c.cntv_cval));
    asm volatile("msr cntv_ctl_el0, xzr\n\tisb");  // stopped: it must not fire for the next vCPU
    unsigned n = ich_lrs();
    ich_read_lrs(c.lr, n);
    c.vmcr = rd_ich_vmcr();
    c.ap1r0 = rd_ich_ap1r0();
    c.ich_hcr = rd_ich_hcr();
    memcpy(c.fp, moat_guest_fp, sizeof c.fp);
    c.fpcr = moat_guest_fp[64];
    c.fpsr = moat_guest_fp[65];
}

void vcpu_load(const VcpuContext& c, TrapFrame& f) {
#define LOAD(field, name) asm volatile("msr " name ", %0" : : "r"(c.field));
    EL1_REGS(LOAD)
#undef LOAD
    asm volatile("msr cntv_cval_el0, %0" : : "r"(c.cntv_cval));
    asm volatile("msr cntv_ctl_el0, %0" : : "r"(c.cntv_ctl));
    unsigned n = ich_lrs();
    for (unsigned i = 0; i < n; i++) lr_write(i, c.lr[i]);
    wr_ich_vmcr(c.vmcr);
    wr_ich_ap1r0(c.ap1r0);
    wr_ich_hcr(c.ich_hcr | kIchHcrEn);
    memcpy(moat_guest_fp, c.fp, sizeof c.fp);  // vectors.S loads them on the way back
    moat_guest_fp[64] = c.fpcr;
    moat_guest_fp[65] = c.fpsr;
    asm volatile("isb" ::: "memory");
    f = c.frame;
}

[[noreturn]] void vcpu_first_entry(const VcpuContext& c) {
    static TrapFrame f;
    vcpu_load(c, f);
    vcpu_enter_frame(&f);
}

void guest_traps_on(uint64_t vttbr, uint64_t vtcr, uint64_t cntvoff, bool flush) {
    uint64_t hcr = kHcrVm | kHcrSwio | kHcrFmo | kHcrImo | kHcrAmo | kHcrTwi | kHcrTwe | kHcrTsc | kHcrRw;
    asm volatile("msr vtcr_el2, %0" : : "r"(vtcr));
    asm volatile("msr vttbr_el2, %0" : : "r"(vttbr));
    asm volatile("msr hcr_el2, %0" : : "r"(hcr));
    asm volatile("msr cnthctl_el2, %0" : : "r"(kCnthctlEl1pcten));
    asm volatile("msr cntvoff_el2, %0" : : "r"(cntvoff));
    asm volatile("msr mdcr_el2, xzr");
    asm volatile("isb" ::: "memory");
    if (flush) asm volatile("tlbi vmalls12e1; dsb nsh; isb" ::: "memory");
}

unsigned ich_lrs() {
    unsigned n = static_cast<unsigned>(rd_ich_vtr() & 0x1f) + 1;
    return n > 16 ? 16 : n;
}

void ich_read_lrs(uint64_t* lr, unsigned n) {
    for (unsigned i = 0; i < n; i++) lr[i] = lr_read(i);
}

void ich_write_lrs(const uint64_t* lr, unsigned n, bool underflow_irq) {
    for (unsigned i = 0; i < n; i++) lr_write(i, lr[i]);
    uint64_t hcr = kIchHcrEn | (underflow_irq ? kIchHcrUie : 0);
    wr_ich_hcr(hcr);
    asm volatile("isb" ::: "memory");
}

bool vtimer_fired_and_mask() {
    uint64_t ctl;
    asm volatile("mrs %0, cntv_ctl_el0" : "=r"(ctl));
    if ((ctl & (kCntCtlEnable | kCntCtlImask | kCntCtlIstatus)) != (kCntCtlEnable | kCntCtlIstatus)) return false;
    asm volatile("msr cntv_ctl_el0, %0\n\tisb" : : "r"((ctl | kCntCtlImask) & ~kCntCtlIstatus));
    return true;
}

uint64_t virtual_count() {
    uint64_t v;
    asm volatile("isb; mrs %0, cntvct_el0" : "=r"(v) : : "memory");
    return v;
}

bool vtimer_due(const VcpuContext& c, uint64_t vcount) {
    return (c.cntv_ctl & (kCntCtlEnable | kCntCtlImask)) == kCntCtlEnable && c.cntv_cval <= vcount;
}

namespace {
// Where EL1 takes a synchronous exception from the state in SPSR: current EL with SP_EL0,
// current EL with SP_EL1, or a lower EL (AArch64).
uint64_t sync_vector(const TrapFrame& f, bool& from_el0) {
    uint64_t vbar;
    asm volatile("mrs %0, vbar_el1" : "=r"(vbar));
    unsigned mode = static_cast<unsigned>(f.spsr & 0xf);
    from_el0 = mode == 0;
    return vbar + (from_el0 ? 0x400 : mode == 4 ? 0x000 : 0x200);
}

void take_exception(TrapFrame& f, uint64_t esr, uint64_t far, uint64_t vector) {
    asm volatile("msr esr_el1, %0" : : "r"(esr));
    asm volatile("msr far_el1, %0" : : "r"(far));
    asm volatile("msr elr_el1, %0" : : "r"(f.elr));
    asm volatile("msr spsr_el1, %0" : : "r"(f.spsr));
    f.elr = vector;
    f.spsr = kSpsrEl1hMasked;
}
constexpr uint64_t kEsrIl = 1u << 25;
}  // namespace

void inject_undef(TrapFrame& f) {
    bool el0;
    uint64_t v = sync_vector(f, el0);
    take_exception(f, kEsrIl, 0, v);  // EC 0: unknown reason
}

void inject_external_abort(TrapFrame& f, bool is_data, uint64_t va, bool write) {
    bool el0;
    uint64_t v = sync_vector(f, el0);
    uint64_t ec = is_data ? (el0 ? 0x24 : 0x25) : (el0 ? 0x20 : 0x21);
    constexpr uint64_t kFscSyncExternal = 0x10, kIssWnR = 1u << 6;  // WnR: the aborted data access was a store
    take_exception(f, ec << 26 | kEsrIl | kFscSyncExternal | (is_data && write ? kIssWnR : 0), va, v);
}

}  // namespace moat::arch
