/* The 32 exception vectors: each stub pushes an error code where the CPU pushes none (so every
 * frame looks alike), then its vector number, saves the general registers and calls
 * x86_trap(frame) (arch/x86_64/exception.cpp). The handler reports and ends the run; if it ever
 * returns, the registers come back and iretq resumes. */

    .macro VEC n, err
    .balign 16
vec_\n:
    .if \err == 0
    pushq   $0
    .endif
    pushq   $\n
    jmp     vec_common
    .endm

    .text
    .code64
    VEC 0, 0
    VEC 1, 0
    VEC 2, 0
    VEC 3, 0
    VEC 4, 0
    VEC 5, 0
    VEC 6, 0
    VEC 7, 0
    VEC 8, 1
    VEC 9, 0
    VEC 10, 1
    VEC 11, 1
    VEC 12, 1
    VEC 13, 1
    VEC 14, 1
    VEC 15, 0
    VEC 16, 0
    VEC 17, 1
    VEC 18, 0
    VEC 19, 0
    VEC 20, 0
    VEC 21, 1
    VEC 22, 0
    VEC 23, 0
    VEC 24, 0
    VEC 25, 0
    VEC 26, 0
    VEC 27, 0
    VEC 28, 0
    VEC 29, 1
    VEC 30, 1
    VEC 31, 0

vec_common:
    pushq   %rax
    pushq   %rbx
    pushq   %rcx
    pushq   %rdx
    pushq   %rsi
    pushq   %rdi
    pushq   %rbp
    pushq   %r8
    pushq   %r9
    pushq   %r10
    pushq   %r11
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    mov     %rsp, %rdi
    cld
    call    x86_trap
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %r11
    popq    %r10
    popq    %r9
    popq    %r8
    popq    %rbp
    popq    %rdi
    popq    %rsi
    popq    %rdx
    popq    %rcx
    popq    %rbx
    popq    %rax
    add     $16, %rsp               /* vector and error code */
    iretq

    .section .rodata
    .balign 8
    .globl x86_vector_stubs
x86_vector_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad vec_\n
    .endr

    .section .note.GNU-stack, "", @progbits
