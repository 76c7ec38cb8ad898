// Renesas IPMMU-VMSA, R-Car Gen3 (H3, M3-W, M3-W+, M3-N) and Gen4 (S4, V3U).
//
// One instance per DT node. The root (IPMMU-MM, the node without `renesas,ipmmu-main`) owns the
// contexts (table base, format, MAIR, fault status) and the fault interrupt; masters hang off
// cache IPMMUs through micro-TLBs (uTLBs), and a cache forwards what its TLB misses to the root.
// So the `Iommu` a master attaches through is its cache, the StreamId is the uTLB number, and
//  - a domain gets ONE root context, shared by every cache that serves one of its masters; the
//    context is allocated at the domain's first attach and given back when its last uTLB leaves;
//  - context 0 is never used (Linux and Xen reserve it);
//  - a uTLB belongs to one domain at a time (reference counted within it);
//  - there is no per-address invalidation: a flush sets IMCTR.FLUSH on every cache the context
//    is used through and on the root, then waits (bounded) for the root to clear it.
//
// Unattached masters. The hardware has no per-uTLB abort: a disabled uTLB (IMUCTR.MMUEN = 0)
// lets its master's addresses through untranslated. So with block_unattached (the default) the
// root keeps its last context as a BLOCKING context: tables that translate nothing (a zeroed
// root from the page pool, cleaned for the walker), fault reporting on. Every uTLB of a master
// the DT names is pointed at it at probe, and detach, a failed attach and shutdown point a uTLB
// back at it: the driver never disables a uTLB it knows a master sits on, and such a master's
// DMA is a translation fault that poll_faults() reports (FaultKind::stream_disabled). The cost
// is one context: 6 domains fit on Gen3 (14 on Gen4), the next gets no_space. block_unattached =
// false gives the context back (7, or 15) and leaves unattached masters bypassing, as Linux and Xen do: only
// for masters known to be quiesced. Walks are not cache coherent: tables must be cleaned
// (IoDomain with coherent_walk = false).
//
// Generations. Gen3 and Gen4 differ in their register map (where contexts, uTLBs and controls
// start, the context stride) and capacities (8 or 16 contexts, 48 or 64 uTLBs, a 4- or 5-bit
// TTSEL); ipmmu::Generation describes each, the SoC's registry entry names its generation, and
// every register access and bound goes through it. A cache and its root are of one generation.
//
// Table formats, chosen per root at probe (IMSAUXCTLR.S2PTE is one bit for all contexts):
//   stage2: VMSAv8-64 stage-2 tables (IMCTR.VA64 + S2PTE), as Xen shares the P2M: IPA 33..40 bits
//           (TSZ0 is five bits and the context walks at most 40), start level 1;
//   stage1: 32-bit LPAE stage-1 tables with IMMAIR, as Linux uses them: IOVA 32 bits, PA 40 bits.
#pragma once
#include "common/io_domain.hpp"
#include "common/fault_irq.hpp"
#include "common/page_pool.hpp"
#include "common/registry.hpp"
#include "drivers/iommu/ipmmu_vmsa_regs.hpp"
#include "drivers/iommu/vmsa_walker.hpp"

namespace moat {

class IpmmuVmsa final : public Iommu {
public:
    static constexpr uint64_t kFlushTimeoutNs = 100 * 1000;  // 100 us, as Linux and Xen
    static constexpr uint8_t kNoContext = 0xff;               // what a domain's context id starts as
    static constexpr uint32_t kStreamUnknown = 0xffffffffu;   // fault on a context several uTLBs share
    static constexpr unsigned kMaxCaches = 16;

    enum class Format : uint8_t { stage2, stage1 };

    struct Config {
        const ipmmu::Generation* gen = &ipmmu::kGen3;  // register map and capacities
        uintptr_t base = 0;
        uint64_t size = 0x1000;
        const char* name = "ipmmu";
        IpmmuVmsa* root = nullptr;  // the root this cache forwards to; nullptr: this IS the root
        unsigned main_bit = 0;      // cache: its bit in the root's IMSSTR (`renesas,ipmmu-main`)
        uint64_t masters = 0;       // cache: bit n set when a master sits on uTLB n (DT `iommus`)
        // Root only:
        unsigned nirqs = 0;         // interrupts the DT gives it: a root without one is refused
        // With a controller the root requests its lines at probe and their handler drains every
        // context's faults into `faults`; without one, poll_faults() finds them.
        IrqController* irq = nullptr;
        const dt::Irq* irqs = nullptr;  // nirqs of them, read during probe only
        FaultLog* faults = nullptr;
        const char* compatible = nullptr;  // "renesas,ipmmu-r8a7795", ...: must be of generation `gen`
        uint32_t prr = 0;           // the product register, for the supported-SoC check
        Format format = Format::stage2;  // stage2 only where the SoC has it (ipmmu::Soc::stage2)
        unsigned cpu_pa_bits = 40;  // caps the output size
        bool block_unattached = true;  // keep a blocking context (see above); false: they bypass
        PagePool* pool = nullptr;      // where the blocking context's table comes from
    };

    IpmmuVmsa() = default;
    IpmmuVmsa(const IpmmuVmsa&) = delete;
    IpmmuVmsa& operator=(const IpmmuVmsa&) = delete;

    // Root: checks the SoC, disables every context, clears their status, selects the table format,
    // then builds and enables the blocking context (no_memory without a table page, timeout when
    // its enabling flush never completes; either way the page goes back to the pool).
    // Cache: not_ready until its root has probed; disables its other contexts, points the uTLBs
    // of `masters` at the root's blocking context (or disables them when it has none) and
    // disables every other uTLB. On failure nothing is enabled and why() says what was wrong.
    Status probe(const Config& cfg);
    // Detaches every uTLB and disables every domain's context. Masters stay blocked: their uTLBs
    // keep pointing at the blocking context, which stays enabled on its table page (given back
    // to the pool when the root is probed again and has disabled it). A root shuts its caches down.
    void shutdown();
    const char* why() const override { return why_.text(); }
    Status why_status() const { return why_.status(); }
    // The root's SoC as the product register names it ("R-Car H3 ES3.0"), once probed.
    const char* soc() const { return root_ ? root_->soc_ : ""; }
    void describe(Sink& out) const override;
    // One cell: the uTLB, below the 48 (Gen3) or 64 (Gen4) the IPMMU has.
    Status xlate(const uint32_t* args, unsigned nargs, StreamId& out, Why& why) const override;

    bool ready() const { return ready_; }
    bool interrupt_driven() const override { return root_ && root_->irqs_.active(); }
    bool is_root() const { return root_ == this; }
    IpmmuVmsa* root() const { return root_; }
    unsigned main_bit() const { return cfg_.main_bit; }
    Format format() const { return root_ ? root_->cfg_.format : cfg_.format; }
    const ipmmu::Generation& generation() const { return *cfg_.gen; }

    const char* name() const override { return cfg_.name; }
    const IommuCaps& caps() const override { return root_ ? root_->caps_ : caps_; }
    // The root's table format, whichever use is asked for: the one format its contexts walk.
    Result<iopt::Format> domain_format(DomainUse use, unsigned ias) const override;
    Status attach(IoDomain& d, StreamId utlb) override;
    Status detach(IoDomain& d, StreamId utlb) override;
    Status flush(IoDomain& d, const iopt::Gather& g) override;
    // Every context of the root, whichever instance is asked: a context has one fault status.
    unsigned poll_faults(FaultLog& log) override;
    // Counted once per root: its caches report the same numbers (the root does the waiting).
    IommuStats stats() const override {
        return root_ ? IommuStats{root_->commands_, root_->syncs_, is_root() ? block_pages_ : 0, root_->irqs_.deliveries()}
                     : IommuStats{};
    }

    // The root context a domain uses, or kNoContext.
    uint8_t context_of(const IoDomain& d) const;
    unsigned contexts_free() const;
    // The root's blocking context, or kNoContext (block_unattached off, or not probed).
    uint8_t blocking_context() const { return root_ ? root_->block_ctx_ : kNoContext; }
    // The blocking context's table (for tests): physical address and 4 KiB pages; 0 when none.
    uint64_t blocking_table() const { return root_ ? root_->block_pa_ : 0; }
    size_t blocking_table_pages() const { return root_ ? root_->block_pages_ : 0; }
    // This cache's uTLB points at the blocking context (a known master, not attached).
    bool utlb_blocked(unsigned utlb) const;
    // uTLB state of this cache: the domain using it (nullptr) and how many attaches it counts.
    const IoDomain* utlb_domain(unsigned utlb) const { return utlb < cfg_.gen->utlbs ? utlb_[utlb].domain : nullptr; }
    unsigned utlb_refs(unsigned utlb) const { return utlb < cfg_.gen->utlbs ? utlb_[utlb].refs : 0; }
    uint64_t flush_timeouts() const { return root_ ? root_->flush_timeouts_ : 0; }
    uint64_t flushes() const { return root_ ? root_->flushes_ : 0; }

    // IMSTR decoded. Several bits may be latched at once; `kind` is the first of TF, PF, ABORT, MHIT.
    struct FaultInfo {
        FaultKind kind;
        unsigned errcode;     // IMSTR.ERRCODE
        unsigned level;       // IMSTR.ERRLVL: table level
        const char* detail;   // e.g. "TF (translation fault), level 2"
    };
    static FaultInfo decode(uint32_t imstr);

    // Supported SoCs: the node's compatible must be an IPMMU this driver supports and the product
    // register must agree with it; H3 and M3-W (M3-W+ is M3-W ES3.0) need cut ES3.0 or later for
    // stage-2 tables, M3-N, S4 and V3U any. Writes why not into `why`; ok, or unsupported.
    static Status check_soc(const char* compatible, uint32_t prr, char* why, size_t cap);
    static const char* soc_name(uint32_t prr);
    // The SoC facts the registry holds for a compatible this driver runs, or nullptr.
    static const ipmmu::Soc* soc_of(const char* compatible);

private:
    struct Context {
        // blocking: translates nothing, never handed to a domain, never flushed for one.
        enum State : uint8_t { free, reserved, used, broken, blocking } state = free;
        IoDomain* domain = nullptr;
        unsigned users = 0;   // uTLBs, on every cache, that point at it
        uint32_t imctr = 0;   // the root's IMCTR for it (without FLUSH)
        uint64_t domain_id = 0;  // what lookups compare (IoDomain::id), never the address
    };
    struct UtlbState {
        IoDomain* domain = nullptr;
        uint8_t ctx = kNoContext;
        unsigned refs = 0;
        bool known = false;  // a master sits on it (DT, or it was attached once): never disabled
        uint64_t domain_id = 0;  // what lookups compare (IoDomain::id), never the address
    };

    uint32_t rd(ipmmu::Ctx r, unsigned ctx) const;
    void wr(ipmmu::Ctx r, unsigned ctx, uint32_t v);
    uint32_t rd(ipmmu::Utlb r, unsigned utlb) const;
    void wr(ipmmu::Utlb r, unsigned utlb, uint32_t v);
    uint32_t rd(ipmmu::Global r) const;
    void wr(ipmmu::Global r, uint32_t v);
    Status refuse(Status st, const char* what);

    // Cache side: the context a uTLB walks with now (a domain's, the blocking one, or kNoContext).
    uint8_t utlb_context(unsigned utlb) const;
    // Points a uTLB nobody has attached at the blocking context (or disables it when there is none).
    void park(unsigned utlb);

    // Root side.
    uint32_t program_context(uint8_t id, uint64_t ttb, const iopt::Format& f);
    Status enable_blocking();
    void release_blocking_table();
    Status check_domain(const IoDomain& d) const;
    Status get_context(IoDomain& d, uint8_t& id);
    void put_context(uint8_t id);
    Status flush_context(uint8_t id);
    Status wait_flush(uint8_t id);
    uint8_t find_context(const IoDomain& d) const;
    void report(FaultLog& log, uint8_t id, uint32_t imstr, uint64_t addr);

    Config cfg_;
    IpmmuVmsa* root_ = nullptr;
    bool ready_ = false;
    IommuCaps caps_;
    Why why_;
    char soc_[96] = {};
    FaultIrqs irqs_;
    static void on_irq(void* self);
    VmsaWalker walker_;  // root: what its contexts take (one stage, chosen at probe)
    // Root: contexts and the caches in front of it.
    Context ctx_[ipmmu::kMaxContexts];
    IpmmuVmsa* caches_[kMaxCaches] = {};
    uint8_t block_ctx_ = kNoContext;
    // The blocking context's table; it outlives shutdown() while the context may still be walked.
    PagePool* block_pool_ = nullptr;
    uint64_t block_pa_ = 0;
    size_t block_pages_ = 0;
    // Cache: its uTLBs, and how many of them use each context (its IMCTR copy is on while > 0).
    UtlbState utlb_[ipmmu::kMaxUtlbs];
    unsigned ctx_utlbs_[ipmmu::kMaxContexts] = {};
    uint64_t commands_ = 0, syncs_ = 0, flushes_ = 0, flush_timeouts_ = 0;
};

// The registry's operations for the R-Car Gen3 and Gen4 IPMMU compatibles (ipmmu_vmsa_dt.cpp).
extern const DriverOps kIpmmuOps;

}  // namespace moat
