#!/usr/bin/env bash
# moat.selftest=fault makes the image read an address its EL2 map does not cover: the
# unexpected-exception path must decode the syndrome and end the run with status 4.
. tests/qemu/lib.sh
run_qemu exception_report 60 -- -kernel "$IMAGE" -append "moat.selftest=fault"
expect_rc 4
expect_line "moat: unexpected exception at EL2: sync"
expect_line "class 0x25: data abort at the same EL"
expect_line "translation fault at level 0, read"
expect_line "FAR_EL2 0x00000dead0000000"
expect_line "moat: exit 4 (unexpected exception)"
expect_no_line "no exception"
finish
