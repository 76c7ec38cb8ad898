// Arm SMMUv2 / MMU-500 (`arm,mmu-500`, `arm,smmu-v2`). Everything is in registers: no tables
// of the driver's own, so an instance owns no memory and several instances coexist, each with
// its own stream map entries, context banks and lock.
//
// Streams. A StreamId given to attach() is an SMR: the stream id in bits [15:0] and the SMR mask
// (stream-id bits to ignore) in [30:16], as stream() builds it; stream_from_dt() makes one from
// an `iommus` entry (1 cell: id, with `stream-match-mask` if the SMMU node has one; 2 cells: id
// and mask) or a legacy `mmu-masters` id. One stream map entry (SMR + S2CR) per attached stream;
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
#include "arch/spinlock.hpp"
#include "common/discovery.hpp"
#include "common/io_domain.hpp"
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
        unsigned global_irqs = 0, context_irqs = 0;  // from the DT, reported only (faults are polled)
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
    // On failure error() says why and the SMMU is left as it was found or with every stream
    // faulting; no state is kept, and probe may be tried again.
    Status probe(const Config& cfg);
    // The same from the SMMU's device-tree node: `reg`, `#iommu-cells` (or `mmu-masters`),
    // `stream-match-mask`, `#global-interrupts`. Failures leave "<node path>: <why>" in t.error().
    Status probe_dt(const dt::Tree& t, int node);
    // Forgets the instance, leaving every stream faulting. busy while streams are attached.
    Status shutdown();
    // Why the last probe or attach failed.
    const char* error() const { return error_; }

    // One stream reference of `master` (the arguments of an `iommus` entry, or one id of a legacy
    // `mmu-masters` entry) as an SMR, checked against ID0.NUMSIDB. Failures name the master.
    Status stream_from_dt(const dt::Tree& t, int master, const uint32_t* args, unsigned nargs, StreamId& out) const;

    // The masters of this SMMU and their streams, by the generic binding (`iommus` naming this node)
    // or, when no master uses it, the legacy `mmu-masters` list of this node. When both exist the
    // generic one wins and `mmu-masters` is ignored (reported): a tree that gained `iommus` kept the
    // old list for old kernels, and taking both could claim a stream twice. A master with a bad
    // entry is reported (one line naming it) and left out, blocked.
    struct Master {
        int node;
        bool legacy;
        unsigned nstreams;
        StreamId streams[kMaxStreamsPerMaster];
    };
    struct MasterList {
        unsigned count = 0;
        unsigned problems = 0;
        bool legacy_ignored = false;
        Master masters[kMaxMasters];
    };
    Status masters(const dt::Tree& t, MasterList& out, Sink& report) const;

    const char* name() const override { return name_; }
    const IommuCaps& caps() const override { return caps_; }
    Result<iopt::Format> domain_format(DomainUse use, unsigned ias) const override;
    Status attach(IoDomain& d, StreamId sid) override;
    Status detach(IoDomain& d, StreamId sid) override;
    Status flush(IoDomain& d, const iopt::Gather& g) override;
    unsigned poll_faults(FaultLog& log) override;
    IommuStats stats() const override { return IommuStats{commands_, syncs_}; }

    // What probe found, for reports and tests.
    bool ready() const { return ready_; }
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
    };
    struct Bank {
        IoDomain* domain;  // nullptr: free
        unsigned entries;  // stream map entries pointing at it
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

    __attribute__((format(printf, 3, 4))) Status fail(Status st, const char* fmt, ...);
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

    mutable Spinlock lock_;
    Config cfg_;
    IommuCaps caps_;
    VmsaWalker walker_;
    char name_[kNameMax] = "smmu-v2";
    char path_[dt::kPathMax] = "";  // the DT node, when probed from one
    char error_[dt::kErrorMax] = "";
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

}  // namespace moat
