// The Arm GICv3 as moat drives it at EL2 (`arm,gic-v3`): the distributor for SPIs, this CPU's
// redistributor for PPIs and SGIs (found by matching GICR_TYPER's affinity to MPIDR, walking the
// `reg` regions at `redistributor-stride` or each frame's own size), and the CPU interface
// through the ICC system registers. Every line is Group 1, routed to this CPU; IRQs reach EL2
// while moat runs there with PSTATE.I clear and, through HCR_EL2.IMO, while a guest runs.
// Register facts: docs/hardware.md §9.
//
// Delivery: dispatch() acknowledges (ICC_IAR1), runs the line's handler, which ends with eoi()
// (ICC_EOIR1: priority drop and deactivation, EOImode 0). A spurious INTID (1020..1023) or a line
// nobody requested is counted and reported once, never fatal; an unrequested line is masked.
#pragma once
#include "arch/cpu.hpp"
#include "common/fdt.hpp"
#include "common/irq.hpp"
#include "common/why.hpp"

namespace moat::arch {

class GicV3 final : public IrqController {
public:
    static constexpr unsigned kMaxIntids = 1020;       // SPIs end at 1019
    static constexpr uint64_t kTimeoutNs = 10 * 1000 * 1000;

    // Reads the `arm,gic-v3` node: distributor and redistributor regions. bad_dt (why names the
    // node) for a node moat cannot use; not_found when the tree has no GICv3.
    Status probe(const dt::Tree& t, Why& why);
    // Distributor on (affinity routing, Group 1), every SPI off; this CPU's redistributor awake,
    // its PPIs and SGIs off; the CPU interface on with every priority unmasked.
    Status init(Why& why);
    // A secondary CPU's share of init(), once the boot CPU's init() succeeded: its own
    // redistributor awake, every PPI already requested configured on it (and left masked: the
    // owner of the line enables it here), its CPU interface on. SPIs stay routed to the boot CPU.
    Status init_cpu(Why& why);

    const char* name() const override { return "gicv3"; }
    Status request(unsigned intid, Trigger trigger, unsigned priority, IrqHandler fn, void* ctx) override;
    Status release(unsigned intid) override;
    void enable(unsigned intid) override;
    void mask(unsigned intid) override;
    void eoi(unsigned intid) override;

    // The IRQ exception's work: one interrupt acknowledged and handled. false when there was
    // none pending (spurious).
    bool dispatch();

    unsigned lines() const { return lines_; }
    uint64_t delivered() const { return delivered_; }
    uint64_t spurious() const { return spurious_; }
    uint64_t unexpected() const { return unexpected_; }
    uintptr_t dist_base() const { return gicd_; }
    // This CPU's redistributor (0 before its init).
    uintptr_t redist_base() const { return rd_[cpu_id()]; }

private:
    struct Line {
        IrqHandler fn = nullptr;
        void* ctx = nullptr;
        Trigger trigger = Trigger::edge_rising;  // kept so that a later CPU configures its PPIs alike
        unsigned priority = 0;
    };
    Status wait_rwp(uintptr_t ctlr);
    void configure(unsigned intid, Trigger trigger, unsigned priority);
    uintptr_t rd() const { return rd_[cpu_id()]; }

    // The distributor, and each CPU's RD_base (SGI_base is +64 KiB), by logical CPU id.
    uintptr_t gicd_ = 0, rd_[kMaxCpus] = {};
    uint64_t gicr_base_ = 0, gicr_size_ = 0, gicr_stride_ = 0;
    unsigned lines_ = 0;
    bool ready_ = false;
    bool told_spurious_ = false, told_unexpected_ = false;
    uint64_t delivered_ = 0, spurious_ = 0, unexpected_ = 0;
    Line line_[kMaxIntids] = {};
};

// The controller moat drives (after a successful init), or nullptr.
GicV3* gic();
// The flow's hook: finds, probes and initialises the GICv3 the tree names; nullptr (with the
// reason printed) when there is none moat can use, and then every IOMMU polls.
IrqController* interrupts_from_dt(const dt::Tree& t);

}  // namespace moat::arch
