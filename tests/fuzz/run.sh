#!/usr/bin/env bash
# A smoke run of every libFuzzer target (`make fuzz` explores for longer): a fixed number of
# inputs each, seeded with the trees the unit tests use, so a crash introduced by a change
# shows up in `make test`. Ends with "N passed, M failed".
set -u
OUT=${FUZZ_OUT:-build/fuzz}
RUNS=${FUZZ_SMOKE_RUNS:-20000}
# One input taking longer than this is a failure (libFuzzer reports it as a timeout and exits
# non-zero), so a hang is caught like a crash.
TIMEOUT=${FUZZ_TIMEOUT:-10}
T=${TEST_OUT:-build/tests}/fuzz
pass=0 fail=0
for f in "$OUT"/*_fuzz; do
    [ -x "$f" ] || continue
    name=$(basename "$f")
    corpus=$T/$name
    mkdir -p "$corpus"
    # The saved hostile trees and fuzzer findings (red team inputs, past timeouts and crashes)
    # seed the DT fuzzers, so each is replayed, under the timeout, on every smoke run.
    case $name in
    dtb_fuzz | dom0_fuzz | dom0less_fuzz) cp build/host/testdata/*.dtb tests/dt/hostile/*.dtb tests/dt/fuzz/*.dtb "$corpus"/ 2>/dev/null ;;
    guest_config_fuzz) cp tools/dt/examples/*.cfg "$corpus"/ 2>/dev/null ;;
    partial_dt_fuzz)  # the QEMU run's partial trees, good and bad
        for d in tests/qemu/platform/*.dts; do dtc -q -I dts -O dtb -o "$corpus/$(basename "$d" .dts).dtb" "$d"; done ;;
    esac
    if "$f" -runs="$RUNS" -seed=1 -timeout="$TIMEOUT" "$corpus" > "$T/$name.log" 2>&1; then
        echo "PASS $name ($RUNS inputs)"
        pass=$((pass + 1))
    else
        why=crash; grep -q "ERROR: libFuzzer: timeout" "$T/$name.log" && why="timeout (> $TIMEOUT s for one input)"
        echo "FAIL $name: $why (log: $T/$name.log)"
        tail -n 20 "$T/$name.log" | sed 's/^/    /'
        fail=$((fail + 1))
    fi
done
[ $((pass + fail)) -gt 0 ] || { echo "no fuzz targets built in $OUT"; fail=1; }
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
