#!/usr/bin/env bash
# moat.selftest=cpu-stuck: the last CPU the tree names comes up but never says so. The boot CPU
# must report it after its bound, leave it out, and carry on with the other three: the
# shared-domain DMA test then runs on three CPUs and the boot ends as usual.
. tests/qemu/lib.sh
run_qemu smp_cpu_stuck 120 -- -smp 4 -kernel "$IMAGE" -append "moat.selftest=cpu-stuck"
expect_rc 0
expect_line "smp:      cpu1 (mpidr 0x1) up"
expect_line "smp:      cpu2 (mpidr 0x2) up"
expect_line "smp:      cpu3 /cpus/cpu@3 (mpidr 0x3) did not come up within 1000 ms; left out"
expect_line "smp:      3 of 4 CPUs online"
# One edu for three CPUs: they take turns on it, the rest of each round runs at once.
expect_line "smp dma:  one stage-1 domain (tag 1) for 1 edu stream(s), 4 rounds per CPU"
for c in 0 1 2; do
    expect_line "smp dma:  cpu$c edu stream 0x8: 4 rounds, 8192 bytes checked, 4 faults after unmap, 0 failed"
done
expect_no_line "smp dma:  cpu3"
expect_line "smp dma:  total 3 CPUs, 12 rounds, 24576 bytes, 12 faults, 0 failed;"
expect_no_line "FAILED"
expect_line "moat: all checks passed; exit 0"
finish
