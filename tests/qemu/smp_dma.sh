#!/usr/bin/env bash
# Four CPUs (-smp 4), four edus, one SMMUv3: every secondary is started through PSCI CPU_ON (the
# psci node's "smc") with its own stack, MMU, vectors, redistributor and tick; then every CPU at
# once maps two pages into ONE shared domain, has its edu copy RAM -> device -> RAM through them,
# checks the bytes, unmaps, and sees its DMA to the unmapped IOVA fault, for 4 rounds, every
# invalidation through the one command queue. The per-CPU counts and the totals are asserted,
# and the boot goes on to the PV-IOMMU guest as with one CPU.
. tests/qemu/lib.sh
run_qemu smp_dma 120 -- -smp 4 -device edu -device edu -device edu -kernel "$IMAGE"
expect_rc 0
expect_line "smp:      psci 1.1 via smc, CPU_ON 0xc4000003"
for c in 1 2 3; do
    expect_line "smp:      cpu$c (mpidr 0x$c) up: own stack, EL2 MMU and vectors, redistributor 0x"
done
expect_line ", tick on"
expect_line "smp:      4 of 4 CPUs online"
expect_line "smp:      every started CPU takes its own tick"
expect_line "smp dma:  one stage-1 domain (tag 1) for 4 edu stream(s), 4 rounds per CPU"
sid=(0x8 0x10 0x18 0x20)
for c in 0 1 2 3; do
    expect_line "smp dma:  cpu$c edu stream ${sid[$c]}: 4 rounds, 8192 bytes checked, 4 faults after unmap, 0 failed"
done
expect_line "smp dma:  total 4 CPUs, 16 rounds, 32768 bytes, 16 faults, 0 failed;"
expect_line "through one queue, pool pages back"
expect_no_line "FAILED"
expect_no_line "did not come up"
expect_line "(d1) guest: 26 passed, 0 failed"
expect_line "moat: all checks passed; exit 0"
finish
