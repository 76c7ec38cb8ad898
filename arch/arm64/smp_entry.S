// Secondary CPU entry: where PSCI CPU_ON starts a CPU (at EL2, MMU and caches off, x0 = the
// context id, which moat makes the CPU's logical id).
//
// Nothing here touches memory through the stack or the data cache before the MMU is on: with
// the MMU off every access goes to memory, and a line of the same memory that another CPU's
// cache still holds (speculatively fetched, say) would hide those writes once caches are on. So
// the MMU goes on first, from moat_mmu_regs (which the boot CPU cleaned to memory), then this
// CPU takes its stack from moat_cpu_stacks and calls moat_secondary(id) with its vectors set.

    .section .text.smp, "ax"
    .globl  secondary_entry
secondary_entry:
    msr     daifset, #0xf
    mov     x19, x0                     // logical CPU id
    msr     cptr_el2, xzr               // FP/SIMD untrapped, as on the boot CPU
    msr     tpidr_el2, x19              // arch::cpu_id() from the first C statement on
    adrp    x1, el2_vectors
    add     x1, x1, :lo12:el2_vectors
    msr     vbar_el2, x1
    isb

    // The boot CPU's EL2 map: MAIR, TCR, TTBR0, then SCTLR.M/C/I with alignment checks off.
    adrp    x1, moat_mmu_regs
    add     x1, x1, :lo12:moat_mmu_regs
    ldr     x2, [x1]
    ldr     x3, [x1, #8]
    ldr     x4, [x1, #16]
    dsb     ish
    tlbi    alle2
    dsb     ish
    isb
    msr     mair_el2, x2
    msr     tcr_el2, x3
    msr     ttbr0_el2, x4
    isb
    ic      iallu                       // nothing stale in this CPU's instruction cache
    mrs     x2, sctlr_el2
    mov     x3, #((1 << 0) | (1 << 2) | (1 << 12))  // M, C, I
    orr     x2, x2, x3
    bic     x2, x2, #(1 << 1)           // A: no alignment checking on Normal memory
    msr     sctlr_el2, x2
    isb

    // Stack: the top of CPU id's is moat_cpu_stacks + (id + 1) * 16 KiB (kStackBytes in smp.cpp).
    adrp    x1, moat_cpu_stacks
    add     x1, x1, :lo12:moat_cpu_stacks
    mov     x2, #0x4000
    add     x3, x19, #1
    madd    x1, x2, x3, x1
    mov     sp, x1
    mov     x0, x19
    bl      moat_secondary              // never returns
1:  wfi
    b       1b
