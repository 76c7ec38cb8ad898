#!/usr/bin/env bash
# QEMU virt with gic-version=3, but a tree whose GICv3 node moat cannot use (its redistributor
# region removed from `reg`): moat says so naming the node, leaves interrupts off, and every
# IOMMU polls; the DMA story and the guest still pass (exit 0), without the interrupt steps.
# Then a tree whose SMMU names an SPI beyond what GICD_TYPER reports: that line is refused, the
# SMMU polls and says which line and why, and the story passes all the same.
. tests/qemu/lib.sh
base=$TEST_OUT/virt.dtb
dump_dtb "$base"
gic=$(fdtget -l "$base" / | grep '^intc@' | head -n 1)
[ -n "$gic" ] || { echo "FAIL: no intc node in QEMU's tree"; exit 1; }
cp "$base" "$TEST_OUT/gic_bad.dtb"
fdtput -t x "$TEST_OUT/gic_bad.dtb" "/$gic" reg 0 0x08000000 0 0x10000 || { echo "FAIL: fdtput"; exit 1; }
run_qemu gic_unusable 60 -- -kernel "$IMAGE" -dtb "$TEST_OUT/gic_bad.dtb"
expect_rc 0
expect_line "gicv3:    /$gic: reg must give the distributor and a redistributor region"
expect_line "interrupts stay off, every IOMMU polls for faults"
expect_line "faults polled, every stream aborts until attached"
expect_no_line "while the CPU waits in wfi"
expect_line "dma selftest: 17 passed, 0 failed"
expect_line "moat: all checks passed; exit 0"

cp "$base" "$TEST_OUT/spi_beyond.dtb"
# eventq at SPI 300 (INTID 332): QEMU's GIC has 256 lines (7.2) or 288 (10.0).
fdtput -t x "$TEST_OUT/spi_beyond.dtb" /smmuv3@9050000 interrupts 0 0x12c 1 0 0x4b 1 0 0x4c 1 0 0x4d 1 ||
    { echo "FAIL: fdtput"; exit 1; }
run_qemu gic_spi_beyond 60 -- -kernel "$IMAGE" -dtb "$TEST_OUT/spi_beyond.dtb"
expect_rc 0
expect_line "gicv3:    distributor 0x8000000 ($GIC_LINES lines)"
expect_line "faults polled (fault interrupt INTID 332 refused by gicv3 (out of range)), every stream aborts until attached"
expect_line "moat: all checks passed; exit 0"
finish
