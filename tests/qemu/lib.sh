# Shared helpers for the QEMU boot tests. Each test is a script that exits 0 on success;
# tests/run.sh runs them all. Needs: IMG_OUT (the board build folder), TEST_OUT (scratch).
set -u
IMG_OUT=${IMG_OUT:-build/qemu-virt}
TEST_OUT=${TEST_OUT:-build/tests}
IMAGE=$IMG_OUT/Image
UBOOT=/usr/lib/u-boot/qemu_arm64/u-boot.bin
MACHINE=virt,virtualization=on,gic-version=3,iommu=smmuv3
QEMU=(qemu-system-aarch64 -machine "$MACHINE" -cpu cortex-a57 -m 1G -nographic -nic none -semihosting -device edu)

# dump_dtb FILE: the device tree QEMU builds for the machine the tests boot
dump_dtb() {
    qemu-system-aarch64 -machine "$MACHINE,dumpdtb=$1" -cpu cortex-a57 -m 1G -nographic -nic none -device edu >/dev/null 2>&1
}
mkdir -p "$TEST_OUT"
failures=0

# run_qemu NAME TIMEOUT [qemu-run options --] EXTRA-QEMU-ARGS...: log in $TEST_OUT/NAME.log, status in $rc
run_qemu() {
    local name=$1 timeout=$2; shift 2
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do opts+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    LOG=$TEST_OUT/$name.log
    tools/qemu-run.py --timeout "$timeout" --log "$LOG" "${opts[@]}" -- "${QEMU[@]}" "$@" >/dev/null 2>&1
    rc=$?
}

expect_rc() {
    if [ "$rc" -ne "$1" ]; then echo "FAIL: exit status $rc, expected $1 (log: $LOG)"; failures=$((failures + 1)); fi
}

# expect_line TEXT: a console line contains TEXT (fixed string)
expect_line() {
    if ! grep -qF -- "$1" "$LOG"; then echo "FAIL: missing console text: $1 (log: $LOG)"; failures=$((failures + 1)); fi
}

expect_no_line() {
    if grep -qF -- "$1" "$LOG"; then echo "FAIL: unexpected console text: $1 (log: $LOG)"; failures=$((failures + 1)); fi
}

finish() {
    if [ "$failures" -ne 0 ]; then echo "--- last lines of $LOG"; tail -n 25 "$LOG"; exit 1; fi
    exit 0
}

# What every successful boot on virt with 1 GiB must show.
expect_virt_discovery() {
    expect_line "cpu:      EL2"
    expect_line "ram:      0x0040000000-0x007fffffff (1024 MiB)"
    expect_line "iommu0 /smmuv3@9050000"
    expect_line "compatible arm,smmu-v3, #iommu-cells 1, driver smmu_v3"
    expect_line "reg   0x0009050000 size 0x20000"
    expect_line "irq   SPI 74 (INTID 106) edge-rising, eventq"
    expect_line "irq   SPI 77 (INTID 109) edge-rising, gerror"
    expect_line "master /pcie@10000000: requester ids 0x0000-0xffff -> stream ids 0x0000-0xffff (iommu-map, mask 0xffffffff)"
    expect_line "pool:     "
}

# ---- q35 (x86_64): the image is build/q35/moat.elf, entered through its PVH note.
Q35_ELF=${Q35_ELF:-build/q35/moat.elf}
# The same QEMU=7.2|10 choice as the arm64 tests (QEMU_SYSTEM_X86_64 names any other binary);
# Q35_QEMU_MAJOR is what that binary says it is: VT-d's defaults differ (aw-bits 39 on 7.2, 48 on 10).
case "${QEMU:-7.2}" in
    10|10.0) QEMU_SYSTEM_X86_64=${QEMU_SYSTEM_X86_64:-.deps/qemu10/bin/qemu-system-x86_64} ;;
    *) QEMU_SYSTEM_X86_64=${QEMU_SYSTEM_X86_64:-qemu-system-x86_64} ;;
esac
Q35_QEMU_MAJOR=$("$QEMU_SYSTEM_X86_64" --version 2>/dev/null | sed -n '1s/^QEMU emulator version \([0-9]*\)\..*/\1/p')
QEMU_Q35=("$QEMU_SYSTEM_X86_64" -machine q35 -m 512M -nographic -no-reboot -vga none -nic none
          -device isa-debug-exit,iobase=0xf4,iosize=0x04)

# run_q35 NAME TIMEOUT EXTRA-QEMU-ARGS...: log in $TEST_OUT/NAME.log; $rc is moat's exit status,
# decoded from isa-debug-exit's (status << 1) | 1. An even QEMU exit (a triple fault with
# -no-reboot, a QEMU error, a timeout) is 100 + QEMU's status, which no expect_rc accepts.
run_q35() {
    local name=$1 timeout=$2; shift 2
    LOG=$TEST_OUT/$name.log
    if [ -z "$Q35_QEMU_MAJOR" ]; then echo "FAIL: $QEMU_SYSTEM_X86_64 does not run (tools/install-deps.sh)"; rc=127; return; fi
    tools/qemu-run.py --timeout "$timeout" --log "$LOG" -- "${QEMU_Q35[@]}" "$@" -kernel "$Q35_ELF" >/dev/null 2>&1
    rc=$?
    if [ $((rc & 1)) -eq 1 ]; then rc=$((rc >> 1)); else rc=$((100 + rc)); fi
}
