#!/usr/bin/env bash
# Runs every test tier `make test` covers and ends with one line: "N passed, M failed".
# Unit tests count one each (GoogleTest, ASan/UBSan); each QEMU boot test counts one per QEMU it runs on.
# Usage: tests/run.sh UNIT_BINARY [FUZZ_SMOKE_COMMANDS...]
set -u
unit=$1
TEST_OUT=${TEST_OUT:-build/tests}
export TEST_OUT
mkdir -p "$TEST_OUT"
pass=0 fail=0

echo "== unit tests ($unit)"
tier=$SECONDS
"$unit" --gtest_color=no > "$TEST_OUT/unit.log" 2>&1
urc=$?
up=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$TEST_OUT/unit.log" | tail -n 1)
uf=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\?, listed below:.*/\1/p' "$TEST_OUT/unit.log" | tail -n 1)
up=${up:-0} uf=${uf:-0}
grep -E '^\[  FAILED  \] [A-Za-z]' "$TEST_OUT/unit.log" | sort -u
if [ "$urc" -ne 0 ] && [ "$uf" -eq 0 ]; then
    echo "unit tests exited with $urc without a failure summary (crash or sanitizer report):"
    tail -n 30 "$TEST_OUT/unit.log"
    uf=1
fi
echo "unit: $up passed, $uf failed in $((SECONDS - tier)) s (log: $TEST_OUT/unit.log)"
pass=$((pass + up)) fail=$((fail + uf))

# The QEMU tier runs once per QEMU (QEMUS, default both: Debian 12's 7.2, whose SMMUv3 is stage 1
# only, and bookworm-backports' 10.0, whose SMMUv3 nests), each result labelled with its QEMU and
# each QEMU's logs in its own folder.
for qv in ${QEMUS:-7.2 10}; do
    echo "== QEMU boot tests [qemu $qv]"
    tier=$SECONDS
    for t in tests/qemu/*.sh; do
        [ "$(basename "$t")" = lib.sh ] && continue
        name=$(basename "$t" .sh)
        start=$SECONDS
        if out=$(QEMU=$qv TEST_OUT=$TEST_OUT/qemu-$qv bash "$t" 2>&1); then
            echo "PASS [qemu $qv] qemu/$name ($((SECONDS - start)) s)"
            echo "$out" | grep '^figure:' | sed 's/^/    /'  # measurements a test prints (never asserted)
            pass=$((pass + 1))
        else
            echo "FAIL [qemu $qv] qemu/$name"
            echo "$out" | sed 's/^/    /'
            fail=$((fail + 1))
        fi
    done
    echo "qemu $qv: tier took $((SECONDS - tier)) s"
done

# Further suites: each tests/<suite>/run.sh ends with its own "N passed, M failed" line.
for suite in tests/*/run.sh; do
    [ -f "$suite" ] || continue
    name=$(basename "$(dirname "$suite")")
    echo "== $name ($suite)"
    tier=$SECONDS
    out=$(bash "$suite" 2>&1)
    src=$?
    echo "$out" | grep -E '^(FAIL|not ok)' || true
    line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: no summary line (exit $src)"; echo "$out" | tail -n 20; fail=$((fail + 1)); continue
    fi
    sp=${line%% passed*} sf=${line#*, }; sf=${sf%% failed*}
    [ "$src" -ne 0 ] && [ "$sf" -eq 0 ] && sf=1
    echo "$name: $sp passed, $sf failed in $((SECONDS - tier)) s"
    pass=$((pass + sp)) fail=$((fail + sf))
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
