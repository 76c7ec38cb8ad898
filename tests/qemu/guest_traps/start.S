// The trap-test guest's entry: an arm64 Image header (so moat's loader takes it as a
// multiboot,kernel module), a stack, its own EL1 vectors, then traps_main; PSCI SYSTEM_OFF
// when that returns. Position-independent: moat places it at RAM base + text_offset.
    .section .text.head, "ax"
    .global _start
_start:
    b       entry                   // code0
    .long   0                       // code1
    .quad   0                       // text_offset: at the start of RAM
    .quad   image_end - _start      // image_size (with the stack)
    .quad   0x2                     // flags: little-endian, 4 KiB pages
    .quad   0, 0, 0                 // res2..res4
    .ascii  "ARM\x64"               // magic, at offset 56
    .long   0                       // res5
entry:
    adr     x1, __bss_start         // moat need not zero what the Image file does not hold
    adr     x2, __bss_end
2:  cmp     x1, x2
    b.hs    3f
    str     xzr, [x1], #8
    b       2b
3:  adr     x1, stack_top
    mov     sp, x1
    adr     x1, vectors
    msr     vbar_el1, x1
    isb
    bl      traps_main
    ldr     x0, =0x84000008         // PSCI SYSTEM_OFF
    hvc     #0
1:  wfi
    b       1b
    .ltorg

// Synchronous exceptions from EL1 with SP_EL1 (the only ones this program expects): record
// ESR/ELR/FAR and how many were taken in g_trap, step over the instruction, return. Anything
// else is counted in g_trap.other and returned from unchanged once (the checks then fail).
    .balign 2048
vectors:                            // 16 entries of 0x80 bytes
    .irp n, 0, 1, 2, 3
    .org    vectors + \n * 0x80
    b       other
    .endr
    .org    vectors + 4 * 0x80          // 0x200: current EL with SP_ELx, synchronous
    b       sync
    .irp n, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .org    vectors + \n * 0x80
    b       other
    .endr
    .org    vectors + 16 * 0x80
sync:
    stp     x0, x1, [sp, #-16]!
    adr     x0, g_trap
    mrs     x1, esr_el1
    str     x1, [x0, #0]
    mrs     x1, elr_el1
    str     x1, [x0, #8]
    mrs     x1, far_el1
    str     x1, [x0, #16]
    ldr     x1, [x0, #24]
    add     x1, x1, #1
    str     x1, [x0, #24]
    mrs     x1, elr_el1
    add     x1, x1, #4
    msr     elr_el1, x1
    ldp     x0, x1, [sp], #16
    eret
other:
    stp     x0, x1, [sp, #-16]!
    adr     x0, g_trap
    ldr     x1, [x0, #32]
    add     x1, x1, #1
    str     x1, [x0, #32]
    mrs     x1, esr_el1
    str     x1, [x0, #40]
    ldp     x0, x1, [sp], #16
    ldr     x0, =0x84000008         // PSCI SYSTEM_OFF: an exception this program did not expect
    hvc     #0
    b       .
    .ltorg

    .data
    .balign 8
    .global g_trap
g_trap:
    .quad   0, 0, 0, 0, 0, 0        // esr, elr, far, taken, other, other_esr
    .bss
    .balign 16
    .space  8192
stack_top:
