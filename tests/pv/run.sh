#!/usr/bin/env bash
# moat-pv-replay on the example traces (every `expect` in them must hold) and on malformed
# traces (exit 2, the message names the line). Ends with "N passed, M failed".
set -u
R=${R:-build/host/moat-pv-replay}
T=${TEST_OUT:-build/tests}/pv
mkdir -p "$T"
pass=0 fail=0
ok() { echo "PASS $1"; pass=$((pass + 1)); }
ko() { echo "FAIL $1"; fail=$((fail + 1)); }

for t in tools/pv-replay/examples/*.trace; do
    if "$R" "$t" > "$T/$(basename "$t").out" 2>&1; then ok "$t"; else ko "$t"; sed 's/^/    /' "$T/$(basename "$t").out"; fi
done
grep -q "map_pages -> 0 mapped=3000 left=0 gfn=0x40bb8 dfn=0x10bb8 (continued 11x)" "$T/continuation.trace.out" \
    && ok "continuation: 3000 pages in 12 slices of at most 256" || ko "continuation slices"

# An expectation that does not hold: exit 1, and the line says so.
printf 'guest 1 ram=2M\ncall 1 init\nexpect -13\n' > "$T/wrong.trace"
"$R" "$T/wrong.trace" > "$T/wrong.out" 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "wrong.trace:3: FAILED: expected -13, got 0" "$T/wrong.out" && ok "failed expectation -> exit 1" || ko "failed expectation (rc $rc)"

# Malformed traces: exit 2 with file:line and what is wrong.
check_bad() {
    printf "$1" > "$T/bad.trace"
    "$R" "$T/bad.trace" > "$T/bad.out" 2>&1; rc=$?
    if [ $rc -eq 2 ] && grep -qF "$2" "$T/bad.out"; then ok "malformed: $2"; else ko "malformed: $2 (rc $rc: $(cat "$T/bad.out"))"; fi
}
check_bad 'guest 1 ram=2M\nfrobnicate 1\n' "bad.trace:2: unknown command 'frobnicate'"
check_bad 'guest 1 ram=2M\ncall 1 map_pages ctx=1 gfn=0x40000 dfn=0 colour=red\n' "bad.trace:2: unknown key 'colour'"
check_bad 'guest 1 ram=3M\n' "bad.trace:1: ram must be a multiple of 2M"
check_bad 'call 7 init\n' "bad.trace:1: no guest 7"
check_bad 'guest 1 ram=2M\ndevice 1 00:99.0 sid=1\n' "bad.trace:2: PCI address out of range: 00:99.0"
check_bad 'guest 1 ram=2M\ncall 1 map_pages ctx=1 gfn=zz dfn=0\n' "bad.trace:2: bad number 'zz'"
"$R" /nonexistent/trace > "$T/none.out" 2>&1; rc=$?
[ $rc -eq 2 ] && grep -q "cannot read /nonexistent/trace" "$T/none.out" && ok "missing file -> exit 2" || ko "missing file"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
