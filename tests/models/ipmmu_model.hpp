// A register-level model of the Renesas IPMMU-VMSA (R-Car Gen3 and Gen4) for host tests: one root
// (IPMMU-MM: 8 or 16 contexts with their table registers and fault status) and any number of cache
// IPMMUs in front of it (48 or 64 uTLBs each, their own copy of each context's IMCTR[2:0]). A simulated
// master DMA through (cache, uTLB) either lands at the physical address the tables give, walked
// by the independent VMSA walker, or latches the fault in the root context's IMSTR/IMELAR/IMEUAR.
//
// What it holds a driver to:
//  - translations stay in the TLBs until a FLUSH drops them: the cache's TLB (which stands for
//    its uTLBs too) until the cache's IMCTR.FLUSH for that context or the uTLB's IMUCTR.FLUSH,
//    the root's until the root's IMCTR.FLUSH. A missing flush shows as DMA still landing;
//  - the root's FLUSH reads back set for a while (or forever: hang_flush) and then self-clears;
//  - IMSTR latches: the first fault's address stays in IMELAR/IMEUAR until IMSTR is written 0,
//    after which they read 0 (so reading them after the clear loses the address); software
//    can only clear status bits, never set them; read-only bits and fields ignore writes;
//  - a cache's IMCTR keeps bits [2:0] only; the context registers live in the root, and a
//    context's table registers must not change while it is enabled (recorded in violations());
//  - a disabled uTLB lets addresses through untranslated (bypassed), as the hardware does; an
//    enabled one whose context walks a table of invalid entries latches a translation fault
//    (TF) at the start level, which is all a driver's blocking context relies on.
// Table formats: IMCTR.VA64 + IMSAUXCTLR.S2PTE: VMSAv8-64 stage 2, IPA 64 - TSZ0, start level
// from SL0 as VTCR (2 - level). Neither: 32-bit LPAE stage 1, input 32 - TSZ0, SL0 must be
// 3 - start level. VA64 alone: VMSAv8-64 stage 1 (SL0 not checked; no known driver uses it).
// S2PTE without VA64 is a violation. Output addresses are 40 bits.
// Field positions and each generation's register map (Layout: where contexts, uTLBs and controls
// start, the context stride, the TTSEL width) are written here from docs/hardware.md §1 and
// §1.9, not taken from the driver's header. An access to an offset the layout does not have
// (say, a Gen3 offset on a Gen4 IPMMU) is a violation.
// Interrupts (connect_irq, root only): the root's fault line is level, as the R-Car trees give it,
// and asserted while irq_pending(): raised when a fault latches in IMSTR of a context with
// IMCTR.INTEN (or INTEN is set over a latched fault), lowered when IMSTR is written 0 (or INTEN
// cleared) so that no context is left pending.
// Not modelled: IMSSTR and the caches' own interrupts, IMUASID matching, FIXADD, Gen2.
#pragma once
#include <deque>
#include <string>
#include <vector>

#include "arch/irq.hpp"
#include "arch/mmio.hpp"
#include "tests/models/vmsa_walker.hpp"

namespace moat::model {

class IpmmuModel final : public mmio::Device {
public:
    // One generation's register map.
    struct Layout {
        const char* name;
        unsigned contexts, utlbs;
        uint64_t size;           // the register window
        uint32_t ctx_base;       // context 0
        uint32_t ctx_stride;     // context n to n + 1; contexts 8 and up start 0x600 further on
        uint32_t utlb_base;      // IMUCTR(n) = utlb_base + 0x300 + 16n (n < 32), utlb_base + 0x600 + 16(n - 32)
        uint32_t control_base;   // IMSCTLR = control_base + 0x500, IMSAUXCTLR + 0x504
        unsigned ttsel_bits;     // IMUCTR.TTSEL from bit 4
    };
    static const Layout kGen3, kGen4;
    static constexpr uint64_t kRegSize = 0x1000;  // Gen3's window (Layout::size in general)
    static constexpr unsigned kMaxContexts = 16, kMaxUtlbs = 64;
    static constexpr unsigned kPaBits = 40;
    // IMSTR bits, as the hardware sets them.
    static constexpr uint32_t kTf = 1u << 0, kPf = 1u << 1, kAbort = 1u << 2, kMhit = 1u << 4;

    struct Dma {
        bool ok = false;        // every byte moved
        size_t done = 0;
        bool bypassed = false;  // the uTLB is disabled: the address went out untranslated
        uint32_t fault = 0;     // the IMSTR bit the access latched (0: none)
        unsigned context = 0;   // the context it went through (when not bypassed)
        uint64_t pa = 0;        // physical address of the first byte
    };

    // A root (IPMMU-MM) of the given generation: walks tables in `mem`.
    explicit IpmmuModel(PhysMem& mem, const Layout& layout = kGen3);
    // A cache in front of `root`, of the root's generation; `main_bit` is its bit in the root's IMSSTR.
    IpmmuModel(IpmmuModel& root, unsigned main_bit);

    const Layout& layout() const { return *layout_; }
    uint64_t size() const { return layout_->size; }
    // Where the layout puts a register (docs/hardware.md §1.9): for tests that write offsets out.
    uint32_t ctx_offset(unsigned ctx, uint32_t reg) const;
    uint32_t imuctr_offset(unsigned utlb) const;
    uint32_t control_offset(uint32_t reg) const { return layout_->control_base + reg; }

    uint64_t read(uint64_t offset, unsigned bytes) override;
    void write(uint64_t offset, uint64_t value, unsigned bytes) override;

    Dma dma_write(unsigned utlb, uint64_t iova, const void* src, size_t len);
    Dma dma_read(unsigned utlb, uint64_t iova, void* dst, size_t len);

    // Root: wires its fault output to line `intid` of `c` (nullptr: disconnects).
    void connect_irq(arch::host::HostIrqController* c, unsigned intid);
    uint64_t irqs_raised() const { return irqs_raised_; }  // transitions to asserted

    // Test hooks.
    void set_flush_latency(unsigned reads) { flush_latency_ = reads; }  // root: reads that still see FLUSH
    void hang_flush(bool on) { flush_hung_ = on; }                      // root: FLUSH never clears
    void inject_fault(unsigned ctx, uint32_t imstr, uint64_t addr);      // root: as if a walk had failed
    void poke(uint32_t offset, uint32_t value);                          // any register, raw (firmware leftovers)

    // Inspection.
    bool is_root() const { return root_ == this; }
    unsigned main_bit() const { return main_bit_; }
    uint32_t imctr(unsigned ctx) const { return ctx_[ctx].imctr; }
    uint32_t imttbcr(unsigned ctx) const { return ctx_[ctx].ttbcr; }
    uint64_t ttbr0(unsigned ctx) const { return uint64_t{ctx_[ctx].ttubr & 0xff} << 32 | (ctx_[ctx].ttlbr & 0xfffff000u); }
    uint32_t immair0(unsigned ctx) const { return ctx_[ctx].mair0; }
    uint32_t imstr(unsigned ctx) const { return ctx_[ctx].imstr; }
    uint32_t imuctr(unsigned utlb) const { return utlb_[utlb].imuctr; }
    uint32_t imuasid(unsigned utlb) const { return utlb_[utlb].imuasid; }
    uint32_t imsctlr() const { return imsctlr_; }
    uint32_t imsauxctlr() const { return imsauxctlr_; }
    bool irq_pending() const;  // root: a latched fault in a context with IMCTR.INTEN
    uint64_t flush_requests(unsigned ctx) const { return ctx_[ctx].flushes; }  // IMCTR writes with FLUSH
    uint64_t utlb_flushes(unsigned utlb) const { return utlb_[utlb].flushes; }
    uint64_t register_writes() const { return writes_; }
    uint64_t register_reads() const { return reads_; }
    uint64_t context_writes(unsigned ctx) const { return ctx_[ctx].writes; }
    size_t tlb_size() const { return tlb_.size(); }
    uint64_t walks() const { return walks_; }
    uint64_t tlb_hits() const { return tlb_hits_; }
    const std::vector<std::string>& violations() const { return violations_; }

private:
    struct Context {
        uint32_t imctr = 0, ttbcr = 0, ttlbr = 0, ttubr = 0, ttlbr1 = 0, ttubr1 = 0, imstr = 0, mair0 = 0, mair1 = 0;
        uint32_t elar = 0, euar = 0;
        unsigned flush_pending = 0;  // reads of IMCTR that still see FLUSH (root)
        uint64_t flushes = 0, writes = 0;
    };
    struct UtlbRegs {
        uint32_t imuctr = 0, imuasid = 0;
        uint64_t flushes = 0;
    };
    struct TlbEntry {
        unsigned ctx;
        int utlb;             // -1 in the root's TLB
        uint64_t base, size;  // input range of the leaf
        uint64_t out;
        unsigned level;
        bool s2;
        vmsa::Perms perms;
    };
    struct Regime {
        bool ok = false;
        vmsa::Regime r;
    };
    struct Xlate {
        bool ok = false;
        bool bypass = false;
        uint64_t pa = 0;
        uint32_t fault = 0;
        unsigned ctx = 0;
    };

    void violation(const std::string& what);
    std::string who() const;
    uint32_t read32(uint32_t off);
    void write32(uint32_t off, uint32_t v);
    void write_ctx(unsigned ctx, uint32_t reg, uint32_t v);
    void drop(int ctx, int utlb);  // TLB entries of a context and/or a uTLB (-1: any)
    Regime regime(unsigned ctx);
    void update_irq();  // root: after a change to IMSTR or IMCTR.INTEN
    void latch(unsigned ctx, uint32_t bit, unsigned level, uint64_t iova);
    const TlbEntry* lookup(unsigned ctx, int utlb, uint64_t iova);
    void insert(const TlbEntry& e);
    Xlate translate(unsigned utlb, uint64_t iova, bool write);
    Dma dma(unsigned utlb, uint64_t iova, uint8_t* buf, size_t len, bool write);

    // Which context register an offset is (reg: its offset inside the context), or -1.
    int context_at(uint32_t off, uint32_t& reg) const;
    int utlb_at(uint32_t off, bool& asid) const;

    PhysMem* mem_;
    IpmmuModel* root_;
    const Layout* layout_;
    unsigned main_bit_ = 0;
    Context ctx_[kMaxContexts];
    UtlbRegs utlb_[kMaxUtlbs];
    uint32_t imsctlr_ = 0, imsauxctlr_ = 0;
    unsigned flush_latency_ = 2;
    bool flush_hung_ = false;
    std::deque<TlbEntry> tlb_;
    uint64_t writes_ = 0, reads_ = 0, walks_ = 0, tlb_hits_ = 0;
    arch::host::HostIrqController* irqc_ = nullptr;
    unsigned intid_ = 0;
    bool irq_asserted_ = false;
    uint64_t irqs_raised_ = 0;
    std::vector<std::string> violations_;
};

// The R-Car product register (PRR): one read-only word.
class PrrModel final : public mmio::Device {
public:
    explicit PrrModel(uint32_t value) : value_(value) {}
    uint64_t read(uint64_t, unsigned) override {
        reads_++;
        return value_;
    }
    void write(uint64_t, uint64_t, unsigned) override { writes_++; }
    uint64_t reads() const { return reads_; }
    uint64_t writes() const { return writes_; }

private:
    uint32_t value_;
    uint64_t reads_ = 0, writes_ = 0;
};

}  // namespace moat::model
