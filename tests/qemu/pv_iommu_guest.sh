#!/usr/bin/env bash
# The PV-IOMMU hypercall served at EL2 to a real EL1 guest (tests/qemu/guest) that drives edu's
# DMA through QEMU's SMMUv3: the guest's own result table, and moat's own report of the DMA
# fault and of the guest's exit, with every table page of its contexts back in the pool.
. tests/qemu/lib.sh
run_qemu pv_iommu_guest 120 -- -kernel "$IMAGE"
expect_rc 0
expect_line "guest:    domain 1, 16 MiB RAM at 0x40000000"
expect_line "(d1) guest: moat PV-IOMMU test guest at EL1"
# The guest's default DMA context, read back from edu's STE: on 10 the guest's own stage-2 P2M
# (S2TTB = VTTBR_EL2's root), on 7.2 a composed stage-1 table beside the P2M.
if qemu_has_stage2; then
    if ! grep -qE "^guest:    default DMA context = the guest's stage-2 P2M: STE stage 2, S2VMID [0-9]+, S2TTB (0x[0-9a-f]+) = VTTBR_EL2's root \1 " "$LOG"; then
        echo "FAIL: on QEMU $QEMU_VERSION the default context is not the guest's own stage 2"; failures=$((failures + 1))
    fi
else
    expect_line "guest:    default DMA context = a composed stage-1 table (smmuv3@9050000 has no stage 2): STE stage 1, ASID"
fi
expect_line "(d1) guest: edu at 0x10000000, PCI 0000:00:01.0"
for row in "query_capabilities" "init" "alloc_context" "reattach_device edu -> new context" "map_pages source" \
           "map_pages destination" "DMA RAM -> edu -> RAM" "unmap_pages destination" "DMA to the unmapped address is blocked" \
           "map_pages of 3000 pages" "unmap_pages of 3000 pages"; do
    if ! grep -E "^\(d1\)   $row +0  ok" "$LOG" >/dev/null; then echo "FAIL: guest row '$row' is not '0 ok'"; failures=$((failures + 1)); fi
done
for pair in "map_pages over a live mapping:-98" "unmap_pages of an unmapped address:-2" "map_pages of an MMIO frame:-1" \
            "map_pages of a frame beyond guest RAM:-2" "map_pages in a context never allocated:-22" \
            "map_pages in the default context:-22" "reattach_device of a device not ours:-19" \
            "map_pages with the struct outside RAM:-14" "unknown sub-op 77:-95" "remote_cmd from an unprivileged guest:-1" \
            "free_context while edu is attached:-16" "PSCI_VERSION through hvc #0:-1" "PSCI_VERSION through smc #0:-1"; do
    row=${pair%:*} want=${pair##*:}
    if ! grep -E "^\(d1\)   $row +$want  ok" "$LOG" >/dev/null; then echo "FAIL: guest row '$row' is not '$want ok'"; failures=$((failures + 1)); fi
done
expect_line "moat: fault: smmuv3@9050000 stream 0x8 write at 0x1001000: translation fault (F_TRANSLATION, code 0x10)"
expect_line "(d1) guest: 26 passed, 0 failed"
# The guest's console is its own: a line it writes cannot pass for one of moat's.
expect_line "(d1) moat: forged by the guest"
if grep -qE "^moat: forged" "$LOG"; then echo "FAIL: a guest line reads as moat's"; failures=$((failures + 1)); fi
expect_line "moat: guest exited with status 0 after 23 iommu_op calls (2 continued)"
expect_no_line "FAILED"
expect_no_line "leaked"
if ! grep -E "page pool ([0-9]+) pages in use \(\1 before" "$LOG" >/dev/null; then
    echo "FAIL: the guest's contexts did not give every page back"; failures=$((failures + 1))
fi
if ! grep -qE "^moat: all checks passed; exit 0" "$LOG"; then echo "FAIL: moat's own verdict line is missing"; failures=$((failures + 1)); fi
finish
