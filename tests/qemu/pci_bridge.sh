#!/usr/bin/env bash
# PCI behind bridges: edu behind a PCIe root port (bus 1, numbered by moat) has requester id
# 0x0100, which the host bridge's iommu-map turns into stream 0x100; the root port's memory
# window holds edu's BAR, and the DMA and P2M selftests and the PV-IOMMU guest run on edu there.
# A pxb-pcie expander on the root bus is refused by name, its buses not walked.
# Then a tree whose host window (1 MiB) cannot hold what is behind a port (two edus, 2 MiB): the
# port is reported and left closed, both edus are blocked, and the root-bus edu still works.
. tests/qemu/lib.sh
ROOT_QEMU=("${QEMU[@]}")
# lib.sh's root-bus edu goes: the only edu is the one behind the port.
args=() prev=
for a in "${QEMU[@]}"; do
    if [ "$prev" = -device ]; then [ "$a" != edu ] && args+=(-device "$a"); prev=; continue; fi
    prev=$a
    [ "$a" = -device ] || args+=("$a")
done
QEMU=("${args[@]}")
run_qemu pci_bridge 120 -- -device pcie-root-port,id=rp0,chassis=1 -device edu,bus=rp0 -device pxb-pcie,id=pxb1,bus_nr=0x80 \
    -kernel "$IMAGE"
expect_rc 0
expect_line "pci:      00:01.0 1b36:000c class 060400, requester id 0x0008 -> stream 0x8; bridge to buses 1-1, window 0x10000000-0x100fffff"
expect_line "pci:      01:00.0 1234:11e8 class 00ff00, requester id 0x0100 -> stream 0x100"
expect_line "pci:      00:02.0 1b36:000b class 060000, requester id 0x0010 -> stream 0x10; a PCI expander bridge (pxb-pcie): the tree describes none of its buses"
expect_no_line "pci:      00:03.0 1234:11e8"
expect_line "dma selftest: edu stream 0x100 through smmuv3@9050000"
expect_line "ok     DMA RAM -> edu -> RAM through IOVA 0x1000000 and 0x1001000: all 2048 bytes arrived"
expect_line "fault: smmuv3@9050000 stream 0x100 write at 0x2000000: translation fault (F_TRANSLATION, code 0x10)"
if ! grep -qE '^dma selftest: [0-9]+ passed, 0 failed' "$LOG"; then echo "FAIL: the DMA selftest behind the port did not pass"; failures=$((failures + 1)); fi
if qemu_has_stage2; then
    expect_line "p2m selftest: a guest's default DMA domain on smmuv3@9050000 is the guest's own stage-2 table, shared with the CPU"
else
    expect_line "p2m selftest: a guest's default DMA domain on smmuv3@9050000 is a stage-1 table mirroring the guest's stage 2 (it has no stage 2)"
fi
expect_line "p2m selftest: 10 passed, 0 failed"
expect_line "(d1) guest: edu at 0x10000000, PCI 0000:01:00.0"
expect_line "(d1) guest: 26 passed, 0 failed"
expect_line "moat: all checks passed; exit 0"

base=$TEST_OUT/virt.dtb
dump_dtb "$base"
cp "$base" "$TEST_OUT/tight_window.dtb"
# ranges: I/O as QEMU gives it, the 32-bit memory window cut to 1 MiB, the 64-bit one as it is.
fdtput -t x "$TEST_OUT/tight_window.dtb" /pcie@10000000 ranges \
    1000000 0 0 0 3eff0000 0 10000  2000000 0 10000000 0 10000000 0 100000  3000000 80 0 80 0 80 0 ||
    { echo "FAIL: fdtput"; exit 1; }
QEMU=("${ROOT_QEMU[@]}")
run_qemu pci_bridge_tight 120 -- -device pcie-root-port,id=rp0,chassis=1 -device edu,bus=rp0,addr=0.0,multifunction=on \
    -device edu,bus=rp0,addr=0.1 -kernel "$IMAGE" -dtb "$TEST_OUT/tight_window.dtb"
expect_rc 0
expect_line "pci:      00:02.0 1b36:000c class 060400, requester id 0x0010 -> stream 0x10; bridge not configured: memory window exhausted: needs 0x200000, 0x100000 left in the host's window: the devices behind it stay blocked"
expect_line "pci:      01:00.0 1234:11e8 class 00ff00, requester id 0x0100 -> stream 0x100; blocked: behind a bridge moat could not configure"
expect_line "pci:      01:00.1 1234:11e8 class 00ff00, requester id 0x0101 -> stream 0x101; blocked: behind a bridge moat could not configure"
expect_line "dma selftest: edu stream 0x8 through smmuv3@9050000"
expect_line "p2m selftest: 10 passed, 0 failed"
expect_line "moat: all checks passed; exit 0"
finish
