#!/usr/bin/env bash
# QEMU's SMMUv3 and edu device, both real models nobody here wrote: edu's DMA is translated
# through a moat domain (IOVA != PA) and every byte checked; DMA to an unmapped IOVA and a write
# through a read-only mapping raise F_TRANSLATION / F_PERMISSION naming edu's stream and the
# IOVA; after unmap, detach and domain destruction the DMA faults and memory stays unchanged;
# mapping and unmapping 512 pages costs one range invalidation and one CMD_SYNC.
. tests/qemu/lib.sh
run_qemu smmu_dma 120 -- -kernel "$IMAGE"
expect_rc 0
expect_line "pci:      00:01.0 1234:11e8 class 00ff00, requester id 0x0008 -> stream 0x8"
# What this QEMU's SMMUv3 is: 7.2's is stage 1 only (IDR0.S2P clear), 10.0's nests.
if qemu_has_stage2; then
    expect_line "smmu_v3:  smmuv3@9050000 enabled: stage 1 yes, stage 2 yes,"
else
    expect_line "smmu_v3:  smmuv3@9050000 enabled: stage 1 yes, stage 2 no,"
fi
expect_line "every stream aborts until attached"
expect_line "gicv3:    distributor 0x8000000 ($GIC_LINES lines), redistributor 0x80a0000; interrupts on at EL2"
expect_line "timer:    CNTHP tick at 100 Hz on INTID 26"
expect_line "faults by interrupt, every stream aborts until attached"
expect_line "ok     DMA to unmapped IOVA 0x2000000 while the CPU waits in wfi: reported by the IOMMU's interrupt ("
expect_line "ok     a device faulting in a loop (40 DMAs, 64 faults): 8 lines, then one line for the 56 suppressed"
expect_line "storm: fault: 56 more faults suppressed (at most 8 lines per 60000 ms)"
expect_line "storm: fault: smmuv3@9050000 stream 0x8: 64 faults in one window; quarantine asked by policy"
expect_line "ok     the policy quarantined stream 0x8 after 64 faults: its later DMAs were blocked"
expect_line "ok     stream 0x8 attached again once the storm is over"
expect_line "ok     after the storm: DMA through IOVA 0x1001000 lands again"
if [ "$(grep -c '^  storm: fault: smmuv3@9050000 stream 0x8 write at 0x200000' "$LOG")" -ne 8 ]; then
    echo "FAIL: the storm printed other than 8 fault lines"; failures=$((failures + 1))
fi
expect_line "ok     edu answers (id 0x010000ed, liveness)"
expect_line "ok     DMA RAM -> edu -> RAM through IOVA 0x1000000 and 0x1001000: all 2048 bytes arrived"
expect_line "fault: smmuv3@9050000 stream 0x8 write at 0x2000000: translation fault (F_TRANSLATION, code 0x10)"
expect_line "ok     DMA to unmapped IOVA 0x2000000: translation fault reported for stream 0x8"
expect_line "fault: smmuv3@9050000 stream 0x8 write at 0x1002000: permission fault (F_PERMISSION, code 0x13)"
expect_line "ok     DMA write to read-only IOVA 0x1002000: permission fault, page unchanged"
expect_line "ok     after unmap of 0x1001000: DMA faults, memory unchanged"
expect_line "ok     after detach: DMA to 0x1000000 blocked, memory unchanged"
expect_line "ok     after destroy: DMA blocked, memory unchanged"
expect_line "ok     every table page back in the pool"
expect_line "figure: map 512 pages: 0 commands; unmap 512 pages: 2 commands (1 invalidation, 1 sync)"
# A guest's default DMA domain: on 10 its own stage-2 table (the STE's stage-2 fields read back:
# S2TTB is the P2M's root), the fault taken at stage 2 with the IPA; on 7.2 the stage-1 mirror.
if qemu_has_stage2; then
    expect_line "p2m selftest: a guest's default DMA domain on smmuv3@9050000 is the guest's own stage-2 table, shared with the CPU"
    expect_line "ok     the STE uses stage 2: S2VMID "
    expect_line "the P2M's own root (what VTTBR_EL2 takes)"
    expect_line "ok     IPA 0x802000 removed from the guest's stage 2: one flush, CPU (TLBI IPAS2E1IS, 1) and smmuv3@9050000 (1 invalidation, 1 sync)"
    expect_line "fault: smmuv3@9050000 stream 0x8 write at 0x802000: translation fault (F_TRANSLATION, code 0x10) at stage 2, IPA 0x802000"
    expect_line "the fault names it as a stage-2 fault with its IPA"
else
    expect_line "p2m selftest: a guest's default DMA domain on smmuv3@9050000 is a stage-1 table mirroring the guest's stage 2 (it has no stage 2)"
    expect_line "ok     the STE uses stage 1: ASID "
    expect_line "ok     IPA 0x802000 removed from the guest's stage 2 and from its mirror: one flush, CPU (TLBI IPAS2E1IS, 1) and smmuv3@9050000 (1 invalidation, 1 sync)"
    expect_line "the fault names it as a stage-1 fault (the mirror's)"
    expect_no_line "at stage 2, IPA"
fi
expect_line "ok     edu DMA through guest-physical addresses 0x800000 -> 0x801000: 2048 bytes at PA "
expect_line "ok     DMA to the removed IPA 0x802000 is blocked, the page unchanged"
expect_line "ok     every page back in the pool, tables and RAM"
expect_line "p2m selftest: 10 passed, 0 failed"
expect_line ", 0 failed; smmuv3@9050000 issued"
expect_no_line "FAILED"
expect_line "moat: all checks passed; exit 0"
finish
