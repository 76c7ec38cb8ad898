// arm64 Image header and EL2 entry.
//
// The image is linked at 0 as a position-independent executable and relocates itself wherever
// a loader put it (QEMU's -kernel, U-Boot's booti/bootm may each choose a different address):
// it zeroes .bss, applies its R_AARCH64_RELATIVE relocations, installs the EL2 vectors and
// calls moat_main(dtb) with the device-tree address the loader passed in x0.

#define R_AARCH64_RELATIVE 1027

    .section .text.head, "ax"
    .globl _start
_start:
    b       entry                   // code0
    .long   0                       // code1
    .quad   0                       // text_offset: load at a 2 MiB-aligned base
    .quad   0                       // image_size: written after linking (tools/image-size.py), .bss included
    .quad   0xa                     // flags: little endian, 4 KiB pages, anywhere in RAM
    .quad   0, 0, 0                 // reserved
    .ascii  "ARM\x64"               // magic
    .long   0                       // no PE header

entry:
    msr     daifset, #0xf
    mov     x19, x0                 // DTB from the loader

    // FP/SIMD are not used by moat but may be by libc routines: do not trap them at EL2.
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    1f
    msr     cptr_el2, xzr
    isb
1:
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
2:  cmp     x1, x2
    b.hs    3f
    str     xzr, [x1], #8
    b       2b
3:
    adrp    x20, _start             // where we run; linked at 0, so also the relocation offset
    add     x20, x20, :lo12:_start
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
4:  cmp     x1, x2
    b.hs    6f
    ldp     x3, x4, [x1], #16       // r_offset, r_info
    ldr     x5, [x1], #8            // r_addend
    cmp     x4, #R_AARCH64_RELATIVE
    b.ne    5f
    add     x5, x5, x20
    str     x5, [x3, x20]
    b       4b
5:  mov     x0, x4                  // a relocation we cannot apply: report it from C
    mov     x1, x19
    b       7f
6:  mov     x0, #0
    mov     x1, x19
7:
    adrp    x2, boot_stack_top
    add     x2, x2, :lo12:boot_stack_top
    mov     sp, x2
    adrp    x2, el2_vectors
    add     x2, x2, :lo12:el2_vectors
    mrs     x3, CurrentEL
    cmp     x3, #(2 << 2)
    b.ne    8f
    msr     vbar_el2, x2
    msr     tpidr_el2, xzr          // logical CPU id 0 (arch::cpu_id) until cpu_init says otherwise
    isb
8:
    mov     x2, x20
    bl      moat_boot               // (bad_reloc_type, dtb, load_address)
9:  wfi
    b       9b

    .section .bss.stack, "aw", %nobits
    .balign 16
boot_stack:
    .space  32768
    .globl  boot_stack_top
boot_stack_top:
