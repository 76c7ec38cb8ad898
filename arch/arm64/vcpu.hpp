// A virtual CPU's state on arm64 and what moves it in and out of the physical CPU: the EL1
// system registers, FP/SIMD, the guest's virtual timer (CNTV) and its part of the GIC's virtual
// CPU interface (ICH_LR<n>, ICH_VMCR, ICH_AP1R0). Several vCPUs (of one guest or several) share
// one physical CPU: save() takes the one that ran off the hardware, load() puts another on.
// The general registers travel in the trap frame vectors.S saves and restores.
// Also here: exceptions injected into EL1 (an UNDEF, an external abort), as the architecture
// would have taken them. Register facts: docs/hardware.md §9.5.
#pragma once
#include "arch/arm64/trap.hpp"
#include "common/types.hpp"

namespace moat::arch {

struct VcpuContext {
    TrapFrame frame{};
    uint64_t sctlr = 0, ttbr0 = 0, ttbr1 = 0, tcr = 0, mair = 0, amair = 0, vbar = 0, contextidr = 0;
    uint64_t tpidr_el0 = 0, tpidrro_el0 = 0, tpidr_el1 = 0, sp_el0 = 0, sp_el1 = 0, elr_el1 = 0, spsr_el1 = 0;
    uint64_t esr = 0, far = 0, afsr0 = 0, afsr1 = 0, par = 0, cpacr = 0, cntkctl = 0, csselr = 0, mdscr = 0;
    uint64_t vmpidr = 0;
    uint64_t cntv_ctl = 0, cntv_cval = 0;
    uint64_t lr[16] = {}, vmcr = 0, ap1r0 = 0, ich_hcr = 0;
    alignas(16) uint64_t fp[64] = {};  // q0..q31
    uint64_t fpcr = 0, fpsr = 0;
};

// The guest's SCTLR_EL1 at reset: MMU and caches off, RES1 bits set.
constexpr uint64_t kSctlrEl1Reset = (1ull << 11) | (1ull << 20) | (3ull << 22) | (3ull << 28);
// PSTATE for a vCPU entering EL1h with D, A, I, F masked (Linux's boot protocol).
constexpr uint64_t kSpsrEl1hMasked = 0x3c5;

// Fresh vCPU: PC = entry, x0 = arg, MMU off, interrupts masked, MPIDR_EL1 = mpidr.
void vcpu_reset(VcpuContext& c, uint64_t entry, uint64_t arg, uint64_t mpidr);
// The running vCPU off the hardware into c (its frame from f), with its virtual timer stopped
// so it cannot fire for the next one.
void vcpu_save(VcpuContext& c, const TrapFrame& f);
// c onto the hardware; f gets its frame, so returning from the trap resumes it.
void vcpu_load(const VcpuContext& c, TrapFrame& f);
// Enter the loaded vCPU for the first time (no trap to return from).
[[noreturn]] void vcpu_first_entry(const VcpuContext& c);

// Stage 2 and the traps for a guest: VTTBR (table + VMID), VTCR, HCR_EL2 (stage 2, interrupts
// and SMC and WFI/WFE to EL2), the timer's trap controls and CNTVOFF. `flush`: the VMID's
// stage-1+2 TLB entries dropped first (a guest's first entry).
void guest_traps_on(uint64_t vttbr, uint64_t vtcr, uint64_t cntvoff, bool flush);

// The virtual CPU interface: number of list registers (ICH_VTR_EL2.ListRegs + 1), the loaded
// vCPU's list registers read back and written, the underflow request (ICH_HCR_EL2.UIE).
unsigned ich_lrs();
void ich_read_lrs(uint64_t* lr, unsigned n);
void ich_write_lrs(const uint64_t* lr, unsigned n, bool underflow_irq);

// The guest's virtual timer (CNTV of the loaded vCPU): its expiry masked at the source once it
// fired (the guest unmasks it when it programs the next event, as Linux does).
bool vtimer_fired_and_mask();
// A saved vCPU's timer is due (enabled, unmasked, condition met at virtual count `vcount`).
bool vtimer_due(const VcpuContext& c, uint64_t vcount);
uint64_t virtual_count();

// Exceptions for the loaded vCPU, taken to its EL1 vector table at the trapping instruction.
void inject_undef(TrapFrame& f);
// A synchronous external abort on a data access (is_data; `write` sets ISS.WnR for a store) or an
// instruction fetch at `va`.
void inject_external_abort(TrapFrame& f, bool is_data, uint64_t va, bool write = false);

}  // namespace moat::arch
