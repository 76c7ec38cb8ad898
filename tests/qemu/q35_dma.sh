#!/usr/bin/env bash
# The DMA selftest on q35 with edu behind QEMU's VT-d (intel-iommu): the DMAR table read into
# the boot tree, the unit probed through the registry, edu's DMA translated through an IOVA that
# is not its address, the unmapped and read-only accesses faulting with VT-d's reason, DMA
# blocked after unmap, detach and destroy, every table page back. On QEMU 7.2 the unit has a
# 39-bit address width, on 10 48 bits; each is booted in legacy and scalable mode, 10 also in
# caching mode.
. tests/qemu/lib.sh

# dma_story NAME DEVICE-OPTIONS MODE WIDTH: one boot and the story it must tell.
dma_story() {
    local name=$1 opts=$2 mode=$3 width=$4
    run_q35 "$name" 60 -device "intel-iommu$opts" -device edu
    expect_rc 0
    expect_line "acpi:     DMAR at 0x"
    expect_line "host address width $width, 1 DRHD, 0 RMRR"
    expect_line "acpi:       DRHD 0xfed90000 segment 0"
    expect_line "iommu0 /iommu@fed90000"
    expect_line "compatible intel,vtd, #iommu-cells 1, driver vtd"
    expect_line "vtd:      iommu@fed90000 enabled: VT-d"
    expect_line "$mode mode"
    expect_line "every device blocked until attached"
    expect_line "pci:      00:01.0 1234:11e8 class 00ff00, requester id 0x0008 -> stream 0x8"
    expect_line "dma selftest: edu stream 0x8 through iommu@fed90000"
    expect_line "ok     DMA RAM -> edu -> RAM through IOVA 0x1000000 and 0x1001000: all 2048 bytes arrived"
    expect_line "fault: iommu@fed90000 stream 0x8 write at 0x2000000"
    expect_line "ok     DMA to unmapped IOVA 0x2000000: translation fault reported for stream 0x8"
    expect_line "fault: iommu@fed90000 stream 0x8 write at 0x1002000"
    expect_line "ok     DMA write to read-only IOVA 0x1002000: permission fault, page unchanged"
    expect_line "ok     after unmap of 0x1001000: DMA faults, memory unchanged"
    expect_line "ok     after detach: DMA to 0x1000000 blocked, memory unchanged"
    expect_line "ok     after destroy: DMA blocked, memory unchanged"
    expect_line "ok     every table page back in the pool"
    expect_line "unmap needs one range invalidation plus one sync"
    expect_line "dma selftest: 17 passed, 0 failed"
    expect_line "moat: all checks passed; exit 0"
    expect_no_line "FAILED"
}

if [ "${Q35_QEMU_MAJOR:-0}" -ge 10 ]; then
    dma_story q35_dma_legacy "" legacy 48
    expect_line "3-level/4-level tables (SAGAW 39 48, MGAW 48)"
    dma_story q35_dma_scalable ",x-scalable-mode=on" scalable 48
    dma_story q35_dma_caching ",caching-mode=on" legacy 48
    expect_line "caching mode on"
    expect_line "ok     512-page map needs the same invalidation as the unmap (caching mode)"
else
    dma_story q35_dma_legacy ",aw-bits=39" legacy 39
    expect_line "3-level tables (SAGAW 39, MGAW 39)"
    expect_line "ok     512-page map needs no invalidation"
    dma_story q35_dma_scalable ",x-scalable-mode=on" scalable 39
fi
finish
