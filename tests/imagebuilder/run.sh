#!/usr/bin/env bash
# moat-imagebuilder (tools/imagebuilder): the host tree it writes, read back with fdtget and with
# moat's own dom0less parser (moat-dt dom0less); the QEMU load arguments and the U-Boot script it
# writes, for QEMU virt, Salvator-X and ZCU102; its refusals; and the script run by Debian's
# U-Boot on QEMU, whose `fdt print` must show the same nodes. Ends with "N passed, M failed".
#
# Usage: tests/imagebuilder/run.sh   (from anywhere; builds moat-dt and the board trees first
#                                     unless MOAT_DT is set)
set -u
cd "$(dirname "$0")/../.."
if [ -z "${MOAT_DT:-}" ]; then
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s -f Makefile -f tools/dt/dt.mk build/host/moat-dt dts >/dev/null || {
        echo "FAIL build: make build/host/moat-dt dts"; echo "0 passed, 1 failed"; exit 1; }
fi
export MOAT_DT=${MOAT_DT:-build/host/moat-dt}
DTS_OUT=${DTS_OUT:-build/dts}
W=${TEST_OUT:-build/tests}/imagebuilder
IB=tools/imagebuilder/moat-imagebuilder
rm -rf "$W" && mkdir -p "$W"
pass=0 fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; shift; for l in "$@"; do echo "     $l"; done; fail=$((fail + 1)); }

# t NAME WANT_RC CMD...: output in $W/NAME.{out,err}
t() {
    local name=$1 want=$2; shift 2
    "$@" >"$W/$name.out" 2>"$W/$name.err"; rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$name (exit $rc)"; return 0; fi
    bad "$name: exit $rc, expected $want" "\$ $*" "$(head -c 1500 "$W/$name.out")" "$(head -c 1500 "$W/$name.err")"
    return 1
}
has() {  # has FILE TEXT [LABEL]
    if grep -qF -- "$2" "$1"; then ok "${3:-$(basename "$1")} says '$2'"
    else bad "${3:-$(basename "$1")} lacks '$2'" "$(head -c 2000 "$1")"; fi
}
# prop DTB NODE PROP WANT [TYPE]: fdtget prints WANT
prop() {
    local got; got=$(fdtget -t "${5:-x}" "$1" "$2" "$3" 2>&1)
    if [ "$got" = "$4" ]; then ok "$(basename "$1") $2 $3 = $4"
    else bad "$(basename "$1") $2 $3 = '$got', expected '$4'"; fi
}

# Inputs of known sizes: an arm64 Image header (magic at 56, image_size at 16) makes a file an Image.
mkimage_file() {  # mkimage_file PATH BYTES IMAGE_SIZE
    python3 - "$1" "$2" "$3" <<'EOF'
import struct, sys
path, n, image_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
head = bytearray(64)
struct.pack_into("<Q", head, 16, image_size)
head[56:60] = b"ARM\x64"
open(path, "wb").write(bytes(head) + bytes(range(256)) * ((n - 64) // 256) + b"\x5a" * ((n - 64) % 256))
EOF
}
mkimage_file "$W/moat.Image" 300000 2097152
mkimage_file "$W/linux.Image" 3145733 4194304
head -c 1048576 /dev/zero > "$W/initrd.cpio.gz"
QEMU_DTB=$W/virt.dtb  # 4 CPUs, as a guest with 2 vCPUs would run best
qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3,iommu=smmuv3,dumpdtb="$QEMU_DTB" -cpu cortex-a57 -smp 4 -m 1G \
    -nographic -nic none -device edu >/dev/null 2>&1

config() {  # config FILE BOARD DTB LOAD [extra guest lines]
    local f=$1 board=$2 dtb=$3 load=$4; shift 4
    {
        echo "[board]"; echo "board = $board"; echo "dtb = $dtb"; echo "moat = $W/moat.Image"; echo "load = $load"
        [ "$load" = tftpb ] && echo "prefix = moat/"
        echo; echo "[domU1]"; echo "kernel = $W/linux.Image"; echo "ramdisk = $W/initrd.cpio.gz"
        echo "memory = 256M     # a comment"; echo "cpus = 2"; echo "vpl011 = yes"
        echo "bootargs = console=ttyAMA0 rdinit=/init"
        for l in "$@"; do echo "$l"; done
    } > "$f"
}

# ---- QEMU virt: the tree, the loader arguments, the script
config "$W/virt.cfg" qemu-virt "$QEMU_DTB" none
if t virt 0 "$IB" "$W/virt.cfg" -o "$W/virt"; then
    D=$W/virt/host.dtb
    prop "$D" /chosen/domU1 compatible "xen,domain" s
    prop "$D" /chosen/domU1 memory "0 40000"            # 256 MiB in KiB, two cells
    prop "$D" /chosen/domU1 cpus "2"
    prop "$D" /chosen/domU1 vpl011 "" s
    prop "$D" /chosen/domU1 "#address-cells" "2"
    prop "$D" /chosen/domU1/module@50000000 compatible "multiboot,kernel multiboot,module" s
    prop "$D" /chosen/domU1/module@50000000 reg "0 50000000 0 300005"
    prop "$D" /chosen/domU1/module@50000000 bootargs "console=ttyAMA0 rdinit=/init" s
    prop "$D" /chosen/domU1/module@50400000 compatible "multiboot,ramdisk multiboot,module" s   # next 2 MiB boundary
    prop "$D" /chosen/domU1/module@50400000 reg "0 50400000 0 100000"
    prop "$D" /chosen stdout-path "/pl011@9000000" s   # what QEMU's tree had is kept
    has "$W/virt/qemu.args" "loader,file=$W/linux.Image,addr=0x50000000,force-raw=on"
    has "$W/virt/qemu.args" "loader,file=$W/initrd.cpio.gz,addr=0x50400000,force-raw=on"
    has "$W/virt/qemu.args" "$W/virt/host.dtb"
    S=$W/virt/boot.source
    has "$S" "fdt addr 0x48000000"
    has "$S" "fdt mknod /chosen domU1"
    has "$S" 'fdt set /chosen/domU1 compatible "xen,domain"'
    has "$S" 'fdt set /chosen/domU1 \#address-cells <0x2>'
    has "$S" "fdt set /chosen/domU1 memory <0x0 0x40000>"
    has "$S" "fdt set /chosen/domU1 vpl011"
    has "$S" 'fdt set /chosen/domU1/module@50000000 bootargs "console=ttyAMA0 rdinit=/init"'
    has "$S" 'fdt set /chosen/domU1/module@50000000 reg <0x0 0x50000000 0x0 0x300005>'
    has "$S" 'if test "${moat_boot}" != "no"; then booti 0x40400000 - 0x48000000; fi'
    if grep -q tftpb "$S"; then bad "load = none still loads files" "$(grep tftpb "$S")"; else ok "load = none: no load commands"; fi
    mkimage -l "$W/virt/boot.scr" > "$W/virt-scr.out" 2>&1
    has "$W/virt-scr.out" "Script" "mkimage -l boot.scr"
    t virt-parse 0 "$MOAT_DT" dom0less "$D" --image 0x40400000,2M --dtb-at 0x48000000 --guest-dtb "$W/virt"
    has "$W/virt-parse.out" "/chosen/domU1: 2 vCPUs, 256 MiB of RAM at guest 0x40000000, vpl011 console"
    has "$W/virt-parse.out" "1 guest accepted, 0 refused"
    if dtc -I dtb -O dts -o /dev/null "$W/virt/domU1.dtb" 2>"$W/guest-dtc.err" && [ ! -s "$W/guest-dtc.err" ]; then
        ok "the Linux guest's tree decompiles without a dtc warning"
    else bad "dtc on the Linux guest's tree" "$(cat "$W/guest-dtc.err")"; fi
    if fdtget "$W/virt/domU1.dtb" /hypervisor compatible >/dev/null 2>&1; then bad "the Linux guest's tree has a hypervisor node"
    else ok "the Linux guest's tree has no hypervisor node"; fi
fi

# ---- Salvator-X and ZCU102 (Linux's own trees, with all their CPUs and RAM: tools/install-deps.sh
# puts them in .deps/trees): the boards' RAM, their load addresses, TFTP loads with a prefix
TREES=${TREES:-.deps/trees}
for f in r8a77950-salvator-x zynqmp-zcu102-rev1.0; do
    [ -f "$TREES/$f.dtb" ] || bad "$TREES/$f.dtb missing: run tools/install-deps.sh"
done
config "$W/salvator.cfg" salvator-x "$TREES/r8a77950-salvator-x.dtb" tftpb
if t salvator 0 "$IB" "$W/salvator.cfg" -o "$W/salvator"; then
    prop "$W/salvator/host.dtb" /chosen/domU1/module@58000000 reg "0 58000000 0 300005"
    has "$W/salvator/boot.source" "tftpb 0x50000000 moat/r8a77950-salvator-x.dtb"
    has "$W/salvator/boot.source" "tftpb 0x58000000 moat/linux.Image"
    has "$W/salvator/boot.source" "tftpb 0x58400000 moat/initrd.cpio.gz"
    has "$W/salvator/boot.source" "tftpb 0x48080000 moat/moat.Image"
    has "$W/salvator/boot.source" "booti 0x48080000 - 0x50000000"
fi
config "$W/zcu102.cfg" zcu102 "$TREES/zynqmp-zcu102-rev1.0.dtb" tftpb "ram-base = 0x80000000" "" "[domU2]" "kernel = $W/linux.Image" \
    "memory = 64M" "vpl011 = no"
if t zcu102 0 "$IB" "$W/zcu102.cfg" -o "$W/zcu102"; then
    D=$W/zcu102/host.dtb
    prop "$D" /chosen/domU1/module@50000000 reg "0 50000000 0 300005"
    prop "$D" /chosen/domU1 moat,ram-base "0 80000000"
    prop "$D" /chosen/domU2/module@50600000 compatible "multiboot,kernel multiboot,module" s
    prop "$D" /chosen/domU2 cpus "1"
    if fdtget "$D" /chosen/domU2 vpl011 >/dev/null 2>&1; then bad "domU2 has vpl011"; else ok "vpl011 = no: no vpl011 property"; fi
    has "$W/zcu102/boot.source" "booti 0x48080000 - 0x4c000000"
    t zcu102-parse 0 "$MOAT_DT" dom0less "$D"
    has "$W/zcu102-parse.out" "2 guests accepted, 0 refused"
fi

# ---- devices: Xen's partial tree with /passthrough, xen,path and xen,reg
config "$W/pt.cfg" qemu-virt "$QEMU_DTB" none "devices = /pl061@9030000"
if t passthrough 0 "$IB" "$W/pt.cfg" -o "$W/pt"; then
    P=$W/pt/domU1-passthrough.dtb
    prop "$P" /passthrough/pl061@9030000 xen,path "/pl061@9030000" s
    prop "$P" /passthrough/pl061@9030000 xen,reg "0 9030000 0 1000 0 9030000"
    prop "$P" /passthrough/pl061@9030000 interrupt-parent "fde8"
    prop "$P" /passthrough compatible "simple-bus" s
    prop "$W/pt/host.dtb" /chosen/domU1/module@50600000 compatible "multiboot,device-tree multiboot,module" s
fi

# A partial tree written by hand (device-tree): read back as moat reads it; a bad one refused by name.
dtc -q -I dts -O dtb -o "$W/rtc.dtb" tests/qemu/platform/rtc.dts
dtc -q -I dts -O dtb -o "$W/unaligned.dtb" tests/qemu/platform/unaligned.dts
config "$W/pt-hand.cfg" qemu-virt "$QEMU_DTB" none "device-tree = $W/rtc.dtb"
if t passthrough-hand 0 "$IB" "$W/pt-hand.cfg" -o "$W/pt-hand"; then
    prop "$W/pt-hand/host.dtb" /chosen/domU1/module@50600000 compatible "multiboot,device-tree multiboot,module" s
fi
config "$W/pt-bad.cfg" qemu-virt "$QEMU_DTB" none "DOMU_PASSTHROUGH_DTB = $W/unaligned.dtb"
if t passthrough-unaligned 1 "$IB" "$W/pt-bad.cfg" -o "$W/pt-bad"; then
    has "$W/passthrough-unaligned.err" "dom0less: /chosen/domU1: partial device tree: /passthrough/gpio@1d000000: xen,reg: range 0 <0x9030800 0x1000 0x1d000000> is not 4 KiB-aligned"
fi

# Xen ImageBuilder's spelling of the same key.
config "$W/pt-xen.cfg" qemu-virt "$QEMU_DTB" none "DOMU_PASSTHROUGH_PATHS = /pl061@9030000"
if t passthrough-xen-key 0 "$IB" "$W/pt-xen.cfg" -o "$W/pt-xen"; then
    prop "$W/pt-xen/domU1-passthrough.dtb" /passthrough/pl061@9030000 xen,path "/pl061@9030000" s
fi

# A device under ZCU102's /axi (a bus with `ranges;`): its host address is its guest address.
config "$W/pt-zcu.cfg" zcu102 "$TREES/zynqmp-zcu102-rev1.0.dtb" none "devices = /axi/ethernet@ff0e0000"
if t passthrough-zcu102 0 "$IB" "$W/pt-zcu.cfg" -o "$W/pt-zcu"; then
    P=$W/pt-zcu/domU1-passthrough.dtb
    prop "$P" /passthrough/ethernet@ff0e0000 xen,reg "0 ff0e0000 0 1000 0 ff0e0000"
    prop "$P" /passthrough/ethernet@ff0e0000 interrupts "0 3f 4 0 3f 4"
    prop "$P" /passthrough/ethernet@ff0e0000 xen,path "/axi/ethernet@ff0e0000" s
fi
# A bus that translates: refused rather than copied with the wrong address.
dtc -q -I dts -O dtb -o "$W/bus.dtb" - <<'DTS'
/dts-v1/;
/ { #address-cells = <2>; #size-cells = <2>;
    memory@40000000 { device_type = "memory"; reg = <0 0x40000000 0 0x40000000>; };
    cpus { #address-cells = <1>; #size-cells = <0>; cpu@0 { device_type = "cpu"; reg = <0>; }; };
    chosen { };
    bus@10000000 { compatible = "simple-bus"; #address-cells = <1>; #size-cells = <1>; ranges = <0 0 0x10000000 0x100000>;
        uart@1000 { compatible = "ns16550a"; reg = <0x1000 0x100>; }; };
};
DTS
config "$W/pt-bus.cfg" qemu-virt "$W/bus.dtb" none "devices = /bus@10000000/uart@1000"
t passthrough-translated 1 "$IB" "$W/pt-bus.cfg" -o "$W/pt-bus" &&
    has "$W/passthrough-translated.err" "/bus@10000000/uart@1000: its bus /bus@10000000 translates addresses"

# ---- refusals: the tool's own, and moat's (through moat-dt dom0less)
config "$W/typo.cfg" qemu-virt "$QEMU_DTB" none "memroy = 1G"
t typo 1 "$IB" "$W/typo.cfg" -o "$W/typo" && has "$W/typo.err" "[domU1]: unknown key 'memroy'"
config "$W/board.cfg" qemu-virt "$QEMU_DTB" none
sed -i 's/^board = qemu-virt/board = rpi4/' "$W/board.cfg"
t unknown-board 1 "$IB" "$W/board.cfg" -o "$W/board" && has "$W/unknown-board.err" "'rpi4' is not one of qemu-virt, salvator-x, zcu102"
config "$W/cpus.cfg" qemu-virt "$QEMU_DTB" none
sed -i 's/^cpus = 2/cpus = 0/' "$W/cpus.cfg"
t cpus-zero 1 "$IB" "$W/cpus.cfg" -o "$W/cpus" && has "$W/cpus-zero.err" "dom0less: /chosen/domU1: cpus: 0, expected 1..8"
sed -i 's/^cpus = 0/cpus = 9/' "$W/cpus.cfg"
t cpus-nine 1 "$IB" "$W/cpus.cfg" -o "$W/cpus" && has "$W/cpus-nine.err" "dom0less: /chosen/domU1: cpus: 9, expected 1..8"
config "$W/wrongram.cfg" qemu-virt "$DTS_OUT/salvator-x.dtb" none
t wrong-board-tree 1 "$IB" "$W/wrongram.cfg" -o "$W/wrongram" && has "$W/wrong-board-tree.err" "does not hold qemu-virt's load addresses"
# pci = xl's BDF notation -> moat,pci cells; a malformed one refused by the tool, a duplicate by moat.
config "$W/pci.cfg" qemu-virt "$QEMU_DTB" none "pci = 0000:00:02.0 00:03.1"
if t pci 0 "$IB" "$W/pci.cfg" -o "$W/pci"; then prop "$W/pci/host.dtb" /chosen/domU1 moat,pci "0 0 2 0 0 0 3 1"; fi
config "$W/pcibad.cfg" qemu-virt "$QEMU_DTB" none "pci = 00:20.0"
t pci-bad 1 "$IB" "$W/pcibad.cfg" -o "$W/pcibad" && has "$W/pci-bad.err" "pci: '00:20.0' is not a PCI function"
config "$W/pcidup.cfg" qemu-virt "$QEMU_DTB" none "pci = 00:02.0 0000:00:02.0"
t pci-twice 1 "$IB" "$W/pcidup.cfg" -o "$W/pcidup" && has "$W/pci-twice.err" "moat,pci: 0000:00:02.0 is listed twice"
# reserved-memory = ADDR SIZE -> moat,reserved-memory cells; outside the guest's RAM refused by moat.
config "$W/resv.cfg" qemu-virt "$QEMU_DTB" none "reserved-memory = 0x42000000 64K"
if t reserved 0 "$IB" "$W/resv.cfg" -o "$W/resv"; then prop "$W/resv/host.dtb" /chosen/domU1 moat,reserved-memory "0 42000000 0 10000"; fi
config "$W/resvbad.cfg" qemu-virt "$QEMU_DTB" none "reserved-memory = 0x42000000"
t reserved-bad 1 "$IB" "$W/resvbad.cfg" -o "$W/resvbad" && has "$W/reserved-bad.err" "reserved-memory: '0x42000000' is not ADDRESS SIZE"
config "$W/resvout.cfg" qemu-virt "$QEMU_DTB" none "reserved-memory = 0x7ff00000 2M"
t reserved-outside 1 "$IB" "$W/resvout.cfg" -o "$W/resvout" &&
    has "$W/reserved-outside.err" "moat,reserved-memory: [0x7ff00000, 0x80100000) is not inside the guest's RAM"
config "$W/missing.cfg" qemu-virt "$QEMU_DTB" none
sed -i "s|^kernel = .*|kernel = $W/nothing.Image|" "$W/missing.cfg"
t missing-kernel 1 "$IB" "$W/missing.cfg" -o "$W/missing" && has "$W/missing-kernel.err" "nothing.Image: no such file"

# ---- Debian's U-Boot runs the script on QEMU virt (files already placed: load = none) and
# prints the nodes it made, which must be those of host.dtb.
if [ -f "$W/virt/boot.scr" ] && [ -f /usr/lib/u-boot/qemu_arm64/u-boot.bin ]; then
    log=$W/uboot.log
    tools/qemu-run.py --timeout 60 --log "$log" --on "Hit any key to stop autoboot" "\n" \
        --on "=> " "setenv moat_boot no; source 0x4fe00000\n" --on "=> " "fdt print /chosen/domU1\n" --on "=> " "poweroff\n" -- \
        qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3,iommu=smmuv3 -cpu cortex-a57 -smp 4 -m 1G -nographic -nic none \
        -device edu -bios /usr/lib/u-boot/qemu_arm64/u-boot.bin \
        -device loader,file="$QEMU_DTB",addr=0x48000000,force-raw=on \
        -device loader,file="$W/virt/boot.scr",addr=0x4fe00000,force-raw=on \
        $(sed -n 's/^loader,/-device loader,/p' "$W/virt/qemu.args") >/dev/null 2>&1
    has "$log" 'compatible = "xen,domain";' "U-Boot's fdt print"
    has "$log" "memory = <0x00000000 0x00040000>;" "U-Boot's fdt print"
    has "$log" "cpus = <0x00000002>;" "U-Boot's fdt print"
    has "$log" "vpl011;" "U-Boot's fdt print"
    has "$log" "module@50000000 {" "U-Boot's fdt print"
    has "$log" 'bootargs = "console=ttyAMA0 rdinit=/init";' "U-Boot's fdt print"
    has "$log" "reg = <0x00000000 0x50400000 0x00000000 0x00100000>;" "U-Boot's fdt print"
    if grep -q "Starting kernel" "$log"; then bad "moat_boot=no still booted"; else ok "moat_boot=no: the script stops before booti"; fi
else
    bad "U-Boot run: no boot.scr or no /usr/lib/u-boot/qemu_arm64/u-boot.bin"
fi

# ---- tools/mkinitramfs.py: /init, busybox and /dev/console in a gzipped newc cpio, the same
# bytes each time, modules with a modules.dep (a stand-in busybox: an arm64 ELF header is enough).
python3 -c 'import sys; sys.stdout.buffer.write(b"\x7fELF\x02\x01\x01" + bytes(11) + b"\xb7\x00" + bytes(44))' > "$W/busybox"
mkdir -p "$W/mods/lib/modules/6.1.0-test/kernel"
printf 'x\0depends=b\0y' > "$W/mods/lib/modules/6.1.0-test/kernel/a.ko"
printf 'x\0depends=c\0y' > "$W/mods/lib/modules/6.1.0-test/kernel/b.ko"
printf 'x\0depends=\0y' > "$W/mods/lib/modules/6.1.0-test/kernel/c.ko"
if t mkinitramfs 0 tools/mkinitramfs.py --busybox "$W/busybox" --modules "$W/mods" "$W/i1.cpio.gz"; then
    tools/mkinitramfs.py --busybox "$W/busybox" --modules "$W/mods" "$W/i2.cpio.gz" >/dev/null
    if cmp -s "$W/i1.cpio.gz" "$W/i2.cpio.gz"; then ok "mkinitramfs: the same bytes twice"; else bad "mkinitramfs: two runs differ"; fi
    zcat "$W/i1.cpio.gz" | cpio -itv 2>/dev/null > "$W/i1.list"
    has "$W/i1.list" "init" "cpio listing"
    has "$W/i1.list" "bin/busybox" "cpio listing"
    if grep -qE '^crw.* dev/console$' "$W/i1.list"; then ok "cpio: dev/console is a character device"
    else bad "cpio: no character device dev/console" "$(cat "$W/i1.list")"; fi
    mkdir -p "$W/i1" && (cd "$W/i1" && zcat ../i1.cpio.gz | cpio -id --quiet init lib/modules/6.1.0-test/modules.dep 2>/dev/null)
    has "$W/i1/init" "poweroff -f" "/init"
    has "$W/i1/init" 'cat /proc/interrupts' "/init"
    has "$W/i1/lib/modules/6.1.0-test/modules.dep" "kernel/a.ko: kernel/b.ko kernel/c.ko" "modules.dep"
fi
printf 'not an elf' > "$W/notbusybox"
t mkinitramfs-not-arm64 1 tools/mkinitramfs.py --busybox "$W/notbusybox" "$W/i3.cpio.gz" &&
    has "$W/mkinitramfs-not-arm64.err" "is not an arm64 ELF"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
