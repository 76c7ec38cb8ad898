#!/usr/bin/env bash
# Debian's U-Boot loads the Image from QEMU's fw_cfg (its qfw boot target) and runs booti,
# which moves it to kernel_addr_r: the image must run where it was not first loaded.
. tests/qemu/lib.sh
run_qemu boot_uboot_booti 120 -- -bios "$UBOOT" -kernel "$IMAGE"
expect_rc 0
expect_line "U-Boot 20"
expect_line "Starting kernel"
expect_virt_discovery
expect_line "image:    0x0040400000-"
expect_line "moat: all checks passed; exit 0"
finish
