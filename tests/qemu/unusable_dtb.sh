#!/usr/bin/env bash
# A tree moat must not trust: QEMU's virt tree padded to 3 MiB, beyond the 2 MiB a device tree
# may have (passed with -dtb). The image must say why and stop cleanly with status 3, before
# it reads anything from the tree.
. tests/qemu/lib.sh
base=$TEST_OUT/virt.dtb
dump_dtb "$base"
dtc -q -I dtb -O dtb -p 3145728 -o "$TEST_OUT/huge.dtb" "$base" || { echo "FAIL: dtc"; exit 1; }
run_qemu unusable_dtb 60 -- -kernel "$IMAGE" -dtb "$TEST_OUT/huge.dtb"
expect_rc 3
expect_line "moat: device tree too large or truncated: header says"
expect_line "at most 2097152 available; cannot continue"
expect_no_line "iommus:"
finish
