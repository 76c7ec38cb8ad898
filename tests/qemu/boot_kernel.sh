#!/usr/bin/env bash
# The Image booted directly by QEMU (-kernel): QEMU loads it at RAM + 2 MiB, DTB in x0.
. tests/qemu/lib.sh
run_qemu boot_kernel 60 -- -kernel "$IMAGE"
expect_rc 0
expect_virt_discovery
expect_line "image:    0x0040200000-"
expect_line "moat: all checks passed; exit 0"

# The RAM comes from the tree, not from a constant: boot again with 1.5 GiB.
QEMU=("${QEMU[@]/1G/1536M}")
run_qemu boot_kernel_1536m 60 -- -kernel "$IMAGE"
expect_rc 0
expect_line "ram:      0x0040000000-0x009fffffff (1536 MiB)"
finish
