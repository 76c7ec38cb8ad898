#!/usr/bin/env bash
# CLI-level tests of moat-dt on real trees (QEMU virt's own DTB, dumped now; the Salvator-X and
# ZCU102 subsets in dts/) and on bad input. Every generated DTB must decompile with
# `dtc -I dtb -O dts` without warnings. Ends with one line: "N passed, M failed".
#
# Usage: tests/dt/run.sh   (from anywhere; builds moat-dt and dts/ first unless MOAT_DT is set,
#                           as `make dt-test` does after building them itself)
set -u
cd "$(dirname "$0")/../.."
if [ -z "${MOAT_DT:-}" ]; then  # a make of its own, not a sub-make of whatever ran us
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s -f Makefile -f tools/dt/dt.mk build/host/moat-dt dts >/dev/null || {
        echo "FAIL build: make build/host/moat-dt dts"; echo "0 passed, 1 failed"; exit 1; }
fi
DT=${MOAT_DT:-build/host/moat-dt}
DTS_OUT=${DTS_OUT:-build/dts}
W=${TEST_OUT:-build/tests}/dt
rm -rf "$W" && mkdir -p "$W"
pass=0 fail=0

ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() {
    echo "FAIL $1"; shift
    for line in "$@"; do echo "     $line"; done
    fail=$((fail + 1))
}

# t NAME WANT_RC CMD...: runs CMD with stdout/stderr in $W/NAME.{out,err}; passes when the
# exit status is WANT_RC. $rc keeps the status for further checks.
t() {
    local name=$1 want=$2; shift 2
    "$@" >"$W/$name.out" 2>"$W/$name.err"; rc=$?
    if [ "$rc" -eq "$want" ]; then ok "$name (exit $rc)"; return 0; fi
    bad "$name: exit $rc, expected $want" "\$ $*" "$(head -c 1500 "$W/$name.out")" "$(head -c 1500 "$W/$name.err")"
    return 1
}

# has NAME FILE TEXT: FILE (out or err of test NAME) contains TEXT literally.
has() {
    if grep -qF -- "$3" "$W/$1.$2"; then ok "$1: $2 says '$3'"
    else bad "$1: $2 lacks '$3'" "$(head -c 2000 "$W/$1.$2")"; fi
}
hasnt() {
    if ! grep -qF -- "$3" "$W/$1.$2"; then ok "$1: $2 does not say '$3'"
    else bad "$1: $2 says '$3'" "$(grep -F -- "$3" "$W/$1.$2" | head -5)"; fi
}

# Linux finds Xen by a node named exactly "hypervisor" (no unit address) whose reg is the
# grant-table window (Xen's guest binding); dtc flags any node with reg and no unit address.
# That one line is the only diagnostic a guest tree may get; everything else fails.
HV_WARNING='Warning (unit_address_vs_reg): /hypervisor: node has a reg or ranges property, but no unit name'

# dtc_clean NAME DTB [guest]: `dtc -I dtb -O dts` prints nothing on stderr.
dtc_clean() {
    local name=$1 dtb=$2 kind=${3:-}
    if ! dtc -I dtb -O dts -o "$W/$name.dts" "$dtb" 2>"$W/$name.dtc"; then
        bad "$name: dtc cannot decompile $dtb" "$(cat "$W/$name.dtc")"; return; fi
    local rest
    if [ "$kind" = guest ]; then rest=$(grep -vF -- "$HV_WARNING" "$W/$name.dtc"); else rest=$(cat "$W/$name.dtc"); fi
    if [ -z "$rest" ]; then ok "$name: dtc -I dtb -O dts is clean${kind:+ (but for the hypervisor node)}"
    else bad "$name: dtc warns" "$rest"; fi
}

# prop DTB NODE PROP EXPECTED: fdtget prints EXPECTED (decimal cells, or the string).
prop() {
    local got; got=$(fdtget "$1" "$2" "$3" 2>&1)
    if [ "$got" = "$4" ]; then ok "$(basename "$1") $2 $3 = $4"
    else bad "$(basename "$1") $2 $3 is '$got', expected '$4'"; fi
}
propx() {  # as prop, in hex cells
    local got; got=$(fdtget -t x "$1" "$2" "$3" 2>&1)
    if [ "$got" = "$4" ]; then ok "$(basename "$1") $2 $3 = <$4>"
    else bad "$(basename "$1") $2 $3 is <$got>, expected <$4>"; fi
}
noprop() {
    if fdtget "$1" "$2" "$3" >/dev/null 2>&1; then bad "$(basename "$1") $2 still has $3"
    else ok "$(basename "$1") $2 has no $3"; fi
}

json() {  # json NAME PYTHON-EXPR: the expression over `d` (the parsed JSON) is true
    if ! command -v python3 >/dev/null; then ok "$1: (python3 missing, JSON not checked)"; return; fi
    if python3 -c "import json,sys; d=json.load(open('$W/$1.out')); sys.exit(0 if ($2) else 1)" 2>"$W/$1.py"; then
        ok "$1: JSON $2"
    else bad "$1: JSON check failed: $2" "$(cat "$W/$1.py")"; fi
}

echo "== board trees (dts/) compile without warnings"
for src in dts/*.dts; do
    b=$(basename "$src" .dts)
    if dtc -I dts -O dtb -o "$W/$b.dtb" "$src" 2>"$W/$b.dtc" && [ ! -s "$W/$b.dtc" ]; then ok "dtc $src"
    else bad "dtc $src" "$(cat "$W/$b.dtc")"; fi
    dtc_clean "$b-roundtrip" "$W/$b.dtb"
done

echo "== QEMU virt's own tree"
VIRT=$W/virt.dtb
if qemu-system-aarch64 -machine virt,virtualization=on,gic-version=3,iommu=smmuv3,dumpdtb="$VIRT" \
       -cpu cortex-a57 -m 1G -nographic -nic none -device edu >"$W/qemu.log" 2>&1 && [ -s "$VIRT" ]; then
    ok "qemu dumpdtb"
else
    bad "qemu dumpdtb" "$(cat "$W/qemu.log")"
fi

ZCU=$DTS_OUT/zcu102.dtb
SALV=$DTS_OUT/salvator-x.dtb

echo "== check"
t check-virt 0 "$DT" check "$VIRT" && has check-virt out "IOMMU wiring ok: 1 IOMMU, 1 master"
t check-zcu102 0 "$DT" check "$ZCU" && has check-zcu102 out "IOMMU wiring ok: 1 IOMMU, 25 masters, 28 stream references"
t check-salvator 0 "$DT" check "$SALV" && has check-salvator out "IOMMU wiring ok: 6 IOMMUs, 5 masters"

echo "== report"
t report-virt 0 "$DT" report "$VIRT"
has report-virt out "/pcie@10000000"
grep -E '^/pcie@10000000 +protected \(moat drives the IOMMU\) +iommu-map +rid 0x0-0xffff->0x0-0xffff' "$W/report-virt.out" >/dev/null \
    && ok "report-virt: the PCIe bridge is protected by the SMMUv3" || bad "report-virt: PCIe line" "$(grep pcie "$W/report-virt.out")"
has report-virt out "34 devices: 1 protected, 33 unprotected, 0 unknown"
has report-virt out "dom0 with this tree: XENFEAT_direct_mapped (17)"
hasnt report-virt out "pl011"   # a UART is a known non-master
t report-virt-strict 1 "$DT" report --strict "$VIRT"
t report-virt-json 0 "$DT" report --json "$VIRT"
json report-virt-json "d['totals'] == {'protected': 1, 'unprotected': 33, 'unknown': 0, 'not_examined': 0}"
json report-virt-json "[x for x in d['devices'] if x['path'] == '/pcie@10000000'][0]['streams'][0]['count'] == 65536"
json report-virt-json "d['dom0']['value'] == 17 and d['iommus'][0]['driven']"

t report-zcu102 0 "$DT" report "$ZCU"
has report-zcu102 out "25 devices: 25 protected, 0 unprotected, 0 unknown"
grep -E '^/axi/ahci@fd0c0000 +protected \(moat drives the IOMMU\) +iommus +0x4c0-0x4c3 ' "$W/report-zcu102.out" >/dev/null \
    && ok "report-zcu102: SATA streams 0x4c0-0x4c3" || bad "report-zcu102: SATA line" "$(grep ahci "$W/report-zcu102.out")"
has report-zcu102 out "XENFEAT_not_direct_mapped (16)"
t report-zcu102-strict 0 "$DT" report --strict "$ZCU"
t report-zcu102-json 0 "$DT" report --json "$ZCU"
json report-zcu102-json "sorted(s['sid'] for x in d['devices'] for s in x['streams']) == sorted([0x4c0,0x4c1,0x4c2,0x4c3,0x870,0x871,0x872,0x873] + list(range(0x874,0x878)) + list(range(0x868,0x870)) + list(range(0x14e8,0x14f0)))"
t report-zcu102-keep 0 "$DT" report --keep /axi/iommu@fd800000 "$ZCU"
has report-zcu102-keep out "25 devices: 0 protected, 25 unprotected, 0 unknown"

t report-salvator 0 "$DT" report "$SALV"
grep -E '^/soc/mmc@ee140000 +protected \(moat drives the IOMMU\) +iommus +0x22 +every stream goes through /soc/iommu@e7740000' "$W/report-salvator.out" >/dev/null \
    && ok "report-salvator: SDHI2 on uTLB 34 of IPMMU-DS1" || bad "report-salvator: SDHI2 line" "$(grep ee140000 "$W/report-salvator.out")"
has report-salvator out "/soc/dma-controller@ec700000"
has report-salvator out "7 devices: 5 protected, 2 unprotected, 0 unknown"
# One IOMMU past a driver's storage: refused naming the node, counted in the exit status, and
# its master is not called protected (the image refuses the same instance: smmu_v3_multi_test).
dtc -q -I dts -O dtb -o "$W/five_smmuv3.dtb" tests/unit/data/five_smmuv3.dts
t report-capacity 1 "$DT" report "$W/five_smmuv3.dtb"
has report-capacity out "smmu_v3: /soc/iommu@9500000: more than 4 instances; moat's storage holds 4"
has report-capacity out "/soc/dev@ee140000   IOMMU refused: past moat's capacity"
t check-capacity 1 "$DT" check "$W/five_smmuv3.dtb"
has check-capacity out "1 problem"
# iommu-map onto an IPMMU: unsupported, and report and check say it in the same words.
dtc -q -I dts -O dtb -o "$W/ipmmu_pcie_map.dtb" tests/unit/data/ipmmu_pcie_map.dts
t report-ipmmu-map 1 "$DT" report "$W/ipmmu_pcie_map.dtb"
has report-ipmmu-map out "wiring broken: device left blocked"
has report-ipmmu-map out "iommu-map onto /soc/iommu@e6570000 (Renesas IPMMU-VMSA (R-Car H3)) is not supported"
t check-ipmmu-map 1 "$DT" check "$W/ipmmu_pcie_map.dtb"
has check-ipmmu-map out "iommu-map onto /soc/iommu@e6570000 (Renesas IPMMU-VMSA (R-Car H3)) is not supported"
has report-salvator out "/soc/usb@ee000000             unprotected: no IOMMU"

echo "== dom0"
t dom0-virt 0 "$DT" dom0 "$VIRT" -o "$W/dom0-virt.dtb" && {
    dtc_clean dom0-virt-dtc "$W/dom0-virt.dtb"
    has dom0-virt out "removed 1 IOMMU node, 1 iommus/iommu-map property"
    has dom0-virt out "dom0: XENFEAT_direct_mapped (17)"
    noprop "$W/dom0-virt.dtb" /smmuv3@9050000 compatible
    noprop "$W/dom0-virt.dtb" /pcie@10000000 iommu-map
    prop "$W/dom0-virt.dtb" /pcie@10000000 msi-map "0 32771 0 65536"   # what is not the IOMMU's stays
    t dom0-virt-check 0 "$DT" check "$W/dom0-virt.dtb"
}
t dom0-virt-keep 0 "$DT" dom0 "$VIRT" --keep /smmuv3@9050000 -o "$W/dom0-virt-keep.dtb" && {
    prop "$W/dom0-virt-keep.dtb" /pcie@10000000 iommu-map "0 32772 0 65536"
    prop "$W/dom0-virt-keep.dtb" /smmuv3@9050000 compatible "arm,smmu-v3"
    dtc_clean dom0-virt-keep-dtc "$W/dom0-virt-keep.dtb"
}
t dom0-zcu102 0 "$DT" dom0 "$ZCU" -o "$W/dom0-zcu102.dtb" && {
    dtc_clean dom0-zcu102-dtc "$W/dom0-zcu102.dtb"
    has dom0-zcu102 out "removed 1 IOMMU node, 25 iommus/iommu-map properties"
    has dom0-zcu102 out "dom0: XENFEAT_not_direct_mapped (16): all 25 DMA masters dom0 sees are translated by IOMMUs moat drives"
    if grep -qE 'iommus|iommu-map|#iommu-cells' "$W/dom0-zcu102-dtc.dts"; then bad "dom0-zcu102: IOMMU wiring left" "$(grep -nE 'iommus|iommu-map|#iommu-cells' "$W/dom0-zcu102-dtc.dts" | head)"
    else ok "dom0-zcu102: no iommus, iommu-map or IOMMU node left"; fi
    prop "$W/dom0-zcu102.dtb" /axi/mmc@ff170000 compatible "xlnx,zynqmp-8.9a arasan,sdhci-8.9a"
}
t dom0-salvator 0 "$DT" dom0 "$SALV" -o "$W/dom0-salvator.dtb" && {
    dtc_clean dom0-salvator-dtc "$W/dom0-salvator.dtb"
    has dom0-salvator out "removed 6 IOMMU nodes"
    has dom0-salvator out "XENFEAT_direct_mapped (17): 2 of the 7 DMA masters"
    noprop "$W/dom0-salvator.dtb" /soc/mmc@ee100000 iommus
}
t dom0-salvator-keep-cache 1 "$DT" dom0 "$SALV" --keep /soc/iommu@e6570000 -o "$W/dom0-salvator-keep.dtb"
has dom0-salvator-keep-cache err "dt: /soc/iommu@e6570000: renesas,ipmmu-main names /soc/iommu@e67b0000, which moat hides"
t dom0-bad-driven 2 "$DT" dom0 "$ZCU" --driven /axi/serial@ff000000 -o "$W/x.dtb"
has dom0-bad-driven err "moat-dt: --driven /axi/serial@ff000000: not an IOMMU"

echo "== guest"
E=tools/dt/examples
t guest-virtio 0 "$DT" guest $E/virtio-grants.cfg -o "$W/guest-virtio.dtb" && {
    dtc_clean guest-virtio-dtc "$W/guest-virtio.dtb" guest
    G=$W/guest-virtio.dtb
    prop "$G" /xen_iommu compatible "xen,grant-dma"
    prop "$G" /xen_iommu "#iommu-cells" 1
    prop "$G" /xen_iommu phandle 65001
    if [ "$(fdtget -p "$G" /xen_iommu | sort | tr '\n' ' ')" = "#iommu-cells compatible phandle " ]; then ok "guest-virtio: xen_iommu has nothing the binding does not allow"
    else bad "guest-virtio: xen_iommu properties" "$(fdtget -p "$G" /xen_iommu)"; fi
    prop "$G" /virtio@2000000 iommus "65001 1"
    noprop "$G" /virtio@2000200 iommus
    prop "$G" /virtio@2000200 interrupts "0 2 1"
    prop "$G" /pcie@33000000 iommu-map "8 65001 1 1 16 65001 2 1"
    prop "$G" /hypervisor compatible "xen,xen-4.19 xen,xen"
    propx "$G" /hypervisor reg "0 38000000 0 1000000"
    prop "$G" /hypervisor interrupts "1 15 8"
    prop "$G" /interrupt-controller@3001000 phandle 65000
    propx "$G" /memory@40000000 reg "0 40000000 0 40000000"
    t guest-virtio-check 0 "$DT" check "$G"
    t guest-virtio-report 0 "$DT" report "$G"
    grep -E '^/virtio@2000000 +protected \(Xen grant DMA\) +iommus +0x1 +Xen grant DMA through /xen_iommu: backend domain 1' "$W/guest-virtio-report.out" >/dev/null \
        && ok "guest-virtio-report: virtio@2000000 protected by grants" || bad "guest-virtio-report" "$(cat "$W/guest-virtio-report.out")"
}
t guest-zcu102 0 "$DT" guest $E/zcu102-passthrough.cfg --host "$ZCU" -o "$W/guest-zcu102.dtb" && {
    dtc_clean guest-zcu102-dtc "$W/guest-zcu102.dtb" guest
    G=$W/guest-zcu102.dtb
    propx "$G" /passthrough/mmc@ff170000 reg "0 ff170000 0 1000"
    prop "$G" /passthrough/mmc@ff170000 interrupts "0 49 4"
    noprop "$G" /passthrough/mmc@ff170000 iommus
    noprop "$G" /xen_iommu compatible
    has guest-zcu102 err "passthrough /axi/mmc@ff170000: not copied: iommus"
    if grep -qE 'iommus|iommu-map' "$W/guest-zcu102-dtc.dts"; then bad "guest-zcu102: names an IOMMU"; else ok "guest-zcu102: no IOMMU reference at all"; fi
}
t guest-salvator 0 "$DT" guest $E/salvator-x-sdhi.cfg --host "$SALV" -o "$W/guest-salvator.dtb" && {
    dtc_clean guest-salvator-dtc "$W/guest-salvator.dtb" guest
    propx "$W/guest-salvator.dtb" /passthrough/mmc@23000000 reg "0 23000000 0 2000"
    prop "$W/guest-salvator.dtb" /passthrough/mmc@23000000 interrupts "0 68 4"
    prop "$W/guest-salvator.dtb" /interrupt-controller@3001000 compatible "arm,cortex-a15-gic"
    noprop "$W/guest-salvator.dtb" /sbsa-uart@22000000 compatible
}
cat >"$W/virt-rtc.cfg" <<'EOF'
[guest]
memory = 128M
[virtio-mmio]
backend = 3
[passthrough]
path = /pl031@9010000
EOF
t guest-virt-rtc 0 "$DT" guest "$W/virt-rtc.cfg" --host "$VIRT" -o "$W/guest-virt-rtc.dtb" && {
    dtc_clean guest-virt-rtc-dtc "$W/guest-virt-rtc.dtb" guest
    prop "$W/guest-virt-rtc.dtb" /passthrough/pl031@9010000 interrupts "0 2 4"
    prop "$W/guest-virt-rtc.dtb" /virtio@2000000 interrupts "0 1 1"   # SPI 33; the RTC keeps 34
    has guest-virt-rtc err "passthrough /pl031@9010000: not copied: clock-names, clocks"
}

# A [passthrough] device no IOMMU moat drives confines is refused unless forced, and nothing is
# written; forced, it is assigned and said to be unconfined. An IOMMU moat drives is refused.
printf '[guest]\nmemory = 256M\n[passthrough]\npath = /soc/usb@ee000000\n' >"$W/pt-xhci.cfg"
rm -f "$W/pt-xhci.dtb"
t guest-unprotected 2 "$DT" guest "$W/pt-xhci.cfg" --host "$SALV" -o "$W/pt-xhci.dtb"
has guest-unprotected err "pt-xhci.cfg:3: passthrough /soc/usb@ee000000: unprotected: no IOMMU (known bus master"
has guest-unprotected err "refused (set force-assign-without-iommu = true in its [passthrough] to assign it anyway)"
if [ -e "$W/pt-xhci.dtb" ]; then bad "guest-unprotected: wrote a tree"; else ok "guest-unprotected: nothing written"; fi
printf '[guest]\nmemory = 256M\n[passthrough]\npath = /soc/usb@ee000000\nforce-assign-without-iommu = true\n' >"$W/pt-xhci-force.cfg"
t guest-unprotected-forced 0 "$DT" guest "$W/pt-xhci-force.cfg" --host "$SALV" -o "$W/pt-xhci.dtb"
has guest-unprotected-forced err "assigned because forced: the guest's DMA through it is UNCONFINED"
hasnt guest-unprotected-forced err "the guest sees DMA as guest-physical"
t guest-protected-pt 0 "$DT" guest $E/salvator-x-sdhi.cfg --host "$SALV" -o "$W/guest-salvator2.dtb"
hasnt guest-protected-pt err "UNCONFINED"
printf '[guest]\nmemory = 256M\n[passthrough]\npath = /soc/iommu@e6570000\n' >"$W/pt-ipmmu.cfg"
rm -f "$W/pt-ipmmu.dtb"
t guest-iommu-node 2 "$DT" guest "$W/pt-ipmmu.cfg" --host "$SALV" -o "$W/pt-ipmmu.dtb"
has guest-iommu-node err "pt-ipmmu.cfg:3: passthrough /soc/iommu@e6570000: an IOMMU moat drives cannot be given to a guest"
if [ -e "$W/pt-ipmmu.dtb" ]; then bad "guest-iommu-node: wrote a tree"; else ok "guest-iommu-node: nothing written"; fi

echo "== bad input"
head -c 200 "$VIRT" >"$W/truncated.dtb"
t bad-truncated-check 2 "$DT" check "$W/truncated.dtb" && has bad-truncated-check err "truncated.dtb: device tree"
t bad-truncated-report 2 "$DT" report "$W/truncated.dtb"
t bad-truncated-dom0 2 "$DT" dom0 "$W/truncated.dtb" -o "$W/x.dtb"
t bad-truncated-host 2 "$DT" guest "$W/virt-rtc.cfg" --host "$W/truncated.dtb" -o "$W/x.dtb"
echo "not a device tree" >"$W/garbage.dtb"
t bad-garbage 2 "$DT" check "$W/garbage.dtb" && has bad-garbage err "device tree"
t bad-missing 2 "$DT" check "$W/no-such-file.dtb" && has bad-missing err "No such file"
# Hostile trees (tests/dt/hostile: the red team's inputs and saved fuzzer timeouts and crashes):
# every command refuses each with exit 2, bounded in time, before libfdt walks it.
for h in tests/dt/hostile/*.dtb; do
    n=hostile-$(basename "$h" .dtb)
    for c in check report; do
        t "$n-$c" 2 timeout 20 "$DT" "$c" "$h" && has "$n-$c" err "device tree"
    done
    t "$n-dom0" 2 timeout 20 "$DT" dom0 "$h" -o "$W/x.dtb"
    t "$n-host" 2 timeout 20 "$DT" guest "$W/virt-rtc.cfg" --host "$h" -o "$W/x.dtb"
done
# Fuzzer findings moat handles (tests/dt/fuzz): bounded in time, problems reported (exit 1).
for h in tests/dt/fuzz/*.dtb; do
    n=fuzz-$(basename "$h" .dtb)
    t "$n-check" 1 timeout 20 "$DT" check "$h"
    t "$n-dom0" 1 timeout 20 "$DT" dom0 "$h" -o "$W/x.dtb"
done
rm -f "$W/x.dtb"
has hostile-prop_len_fffffff4-check err "has length 0xfffffff4, past the end of the structure block"
has hostile-v4_root_without_slash-check err "device tree version 4 (compatible with 4) unsupported"

cat >"$W/wiring.dts" <<'EOF'
/dts-v1/;
/ {
    #address-cells = <1>;
    #size-cells = <1>;
    smmu: iommu@1000 { compatible = "arm,smmu-v3"; reg = <0x1000 0x1000>; #iommu-cells = <1>; };
    two: iommu@2000 { compatible = "arm,mmu-500"; reg = <0x2000 0x1000>; #iommu-cells = <2>; };
    ipmmu: iommu@3000 { compatible = "renesas,ipmmu-r8a7795"; reg = <0x3000 0x1000>; #iommu-cells = <2>; };
    dangling@4000 { reg = <0x4000 0x100>; iommus = <0xdead 1>; };
    short@5000 { reg = <0x5000 0x100>; iommus = <&two 0x10>; };
    a@6000 { reg = <0x6000 0x100>; iommus = <&smmu 7>; };
    b@7000 { reg = <0x7000 0x100>; iommus = <&smmu 7>; };
    pcie@8000 { reg = <0x8000 0x100>; iommu-map = <0x0 &smmu 0x100 0x100>, <0x80 &smmu 0x300 0x100>; };
};
EOF
dtc -q -I dts -O dtb -o "$W/wiring.dtb" "$W/wiring.dts"
t bad-wiring-check 1 "$DT" check "$W/wiring.dtb" && {
    has bad-wiring-check out "dt: /dangling@4000: iommus entry 0: phandle 0xdead points to no node"
    has bad-wiring-check out "dt: /short@5000: iommus entry 0: #iommu-cells wants 2 cells, only 1 left"
    has bad-wiring-check out "dt: /iommu@3000: #iommu-cells is 2, the renesas,ipmmu-r8a7795 binding needs 1"
    has bad-wiring-check out "dt: /a@6000: stream 0x7 on /iommu@1000 is also claimed by /b@7000"
    has bad-wiring-check out "dt: /pcie@8000: iommu-map entries 0 and 1 overlap at requester id 0x80"
    has bad-wiring-check out "wiring.dtb: 5 problems"
}
t bad-wiring-report 1 "$DT" report "$W/wiring.dtb" && {
    grep -E '^/dangling@4000 +wiring broken: device left blocked +iommus' "$W/bad-wiring-report.out" >/dev/null \
        && ok "bad-wiring-report: a dangling phandle is unknown, not protected" || bad "bad-wiring-report: dangling" "$(cat "$W/bad-wiring-report.out")"
}
t bad-wiring-dom0 1 "$DT" dom0 "$W/wiring.dtb" -o "$W/dom0-wiring.dtb" && {
    has bad-wiring-dom0 err "dt: /short@5000: iommus entry 0: #iommu-cells wants 2 cells, only 1 left"
    noprop "$W/dom0-wiring.dtb" /a@6000 iommus
    dtc -I dtb -O dts -o /dev/null "$W/dom0-wiring.dtb" 2>/dev/null && ok "bad-wiring-dom0: output still decompiles" || bad "bad-wiring-dom0: output"
}

printf '[guest]\nmemory = 256M\nvcpu = 2\n' >"$W/guest.cfg"
t bad-config-key 2 "$DT" guest "$W/guest.cfg" -o "$W/x.dtb" && has bad-config-key err "guest.cfg:3: unknown key 'vcpu' in [guest] (did you mean 'vcpus'?)"
printf '[guest]\nmemory = lots\n' >"$W/value.cfg"
t bad-config-value 2 "$DT" guest "$W/value.cfg" -o "$W/x.dtb" && has bad-config-value err "value.cfg:2: memory: 'lots' is not a size (bytes, or with K, M or G)"
printf '[guest]\nmemory = 256M\n\n[virtio-mmio]\nbackend = 1\nirq = 32\n' >"$W/clash.cfg"
t bad-config-clash 2 "$DT" guest "$W/clash.cfg" -o "$W/x.dtb" && has bad-config-clash err "clash.cfg:4: virtio-mmio 0: interrupt 32 is already used by console (vPL011) (line 1)"
printf '[guest]\nmemory = 256M\n[passthrough]\npath = /nowhere@0\n' >"$W/pt.cfg"
t bad-config-nohost 2 "$DT" guest "$W/pt.cfg" -o "$W/x.dtb" && has bad-config-nohost err "pt.cfg:3: passthrough /nowhere@0: no host device tree to copy it from"
t bad-config-path 2 "$DT" guest "$W/pt.cfg" --host "$ZCU" -o "$W/x.dtb" && has bad-config-path err "pt.cfg:3: passthrough /nowhere@0: no such node in the host device tree"
[ ! -e "$W/x.dtb" ] && ok "no output file after a refused input" || bad "an output file was written for refused input"

echo "== usage"
t usage-none 2 "$DT"
t usage-unknown-command 2 "$DT" frobnicate && has usage-unknown-command err "unknown command 'frobnicate'"
t usage-unknown-option 2 "$DT" check --frob "$ZCU" && has usage-unknown-option err "unknown option '--frob'"
t usage-guest-no-output 2 "$DT" guest $E/virtio-grants.cfg && has usage-guest-no-output err "guest needs -o OUT.dtb"
for c in guest dom0 report check; do
    t "help-$c" 0 "$DT" "$c" --help && has "help-$c" out "usage: moat-dt $c"
done
t help 0 "$DT" --help && has help out "exit status: 0 ok, 1 problems found, 2 unusable input"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
