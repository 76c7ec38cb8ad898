// Test guest entry at EL1, MMU off, x0 = its device tree (guest physical).
    .section .text.start, "ax"
    .globl _start
_start:
    mov     x19, x0
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:  adrp    x1, guest_stack_top
    add     x1, x1, :lo12:guest_stack_top
    mov     sp, x1
    mov     x0, x19
    bl      guest_main
3:  wfi
    b       3b

    .section .bss.stack, "aw", %nobits
    .balign 16
    .space  16384
    .globl  guest_stack_top
guest_stack_top:
