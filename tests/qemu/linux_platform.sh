#!/usr/bin/env bash
# Platform-device passthrough in Xen's partial-tree form, to Debian's arm64 Linux as a dom0less
# guest of moat on QEMU virt: domU1's multiboot,device-tree module (tests/qemu/platform/rtc.dts)
# passes the host's PL031 RTC (/pl031@9010000, behind no IOMMU on virt, so forced with
# xen,force-assign-without-iommu) through at guest-physical 0x1c000000, not its host address;
# domU2's (tests/qemu/platform/bad.dts) names moat's own console UART and domU3's
# (unaligned.dts) has an unaligned xen,reg: each must be refused by name while domU1 runs. Asserted: moat's report of the mapping and of the unconfined DMA, the
# refusal, Linux's rtc-pl031 probing the copy at 0x1c000000 and reading a time through it, the
# guest's clean poweroff, exit 0; its SPI forwarded 1:1 (hyp/irq_forward), so that an alarm set
# through wakealarm fires (the guest's interrupt count rises within 6 s).
. tests/qemu/lib.sh
linux_ready
kver=$(cut -d' ' -f1 "$LINUX/VERSION")
dir=$TEST_OUT/linux_platform
mkdir -p "$dir"
initrd=$dir/initramfs.cpio.gz
tools/mkinitramfs.py --busybox "$LINUX/busybox" --init tests/qemu/platform.init "$initrd" >/dev/null ||
    { echo "FAIL: mkinitramfs"; exit 1; }
for t in rtc bad unaligned; do
    dtc -q -I dts -O dtb -o "$dir/$t.dtb" tests/qemu/platform/$t.dts || { echo "FAIL: dtc $t.dts"; exit 1; }
done
dump_dtb "$dir/virt.dtb" || { echo "FAIL: dumpdtb"; exit 1; }
cat > "$dir/guest.cfg" <<CFG
[board]
board = qemu-virt
dtb = $dir/virt.dtb
moat = $IMAGE
load = none
[domU1]
kernel = $LINUX/Image
ramdisk = $initrd
device-tree = $dir/rtc.dtb
memory = 128M
vpl011 = yes
bootargs = console=ttyAMA0 quiet
[domU2]
kernel = $LINUX/Image
device-tree = $dir/bad.dtb
memory = 64M
vpl011 = no
[domU3]
kernel = $LINUX/Image
device-tree = $dir/unaligned.dtb
memory = 64M
vpl011 = no
CFG
# --no-check: the tool would refuse domU3's tree itself (moat-dt reads partial trees as moat does);
# here moat must be the one refusing it, at boot.
MOAT_DT=${MOAT_DT:-build/host/moat-dt} tools/imagebuilder/moat-imagebuilder "$dir/guest.cfg" -o "$dir/out" --no-check \
    >"$dir/imagebuilder.log" 2>&1 ||
    { cat "$dir/imagebuilder.log"; echo "FAIL: moat-imagebuilder"; exit 1; }
# shellcheck disable=SC2086
run_qemu linux_platform 120 -- -kernel "$IMAGE" -smp 1 $(tr '\n' ' ' < "$dir/out/qemu.args")
expect_rc 0
expect_line "guest:    domU1: /pl031@9010000 passed through as /passthrough/rtc@1c000000, MMIO PA 0x9010000 -> IPA 0x1c000000 (4 KiB), SPI 2, NO IOMMU: its DMA is unconfined"
expect_line "passthrough: domU1: /passthrough/rtc@1c000000 (/pl031@9010000) assigned WITHOUT an IOMMU (xen,force-assign-without-iommu): it has no iommus; its DMA is unconfined"
expect_line "moat: guest domU1: WARNING: its DMA is unconfined (xen,force-assign-without-iommu)"
expect_line "passthrough: domU2: /passthrough/serial@1c000000: xen,path: /pl011@9000000 is moat's console UART moat uses itself; no guest may have it"
expect_line "passthrough: domU2: not started (its partial device tree)"
expect_no_line "guest:    domU2:"
expect_line "dom0less: /chosen/domU3: partial device tree: /passthrough/gpio@1d000000: xen,reg: range 0 <0x9030800 0x1000 0x1d000000> is not 4 KiB-aligned"
expect_line "dom0less: /chosen/domU3: not started (1 problem in its partial device tree)"
expect_no_line "guest:    domU3:"
expect_line "(domU1) moat-guest: uname -r: $kver"
expect_line "(domU1) moat-guest: rtc0 name: rtc-pl031 1c000000.rtc"
expect_line "(domU1) moat-guest: rtc0 device: 1c000000.rtc"
if ! grep -qE '^\(domU1\) moat-guest: rtc0 time: 20[0-9][0-9]-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}, since_epoch [1-9][0-9]+' "$LOG"; then
    echo "FAIL: the guest read no time through the PL031 (log: $LOG)"; failures=$((failures + 1))
fi
expect_line "guest:    domU1: /pl031@9010000: host SPI 2 (INTID 34, level) forwarded as its INTID 34"
line=$(grep -E '^\(domU1\) moat-guest: pl031 interrupts before ' "$LOG" | head -n 1)
read -r b a <<< "$(echo "$line" | sed -E 's/.*before ([0-9]*) after ([0-9]*).*/\1 \2/')"
if ! [ "${a:-0}" -gt "${b:-0}" ] 2>/dev/null; then
    echo "FAIL: the alarm's interrupt did not reach the guest: '$line' (log: $LOG)"; failures=$((failures + 1))
fi
expect_line "/pl031@9010000 SPI 2: "
expect_line "(domU1) moat-guest: --- end; powering off"
expect_line "moat: guest domU1 powered off (PSCI SYSTEM_OFF) after"
expect_line "moat: all 1 guest(s) ended"
ms=$(sed -n 's/^moat: guest domU1 powered off (PSCI SYSTEM_OFF) after \([0-9]*\) ms.*/\1/p' "$LOG")
echo "figure: Linux $kver with the PL031 passed through (partial tree): boot to poweroff in ${ms:-?} ms ($line)"
finish
