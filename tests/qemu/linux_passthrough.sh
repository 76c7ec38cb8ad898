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
# ECAM poked from user space (unassigned functions all ones and deaf, an assigned function's BARs,
# id and command bits kept; moat's rate-limited reports naming guest, function and offset; the
# host's BARs and unassigned command registers as before), teardown giving every page back (the
# pool's counter after it equals the one before), exit 0. Printed: the guest's boot-to-poweroff time.
. tests/qemu/lib.sh
linux_ready
kver=$(cut -d' ' -f1 "$LINUX/VERSION")
dir=$TEST_OUT/linux_passthrough
mkdir -p "$dir"
initrd=$dir/initramfs.cpio.gz
tools/mkinitramfs.py --busybox "$LINUX/busybox" --modules "$LINUX/modules" --init tests/qemu/passthrough.init "$initrd" \
    >/dev/null || { echo "FAIL: mkinitramfs"; exit 1; }
disk=$dir/disk.img
tools/mkdisk.py "$disk" >/dev/null || { echo "FAIL: tools/mkdisk.py"; exit 1; }  # what make run-passthrough boots too
sum=$(head -c $((8 << 20)) "$disk" | md5sum | cut -d' ' -f1)

# iomem=relaxed: /dev/mem may map the guest's ECAM, which its kernel's ECAM driver holds busy
# (Debian's kernel has CONFIG_IO_STRICT_DEVMEM=y), so /init's devmem reaches moat's trap.
# EDU_OUT: moat's own image (host PA 0x40200000, -kernel's load address), outside the guest's RAM.
# EDU_IN: the guest's moat,reserved-memory carve-out (64 KiB of its RAM, no-map to Linux).
linux_config linux_passthrough 1 "$initrd" "console=ttyAMA0 quiet iomem=relaxed EDU_OUT=0x40200000 EDU_IN=0x84000000" || { echo "FAIL: moat-imagebuilder"; exit 1; }
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
# The carve-out is "reserved" to Linux, not System RAM.
expect_line "(domU1) moat-guest: iomem 84000000-8400ffff : reserved"
# ---- The guest's ECAM poked from user space (passthrough.init's ECAM block, before the disk
# checksum and edu's DMA above, which show the devices still where moat put them).
expect_line "(domU1) moat-guest: ecam window at 0x04000000"
expect_line "(domU1) moat-guest: ecam 00:04.0 id 0xFFFFFFFF"
expect_line "(domU1) moat-guest: ecam 00:04.0 after writes: command 0xFFFF BAR0 0xFFFFFFFF"
expect_line "(domU1) moat-guest: ecam 00:00.0 id 0xFFFFFFFF"
expect_line "(domU1) moat-guest: ecam 00:03.1 id 0xFFFFFFFF"
expect_line "(domU1) moat-guest: ecam 00:03.0 BAR0 0x10000000 -> 0x10000000 after a move outside the window; id 0x11E81234 -> 0x11E81234; ROM 0x00000000"
expect_line "(domU1) moat-guest: ecam 00:02.0 BAR1 0x10100000 -> 0x10100000 after a move outside the window"
expect_line "(domU1) moat-guest: ecam 00:03.0 command after asking for I/O space: 0x0000"
expect_line "(domU1) moat-guest: ecam pokes done; still running"
expect_line "moat: guest domU1: config write to 0000:00:04.0 offset 0x004 (2 bytes, 0x6) ignored: no function of the guest's there"
expect_line "moat: guest domU1: config write to 0000:00:04.0 offset 0x010 (4 bytes, 0x10100000) ignored: no function of the guest's there"
expect_line "moat: guest domU1: config write to 0000:00:00.0 offset 0x004 (2 bytes, 0x0) ignored: no function of the guest's there"
expect_line "moat: guest domU1: config write to 0000:00:03.0 offset 0x010 (4 bytes, 0x20000000) refused: BAR0 stays at 0x10000000, where moat placed it"
expect_line "moat: guest domU1: config write to 0000:00:03.0 offset 0x000 (4 bytes, 0x0) refused: read-only to the guest"
expect_line "moat: guest domU1: config write to 0000:00:02.0 offset 0x014 (4 bytes, 0x3f000000) refused: BAR1 stays at 0x10100000, where moat placed it"
expect_line "moat: guest domU1: config write to 0000:00:03.0 offset 0x004 (2 bytes, 0x1) filtered: command bits 0x1 are not the guest's"
# Rate-limited: 8 lines, then one saying the rest are counted; the totals at the guest's end.
n=$(grep -c '^moat: guest domU1: config write to ' "$LOG")
if [ "$n" -ne 8 ]; then echo "FAIL: $n config-space refusal lines, expected 8 (the limit; log: $LOG)"; failures=$((failures + 1)); fi
expect_line "moat: guest domU1: further PCI config-space refusals are counted, not reported"
expect_line "moat: guest domU1: PCI config space: 24 writes refused or filtered, 3 writes to functions it was not given ignored"
# The host's view: no BAR, ROM or unassigned function's command register moved.
expect_line "moat: guest domU1: host config space after it: BARs and ROM of 4 functions, command of the 2 no guest has: as before the guests ran"
expect_no_line "CHANGED"
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
# Every page the DMA domain took is back: the pool's counter after it equals the one before it,
# and what was given back is what the build reported.
pool=$(tr -d '\r' < "$LOG" | sed -n 's/^moat: guest domU1: DMA domain torn down (ok): \([0-9]*\) pool pages given back, pool \([0-9]*\) pages in use (\([0-9]*\) before it)/\1 \2 \3/p')
built=$(tr -d '\r' < "$LOG" | sed -n 's/^guest:    domU1: PCI ECAM at .*; DMA domain: \([0-9]*\) pool pages/\1/p')
read -r back after before <<< "${pool:-x y z}"
if [ -z "$pool" ] || [ "$after" != "$before" ] || [ "$back" != "$built" ]; then
    echo "FAIL: pool after the guest: '${pool}' (given back, in use, before), DMA domain built with '${built}' pages"
    failures=$((failures + 1))
fi
ms=$(sed -n 's/^moat: guest domU1 powered off (PSCI SYSTEM_OFF) after \([0-9]*\) ms.*/\1/p' "$LOG")
irqs=$(grep -E '^\(domU1\) moat-guest: irq ' "$LOG" | head -n 1)
echo "figure: Linux $kver with virtio-blk-pci and edu passed through: boot, 8 MiB read + checksum, a block written" \
     "and read back, poweroff in ${ms:-?} ms (interrupts: ${irqs#*irq })"
finish
