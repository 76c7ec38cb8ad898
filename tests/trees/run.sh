#!/usr/bin/env bash
# The real-trees tier, host tool side: moat-dt on the device trees Linux ships (fetched into
# .deps/trees by tools/install-deps.sh), with what each must say written here by hand from the
# trees. The unit tier's RealTrees.* tests run the same trees through discovery and the image's
# probe. A missing tree is a failure: this tier never passes without its input.
set -u
DT=${MOAT_DT:-build/host/moat-dt}
TREES=${MOAT_TREES:-.deps/trees}
W=${TEST_OUT:-build/tests}/trees
mkdir -p "$W"
pass=0 fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; [ -n "${2:-}" ] && echo "$2" | head -n 20 | sed 's/^/    /'; fail=$((fail + 1)); }
# run NAME EXPECTED_RC CMD...: output in $W/NAME.out
run() {
    local name=$1 want=$2; shift 2
    "$@" > "$W/$name.out" 2>&1; local rc=$?
    [ "$rc" -eq "$want" ] && ok "$name: exit $rc" || bad "$name: exit $rc, expected $want" "$(cat "$W/$name.out")"
}
has() { grep -qF -- "$2" "$W/$1.out" && ok "$1: $2" || bad "$1: no '$2'" "$(tail -n 15 "$W/$1.out")"; }
hasnt() { grep -qF -- "$2" "$W/$1.out" && bad "$1: says '$2'" "$(grep -F -- "$2" "$W/$1.out")" || ok "$1: not '$2'"; }

for t in r8a77950-salvator-x r8a77951-salvator-x r8a77951-salvator-xs r8a77960-salvator-x r8a77960-salvator-xs \
         r8a77961-salvator-xs r8a77965-salvator-x r8a77965-salvator-xs r8a779f0-spider r8a779a0-falcon \
         zynqmp-zcu102-rev1.0 zynqmp-zcu102-rev1.1; do
    [ -f "$TREES/$t.dtb" ] || bad "$t: $TREES/$t.dtb is missing: run tools/install-deps.sh (needs Debian's archive)"
done

# ZCU102: the MMU-500 is disabled; nothing is broken.
for rev in 1.0 1.1; do
    f=$TREES/zynqmp-zcu102-rev$rev.dtb
    [ -f "$f" ] || continue
    run zcu102-$rev-check 0 "$DT" check "$f"
    has zcu102-$rev-check "IOMMU wiring ok: 0 IOMMUs, 14 masters"
    run zcu102-$rev-report 0 "$DT" report "$f"
    has zcu102-$rev-report "/axi/ahci@fd0c0000               unprotected: IOMMU disabled in the tree"
    hasnt zcu102-$rev-report "usb@fe300000"
    hasnt zcu102-$rev-report "wiring broken"
done

# H3 (r8a77951): 17 IPMMUs, conditional on the cut until it is stated.
f=$TREES/r8a77951-salvator-x.dtb
if [ -f "$f" ]; then
    run h3-check 0 "$DT" check "$f"
    has h3-check "IOMMU wiring ok: 17 IOMMUs, 19 masters"
    run h3-report 0 "$DT" report "$f"
    has h3-report "only on R-Car H3 ES3.0 or later"
    has h3-report "SoC revision: not stated"
    run h3-report-es3 0 "$DT" report --soc-revision ES3.0 "$f"
    hasnt h3-report-es3 "only on R-Car"
    has h3-report-es3 "/soc/fcp@fe951000             protected (moat drives the IOMMU)"
    run h3-json 0 "$DT" report --json --soc-revision ES3.0 "$f"
    has h3-json '"soc_revision": "ES3.0"'
    run h3-dom0 0 "$DT" dom0 "$f" -o "$W/h3-dom0.dtb"
    has h3-dom0 "removed 17 IOMMU nodes"
    run h3-dom0-keep-root 0 "$DT" dom0 "$f" -o "$W/h3-dom0-keep.dtb" --keep /soc/iommu@e67b0000
    has h3-dom0-keep-root "its root /soc/iommu@e67b0000 is not driven by moat, so neither is it"
    has h3-dom0-keep-root "removed 0 IOMMU nodes"
    run h3-report-keep-root 0 "$DT" report "$f" --keep /soc/iommu@e67b0000
    hasnt h3-report-keep-root "protected (moat drives the IOMMU)"
fi

# H3 ES1.x (r8a77950) stated: refused on this silicon, not hidden from dom0, not an error.
f=$TREES/r8a77950-salvator-x.dtb
if [ -f "$f" ]; then
    run h3es1-report 0 "$DT" report --soc-revision ES1.1 "$f"
    has h3es1-report "/soc/sata@ee300000            IOMMU refused on this silicon"
    run h3es1-dom0 0 "$DT" dom0 --soc-revision ES1.1 "$f" -o "$W/h3es1-dom0.dtb"
    has h3es1-dom0 "removed 0 IOMMU nodes"
    run h3es1-json 0 "$DT" report --json "$f"
    has h3es1-json '"depends_on": "R-Car H3 ES3.0 or later'
fi

# M3-N (r8a77965): no revision needed.
f=$TREES/r8a77965-salvator-x.dtb
if [ -f "$f" ]; then
    run m3n-report 0 "$DT" report "$f"
    hasnt m3n-report "only on R-Car"
    has m3n-report "/soc/ethernet@e6800000        protected (moat drives the IOMMU)"
fi

# S4 Spider (r8a779f0, R-Car Gen4): 5 IPMMUs, the two DMACs on IPMMU-DS0 (uTLBs 0-15, 16-31);
# every cut is supported, so nothing is conditional; SDHI0 has no IPMMU in Linux's tree.
f=$TREES/r8a779f0-spider.dtb
if [ -f "$f" ]; then
    run s4-check 0 "$DT" check "$f"
    has s4-check "IOMMU wiring ok: 5 IOMMUs, 2 masters, 32 stream references"
    run s4-report 0 "$DT" report "$f"
    has s4-report "/soc/iommu@eefc0000           renesas,ipmmu-r8a779f0 ipmmu_vmsa  drives"
    has s4-report "/soc/dma-controller@e7350000  protected (moat drives the IOMMU)         iommus           0x0-0xf"
    has s4-report "/soc/dma-controller@e7351000  protected (moat drives the IOMMU)         iommus           0x10-0x1f"
    has s4-report "/soc/mmc@ee140000             unprotected: no IOMMU"
    hasnt s4-report "only on R-Car"
    hasnt s4-report "wiring broken"
    run s4-dom0 0 "$DT" dom0 "$f" -o "$W/s4-dom0.dtb"
    has s4-dom0 "removed 5 IOMMU nodes, 2 iommus/iommu-map properties"
    run s4-report-keep-root 0 "$DT" report "$f" --keep /soc/iommu@eefc0000
    has s4-report-keep-root "/soc/dma-controller@e7350000  unprotected: its root IOMMU is not driven"
    hasnt s4-report-keep-root "protected (moat drives the IOMMU)"
fi

# V3U Falcon (r8a779a0, R-Car Gen4): 12 IPMMUs, SDHI0 on IPMMU-DS0 uTLB 32 the one master.
f=$TREES/r8a779a0-falcon.dtb
if [ -f "$f" ]; then
    run v3u-check 0 "$DT" check "$f"
    has v3u-check "IOMMU wiring ok: 12 IOMMUs, 1 master, 1 stream reference"
    run v3u-report 0 "$DT" report "$f"
    has v3u-report "/soc/mmc@ee140000             protected (moat drives the IOMMU)         iommus           0x20"
    hasnt v3u-report "only on R-Car"
    run v3u-dom0 0 "$DT" dom0 "$f" -o "$W/v3u-dom0.dtb"
    has v3u-dom0 "removed 12 IOMMU nodes, 1 iommus/iommu-map property"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
