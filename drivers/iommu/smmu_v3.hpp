// Arm SMMUv3. Streams not attached to a domain have an abort STE (never bypass). Stage-1
// domains get one context descriptor each (ASID = the domain's tag), stage-2 domains a
// stage-2 STE (VMID = the tag). The command queue is polled (CMD_SYNC completes when CONS
// passes it) and the event queue is drained by poll_faults(); no interrupts are needed.
//
// Several CPUs: cfg_lock_ serialises attach/detach (stream table, context slots, the pages this
// instance holds); cmdq_lock_ guards the queue's producer side only, so CPUs submit concurrently
// and each sync() waits for its own CMD_SYNC (by a 64-bit position, immune to wrap), fails only
// for a command error among its own commands, and polls without holding the lock. evt_lock_
// guards the event queue (the interrupt handler takes it). Order: cfg_lock_, then cmdq_lock_;
// evt_lock_, then cmdq_lock_ (a poll acknowledges a command error); then the pool's.
#pragma once
#include "arch/cpu.hpp"
#include "common/io_domain.hpp"
#include "common/fault_irq.hpp"
#include "common/lock.hpp"
#include "common/page_pool.hpp"
#include "common/registry.hpp"
#include "drivers/iommu/smmu_v3_regs.hpp"
#include "drivers/iommu/vmsa_walker.hpp"

namespace moat {

class SmmuV3 final : public Iommu {
public:
    // One slot per domain that can exist (the SMMUv3 itself has no context limit: ASIDs and
    // VMIDs come from the domain's tag), so no guest's contexts can run another out of slots;
    // each guest is bounded by its own context count (PvIommuGuest::kMaxContexts).
    static constexpr unsigned kMaxContexts = IoDomain::kMaxDomains;
    static constexpr uint64_t kTimeoutNs = 100 * 1000 * 1000;

    struct Config {
        uintptr_t base = 0;
        uint64_t size = 0;          // from the DT reg; must cover both 64 KiB register pages
        const char* name = "smmuv3";
        uint32_t max_sid = 0;       // largest stream id the platform will use: sizes the stream table
        unsigned cpu_pa_bits = 48;  // caps the output size
        bool force_two_level = false;
        // Fault interrupts. With a controller, the event queue and global-error lines are
        // requested at probe and their handler drains events into `faults`; without one (or
        // without the lines) IRQ_CTRL stays 0 and poll_faults() finds them.
        IrqController* irq = nullptr;
        dt::Irq eventq{}, gerror{};  // intid 0: the tree names no such line
        dt::Irq cmdq_sync{};         // where present: each CMD_SYNC then signals it (CS = IRQ)
        FaultLog* faults = nullptr;
    };

    explicit SmmuV3(PagePool& pool) : pool_(pool) {}

    // Checks the ID registers, builds the stream table and queues, and enables the SMMU with
    // every stream aborting. On failure the SMMU is left disabled and every page given back.
    Status probe(const Config& cfg);
    // Disables the SMMU (DMA then bypasses on hardware without GBPA abort: call only at teardown).
    void shutdown();

    const char* name() const override { return cfg_.name; }
    const IommuCaps& caps() const override { return caps_; }
    const char* why() const override { return why_.text(); }
    Status why_status() const { return why_.status(); }
    void describe(Sink& out) const override;
    Status xlate(const uint32_t* args, unsigned nargs, StreamId& out, Why& why) const override;
    // Interrupts taken (event queue, global errors, command sync), and whether the lines are in use.
    uint64_t interrupts() const { return irqs_on_.deliveries(); }
    // CMD_SYNCs signal the cmdq-sync line (where the tree names one and it was granted).
    bool sync_by_interrupt() const { return sync_irq_; }
    bool interrupt_driven() const override { return irqs_on_.active(); }
    Result<iopt::Format> domain_format(DomainUse use, unsigned ias) const override;
    Status attach(IoDomain& d, StreamId sid) override;
    Status detach(IoDomain& d, StreamId sid) override;
    Status flush(IoDomain& d, const iopt::Gather& g) override;
    unsigned poll_faults(FaultLog& log) override;
    // The STE in memory for `sid`: stage 1 (ASID and TTB0 from its CD) or stage 2 (S2VMID, S2TTB).
    Status stream_config(StreamId sid, StreamConfig& out) const override;

    IommuStats stats() const override { return IommuStats{commands_, syncs_, pages_, irqs_on_.deliveries()}; }
    // Counters a test or benchmark reads.
    uint64_t commands_issued() const { return commands_; }
    uint64_t syncs_issued() const { return syncs_; }
    uint64_t command_errors() const { return cmd_errors_; }
    uint64_t event_overflows() const { return evt_overflows_; }
    uint64_t gerrors() const { return gerrors_; }
    bool two_level() const { return two_level_; }
    unsigned strtab_log2size() const { return st_log2_; }
    uint64_t pages_used() const { return pages_; }

    // Queues one raw command and waits for it with a CMD_SYNC. For tests that need a command
    // the driver would never send (an illegal opcode, to exercise error recovery). wait = false
    // leaves it in this CPU's open batch: the next sync on this CPU answers for it.
    Status submit_raw(uint64_t dw0, uint64_t dw1, bool wait = true);

private:
    // A domain's slot, found by IoDomain::id (0: free), never by the object's address: a slot
    // whose teardown the SMMU did not confirm keeps the dead domain's id, and its CD, for good.
    struct Context {
        uint64_t domain_id;
        uint64_t cd_pa;  // stage 1 only
        unsigned refs;
    };

    uint32_t rd32(smmuv3::Reg32 r) const;
    void wr32(smmuv3::Reg32 r, uint32_t v) const;
    void wr64(smmuv3::Reg64 r, uint64_t v) const;
    Status write_cr0(uint32_t v);
    Result<uint64_t> alloc(size_t pages);
    void free_all();
    void clean(const void* p, size_t n) const;

    Status queue_cmd(uint64_t dw0, uint64_t dw1);
    Status queue_locked(uint64_t dw0, uint64_t dw1);
    uint64_t consumed_locked() const;
    Status sync();
    Status handle_cmdq_error();
    uint64_t* ste(StreamId sid, bool allocate, Status& st);
    Status write_ste(StreamId sid, uint64_t* e, const uint64_t (&v)[smmuv3::ste::kDwords]);
    Context* context(IoDomain& d, bool create, Status& st);
    Status put_context(IoDomain& d, Context& c);
    Status invalidate_domain(IoDomain& d);
    Status inval_range_cmds(IoDomain& d, uint64_t iova, uint64_t size, unsigned granule_shift, bool leaf);
    Status request_irqs();
    void release_irqs();
    static void on_irq(void* self);
    unsigned drain(FaultLog& log, bool from_irq);

    PagePool& pool_;
    Config cfg_;
    IommuCaps caps_;
    Why why_;
    VmsaWalker walker_;
    bool ready_ = false;
    FaultIrqs irqs_on_;
    IrqSpinlock evt_lock_;
    bool sync_irq_ = false;   // CMD_SYNCs signal the cmdq-sync line  // the event queue, drained by poll_faults() and the handler
    bool coherent_ = false;
    bool ril_ = false;
    bool two_level_ = false;
    unsigned sid_bits_ = 0;
    unsigned st_log2_ = 0;        // stream table covers 2^st_log2_ stream ids
    static constexpr unsigned kSplit = 8;  // 2-level: 256 STEs (16 KiB) per level-2 table
    uint64_t strtab_pa_ = 0;
    uint64_t l2_pa_[256] = {};    // level-2 tables, by level-1 index (2-level up to 16 sid bits)
    uint64_t cmdq_pa_ = 0, evtq_pa_ = 0;
    unsigned cmdq_log2_ = 0, evtq_log2_ = 0;
    uint32_t cmdq_prod_ = 0;      // index + wrap bit
    // Commands ever written (64-bit: a sync's position never wraps), where each CPU's current
    // batch began plus one (0: none open), and where the last command errors stood.
    static constexpr unsigned kErrHistory = 8;
    uint64_t cmdq_issued_ = 0;
    uint64_t batch_start1_[arch::kMaxCpus] = {};
    uint64_t err_at_[kErrHistory] = {};
    unsigned nerr_ = 0;
    Spinlock cmdq_lock_;
    Spinlock cfg_lock_;
    uint32_t evtq_ack_ = 0;       // the OVACKFLG we last wrote
    Context ctx_[kMaxContexts] = {};
    // Pages this instance allocated, so a failed probe or shutdown gives every one back.
    struct Alloc { uint64_t pa; size_t pages; };
    Alloc allocs_[300] = {};
    unsigned nallocs_ = 0;
    uint64_t pages_ = 0;
    uint64_t commands_ = 0, syncs_ = 0, cmd_errors_ = 0, evt_overflows_ = 0, gerrors_ = 0;
};

// The registry's operations for `arm,smmu-v3` (probe from the discovered node, release).
extern const DriverOps kSmmuV3Ops;

}  // namespace moat
