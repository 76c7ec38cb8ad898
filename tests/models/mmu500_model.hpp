// A register-level model of an Arm MMU-500 (SMMUv2, IHI 0062) for host tests: the ID registers,
// global register spaces 0 and 1, context banks, stream matching (SMR/S2CR), global and context
// faults with their syndromes, and a DMA API that matches the stream, picks the bank and walks
// the bank's tables with the independent VMSA walker (stage 1 or stage 2), moving bytes in the
// test's memory or recording the fault the hardware would.
//
// It is strict where a driver can go wrong without noticing:
//  - translations sit in a TLB (tagged by VMID, and ASID for non-global stage-1 entries) until a
//    TLB invalidation AND the matching sync: an invalidation only takes effect when TLBSYNC (for
//    the bank's operations) or sTLBGSYNC (for global ones) is written, so a missing TLBI or a
//    missing sync shows as DMA still reaching memory through the old mapping;
//  - a sync can be made to hang (stall_syncs), so the driver's bounded wait is exercised;
//  - programming the architecture leaves UNPREDICTABLE or that this project forbids is recorded
//    in violations(): two valid SMRs matching one stream id, SMR bits above NUMSIDB, a bank
//    reprogrammed while enabled or enabled with an invalid configuration, SCTLR.CFCFG set
//    (MMU-500 erratum 842869), the SMMU enabled with USFCFG clear or with an unused S2CR that does
//    not fault, the stream map taken apart while unmatched streams bypass, a stream routed to a
//    disabled bank, wrong access widths and unmodelled offsets.
// Field positions are written here from the specification and UG1087, not taken from the driver.
// Fault reporting follows the architecture: the first fault is recorded with its syndrome, later
// ones only set MULTI until software writes the status back (write 1 to clear). A stream whose
// S2CR says fault is reported as an unidentified-stream fault (USF), like an unmatched one
// (unconfirmed for MMU-500; the driver treats every sGFSR bit alike).
// Interrupts (connect_irq): the global fault line is asserted while sGFSR holds a fault whose
// class is enabled (configuration faults ICF..CAF by sCR0.GCFGFIE, the others by sCR0.GFIE), and
// context bank n's line (MMU-500 has one per bank, CBAR.IRPTNDX is not used) while its FSR holds a
// fault and SCTLR.CFIE is set. Lines sharing one INTID are wired-OR. Level lines (the trigger the
// Linux and ZynqMP trees give) follow that state: raised when it becomes true, lowered when
// software writes the status back to 0; an edge line is raised on the same transitions.
// Not modelled: nested (stage 1 + 2) and stage-1-with-stage-2-fault banks, AArch32 formats,
// stalls, ATOS, walk caches, secure state.
#pragma once
#include <array>
#include <deque>
#include <string>
#include <vector>

#include "arch/irq.hpp"
#include "arch/mmio.hpp"
#include "tests/models/vmsa_walker.hpp"

namespace moat::model {

class Mmu500Model final : public mmio::Device {
public:
    // What the ID registers advertise. The defaults are the ZynqMP's where UG1085/UG1087 say
    // (ID1 = 0x30000F10: 4 KiB pages, NUMPAGENDXB 3, 16 banks, none stage-2 only; 15-bit stream
    // ids; AArch64 up to 49-bit VA and 48-bit PA) and common MMU-500 values elsewhere
    // (48 SMRs, r2p1, walks not coherent: unconfirmed for ZynqMP).
    struct Features {
        unsigned numsmrg = 48;
        unsigned numcb = 16;
        unsigned nums2cb = 0;        // banks [0, nums2cb) do stage 2 only
        unsigned numsidb = 15;
        unsigned numpagendxb = 3;    // each half of the register space is 2^(n+1) pages
        bool page64k = false;
        bool stage1 = true, stage2 = true;
        bool stream_match = true;    // ID0.SMS (false: stream indexing)
        bool coherent = false;       // ID0.CTTW
        bool ptfs4k = true;          // ID2.PTFS_4K
        unsigned ias_enc = 5, oas_enc = 5, ubs_enc = 5;  // 48, 48, 49 bits
        unsigned major = 2, minor = 1;                   // ID7: r2p1
        size_t tlb_entries = 64;
        // Reset state: firmware left the SMMU enabled (CLIENTPD clear) with unmatched streams
        // bypassing (USFCFG clear) and SMR 0 matching `leftover_stream` into a bypass S2CR.
        bool firmware_leftovers = false;
        uint32_t leftover_stream = 0;
        bool cache_locked = false;   // the secure side keeps sACR.CACHE_LOCK: ACTLR stays as it is
    };

    // One fault as the SMMU raised it (whether or not the registers could hold its syndrome).
    struct Fault {
        bool global;
        int bank;            // context faults
        uint32_t bits;       // sGFSR / FSR bit raised
        uint32_t stream;
        uint64_t addr;
        bool write;
        bool recorded;       // false: only MULTI was set
    };

    struct Dma {
        bool ok = false;        // every byte moved
        size_t done = 0;        // bytes moved before the first fault
        bool bypassed = false;  // no translation
        int bank = -1;          // the bank that translated (or faulted)
        uint32_t fault = 0;     // sGFSR bit (global) or FSR bit (context) of the failure
        bool global = false;
        uint64_t pa = 0;        // physical address of the first byte
    };

    Mmu500Model(PhysMem& mem, const Features& f);

    // Size of the register space the ID registers describe (what the DT's reg should say).
    uint64_t size() const;
    uint64_t page_size() const { return f_.page64k ? 0x10000 : 0x1000; }

    uint64_t read(uint64_t offset, unsigned bytes) override;
    void write(uint64_t offset, uint64_t value, unsigned bytes) override;

    Dma dma_write(uint32_t sid, uint64_t iova, const void* src, size_t len);
    Dma dma_read(uint32_t sid, uint64_t iova, void* dst, size_t len);

    // Wires the global fault output and the context banks' outputs (bank n to context_intids[n];
    // banks beyond the list, and INTID 0, are not wired) to lines of `c`; nullptr disconnects.
    void connect_irq(arch::host::HostIrqController* c, unsigned global_intid, std::vector<unsigned> context_intids);
    // Whether the global output / bank n's output is asserted now.
    bool global_irq() const;
    bool context_irq(unsigned n) const;
    // Times a wired line was raised (a transition to asserted), by INTID.
    uint64_t irqs_raised(unsigned intid) const;

    // Test hooks. A stalled sync keeps TLBSTATUS / sTLBGSTATUS active and applies nothing;
    // un-stalling completes the syncs in flight.
    void stall_syncs(bool on);

    // State, as the hardware holds it.
    uint32_t scr0() const { return scr0_; }
    uint32_t sacr() const { return sacr_; }
    uint32_t gfsr() const { return gfsr_; }
    uint32_t smr(unsigned i) const { return smr_[i]; }
    uint32_t s2cr(unsigned i) const { return s2cr_[i]; }
    uint32_t cbar(unsigned n) const { return cbar_[n]; }
    uint32_t cba2r(unsigned n) const { return cba2r_[n]; }
    uint32_t sctlr(unsigned n) const { return banks_[n].sctlr; }
    uint32_t actlr(unsigned n) const { return banks_[n].actlr; }
    uint32_t tcr(unsigned n) const { return banks_[n].tcr; }
    uint32_t tcr2(unsigned n) const { return banks_[n].tcr2; }
    uint64_t ttbr0(unsigned n) const { return banks_[n].ttbr0; }
    uint32_t fsr(unsigned n) const { return banks_[n].fsr; }
    unsigned valid_smrs() const;
    unsigned enabled_banks() const;
    size_t tlb_size() const { return tlb_.size(); }
    size_t pending_invalidations() const;

    // Counters.
    uint64_t register_accesses() const { return accesses_; }
    uint64_t tlbi_writes() const { return tlbi_writes_; }
    uint64_t global_syncs() const { return gsyncs_; }
    uint64_t bank_syncs() const { return bsyncs_; }
    uint64_t tlb_hits() const { return tlb_hits_; }
    uint64_t walks() const { return walks_; }
    const std::vector<Fault>& faults() const { return faults_; }
    const std::vector<std::string>& violations() const { return violations_; }

private:
    enum class Op : uint8_t { vmid, all_nsnh, all_hyp, asid, va, ipa, bank_all };
    struct Tlbi {
        Op op;
        uint16_t vmid, asid;
        uint64_t addr;
        int bank;
    };
    struct TlbEntry {
        bool s2;
        uint16_t vmid, asid;
        bool global;
        int bank;             // for ASID-private (SCTLR.ASIDPNE) stage-1 entries
        uint64_t base, size;  // input range of the leaf
        uint64_t out;
        vmsa::Perms perms;
    };
    struct Bank {
        uint32_t sctlr = 0, actlr = 0, tcr2 = 0, tcr = 0, mair0 = 0, mair1 = 0, fsr = 0, fsynr0 = 0;
        uint64_t ttbr0 = 0, ttbr1 = 0, far = 0;
        bool sync_active = false;
        std::vector<Tlbi> pending;
    };
    // A bank's translation regime, decoded from CBAR, CBA2R, TCR, TCR2 and TTBR0.
    struct Regime {
        const char* error = nullptr;  // why the bank cannot translate
        vmsa::Regime r;
        uint16_t vmid = 0, asid = 0;
        bool epd0 = false;
        bool asid_private = false;
    };
    struct Xlate {
        bool ok = false, bypass = false, global = false;
        int bank = -1;
        uint32_t fault = 0;
        uint64_t pa = 0;
    };

    void violation(const std::string& what);
    unsigned numpage() const { return 2u << f_.numpagendxb; }
    uint32_t id_reg(uint64_t off) const;
    uint64_t read_gr0(uint64_t off, unsigned bytes);
    void write_gr0(uint64_t off, uint64_t v, unsigned bytes);
    uint64_t read_gr1(uint64_t off, unsigned bytes);
    void write_gr1(uint64_t off, uint64_t v, unsigned bytes);
    uint64_t read_bank(unsigned n, uint64_t off, unsigned bytes);
    void write_bank(unsigned n, uint64_t off, uint64_t v, unsigned bytes);
    void write_scr0(uint32_t v);
    void write_sctlr(unsigned n, uint32_t v);
    void check_smrs();
    bool live(unsigned n, const char* reg);

    void queue(Tlbi op, bool global);
    void apply(const Tlbi& op);
    void complete_global_sync();
    void complete_bank_sync(unsigned n);

    Regime regime(unsigned n) const;
    void update_irqs();  // after anything that changes a fault status or its enable
    void global_fault(uint32_t bit, uint32_t sid, uint64_t addr, bool write);
    void context_fault(unsigned n, uint32_t bit, unsigned level, uint32_t sid, uint64_t addr, bool write);
    Xlate translate(uint32_t sid, uint64_t iova, bool write);
    Dma dma(uint32_t sid, uint64_t iova, uint8_t* buf, size_t len, bool write);

    PhysMem& mem_;
    Features f_;
    // Global space 0.
    uint32_t scr0_ = 0, sacr_ = 0, gfsr_ = 0, gfsynr0_ = 0, gfsynr1_ = 0;
    uint64_t gfar_ = 0;
    bool gsync_active_ = false;
    std::array<uint32_t, 256> smr_{}, s2cr_{};
    // Global space 1.
    std::array<uint32_t, 256> cbar_{}, cba2r_{}, cbfrsynra_{};
    std::vector<Bank> banks_;
    std::vector<Tlbi> gpending_;
    bool syncs_stalled_ = false;
    std::deque<TlbEntry> tlb_;
    uint64_t accesses_ = 0, tlbi_writes_ = 0, gsyncs_ = 0, bsyncs_ = 0, tlb_hits_ = 0, walks_ = 0;
    std::vector<Fault> faults_;
    std::vector<std::string> violations_;
    // Interrupt outputs: each distinct INTID wired, with the state last signalled on it.
    struct Line {
        unsigned intid;
        bool asserted;
        uint64_t raised;
    };
    arch::host::HostIrqController* irqc_ = nullptr;
    unsigned global_intid_ = 0;
    std::vector<unsigned> context_intids_;
    std::vector<Line> lines_;
};

// Bit positions tests check against (sGFSR, FSR), from the specification.
namespace mmu500 {
constexpr uint32_t kGfsrIcf = 1u << 0, kGfsrUsf = 1u << 1, kGfsrSmcf = 1u << 2, kGfsrMulti = 1u << 31;
constexpr uint32_t kFsrTf = 1u << 1, kFsrAff = 1u << 2, kFsrPf = 1u << 3, kFsrEf = 1u << 4, kFsrAsf = 1u << 7,
                   kFsrMulti = 1u << 31;
}  // namespace mmu500

}  // namespace moat::model
