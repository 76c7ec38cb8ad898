# Shared helpers for the QEMU boot tests. Each test is a script that exits 0 on success;
# tests/run.sh runs them all. Needs: IMG_OUT (the board build folder), TEST_OUT (scratch).
set -u
IMG_OUT=${IMG_OUT:-build/qemu-virt}
TEST_OUT=${TEST_OUT:-build/tests}
IMAGE=$IMG_OUT/Image
UBOOT=/usr/lib/u-boot/qemu_arm64/u-boot.bin
MACHINE=virt,virtualization=on,gic-version=3,iommu=smmuv3
# Which QEMU: QEMU=7.2 (the system's, the default) or QEMU=10 (bookworm-backports', unpacked by
# tools/install-deps.sh); QEMU_SYSTEM_AARCH64 names any other binary. QEMU_VERSION (major.minor)
# is what that binary says it is, so a test asserts what that QEMU proves.
# QEMU is the arm64 command line below: the choice is kept for the q35 part first.
QEMU_CHOICE=${QEMU:-7.2}
case "$QEMU_CHOICE" in
    7.2|7) QEMU_SYSTEM_AARCH64=${QEMU_SYSTEM_AARCH64:-qemu-system-aarch64} ;;
    10|10.0) QEMU_SYSTEM_AARCH64=${QEMU_SYSTEM_AARCH64:-.deps/qemu10/bin/qemu-system-aarch64} ;;
    *) echo "FAIL: QEMU=$QEMU: expected 7.2 or 10"; exit 1 ;;
esac
QEMU_VERSION=$("$QEMU_SYSTEM_AARCH64" --version 2>/dev/null | sed -n '1s/^QEMU emulator version \([0-9]*\.[0-9]*\).*/\1/p')
[ -n "$QEMU_VERSION" ] || { echo "FAIL: $QEMU_SYSTEM_AARCH64 does not run (tools/install-deps.sh unpacks QEMU 10)"; exit 1; }
# qemu_has_stage2: this QEMU's virt SMMUv3 has stage 2 (IDR0.S2P); virt builds it nested from 9.2.
qemu_has_stage2() {
    local major=${QEMU_VERSION%%.*} minor=${QEMU_VERSION#*.}
    [ "$major" -gt 9 ] || { [ "$major" -eq 9 ] && [ "$minor" -ge 2 ]; }
}
# virt's GICv3 as GICD_TYPER.ITLinesNumber reports it: 256 INTIDs on 7.2, 288 on 10.0 (seen here).
case "$QEMU_VERSION" in 7.*) GIC_LINES=256 ;; *) GIC_LINES=288 ;; esac
QEMU=("$QEMU_SYSTEM_AARCH64" -machine "$MACHINE" -cpu cortex-a57 -m 1G -nographic -nic none -semihosting -device edu)

# dump_dtb FILE: the device tree QEMU builds for the machine the tests boot
dump_dtb() {
    "$QEMU_SYSTEM_AARCH64" -machine "$MACHINE,dumpdtb=$1" -cpu cortex-a57 -m 1G -nographic -nic none -device edu >/dev/null 2>&1
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

# The Linux guest (tests/qemu/linux_guest*.sh): Debian's kernel and busybox from .deps/linux,
# configured the way users do it, by tools/imagebuilder/moat-imagebuilder.
LINUX=.deps/linux
# linux_config NAME CPUS INITRD BOOTARGS: one dom0less guest "domU1" (128 MiB, vpl011, CPUS
# vCPUs, all on moat's one physical CPU) on QEMU virt; sets LINUX_ARGS to the QEMU options that
# boot it (-dtb and the loaders of every module).
linux_config() {
    local name=$1 cpus=$2 initrd=$3 args=$4 dir=$TEST_OUT/$1
    mkdir -p "$dir"
    dump_dtb "$dir/virt.dtb" || return 1
    cat > "$dir/guest.cfg" <<CFG
[board]
board = qemu-virt
dtb = $dir/virt.dtb
moat = $IMAGE
load = none
[domU1]
kernel = $LINUX/Image
ramdisk = $initrd
memory = 128M
cpus = $cpus
vpl011 = yes
bootargs = $args
CFG
    MOAT_DT=${MOAT_DT:-build/host/moat-dt} tools/imagebuilder/moat-imagebuilder "$dir/guest.cfg" -o "$dir/out" >"$dir/imagebuilder.log" 2>&1 ||
        { cat "$dir/imagebuilder.log"; return 1; }
    LINUX_ARGS="$(tr '\n' ' ' < "$dir/out/qemu.args")"
}
linux_ready() {
    if [ ! -f "$LINUX/Image" ] || [ ! -x "$LINUX/busybox" ]; then
        echo "FAIL: no Debian kernel and busybox in $LINUX (tools/install-deps.sh fetches them)"; exit 1
    fi
}

# ---- q35 (x86_64): the image is build/q35/moat.elf, entered through its PVH note.
Q35_ELF=${Q35_ELF:-build/q35/moat.elf}
# The same QEMU=7.2|10 choice as the arm64 tests (QEMU_SYSTEM_X86_64 names any other binary);
# Q35_QEMU_MAJOR is what that binary says it is: VT-d's defaults differ (aw-bits 39 on 7.2, 48 on 10).
case "$QEMU_CHOICE" in
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
