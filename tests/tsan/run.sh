#!/usr/bin/env bash
# The ThreadSanitizer tier: host threads posing as CPUs (locks, interrupt masking, per-CPU data,
# the SMP stress test of one SMMUv3 shared by mappers, attach/detach, faults and a drainer).
# Any race TSan reports fails the run (halt_on_error). Ends with "N passed, M failed".
set -u
bin=${TSAN_BIN:-build/tsan/seam_tests}
TEST_OUT=${TEST_OUT:-build/tests}
mkdir -p "$TEST_OUT"
log=$TEST_OUT/tsan.log
if [ ! -x "$bin" ]; then echo "FAIL tsan: $bin not built (make $bin)"; echo "0 passed, 1 failed"; exit 1; fi
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" timeout 600 "$bin" --gtest_color=no > "$log" 2>&1
rc=$?
grep -E '^smp stress:' "$log"
p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$log" | tail -n 1)
f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\?, listed below:.*/\1/p' "$log" | tail -n 1)
p=${p:-0} f=${f:-0}
grep -E '^\[  FAILED  \] [A-Za-z]' "$log" | sort -u | sed 's/^/FAIL /'
if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL tsan: exit $rc without a failure summary (a race report or a crash):"
    grep -m1 -A25 'WARNING: ThreadSanitizer' "$log" || tail -n 30 "$log"
    f=1
fi
echo "$p passed, $f failed"
[ "$f" -eq 0 ]
