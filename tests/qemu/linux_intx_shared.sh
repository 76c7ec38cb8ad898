#!/usr/bin/env bash
# INTx lines shared between assigned functions. QEMU virt swizzles INTA of slots 3, 7 and 11 onto
# the same host SPI 6. Guest alpha gets the edus at 00:03.0 and 00:07.0: both its functions on
# one line is fine (its one virtual INTID 38). Guest beta asks for the edu at 00:0b.0 on that same
# line: refused with a line naming the guest, the function and the SPI, its DMA domain torn down,
# it never starts; alpha boots, powers off, and gives its line back; moat exits 0.
. tests/qemu/lib.sh
linux_ready
initrd=$TEST_OUT/linux-initramfs.cpio.gz
tools/mkinitramfs.py --busybox "$LINUX/busybox" "$initrd" >/dev/null || { echo "FAIL: mkinitramfs"; exit 1; }
dir=$TEST_OUT/linux_intx_shared
mkdir -p "$dir"
devs=(-device "edu,addr=03.0" -device "edu,addr=07.0" -device "edu,addr=0b.0")
"$QEMU_SYSTEM_AARCH64" -machine "$MACHINE,dumpdtb=$dir/virt.dtb" -cpu cortex-a57 -m 1G -nographic -nic none "${devs[@]}" \
    >/dev/null 2>&1 || { echo "FAIL: dumpdtb"; exit 1; }
# moat builds the guests in /chosen order, which is the last section first: alpha takes the line.
cat > "$dir/guests.cfg" <<CFG
[board]
board = qemu-virt
dtb = $dir/virt.dtb
moat = $IMAGE
load = none
[beta]
kernel = $LINUX/Image
ramdisk = $initrd
memory = 128M
cpus = 1
vpl011 = yes
bootargs = console=ttyAMA0 quiet
pci = 0000:00:0b.0
[alpha]
kernel = $LINUX/Image
ramdisk = $initrd
memory = 128M
cpus = 1
vpl011 = yes
bootargs = console=ttyAMA0 quiet
pci = 0000:00:03.0 0000:00:07.0
CFG
MOAT_DT=${MOAT_DT:-build/host/moat-dt} tools/imagebuilder/moat-imagebuilder "$dir/guests.cfg" -o "$dir/out" >"$dir/imagebuilder.log" 2>&1 ||
    { echo "FAIL: moat-imagebuilder"; cat "$dir/imagebuilder.log"; exit 1; }
QEMU=("$QEMU_SYSTEM_AARCH64" -machine "$MACHINE" -cpu cortex-a57 -m 1G -nographic -nic none -semihosting "${devs[@]}")
# shellcheck disable=SC2046
run_qemu linux_intx_shared 180 -- -kernel "$IMAGE" $(tr '\n' ' ' < "$dir/out/qemu.args")
expect_rc 0
expect_line "guest:    alpha: 0000:00:03.0 INTA: host SPI 6 (INTID 38, level) forwarded as its INTID 38"
expect_line "guest:    alpha: 0000:00:07.0 INTA: host SPI 6 (INTID 38, level) forwarded as its INTID 38"
expect_line "beta: 0000:00:0b.0 INTA: guest beta: SPI 6 (INTID 38) is already forwarded to guest alpha; not started"
expect_line "passthrough: DMA domain"
expect_line "1 stream detached to abort: ok"
expect_no_line "guest:    beta: 1 vCPU"
# The refused guest's VM (stage 2, VMID, 128 MiB of RAM) went back: the pool is where it was.
grep -qE "moat: guest /chosen/beta: not started; its VM torn down \(ok\): [1-9][0-9]* pool pages given back, pool ([0-9]+) pages in use \(\1 before it\)" "$LOG" ||
    { echo "FAIL: beta's VM not given back to the pool (log: $LOG)"; failures=$((failures + 1)); }
expect_line "guest:    1 guest(s), 1 vCPU(s) on this CPU"
expect_line "(alpha) moat-guest: --- end; powering off"
expect_line "moat: guest alpha powered off (PSCI SYSTEM_OFF) after"
expect_line "physical interrupts forwarded on 1 line; 00:03.0 SPI 6: "
expect_line "; masked and released: 1"
expect_line "moat: all 1 guest(s) ended"
finish
