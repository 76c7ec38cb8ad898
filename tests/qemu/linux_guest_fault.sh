#!/usr/bin/env bash
# A Linux guest that reaches for what is not its own: through /dev/mem it reads the host's UART
# (0x09000000, moat's console) and writes the host's GIC distributor (0x08000000). Neither is in
# the guest's stage 2: moat injects a synchronous external abort for each, names the guest and
# the address, and goes on; Linux kills the process with SIGBUS, the guest keeps running and
# powers off. moat ends with 0.
. tests/qemu/lib.sh
linux_ready
initrd=$TEST_OUT/linux-fault-initramfs.cpio.gz
tools/mkinitramfs.py --busybox "$LINUX/busybox" "$initrd.base" >/dev/null || { echo "FAIL: mkinitramfs"; exit 1; }
# A second archive after the first replaces /init (Linux unpacks concatenated archives in order).
python3 - "$initrd.base" "$initrd" <<'EOF' || { echo "FAIL: the fault initramfs"; exit 1; }
import gzip, sys
sys.path.insert(0, "tools")
import mkinitramfs
init = b"""#!/bin/sh
busybox mount -t proc proc /proc
busybox mount -t devtmpfs devtmpfs /dev
echo "moat-guest: reading the host UART"
busybox devmem 0x09000000 32
echo "moat-guest: devmem of the host UART exited $?"
echo "moat-guest: writing the host GIC distributor"
busybox devmem 0x08000000 32 0
echo "moat-guest: devmem of the host GIC exited $?"
echo "moat-guest: still running"
poweroff -f
"""
c = mkinitramfs.Cpio()
c.file("init", init, 0o755)
with open(sys.argv[2], "wb") as f:
    f.write(open(sys.argv[1], "rb").read() + gzip.compress(c.finish(), mtime=0))
EOF
linux_config linux_guest_fault 1 "$initrd" "console=ttyAMA0 quiet" || { echo "FAIL: moat-imagebuilder"; exit 1; }
# shellcheck disable=SC2086
run_qemu linux_guest_fault 120 -- -kernel "$IMAGE" $LINUX_ARGS
expect_rc 0
expect_line "moat: guest domU1: read at IPA 0x9000000"
expect_line "moat: guest domU1: write at IPA 0x8000000"
expect_line "nothing of the guest's there; external abort injected"
expect_line "(domU1) moat-guest: devmem of the host UART exited 135"  # 128 + SIGBUS
expect_line "(domU1) moat-guest: devmem of the host GIC exited 135"
expect_line "(domU1) moat-guest: still running"
expect_line "moat: guest domU1 powered off (PSCI SYSTEM_OFF)"
expect_line "2 faults injected"
expect_line "moat: all 1 guest(s) ended"
finish
