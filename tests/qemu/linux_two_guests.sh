#!/usr/bin/env bash
# Two Linux guests at once on moat's one CPU (each its own stage 2, VMID, vGIC, vPL011 and
# virtual timer offset), plus a third `xen,domain` node with no kernel module: that one is
# refused with a line naming its node and property, the two others boot, print, power off, and
# moat ends with status 0 after the last. The guests' lines are told apart by their prefixes.
. tests/qemu/lib.sh
linux_ready
initrd=$TEST_OUT/linux-initramfs.cpio.gz
tools/mkinitramfs.py --busybox "$LINUX/busybox" "$initrd" >/dev/null || { echo "FAIL: mkinitramfs"; exit 1; }
dir=$TEST_OUT/linux_two_guests
mkdir -p "$dir"
dump_dtb "$dir/virt.dtb" || { echo "FAIL: dumpdtb"; exit 1; }
cat > "$dir/guests.cfg" <<CFG
[board]
board = qemu-virt
dtb = $dir/virt.dtb
moat = $IMAGE
load = none
[alpha]
kernel = $LINUX/Image
ramdisk = $initrd
memory = 128M
cpus = 1
bootargs = console=ttyAMA0 quiet
[beta]
kernel = $LINUX/Image
ramdisk = $initrd
memory = 128M
cpus = 1
bootargs = console=ttyAMA0 quiet
CFG
MOAT_DT=${MOAT_DT:-build/host/moat-dt} tools/imagebuilder/moat-imagebuilder "$dir/guests.cfg" -o "$dir/out" >"$dir/imagebuilder.log" 2>&1 ||
    { echo "FAIL: moat-imagebuilder"; cat "$dir/imagebuilder.log"; exit 1; }
# The broken one, added after the tool's check (which would refuse it too).
fdtput -c "$dir/out/host.dtb" /chosen/broken &&
fdtput -t s "$dir/out/host.dtb" /chosen/broken compatible xen,domain &&
fdtput -t x "$dir/out/host.dtb" /chosen/broken memory 0 0x10000 &&
fdtput -t x "$dir/out/host.dtb" /chosen/broken cpus 1 || { echo "FAIL: fdtput"; exit 1; }
# shellcheck disable=SC2046
run_qemu linux_two_guests 180 -- -kernel "$IMAGE" $(tr '\n' ' ' < "$dir/out/qemu.args")
expect_rc 0
expect_line "dom0less: /chosen/broken: no module with compatible \"multiboot,kernel\""
expect_line "guest:    alpha: 1 vCPU, 128 MiB RAM at IPA 0x40000000"
expect_line "guest:    beta: 1 vCPU, 128 MiB RAM at IPA 0x40000000"
# Each guest's VMID is its P2M's tag: any two distinct ones.
va=$(sed -n 's/^guest:    alpha: .*, VMID \([0-9]*\).*/\1/p' "$LOG" | head -n 1)
vb=$(sed -n 's/^guest:    beta: .*, VMID \([0-9]*\).*/\1/p' "$LOG" | head -n 1)
if [ -z "$va" ] || [ -z "$vb" ] || [ "$va" = "$vb" ]; then
    echo "FAIL: the two guests need distinct VMIDs (alpha '$va', beta '$vb') (log: $LOG)"; failures=$((failures + 1))
fi
expect_line "guest:    2 guest(s), 2 vCPU(s) on this CPU"
for g in alpha beta; do
    expect_line "($g) moat-guest: uname -r: "
    expect_line "($g) moat-guest: --- end; powering off"
    expect_line "moat: guest $g powered off (PSCI SYSTEM_OFF) after"
    if ! grep -qE "^\($g\) +[0-9]+: +[1-9][0-9]* +GICv3 +27 Level +arch_timer" "$LOG"; then
        echo "FAIL: $g's timer did not count"; failures=$((failures + 1))
    fi
done
expect_line "moat: all 2 guest(s) ended"
# The two guests' RAM is not at the same host address.
pa=$(sed -n 's/^guest:    [a-z]*: 1 vCPU, 128 MiB RAM at IPA 0x40000000 (PA \(0x[0-9a-f]*\),.*/\1/p' "$LOG" | sort -u | wc -l)
if [ "$pa" -ne 2 ]; then echo "FAIL: the two guests' RAM is not at two host addresses"; failures=$((failures + 1)); fi
finish
