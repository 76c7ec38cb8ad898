// EL2 exception vectors. Every entry saves the interrupted context into a frame on the EL2
// stack and calls el2_trap(frame, vector_index). Traps from the guest (hypercalls) return:
// the frame, possibly changed (x0 = result, ELR), is restored and the guest resumed with eret.
// Exceptions moat does not expect never return from el2_trap: they are reported and end the run.

    .macro  entry idx
    .balign 0x80
    sub     sp, sp, #(34 * 8)
    stp     x0, x1, [sp, #0]
    mov     x0, #\idx
    b       save_and_trap
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
    .globl  el2_vectors
el2_vectors:
    entry 0     // current EL, SP_EL0: sync
    entry 1     //                     irq
    entry 2     //                     fiq
    entry 3     //                     serror
    entry 4     // current EL, SP_ELx: sync
    entry 5
    entry 6
    entry 7
    entry 8     // lower EL, AArch64: sync (hypercalls arrive here)
    entry 9
    entry 10
    entry 11
    entry 12    // lower EL, AArch32
    entry 13
    entry 14
    entry 15

save_and_trap:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    add     x2, sp, #(34 * 8)
    stp     x30, x2, [sp, #240]     // lr, sp before the exception
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [sp, #256]
    mov     x1, x0
    mov     x19, x0                 // the vector, kept across the call (x19 is in the frame)
    // From a guest (vectors 8..15): its FP/SIMD registers go to moat_guest_fp first, since
    // the C library moat calls (memset, strlen) uses them. Back in the guest, they come back.
    cmp     x1, #8
    b.lo    1f
    adrp    x0, moat_guest_fp
    add     x0, x0, :lo12:moat_guest_fp
    bl      fp_save_to
    mov     x1, x19
1:  mov     x0, sp
    bl      el2_trap
    cmp     x19, #8
    b.lo    2f
    adrp    x0, moat_guest_fp
    add     x0, x0, :lo12:moat_guest_fp
    bl      fp_load_from
2:
    // Resume what trapped, with whatever the handler changed in the frame.
    ldp     x2, x3, [sp, #256]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #240]
    add     sp, sp, #(34 * 8)
    eret
