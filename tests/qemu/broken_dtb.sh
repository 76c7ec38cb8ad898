#!/usr/bin/env bash
# Boots with a device tree whose IOMMU wiring is broken in every way the binding can be broken
# (QEMU's own virt tree plus bad masters, passed with -dtb). Each bad master must be named and
# left blocked; the good wiring (PCIe behind the SMMUv3) must still be found; the run ends
# with status 2 ("finished, with device-tree problems") instead of crashing or hanging.
. tests/qemu/lib.sh
base=$TEST_OUT/virt.dtb
dump_dtb "$base"
dtc -q -I dtb -O dts -o "$TEST_OUT/broken.dts" "$base" || { echo "FAIL: dtc could not decompile $base"; exit 1; }
smmu=$(fdtget -t x "$base" /smmuv3@9050000 phandle)
python3 - "$TEST_OUT/broken.dts" "$smmu" <<'PY'
import sys
path, smmu = sys.argv[1], int(sys.argv[2], 16)
src = open(path).read().rstrip()
assert src.endswith("};")
extra = f"""
	plain@7000000 {{ reg = <0x0 0x07000000 0x0 0x1000>; phandle = <0x7001>; }};
	dma-nocells@7001000 {{ reg = <0x0 0x07001000 0x0 0x1000>; iommus = <0x7001 5>; }};
	dma-dangling@7002000 {{ reg = <0x0 0x07002000 0x0 0x1000>; iommus = <0xdead 5>; }};
	dma-shortcells@7003000 {{ reg = <0x0 0x07003000 0x0 0x1000>; iommus = <{smmu:#x}>; }};
	pcie-badmap@7004000 {{ reg = <0x0 0x07004000 0x0 0x1000>; iommu-map = <0x0 {smmu:#x} 0x0>; }};
	dma-good@7005000 {{ reg = <0x0 0x07005000 0x0 0x1000>; iommus = <{smmu:#x} 0x42>; }};
"""
open(path, "w").write(src[:-2] + extra + "};\n")
PY
dtc -q -I dts -O dtb -o "$TEST_OUT/broken.dtb" "$TEST_OUT/broken.dts" || { echo "FAIL: dtc could not build the broken tree"; exit 1; }
run_qemu broken_dtb 60 -- -kernel "$IMAGE" -dtb "$TEST_OUT/broken.dtb"
expect_rc 2
expect_line "dt: /dma-nocells@7001000: iommus entry 0: /plain@7000000 has no #iommu-cells; device left blocked"
expect_line "dt: /dma-dangling@7002000: iommus entry 0: phandle 0xdead points to no node; device left blocked"
expect_line "dt: /dma-shortcells@7003000: iommus entry 0: #iommu-cells wants 1 cells, only 0 left; device left blocked"
expect_line "dt: /pcie-badmap@7004000: iommu-map is 12 bytes, not a multiple of 4 cells"
expect_line "master /dma-good@7005000: stream id 0x42 (iommus)"
expect_line "master /pcie@10000000: requester ids 0x0000-0xffff -> stream ids 0x0000-0xffff"
expect_line "moat: 4 device-tree and 0 IOMMU problem(s); affected devices left blocked; exit 2"
finish
