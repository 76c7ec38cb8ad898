// The parts of a vCPU switch C cannot write with -mgeneral-regs-only: FP/SIMD state, and the
// first entry into a vCPU from a frame (later entries return through vectors.S).

    .text
    .balign 4
// The guest's FP/SIMD registers while EL2 runs (one guest CPU: guests run on the boot CPU):
// q0..q31, then FPCR and FPSR. vectors.S fills it on every trap from a guest and reloads it
// before returning; a vCPU switch copies it to and from the vCPUs' contexts.
    .bss
    .balign 16
    .globl  moat_guest_fp
moat_guest_fp:
    .space  32 * 16 + 16
    .text

// fp_save_to(buffer): q0..q31, FPCR, FPSR into the buffer. Clobbers x2, x3 only.
    .globl  fp_save_to
fp_save_to:
    stp     q0, q1, [x0, #0]
    stp     q2, q3, [x0, #32]
    stp     q4, q5, [x0, #64]
    stp     q6, q7, [x0, #96]
    stp     q8, q9, [x0, #128]
    stp     q10, q11, [x0, #160]
    stp     q12, q13, [x0, #192]
    stp     q14, q15, [x0, #224]
    stp     q16, q17, [x0, #256]
    stp     q18, q19, [x0, #288]
    stp     q20, q21, [x0, #320]
    stp     q22, q23, [x0, #352]
    stp     q24, q25, [x0, #384]
    stp     q26, q27, [x0, #416]
    stp     q28, q29, [x0, #448]
    stp     q30, q31, [x0, #480]
    mrs     x2, fpcr
    mrs     x3, fpsr
    add     x0, x0, #512
    stp     x2, x3, [x0]
    sub     x0, x0, #512
    ret

// fp_load_from(buffer): the reverse. Clobbers x2, x3 only.
    .globl  fp_load_from
fp_load_from:
    ldp     q0, q1, [x0, #0]
    ldp     q2, q3, [x0, #32]
    ldp     q4, q5, [x0, #64]
    ldp     q6, q7, [x0, #96]
    ldp     q8, q9, [x0, #128]
    ldp     q10, q11, [x0, #160]
    ldp     q12, q13, [x0, #192]
    ldp     q14, q15, [x0, #224]
    ldp     q16, q17, [x0, #256]
    ldp     q18, q19, [x0, #288]
    ldp     q20, q21, [x0, #320]
    ldp     q22, q23, [x0, #352]
    ldp     q24, q25, [x0, #384]
    ldp     q26, q27, [x0, #416]
    ldp     q28, q29, [x0, #448]
    ldp     q30, q31, [x0, #480]
    add     x0, x0, #512
    ldp     x2, x3, [x0]
    sub     x0, x0, #512
    msr     fpcr, x2
    msr     fpsr, x3
    ret

// vcpu_enter_frame(const TrapFrame*): FP/SIMD from moat_guest_fp, x0..x30, ELR and SPSR from
// the frame, then eret.
    .globl  vcpu_enter_frame
vcpu_enter_frame:
    mov     x19, x0
    adrp    x0, moat_guest_fp
    add     x0, x0, :lo12:moat_guest_fp
    bl      fp_load_from
    mov     x0, x19
    ldp     x2, x3, [x0, #256]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0, #0]
    eret
