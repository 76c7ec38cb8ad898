#!/usr/bin/env bash
# PCI passthrough to Debian's arm64 Linux as a dom0less guest of moat, on QEMU 7.2's virt with its
# stage-1-only SMMUv3. The guest's GIC has no ITS, so its devices use INTx through moat's virtual
# GIC (the host keeps its ITS: QEMU 7.2's edu refuses to start without an MSI controller,
# "MSI is not supported by interrupt controller", so -machine its=off is not an option). The guest gets
# virtio-blk-pci (disable-legacy=on,iommu_platform=on: Linux's driver uses the DMA API, the
# device's reads and writes go through the SMMU) at 00:02.0 and edu at 00:03.0; pci-testdev at
# 00:04.0 stays moat's. Guest RAM is at guest-physical 0x80000000, which is not host RAM, so
# correct data proves the SMMU translated through moat's DMA domain.
# Asserted: moat's DMA domain report (stream, pages), the guest sees exactly the two functions,
# the checksum of the 8 MiB of pseudo-random data the test wrote, the block written and read
# back (and found in the host's disk file), the virtio interrupt counting, edu's DMA from user
# space into the guest's moat,reserved-memory carve-out (bytes arrive) and into moat's image
# (faults, unchanged), the aborts of the SMMU's registers and the unmapped window, the guest's
# view of an unassigned function's config space, teardown giving every page back, exit 0. Printed: the guest's boot-to-poweroff time.
. tests/qemu/lib.sh
linux_ready
kver=$(cut -d' ' -f1 "$LINUX/VERSION")
dir=$TEST_OUT/linux_passthrough
mkdir -p "$dir"
initrd=$dir/initramfs.cpio.gz
tools/mkinitramfs.py --busybox "$LINUX/busybox" --modules "$LINUX/modules" --init tests/qemu/passthrough.init "$initrd" \
    >/dev/null || { echo "FAIL: mkinitramfs"; exit 1; }
disk=$dir/disk.img
python3 - "$disk" <<'PY'
import random, sys
r = random.Random(14)
with open(sys.argv[1], "wb") as f:
    f.write(bytes(r.getrandbits(8) for _ in range(8 << 20)))
    f.write(bytes(8 << 20))
PY
sum=$(head -c $((8 << 20)) "$disk" | md5sum | cut -d' ' -f1)

# EDU_OUT: moat's own image (host PA 0x40200000, -kernel's load address), outside the guest's RAM.
# EDU_IN: the guest's moat,reserved-memory carve-out (64 KiB of its RAM, no-map to Linux).
linux_config linux_passthrough 1 "$initrd" "console=ttyAMA0 quiet EDU_OUT=0x40200000 EDU_IN=0x84000000" || { echo "FAIL: moat-imagebuilder"; exit 1; }
# The config linux_config wrote, with the guest's functions and its RAM away from host RAM.
cfg=$TEST_OUT/linux_passthrough/guest.cfg
printf 'pci = 0000:00:02.0 0000:00:03.0\nram-base = 0x80000000\nreserved-memory = 0x84000000 64K\n' >> "$cfg"
MOAT_DT=${MOAT_DT:-build/host/moat-dt} tools/imagebuilder/moat-imagebuilder "$cfg" -o "$dir/out" >"$dir/imagebuilder.log" 2>&1 ||
    { cat "$dir/imagebuilder.log"; echo "FAIL: moat-imagebuilder with pci"; exit 1; }
LINUX_ARGS="-smp 1 $(tr '\n' ' ' < "$dir/out/qemu.args")"
QEMU=("$QEMU_SYSTEM_AARCH64" -machine "$MACHINE" -cpu cortex-a57 -m 1G -nographic -nic none -semihosting
      -drive "if=none,id=d0,file=$disk,format=raw"
      -device "virtio-blk-pci,drive=d0,disable-legacy=on,iommu_platform=on,addr=02.0"
      -device "edu,addr=03.0,dma_mask=0xffffffffffff" -device "pci-testdev,addr=04.0")
# shellcheck disable=SC2086
run_qemu linux_passthrough 240 -- -kernel "$IMAGE" $LINUX_ARGS
expect_rc 0
expect_line "guest:    domU1: 0000:00:02.0 1af4:1042 passed through"
expect_line "guest:    domU1: 0000:00:03.0 1234:11e8 passed through"
expect_line "passthrough: domU1: DMA domain"
expect_line "IOVA = guest-physical [0x80000000, 0x88000000) -> PA 0x"
expect_line "32768 pages; streams 0x10 (0000:00:02.0) 0x18 (0000:00:03.0)"
expect_line "(domU1) moat-guest: uname -r: $kver"
expect_line "(domU1) moat-guest: virtio modules loaded"
n=$(grep -c '^(domU1) moat-guest: pci ' "$LOG")
if [ "$n" -ne 2 ]; then echo "FAIL: the guest lists $n PCI functions, expected 2 (log: $LOG)"; failures=$((failures + 1)); fi
expect_line "(domU1) moat-guest: pci 0000:00:02.0 0x1af4:0x1042"
expect_line "(domU1) moat-guest: pci 0000:00:03.0 0x1234:0x11e8"
expect_no_line "(domU1) moat-guest: pci 0000:00:04.0"
expect_line "(domU1) moat-guest: vda: 32768 sectors"
expect_line "(domU1) moat-guest: checksum $sum"
expect_line "(domU1) moat-guest: read back: moat-roundtrip-block-0123456789abcdef"
if ! dd if="$disk" bs=512 skip=16384 count=1 2>/dev/null | grep -q moat-roundtrip-block-0123456789abcdef; then
    echo "FAIL: the block the guest wrote is not in the host's disk file"; failures=$((failures + 1))
fi
# The negative: edu's DMA into moat's image faults, is reported against the guest, changes nothing.
expect_line "(domU1) moat-guest: edu liveness 0xA5A5A5A5"
expect_line "guest:    domU1: moat,reserved-memory [0x84000000, 0x84010000): guest RAM (stage 2 and DMA domain), no-map to its kernel"
expect_line "(domU1) moat-guest: edu dma inside RAM: 0x600DCAFE 0x5EED1234"
expect_line "moat: guest domU1: DMA fault from 0000:00:03.0: stream 0x18, write at IOVA (guest-physical) 0x40200000"
expect_line "moat: the faulting address 0x40200000 is moat's own code (PA [0x40200000, 0x"
expect_line "unchanged (FNV-1a"
expect_line "(domU1) moat-guest: edu dma outside RAM done; still running"
expect_no_line "CHANGED"
# Bad behaviour: the SMMU's registers and the window outside the BARs are not the guest's.
expect_line "moat: guest domU1: read at IPA 0x9050000"
expect_line "moat: guest domU1: read at IPA 0x10110000"
expect_line "(domU1) moat-guest: devmem of the SMMU's registers: status 135"
expect_line "(domU1) moat-guest: devmem of the window outside the BARs: status 135"
# The carve-out is "reserved" to Linux, not System RAM. An unassigned function's config space
# reads as absent when /dev/mem lets the guest reach the ECAM; Debian's kernel refuses (the bridge
# driver holds the ECAM busy): then that refusal is what the guest sees, and moat stays up either way.
expect_line "(domU1) moat-guest: iomem 84000000-8400ffff : reserved"
if grep -qF "(domU1) moat-guest: ecam 00:04.0 id devmem: mmap: Operation not permitted (status 1)" "$LOG"; then
    echo "note: /dev/mem refuses the guest's ECAM (busy: IO_STRICT_DEVMEM); the trap is tested in tests/unit/vpci_test.cpp"
    expect_line "(domU1) moat-guest: ecam 00:03.0 id devmem: mmap: Operation not permitted"
else
    expect_line "(domU1) moat-guest: ecam 00:03.0 id 0x11E81234"
    expect_line "(domU1) moat-guest: ecam 00:04.0 id 0xFFFFFFFF (status 0)"
fi
expect_line "moat: guest domU1 powered off (PSCI SYSTEM_OFF) after"
# INTx from the physical line (moat forwards host SPIs 5 and 6, level; no polling): moat counts
# the arrivals per line, the guest's virtio-blk line counted interrupts, and edu's, raised by
# devmem, reached the guest's uio_pci_generic each time.
expect_line "guest:    domU1: 0000:00:02.0 INTA: host SPI 5 (INTID 37, level) forwarded as its INTID 37"
expect_line "guest:    domU1: 0000:00:03.0 INTA: host SPI 6 (INTID 38, level) forwarded as its INTID 38"
expect_line "(domU1) moat-guest: edu irq via uio: 3 of 3"
fwd=$(sed -n 's/^moat: guest domU1: \([0-9]*\) physical interrupts forwarded on 2 lines; 00:02.0 SPI 5: \([0-9]*\), 00:03.0 SPI 6: \([0-9]*\); masked and released: 2.*/\1 \2 \3/p' "$LOG")
read -r fwd_all fwd_blk fwd_edu <<<"${fwd:-0 0 0}"
if [ "$fwd_blk" -lt 1 ] || [ "$fwd_edu" -lt 3 ] || [ "$fwd_all" -ne $((fwd_blk + fwd_edu)) ]; then
    echo "FAIL: moat's count of forwarded physical interrupts: '${fwd:-none}' (virtio-blk >= 1, edu >= 3 expected)"
    failures=$((failures + 1))
fi
virq=$(sed -n 's/^(domU1) moat-guest: irq *[0-9]*: *\([0-9]*\) .*virtio0.*/\1/p' "$LOG" | head -n 1)
if [ "${virq:-0}" -lt 1 ]; then echo "FAIL: the guest's virtio-blk interrupt count is '${virq:-none}'"; failures=$((failures + 1)); fi
uirq=$(sed -n 's/^(domU1) moat-guest: irq *[0-9]*: *\([0-9]*\) .*uio_pci_generic.*/\1/p' "$LOG" | head -n 1)
if [ "${uirq:-0}" -lt 3 ]; then echo "FAIL: the guest's uio (edu) interrupt count is '${uirq:-none}'"; failures=$((failures + 1)); fi
echo "figure: physical INTx forwarded: ${fwd_blk} on virtio-blk's SPI 5 (guest counted ${virq:-?}), ${fwd_edu} on edu's SPI 6 (guest counted ${uirq:-?})"
expect_line "passthrough: DMA domain"
expect_line "2 streams detached to abort: ok"
expect_line "moat: guest domU1: DMA domain torn down (ok)"
ms=$(sed -n 's/^moat: guest domU1 powered off (PSCI SYSTEM_OFF) after \([0-9]*\) ms.*/\1/p' "$LOG")
irqs=$(grep -E '^\(domU1\) moat-guest: irq ' "$LOG" | head -n 1)
echo "figure: Linux $kver with virtio-blk-pci and edu passed through: boot, 8 MiB read + checksum, a block written" \
     "and read back, poweroff in ${ms:-?} ms (interrupts: ${irqs#*irq })"
finish
