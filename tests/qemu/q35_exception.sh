#!/usr/bin/env bash
# moat.selftest=fault (the PVH command line, read as /chosen/bootargs) makes the x86 image read
# an address beyond its 4 GiB identity map: the report decodes the page fault and ends the run
# with status 4.
. tests/qemu/lib.sh
run_q35 q35_exception 60 -append "moat.selftest=fault"
expect_rc 4
expect_line "selftest: reading unmapped address 0xdead0000000"
expect_line "moat: unexpected exception #PF (page fault, vector 14)"
expect_line "error code 0x0: page not present, read in supervisor mode at 0x00000dead0000000 (CR2)"
expect_line "CR2 0x00000dead0000000"
expect_line "CS 0x0008"
expect_line "moat: exit 4 (unexpected exception)"
expect_no_line "no exception"
finish
