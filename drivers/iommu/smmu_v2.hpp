// Arm SMMUv2 / MMU-500 (`arm,mmu-500`, `arm,smmu-v2`). Everything is in registers: no tables
// of the driver's own, so an instance owns no memory and several instances coexist, each with
// its own stream map entries, context banks and lock.
//
// Streams. A StreamId given to attach() is an SMR: the stream id in bits [15:0] and the SMR mask
// (stream-id bits to ignore) in [30:16], as stream() builds it; xlate() makes one from an
// `iommus` entry (1 cell: id, with `stream-match-mask` if the SMMU node has one; 2 cells: id
// and mask) or a legacy `mmu-masters` id (discovery reads both bindings). One stream map entry (SMR + S2CR) per attached stream;
// streams whose matches overlap are refused, whatever domain they are for: two valid SMRs that
// match one stream id are a stream match conflict, and a shared entry would outlive a detach.
// Unused entries have S2CR.TYPE = fault and sCR0.USFCFG is set, so an unknown stream faults.
//
// Domains. One context bank per IoDomain per instance, taken at the domain's first attach and
// released (disabled, its VMID invalidated) at its last detach. A stage-2 domain becomes a
// stage-2 bank (CBAR.TYPE 0): the guest's P2M can be shared as it is. A stage-1 domain becomes
// a stage-1 bank with stage 2 bypassed (CBAR.TYPE 1), for DMA spaces of their own. Both are
// AArch64 (CBA2R.VA64), 4 KiB granule. The domain's tag (1..255) is the bank's VMID, and the
// ASID of a stage-1 bank: unique among live domains, so a domain attached through several SMMUs
// keeps one identity, and invalidating its VMID reaches all of its TLB entries. Xen uses bank + 1
// as the VMID and stage 2 only; moat also needs separate stage-1 spaces (PV-IOMMU contexts).
//
// Faults are polled: poll_faults() reads sGFSR and every bank's FSR, reports stream and address,
// and clears them (write 1 to clear) so that the next fault is recorded. SCTLR.CFCFG stays clear
// (faults terminate, never stall: MMU-500 erratum 842869).
#pragma once
#include "common/lock.hpp"
#include "common/fault_irq.hpp"
#include "common/io_domain.hpp"
#include "common/registry.hpp"
#include "drivers/iommu/smmu_v2_regs.hpp"
#include "drivers/iommu/vmsa_walker.hpp"

namespace moat {

class SmmuV2 final : public Iommu {
public:
    static constexpr unsigned kMaxSmrs = 128;   // stream map entries used (more are reset, not used)
    static constexpr unsigned kMaxBanks = 128;  // the architecture's maximum
    // Bound on a TLB sync. A healthy SMMU completes one in microseconds; Linux waits up to 1 s.
    static constexpr uint64_t kSyncTimeoutNs = 10 * 1000 * 1000;
    // Above this many leaf invalidations a whole-ASID / whole-VMID one is cheaper.
    static constexpr uint64_t kMaxByAddress = 32;
    static constexpr unsigned kNameMax = 48;

    struct Config {
        uintptr_t base = 0;
        uint64_t size = 0;               // the DT `reg` size: must cover the layout ID1 describes
        const char* name = "smmu-v2";    // for messages and fault records (copied)
        bool mmu500 = false;             // apply the MMU-500 errata workarounds (ACTLR.CPRE)
        unsigned iommu_cells = 1;        // #iommu-cells: 1 or 2; 0 for a legacy `mmu-masters` node
        uint32_t stream_match_mask = 0;  // `stream-match-mask`: the SMR mask of 1-cell references
        unsigned global_irqs = 0, context_irqs = 0;  // from the DT
        unsigned cpu_pa_bits = 0;        // caps the output size (0: the CPU's own)
        // Fault interrupts: with a controller, every line the tree gives (global, then context
        // banks) is requested at probe and drains faults into `faults`; otherwise poll_faults().
        IrqController* irq = nullptr;
        const dt::Irq* irqs = nullptr;  // read during probe only
        FaultLog* faults = nullptr;
    };

    // The SMR of one stream (mask bits are stream-id bits the match ignores).
    static constexpr StreamId stream(uint32_t id, uint32_t mask = 0) { return (id & 0xffff) | (mask & 0x7fff) << 16; }
    static constexpr uint32_t stream_id(StreamId s) { return s & 0xffff; }
    static constexpr uint32_t stream_mask(StreamId s) { return (s >> 16) & 0x7fff; }

    SmmuV2() = default;
    SmmuV2(const SmmuV2&) = delete;
    SmmuV2& operator=(const SmmuV2&) = delete;

    // Reads and checks the ID registers against the configuration, resets the stream map (every
    // stream faults), disables every bank, invalidates the TLBs and only then enables the SMMU.
    // On failure why() says why and the SMMU is left as it was found or with every stream
    // faulting; no state is kept, and probe may be tried again.
    Status probe(const Config& cfg);
    // The Config of a discovered node: `reg` and interrupts as discovery read them, plus this
    // binding's own `#iommu-cells` (or `mmu-masters`), `stream-match-mask` and
    // `#global-interrupts`. Refusals name the property.
    static Status config_from_dt(const dt::Tree& t, int node, const dt::Reg& reg, unsigned nirqs, Config& cfg, Why& why);
    // Forgets the instance, leaving every stream faulting. busy while streams are attached.
    Status shutdown();
    // Blocks every stream, attached or not, and forgets the instance: for teardown, once the
    // domains attached through it are gone (they would hold a stale pointer).
    void force_shutdown();

    const char* name() const override { return name_; }
    const IommuCaps& caps() const override { return caps_; }
    const char* why() const override { return why_.text(); }
    Status why_status() const { return why_.status(); }
    void describe(Sink& out) const override;
    // One reference (the cells of an `iommus` entry, or one legacy `mmu-masters` id) as an SMR,
    // checked against ID0.NUMSIDB; one cell takes the node's stream-match-mask.
    Status xlate(const uint32_t* args, unsigned nargs, StreamId& out, Why& why) const override;
    Result<iopt::Format> domain_format(DomainUse use, unsigned ias) const override;
    Status attach(IoDomain& d, StreamId sid) override;
    Status detach(IoDomain& d, StreamId sid) override;
    Status flush(IoDomain& d, const iopt::Gather& g) override;
    unsigned poll_faults(FaultLog& log) override;
    IommuStats stats() const override { return IommuStats{commands_, syncs_, 0, irqs_.deliveries()}; }

    // What probe found, for reports and tests.
    bool ready() const { return ready_; }
    bool interrupt_driven() const override { return irqs_.active(); }
    unsigned page_size() const { return 1u << page_shift_; }
    unsigned num_banks() const { return numcb_; }
    unsigned num_s2_only_banks() const { return nums2cb_; }
    unsigned num_smrs() const { return numsmrg_; }
    unsigned stream_id_bits() const { return numsidb_; }
    unsigned stage1_input_bits() const { return s1_ias_; }
    unsigned stage2_input_bits() const { return s2_ias_; }
    unsigned hw_output_bits() const { return hw_oas_; }  // ID2.OAS before the CPU's cap
    bool was_enabled() const { return was_enabled_; }    // firmware left the SMMU translating
    bool prefetcher_disabled() const { return prefetch_off_; }
    const Config& config() const { return cfg_; }
    // Resources in use, and the bank a domain has here (-1: none).
    unsigned smrs_in_use() const;
    unsigned banks_in_use() const;
    int bank_of(const IoDomain& d) const;

    // Counters.
    uint64_t sync_timeouts() const { return sync_timeouts_; }
    uint64_t faults_lost() const { return faults_lost_; }  // MULTI: faults the registers could not hold

private:
    struct Entry {         // one stream map entry (SMR + S2CR) in use
        bool used;
        uint16_t id, mask;
        uint8_t bank;
        IoDomain* domain;
        uint64_t domain_id;  // what lookups compare (IoDomain::id), never the address
    };
    struct Bank {
        IoDomain* domain;  // nullptr: free
        unsigned entries;  // stream map entries pointing at it
        uint64_t domain_id;  // what lookups compare (IoDomain::id), never the address
    };

    // Typed register access: each overload only takes its own space.
    uint32_t rd(smmuv2::Gr0 r) const;
    void wr(smmuv2::Gr0 r, uint32_t v) const;
    uint64_t rd(smmuv2::Gr0_64 r) const;
    void wr(smmuv2::Gr0Array r, unsigned i, uint32_t v) const;
    uint32_t rd(smmuv2::Gr1Array r, unsigned n) const;
    void wr(smmuv2::Gr1Array r, unsigned n, uint32_t v) const;
    uint32_t rd(unsigned bank, smmuv2::Cb r) const;
    void wr(unsigned bank, smmuv2::Cb r, uint32_t v) const;
    uint64_t rd(unsigned bank, smmuv2::Cb64 r) const;
    void wr(unsigned bank, smmuv2::Cb64 r, uint64_t v) const;
    uintptr_t bank_base(unsigned bank) const { return cfg_.base + (uint64_t{numpage_ + bank} << page_shift_); }

    Status probe_locked(const Config& cfg);
    Status check_ids(uint32_t id0, uint32_t id1, uint32_t id2);
    Status reset();
    Status sync_global();
    Status sync_bank(unsigned bank);
    Status wait_idle(uintptr_t status_reg);
    Status check_domain(const IoDomain& d, uint32_t id, uint32_t mask);
    int alloc_bank(IoDomain& d);
    void program_bank(unsigned n, const IoDomain& d);
    Status release_bank(unsigned n);
    Status invalidate_context(unsigned bank, const IoDomain& d);
    void invalidate_by_address(unsigned bank, const IoDomain& d, uint64_t iova, uint64_t size, unsigned granule_shift,
                               bool leaf);
    int find_bank(const IoDomain& d) const;
    void record_global(FaultLog& log, uint32_t gfsr);
    void record_context(FaultLog& log, unsigned bank, uint32_t fsr);

    mutable IrqSpinlock lock_;  // the fault handler takes it too
    Config cfg_;
    IommuCaps caps_;
    VmsaWalker walker_;
    char name_[kNameMax] = "smmu-v2";
    Why why_;
    FaultIrqs irqs_;
    static void on_irq(void* self);
    bool ready_ = false;
    bool coherent_ = false;
    bool s1_ = false, s2_ = false;
    bool was_enabled_ = false;
    bool prefetch_off_ = false;
    unsigned page_shift_ = 12;
    unsigned numpage_ = 0;          // pages in each half of the register space
    unsigned numcb_ = 0, nums2cb_ = 0, numsmrg_ = 0, numsidb_ = 0;
    unsigned s1_ias_ = 0, s2_ias_ = 0, hw_oas_ = 0;
    Entry entries_[kMaxSmrs] = {};
    Bank banks_[kMaxBanks] = {};
    uint64_t commands_ = 0, syncs_ = 0, sync_timeouts_ = 0, faults_lost_ = 0;
};

// The registry's operations for `arm,mmu-500` and `arm,smmu-v2`; an entry's data is a
// SmmuV2Model saying which one it is.
struct SmmuV2Model {
    bool mmu500;  // apply the MMU-500 errata workarounds
};
extern const SmmuV2Model kMmu500, kSmmuV2Generic;
extern const DriverOps kSmmuV2Ops;

}  // namespace moat
