#!/usr/bin/env bash
# A FIT image (Image + DTB, built with mkimage) placed in RAM by QEMU's loader device and
# booted with bootm typed at U-Boot's prompt.
. tests/qemu/lib.sh
FIT=$IMG_OUT/moat.itb
[ -f "$FIT" ] || { echo "FAIL: $FIT not built"; exit 1; }
run_qemu boot_uboot_fit 120 --on "Hit any key to stop autoboot" "\n" --on "=> " "bootm 0x44000000\n" -- \
    -bios "$UBOOT" -device loader,file="$FIT",addr=0x44000000,force-raw=on
expect_rc 0
expect_line "Using 'conf-1' configuration"
expect_line "Verifying Hash Integrity"
expect_line "Starting kernel"
expect_virt_discovery
expect_line "moat: all checks passed; exit 0"
finish
