#!/usr/bin/env bash
# Every trap Linux never takes, taken by an EL1 program of our own (tests/qemu/guest_traps) booted
# as a dom0less guest "traps" with a vPL011: an SMC, PSCI_VERSION and a Xen hypercall by HVC, an
# HVC nobody defines, a read of a system register moat traps and does not serve, a load and a store
# at an IPA that is neither its RAM nor a device. The guest checks what it got (SMCCC's answers, an
# UNDEF, synchronous external aborts, taken at its own vectors) and powers off; moat reports the
# traps naming the guest, ends the guest normally and exits 0.
. tests/qemu/lib.sh
CROSS=${CROSS:-aarch64-linux-gnu-}
dir=$TEST_OUT/guest_traps
src=tests/qemu/guest_traps
mkdir -p "$dir"
${CROSS}gcc -ffreestanding -fno-pic -fno-pie -mgeneral-regs-only -mstrict-align -fno-stack-protector -fno-jump-tables \
    -O2 -Wall -Wextra -Werror -c "$src/traps.c" -o "$dir/traps.o" &&
${CROSS}gcc -c "$src/start.S" -o "$dir/start.o" &&
${CROSS}ld -nostdlib -static -no-pie --build-id=none --no-warn-rwx-segments -T "$src/traps.ld" \
    "$dir/start.o" "$dir/traps.o" -o "$dir/traps.elf" &&
${CROSS}objcopy -O binary "$dir/traps.elf" "$dir/Image" || { echo "FAIL: building the trap-test guest"; exit 1; }
dump_dtb "$dir/virt.dtb" || { echo "FAIL: dumpdtb"; exit 1; }
cat > "$dir/guest.cfg" <<CFG
[board]
board = qemu-virt
dtb = $dir/virt.dtb
moat = $IMAGE
load = none
[traps]
kernel = $dir/Image
memory = 16M
cpus = 1
vpl011 = yes
bootargs = none
CFG
MOAT_DT=${MOAT_DT:-build/host/moat-dt} tools/imagebuilder/moat-imagebuilder "$dir/guest.cfg" -o "$dir/out" >"$dir/imagebuilder.log" 2>&1 ||
    { echo "FAIL: moat-imagebuilder"; cat "$dir/imagebuilder.log"; exit 1; }
# shellcheck disable=SC2046
run_qemu guest_traps 60 -- -kernel "$IMAGE" $(tr '\n' ' ' < "$dir/out/qemu.args")
expect_rc 0
expect_line "guest:    traps: 1 vCPU, 16 MiB RAM at IPA 0x40000000"
expect_line "(traps) traps: the trap-test guest, its own vectors at EL1"
expect_line "(traps) traps: smc #0 (0xc2000042) -> x0 0xffffffffffffffff"
expect_line "(traps) traps: ok   smc: NOT_SUPPORTED, execution continues"
expect_line "(traps) traps: ok   hvc #0 PSCI_VERSION: 1.x"
expect_line "(traps) traps: hvc #0xea1 -> 0xffffffffffffffda"
expect_line "(traps) traps: ok   hvc #0xea1 (Xen): -ENOSYS"
expect_line "(traps) traps: ok   hvc #0x42: NOT_SUPPORTED"
expect_line "(traps) traps: ok   mrs cntp_ctl_el0: UNDEF (EC 0) at the instruction, skipped"
expect_line "(traps) traps: ok   load outside RAM and devices: external abort (EC 0x25, DFSC 0x10), skipped"
expect_line "(traps) traps: ldr from 0x3f000000 -> ESR_EL1 0x96000010, FAR_EL1 0x3f000000"
expect_line "(traps) traps: ok   store outside RAM and devices: external abort (EC 0x25, DFSC 0x10, WnR), skipped"
expect_line "(traps) traps: str to 0x3f000008 -> ESR_EL1 0x96000050, FAR_EL1 0x3f000008"
expect_line "(traps) traps: ok   no other exception taken"
expect_line "(traps) traps: 0x9 passed, 0x0 failed; powering off"
expect_no_line "traps: FAIL"
# moat's own reports: the guest named, the register decoded, the IPA and the PC.
pc=$(sed -n 's/^(traps) traps: mrs cntp_ctl_el0 at \(0x[0-9a-f]*\) .*/\1/p' "$LOG" | head -n 1)
[ -n "$pc" ] || { echo "FAIL: no PC for the system register read"; failures=$((failures + 1)); }
expect_line "moat: guest traps: read of system register S3_3_C14_C2_1 at ELR $pc is not served; UNDEF injected"
expect_line "moat: guest traps: read at IPA 0x3f000000 (VA 0x3f000000, ELR 0x"
expect_line "moat: guest traps: write at IPA 0x3f000008 (VA 0x3f000008, ELR 0x"
expect_line "(traps) traps: ok   20 more loads: each an external abort"
# 23 faults, reported up to moat's limit (8 per guest) and then once as suppressed.
n=$(grep -c "^moat: guest traps: .*; [A-Za-z ]* injected" "$LOG")
[ "$n" -eq 8 ] || { echo "FAIL: $n trap reports, expected 8 (the per-guest limit)"; failures=$((failures + 1)); }
expect_line "moat: guest traps: further reports suppressed"
expect_line "moat: guest traps powered off (PSCI SYSTEM_OFF) after"
expect_line "23 faults injected"
expect_line "moat: all 1 guest(s) ended"
expect_line "; exit 0"
expect_no_line "was stopped"
expect_no_line "unexpected exception at EL2"
finish
