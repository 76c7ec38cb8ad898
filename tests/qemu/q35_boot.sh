#!/usr/bin/env bash
# The x86_64 image on QEMU q35: PVH entry, long mode, COM1, the ACPI tables read into the boot
# tree, and the portable flow to its verdict (no IOMMU on this machine: nothing to drive).
. tests/qemu/lib.sh
run_q35 q35_boot 60 -device edu
expect_rc 0
expect_line "(q35), an IOMMU-aware microhypervisor"
expect_line "cpu:      long mode"
expect_line "pvh:      start info at"
expect_line "acpi:     RSDP 0xf"
expect_line "MCFG"
expect_line "acpi:     MCFG segment 0 buses 0-255, ECAM 0xb0000000 (256 MiB)"
expect_line "ram:      0x0000100000-0x001ffdefff (510 MiB)"
expect_line "pool:     "
expect_line "iommus: 0 found"
expect_line "moat: all checks passed; exit 0"
expect_line "acpi:     no DMAR: no VT-d unit"
finish
