/* moat's x86_64 entry. QEMU's -kernel loads this ELF at its link address and, finding the PVH
 * note, enters pvh_start in 32-bit protected mode (paging off, interrupts off, no stack) with
 * EBX = the physical address of the hvm_start_info. We clear .bss, build an identity map of
 * the low 4 GiB in 2 MiB pages (the first 2 GiB write-back RAM, the rest uncached: ECAM, the
 * PCI window, the IOMMU, LAPIC/IOAPIC), enter long mode and call moat_boot(start_info). */

#define XEN_ELFNOTE_PHYS32_ENTRY 18

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                         /* name size: "Xen\0" */
    .long 8                         /* descriptor size: 8 bytes for an ELF64 */
    .long XEN_ELFNOTE_PHYS32_ENTRY
    .asciz "Xen"
    .balign 4
    .quad pvh_start
    .balign 4

    .section .text.head, "ax"
    .code32
    .globl pvh_start
pvh_start:
    cli
    cld
    mov     %ebx, %esi              /* keep the start info across what follows */

    mov     $__bss_start, %edi
    mov     $__bss_end, %ecx
    sub     %edi, %ecx
    xor     %eax, %eax
    rep stosb

    /* PML4[0] -> PDPT; PDPT[0..3] -> the four page directories */
    mov     $boot_pdpt, %eax
    or      $0x3, %eax              /* present, writable */
    mov     %eax, boot_pml4
    mov     $boot_pd, %eax
    or      $0x3, %eax
    xor     %ecx, %ecx
1:  mov     %eax, boot_pdpt(,%ecx,8)
    add     $4096, %eax
    inc     %ecx
    cmp     $4, %ecx
    jne     1b

    /* 2048 entries of 2 MiB: present, writable, large; PCD|PWT from 2 GiB up */
    xor     %ecx, %ecx
2:  mov     %ecx, %eax
    shl     $21, %eax
    or      $0x83, %eax
    cmp     $1024, %ecx
    jb      3f
    or      $0x18, %eax
3:  mov     %eax, boot_pd(,%ecx,8)
    inc     %ecx
    cmp     $2048, %ecx
    jne     2b

    mov     %cr4, %eax
    or      $(1 << 5), %eax         /* PAE */
    mov     %eax, %cr4
    mov     $boot_pml4, %eax
    mov     %eax, %cr3
    mov     $0xc0000080, %ecx       /* EFER */
    rdmsr
    or      $(1 << 8), %eax         /* LME */
    wrmsr
    mov     %cr0, %eax
    or      $0x80000001, %eax       /* PG, PE */
    mov     %eax, %cr0

    lgdt    boot_gdt_ptr
    ljmp    $0x08, $long_entry

    .code64
long_entry:
    mov     $0x10, %eax
    mov     %eax, %ds
    mov     %eax, %es
    mov     %eax, %ss
    xor     %eax, %eax
    mov     %eax, %fs
    mov     %eax, %gs
    lea     boot_stack_top(%rip), %rsp
    xor     %ebp, %ebp
    mov     %esi, %edi              /* zero-extended: the start info's address */
    call    moat_boot
4:  cli
    hlt
    jmp     4b

    .section .rodata
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff        /* 0x10: data */
boot_gdt_end:
    .balign 8
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
    .globl boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4 * 4096
    .balign 16
boot_stack: .skip 64 * 1024
boot_stack_top:

    .section .note.GNU-stack, "", @progbits
