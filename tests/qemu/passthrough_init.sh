#!/bin/sh
# /init of the PCI passthrough test (tests/qemu/linux_passthrough.sh): Debian's virtio modules,
# the disk the test wrote read whole and checksummed, one block written and read back, the PCI
# functions the guest sees listed, edu's DMA programmed from user space (inside RAM, then into
# moat's image), then a clean poweroff. Every line the test reads starts with "moat-guest:".
busybox mount -t proc proc /proc
busybox mount -t sysfs sysfs /sys
busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "moat-guest: uname -r: $(uname -r)"
for d in /sys/bus/pci/devices/*; do
    [ -e "$d" ] && echo "moat-guest: pci $(basename "$d") $(cat "$d/vendor"):$(cat "$d/device") class $(cat "$d/class")"
done
modprobe virtio_pci && modprobe virtio_blk && echo "moat-guest: virtio modules loaded"
i=0
while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if [ -b /dev/vda ]; then
    echo "moat-guest: vda: $(cat /sys/block/vda/size) sectors"
    echo "moat-guest: checksum $(dd if=/dev/vda bs=1M count=8 2>/dev/null | md5sum | cut -d' ' -f1)"
    printf 'moat-roundtrip-block-%s\n' 0123456789abcdef > /tmp/blk
    dd if=/tmp/blk of=/dev/vda bs=512 seek=16384 conv=sync,fsync 2>/dev/null
    echo 3 > /proc/sys/vm/drop_caches
    back=$(dd if=/dev/vda bs=512 skip=16384 count=1 2>/dev/null | head -n 1)
    echo "moat-guest: read back: $back"
else
    echo "moat-guest: no /dev/vda"
fi
grep -E 'virtio|pcie' /proc/interrupts | sed 's/^/moat-guest: irq /'
# edu (QEMU's docs/specs/edu.txt): BAR0 0x80 source, 0x88 destination, 0x90 count, 0x98 command
# (bit 0 start, bit 1 edu-to-RAM); the 4 KiB buffer at 0x40000 of the device's own space.
edu=""
for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor" 2>/dev/null)" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ] && edu=$d
done
if [ -n "$edu" ] && [ -n "${EDU_IN:-}" ]; then
    bar=$(head -n 1 "$edu/resource" | cut -d' ' -f1)
    echo 1 > "$edu/enable"  # memory decoding and (setpci-free) bus mastering
    devmem $((bar + 4)) 32 0x5a5a5a5a  # card liveness: reads back inverted
    echo "moat-guest: edu liveness $(devmem $((bar + 4)) 32)"
    dma() {  # dma SRC DST COUNT CMD
        devmem $((bar + 0x80)) 64 "$1"; devmem $((bar + 0x88)) 64 "$2"; devmem $((bar + 0x90)) 64 "$3"
        devmem $((bar + 0x98)) 64 "$4"
        n=0; while [ $(( $(devmem $((bar + 0x98)) 64) & 1 )) -ne 0 ] && [ $n -lt 100 ]; do sleep 0.01; n=$((n + 1)); done
    }
    # RAM -> edu from a page of known bytes, then edu -> RAM into a second page: they arrive.
    devmem "$EDU_IN" 32 0x600dcafe
    dma "$EDU_IN" 0x40000 0x800 0
    dma 0x40000 "$((EDU_IN + 0x1000))" 0x800 2
    echo "moat-guest: edu dma inside RAM: $(devmem $((EDU_IN + 0x1000)) 32)"
    # edu -> RAM at a guest-physical address outside the guest's RAM (moat's own image): faults.
    dma 0x40000 "$EDU_OUT" 0x10 2
    echo "moat-guest: edu dma outside RAM done; still running"
fi
echo "moat-guest: --- end; powering off"
poweroff -f
