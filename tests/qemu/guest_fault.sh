#!/usr/bin/env bash
# A guest that misbehaves is contained: the test guest reads an address it was never given
# (moat.selftest=guest-fault). moat stops it with the syndrome decoded, tears its DMA contexts
# down with every page back, and ends with its own status 6 rather than an EL2 exception (4).
. tests/qemu/lib.sh
run_qemu guest_fault 120 -- -kernel "$IMAGE" -append "moat.selftest=guest-fault"
expect_rc 6
expect_line "(d1) guest: reading IPA 0x30000000, which is not mine"
expect_line "moat: guest stopped: sync from EL1: data abort from a lower EL (ESR 0x"
expect_line ", IPA 0x30000000"
expect_line "moat: guest stopped: translation fault at level"
expect_line "moat: guest stopped after"
if ! grep -E "page pool ([0-9]+) pages in use \(\1 before" "$LOG" >/dev/null; then
    echo "FAIL: the stopped guest's contexts did not give every page back"; failures=$((failures + 1))
fi
expect_line "moat: the guest was stopped on a fault; exit 6"
expect_no_line "not stopped"
expect_no_line "unexpected exception at EL2"
finish
