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
