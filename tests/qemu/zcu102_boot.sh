#!/usr/bin/env bash
# The ZCU102 image (BOARD=zcu102: Cadence UART console, RAM from 0) on QEMU's own xlnx-zcu102
# machine, with our ZCU102 tree. QEMU models no MMU-500, so the driver must find the registers
# empty, refuse the SMMU naming its node, leave its 25 masters blocked and finish with status 2.
. tests/qemu/lib.sh
make -s image BOARD=zcu102 >/dev/null 2>&1 || { echo "FAIL: make image BOARD=zcu102"; exit 1; }
Z=build/zcu102
LOG=$TEST_OUT/zcu102_boot.log
tools/qemu-run.py --timeout 60 --log "$LOG" -- "$QEMU_SYSTEM_AARCH64" -M xlnx-zcu102,virtualization=on -m 2G -nographic \
    -semihosting -kernel $Z/Image -dtb $Z/board.dtb >/dev/null 2>&1
rc=$?
expect_rc 2
expect_line "(zcu102), an IOMMU-aware microhypervisor"
expect_line "cpu:      EL2"
expect_line "compatible arm,mmu-500, #iommu-cells 1, driver smmu_v2"
expect_line "reg   0x00fd800000 size 0x20000"
expect_line "master /axi/ethernet@ff0b0000: stream id 0x874 (iommus)"
expect_line "master /axi/dma-controller@fd570000: stream id 0x14ef (iommus)"
if [ "$(grep -c 'master /axi/' "$LOG")" -ne 28 ]; then echo "FAIL: expected 28 streams behind the MMU-500"; failures=$((failures + 1)); fi
if [ "$(grep -o 'master /axi/[^:]*' "$LOG" | sort -u | wc -l)" -ne 25 ]; then echo "FAIL: expected 25 masters"; failures=$((failures + 1)); fi
expect_line "smmu_v2: /axi/iommu@fd800000: ID1 is inconsistent: 0 context banks"
expect_line "its masters stay blocked"
expect_line "moat: 0 device-tree and 1 IOMMU problem(s); affected devices left blocked; exit 2"
finish
