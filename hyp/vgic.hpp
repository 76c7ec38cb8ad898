// A guest's GICv3, emulated: the distributor and one redistributor per vCPU as the guest sees
// them through trapped loads and stores (every access decoded here, host-testable), and the
// portable half of the list registers: which pending interrupt goes into which ICH_LR<n>_EL2,
// and what the guest did with it since (lr_sync). The arch half (arch/arm64/vcpu.cpp) moves
// the LR values between this model and the hardware around each guest entry; the guest's own
// ICC_* system-register accesses go to the virtual CPU interface (ICH_HCR_EL2.En) and never
// reach this code, except ICC_SGI1R_EL1 writes, which trap and come to sgi1r().
//
// What the guest gets (docs/hardware.md §9.2): one security state (GICD_CTLR.DS reads 1),
// affinity routing always on (ARE RAO), no LPIs or ITS, Group 1 only (Group 0 enables and
// IGRPMODR are RAZ/WI), redistributor frames of 128 KiB at a fixed stride with GICR_TYPER.Last
// on the last vCPU's. The number of SPIs is the guest's, chosen at reset (a multiple of 32 from
// 64 up to what ends at INTID 1019; GICD_TYPER.ITLinesNumber says it; the storage is the static
// maximum, as guests live in static storage); the registers of INTIDs beyond it are RAZ/WI.
// Reserved and unimplemented offsets read as zero and ignore writes (as the architecture
// says); an access of a width the register does not take is refused (false), and the caller
// injects an external abort.
//
// Interrupt inputs: pulse() latches an edge (a timer expiry, an SGI, a forwarded edge SPI);
// set_level() follows a level line (the vPL011, a forwarded level SPI): a level interrupt stays
// deliverable while its line is high, and one the guest has not taken yet is withdrawn from
// its LR when the line drops. A forwarded level SPI (set_forwarded(), hyp/irq_forward.hpp) is
// one whose physical line moat masked when it fired: the guest's deactivation lowers the
// virtual line and is noted (take_resample()) so that the physical one is unmasked and looked
// at again; a line still high then fires again.
//
// What is pending, enabled and not in a list register is also kept as a bitmap (one word per
// 32 INTIDs and a summary word of the non-empty ones), so lr_sync() and wants_vcpu() look at
// what is pending, not at every line the guest has.
#pragma once
#include "common/types.hpp"

namespace moat::hyp {

class VGic {
public:
    static constexpr unsigned kMaxVcpus = 8;
    static constexpr unsigned kMinSpis = 64;              // INTIDs 32..95, what every guest gets at least
    static constexpr unsigned kMaxLines = 1020;           // SPIs end at INTID 1019 (1020..1023 are special)
    static constexpr unsigned kMaxSpis = kMaxLines - 32;  // 988: ITLinesNumber 31
    static constexpr unsigned kMaxLrs = 16;               // ICH_VTR_EL2.ListRegs allows up to 16
    static constexpr uint64_t kDistSize = 0x10000;
    static constexpr uint64_t kRedistStride = 0x20000;    // RD_base + SGI_base

    // ICH_LR<n>_EL2 fields.
    static constexpr Field kLrVintid{31, 0}, kLrPrio{55, 48}, kLrState{63, 62};
    static constexpr uint64_t kLrEoi = bit(41), kLrGroup1 = bit(60), kLrHw = bit(61);
    static constexpr uint64_t kStatePending = 1, kStateActive = 2;

    // `mpidr[n]`: vCPU n's affinity as the guest's MPIDR_EL1 shows it (Aff0..Aff2). `spis`: at
    // least this many SPIs, rounded up to a multiple of 32, at least kMinSpis, at most kMaxSpis.
    void reset(unsigned nvcpus, const uint64_t* mpidr, unsigned spis = kMinSpis);
    unsigned vcpus() const { return nvcpus_; }
    // The guest's SPIs: INTIDs 32..lines() - 1.
    unsigned spis() const { return lines_ - 32; }
    unsigned lines() const { return lines_; }
    // The SPI count reset() needs for INTID `intid` to be one of the guest's SPIs (at least
    // kMinSpis, as reset() would round it); 0 when no GICv3 has it as an SPI (below 32, 1020 on).
    static constexpr unsigned spis_covering(unsigned intid) {
        if (intid < 32 || intid >= kMaxLines) return 0;
        unsigned n = (intid - 32) / 32 * 32 + 32;
        return n < kMinSpis ? kMinSpis : n;
    }

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
    bool forwarded(unsigned intid) const { return intid >= 32 && intid < lines_ && spi_[intid - 32].forwarded; }
    // Forwarded SPIs the guest deactivated, their virtual lines already lowered, wait for the
    // caller to unmask their physical lines: resample_pending() says whether any does, and
    // take_resample(intid) whether `intid` does (and forgets it).
    bool resample_pending() const { return resample_sum_ != 0; }
    bool take_resample(unsigned intid);

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
    // Bit-fields: a guest has up to 988 SPIs in static storage, 3 bytes each.
    struct Irq {
        uint8_t prio = 0;
        bool enabled : 1 = false, latched : 1 = false, level : 1 = false, edge : 1 = false, group1 : 1 = false;
        bool level_src : 1 = false;  // fed by set_level(): pending follows the line (else pulse() latches)
        bool in_lr : 1 = false, active : 1 = false;
        bool forwarded : 1 = false;  // a forwarded level SPI: deactivation lowers the line (resampled)
    };
    Irq& ref(unsigned vcpu, unsigned intid) { return intid < 32 ? local_[vcpu][intid] : spi_[intid - 32]; }
    const Irq& ref(unsigned vcpu, unsigned intid) const { return intid < 32 ? local_[vcpu][intid] : spi_[intid - 32]; }
    // Brings INTID `intid`'s bit in the ready bitmap (pending, enabled, Group 1, not in an LR)
    // up to date after a change to its state; every change goes through here.
    void update(unsigned vcpu, unsigned intid);
    // The most urgent ready interrupt `vcpu` can take now (lowest priority value, then lowest
    // INTID), kNone when there is none. Proportional to the number of ready interrupts.
    unsigned best_ready(unsigned vcpu) const;
    static constexpr unsigned kNone = ~0u;
    static constexpr unsigned kWords = (kMaxLines + 31) / 32;  // word w: INTIDs 32w..32w+31
    static_assert(kWords <= 32, "one summary bit per word");
    // The 1-bit, 8-bit and 2-bit per-interrupt register banks shared by the distributor (SPIs)
    // and the redistributors' SGI frames (SGIs and PPIs); `first` is the bank's first INTID.
    bool bank_read(unsigned vcpu, uint64_t off, unsigned bytes, unsigned lo, unsigned hi, uint64_t& val) const;
    bool bank_write(unsigned vcpu, uint64_t off, unsigned bytes, uint64_t val, unsigned lo, unsigned hi);

    unsigned nvcpus_ = 0;
    uint64_t mpidr_[kMaxVcpus] = {};
    uint32_t ctlr_ = 0;
    bool asleep_[kMaxVcpus] = {};
    unsigned lines_ = 32 + kMinSpis;
    Irq local_[kMaxVcpus][32];
    Irq spi_[kMaxSpis];
    uint64_t router_[kMaxSpis] = {};
    uint64_t injected_ = 0;
    // Ready bitmaps: each vCPU's SGIs and PPIs, the SPIs (word 0 unused) and which SPI words
    // are non-zero; the same for forwarded SPIs waiting to be resampled.
    uint32_t ready_local_[kMaxVcpus] = {};
    uint32_t ready_spi_[kWords] = {};
    uint32_t ready_sum_ = 0;
    uint32_t resample_[kWords] = {};
    uint32_t resample_sum_ = 0;
    // LRs of each vCPU holding an interrupt the guest has not acknowledged (as of lr_sync).
    uint8_t unacked_[kMaxVcpus] = {};
};

}  // namespace moat::hyp
