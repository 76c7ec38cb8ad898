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

# The Linux guest (tests/qemu/linux_guest*.sh): Debian's kernel and busybox from .deps/linux.
LINUX=.deps/linux
LINUX_KADDR=0x50000000 LINUX_RADDR=0x53000000
# linux_host_tree OUT CPUS INITRD BOOTARGS: QEMU virt's tree with one dom0less guest "domU1" in
# /chosen (128 MiB, vpl011, the kernel and INITRD as modules where linux_loaders puts them).
linux_host_tree() {
    local out=$1 cpus=$2 initrd=$3 args=$4 g=/chosen/domU1
    dump_dtb "$out.raw" && dtc -q -I dtb -O dtb -o "$out" "$out.raw" || return 1  # repacked: QEMU pads its dump
    fdtput -c "$out" $g $g/module@50000000 $g/module@53000000 &&
    fdtput -t s "$out" $g compatible xen,domain &&
    fdtput -t x "$out" $g '#address-cells' 2 &&
    fdtput -t x "$out" $g '#size-cells' 2 &&
    fdtput -t x "$out" $g memory 0 0x20000 &&
    fdtput -t x "$out" $g cpus "$cpus" &&
    fdtput -t x "$out" $g vpl011 &&
    fdtput -t s "$out" $g/module@50000000 compatible multiboot,kernel multiboot,module &&
    fdtput -t x "$out" $g/module@50000000 reg 0 $LINUX_KADDR 0 "$(printf %x "$(stat -c %s "$LINUX/Image")")" &&
    fdtput -t s "$out" $g/module@50000000 bootargs "$args" &&
    fdtput -t s "$out" $g/module@53000000 compatible multiboot,ramdisk multiboot,module &&
    fdtput -t x "$out" $g/module@53000000 reg 0 $LINUX_RADDR 0 "$(printf %x "$(stat -c %s "$initrd")")"
}
# linux_loaders INITRD: the QEMU options that put the kernel and INITRD where the tree says.
linux_loaders() {
    echo "-device loader,file=$LINUX/Image,addr=$LINUX_KADDR,force-raw=on -device loader,file=$1,addr=$LINUX_RADDR,force-raw=on"
}
linux_ready() {
    if [ ! -f "$LINUX/Image" ] || [ ! -x "$LINUX/busybox" ]; then
        echo "FAIL: no Debian kernel and busybox in $LINUX (tools/install-deps.sh fetches them)"; exit 1
    fi
}
