#!/usr/bin/env bash
# Hostile trees (tests/dt/hostile: the red team's inputs and saved fuzzer timeouts and crashes)
# through the image's boot step 1. QEMU's own libfdt hangs on some of them, so `-dtb` cannot
# carry them: QEMU's loader puts each at 0x60000000 and `moat.selftest=dtb@0x60000000` makes
# moat open it as it opens the tree it is handed. Each must be refused with status 3, in time.
. tests/qemu/lib.sh
for h in tests/dt/hostile/*.dtb; do
    name=hostile_$(basename "$h" .dtb)
    run_qemu "$name" 30 -- -kernel "$IMAGE" -append "moat.selftest=dtb@0x60000000" \
        -device loader,file="$h",addr=0x60000000,force-raw=on
    expect_rc 3
    expect_line "selftest: boot step 1 on the device tree at 0x60000000"
    expect_line "moat: device tree"
    expect_line "; cannot continue"
    expect_no_line "was accepted"
done
LOG=$TEST_OUT/hostile_prop_len_fffffff4.log
expect_line "has length 0xfffffff4, past the end of the structure block; cannot continue"
LOG=$TEST_OUT/hostile_v4_root_without_slash.log
expect_line "device tree version 4 (compatible with 4) unsupported"
finish
