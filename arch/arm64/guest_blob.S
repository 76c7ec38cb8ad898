// The PV-IOMMU test guest (tests/qemu/guest), built first and carried inside the image so that
// `make run` and the QEMU tests can boot it without a loader.
    .section .rodata.guest, "a"
    .balign 4096
    .globl  test_guest_start
    .globl  test_guest_end
test_guest_start:
    .incbin "guest.bin"
test_guest_end:
