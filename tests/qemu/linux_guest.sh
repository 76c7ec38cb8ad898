#!/usr/bin/env bash
# Debian 12's own arm64 kernel as a dom0less guest of moat, at EL1 on QEMU virt: once with one
# vCPU and once with two (the second started by PSCI CPU_ON, both on moat's one CPU). The guest's
# /init (tools/mkinitramfs.py) prints the kernel version, /proc/cpuinfo and /proc/interrupts and
# powers off through PSCI; moat reports the guest's exit and ends with status 0.
# Asserted: the version line, one cpuinfo processor per vCPU, the virtual timer (INTID 27)
# counting on every vCPU and the vPL011 (INTID 32) interrupt counting, the PSCI report, exit 0.
# Printed: the guest's boot time (moat's start of the guest to its SYSTEM_OFF).
. tests/qemu/lib.sh
linux_ready
kver=$(cut -d' ' -f1 "$LINUX/VERSION")
initrd=$TEST_OUT/linux-initramfs.cpio.gz
tools/mkinitramfs.py --busybox "$LINUX/busybox" "$initrd" >/dev/null || { echo "FAIL: mkinitramfs"; exit 1; }

for cpus in 1 2; do
    linux_config linux_guest_$cpus $cpus "$initrd" "console=ttyAMA0 quiet" || { echo "FAIL: moat-imagebuilder for $cpus vCPUs"; exit 1; }
    # shellcheck disable=SC2086
    run_qemu linux_guest_$cpus 120 -- -kernel "$IMAGE" $LINUX_ARGS
    expect_rc 0
    expect_line "guest:    domU1: $cpus vCPU"
    expect_line "(domU1) moat-guest: uname -r: $kver"
    n=$(grep -c '^(domU1) processor[[:space:]]*:' "$LOG")
    if [ "$n" -ne "$cpus" ]; then echo "FAIL: /proc/cpuinfo shows $n processors, expected $cpus (log: $LOG)"; failures=$((failures + 1)); fi
    # /proc/interrupts: "(domU1)  11:  N0 [N1]  GICv3  27 Level  arch_timer"
    timer=$(grep -E '^\(domU1\) +[0-9]+:.* GICv3 +27 Level +arch_timer' "$LOG" | head -n 1)
    uart=$(grep -E '^\(domU1\) +[0-9]+:.* GICv3 +32 Level +uart-pl011' "$LOG" | head -n 1)
    read -r -a tcounts <<< "$(echo "$timer" | sed -E 's/^\(domU1\) +[0-9]+:((  *[0-9]+)+) .*/\1/')"
    if [ "${#tcounts[@]}" -ne "$cpus" ]; then echo "FAIL: no timer line with $cpus counts: '$timer'"; failures=$((failures + 1)); fi
    for c in "${tcounts[@]}"; do
        if ! [ "$c" -gt 0 ] 2>/dev/null; then echo "FAIL: a vCPU's timer did not count: '$timer'"; failures=$((failures + 1)); fi
    done
    usum=0
    for c in $(echo "$uart" | sed -E 's/^\(domU1\) +[0-9]+:((  *[0-9]+)+) .*/\1/'); do usum=$((usum + c)); done
    # The vPL011's FIFO moves with the guest's own accesses, never with time (hyp/vpl011.hpp), so
    # every write that overflows it ends with a TX interrupt: 12 with 1 vCPU on every run seen;
    # with 2 the count varies with which vCPU writes and which takes the interrupt (4-16 seen),
    # never 0.
    if [ "$usum" -le 0 ]; then echo "FAIL: the vPL011's interrupt did not count: '$uart'"; failures=$((failures + 1)); fi
    [ "$cpus" -eq 2 ] && expect_line "moat: guest domU1: vCPU 1 on at"
    expect_line "(domU1) moat-guest: --- end; powering off"
    expect_line "moat: guest domU1 powered off (PSCI SYSTEM_OFF) after"
    expect_line "moat: all 1 guest(s) ended"
    expect_no_line "further reports suppressed"
    ms=$(sed -n 's/^moat: guest domU1 powered off (PSCI SYSTEM_OFF) after \([0-9]*\) ms.*/\1/p' "$LOG")
    echo "figure: Linux $kver with $cpus vCPU(s) booted to /init and powered off in ${ms:-?} ms" \
         "(timer interrupts per vCPU: ${tcounts[*]}; vPL011 interrupts: $usum)"
done
finish
