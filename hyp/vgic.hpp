// A guest's GICv3, emulated: the distributor and one redistributor per vCPU as the guest sees
// them through trapped loads and stores (every access decoded here, host-testable), and the
// portable half of the list registers: which pending interrupt goes into which ICH_LR<n>_EL2,
// and what the guest did with it since (lr_sync). The arch half (arch/arm64/vcpu.cpp) moves
// the LR values between this model and the hardware around each guest entry; the guest's own
// ICC_* system-register accesses go to the virtual CPU interface (ICH_HCR_EL2.En) and never
// reach this code, except ICC_SGI1R_EL1 writes, which trap and come to sgi1r().
//
// What the guest gets (docs/hardware.md §9.2): one security state (GICD_CTLR.DS reads 1),
// affinity routing always on (ARE RAO), no LPIs or ITS, kSpis SPIs, Group 1 only (Group 0
// enables and IGRPMODR are RAZ/WI), redistributor frames of 128 KiB at a fixed stride with
// GICR_TYPER.Last on the last vCPU's. Reserved and unimplemented offsets read as zero and
// ignore writes (as the architecture says); an access of a width the register does not take
// is refused (false), and the caller injects an external abort.
//
// Interrupt inputs: pulse() latches an edge (a timer expiry, an SGI, a forwarded edge SPI);
// set_level() follows a level line (the vPL011, a forwarded level SPI): a level interrupt stays
// deliverable while its line is high, and one the guest has not taken yet is withdrawn from
// its LR when the line drops. A forwarded level SPI (set_forwarded(), hyp/irq_forward.hpp) is
// one whose physical line moat masked when it fired: the guest's deactivation lowers the
// virtual line and is noted (take_resample()) so that the physical one is unmasked and looked
// at again; a line still high then fires again.
#pragma once
#include "common/types.hpp"

namespace moat::hyp {

class VGic {
public:
    static constexpr unsigned kMaxVcpus = 8;
    static constexpr unsigned kSpis = 64;                 // INTIDs 32..95
    static constexpr unsigned kLines = 32 + kSpis;
    static constexpr unsigned kMaxLrs = 16;               // ICH_VTR_EL2.ListRegs allows up to 16
    static constexpr uint64_t kDistSize = 0x10000;
    static constexpr uint64_t kRedistStride = 0x20000;    // RD_base + SGI_base

    // ICH_LR<n>_EL2 fields.
    static constexpr Field kLrVintid{31, 0}, kLrPrio{55, 48}, kLrState{63, 62};
    static constexpr uint64_t kLrEoi = bit(41), kLrGroup1 = bit(60), kLrHw = bit(61);
    static constexpr uint64_t kStatePending = 1, kStateActive = 2;

    // `mpidr[n]`: vCPU n's affinity as the guest's MPIDR_EL1 shows it (Aff0..Aff2).
    void reset(unsigned nvcpus, const uint64_t* mpidr);
    unsigned vcpus() const { return nvcpus_; }

    // Loads and stores at `off` inside the distributor window / the redistributor region (all
    // vCPUs' frames). bytes is 1, 2, 4 or 8. false: an access the register does not accept.
    bool dist_read(uint64_t off, unsigned bytes, uint64_t& val) const;
    bool dist_write(uint64_t off, unsigned bytes, uint64_t val);
    bool redist_read(uint64_t off, unsigned bytes, uint64_t& val) const;
    bool redist_write(uint64_t off, unsigned bytes, uint64_t val);

    // Inputs. For an SPI `vcpu` is ignored (GICD_IROUTER decides).
    void pulse(unsigned vcpu, unsigned intid);
    void set_level(unsigned vcpu, unsigned intid, bool high);
    // A trapped ICC_SGI1R_EL1 write by vCPU `from`: the SGI made pending on every target.
    // Returns the targets as a bit mask of vCPUs.
    uint32_t sgi1r(unsigned from, uint64_t value);
    // Marks SPI `intid` as a forwarded level line (or no longer). false: not an SPI.
    bool set_forwarded(unsigned intid, bool on);
    bool forwarded(unsigned intid) const { return intid >= 32 && intid < kLines && spi_[intid - 32].forwarded; }
    // The forwarded SPIs the guest deactivated since the last call (bit n: INTID 32 + n), their
    // virtual lines already lowered; the caller unmasks their physical lines.
    uint64_t take_resample() {
        uint64_t m = resample_;
        resample_ = 0;
        return m;
    }

    // The list registers of `vcpu`, as read back from the hardware (nlr of them): takes note of
    // what the guest acknowledged and deactivated, withdraws what is no longer pending, fills
    // free registers with the most urgent deliverable interrupts. Writes the values to load back.
    // Returns true when deliverable interrupts remain that found no free register (the arch
    // then asks for an underflow maintenance interrupt, ICH_HCR_EL2.UIE).
    bool lr_sync(unsigned vcpu, uint64_t* lrs, unsigned nlr);
    // Something deliverable (pending, enabled, group enabled), or in a list register and not yet
    // acknowledged (as of the last lr_sync), for `vcpu`: its WFI returns.
    bool wants_vcpu(unsigned vcpu) const;
    // The vCPU an SPI goes to (GICD_IROUTER, 0 when it names none).
    unsigned spi_target(unsigned intid) const;

    // For tests and reports.
    bool enabled(unsigned vcpu, unsigned intid) const { return ref(vcpu, intid).enabled; }
    bool is_pending(unsigned vcpu, unsigned intid) const;
    uint64_t injected() const { return injected_; }

private:
    struct Irq {
        uint8_t prio = 0;
        bool enabled = false, latched = false, level = false, edge = false, group1 = false;
        bool level_src = false;  // fed by set_level(): pending follows the line (else pulse() latches)
        bool in_lr = false, active = false;
        bool forwarded = false;  // a forwarded level SPI: deactivation lowers the line (resampled)
    };
    Irq& ref(unsigned vcpu, unsigned intid) { return intid < 32 ? local_[vcpu][intid] : spi_[intid - 32]; }
    const Irq& ref(unsigned vcpu, unsigned intid) const { return intid < 32 ? local_[vcpu][intid] : spi_[intid - 32]; }
    bool deliverable(const Irq& q) const;
    // The 1-bit, 8-bit and 2-bit per-interrupt register banks shared by the distributor (SPIs)
    // and the redistributors' SGI frames (SGIs and PPIs); `first` is the bank's first INTID.
    bool bank_read(unsigned vcpu, uint64_t off, unsigned bytes, unsigned lo, unsigned hi, uint64_t& val) const;
    bool bank_write(unsigned vcpu, uint64_t off, unsigned bytes, uint64_t val, unsigned lo, unsigned hi);

    unsigned nvcpus_ = 0;
    uint64_t mpidr_[kMaxVcpus] = {};
    uint32_t ctlr_ = 0;
    bool asleep_[kMaxVcpus] = {};
    Irq local_[kMaxVcpus][32];
    Irq spi_[kSpis];
    uint64_t router_[kSpis] = {};
    uint64_t injected_ = 0;
    uint64_t resample_ = 0;
    static_assert(kSpis <= 64, "take_resample() gives one bit per SPI");
};

}  // namespace moat::hyp
