// A register-level model of an Arm SMMUv3 (IHI 0070) for host tests: the two 64 KiB register
// pages, a command queue executed when CMDQ_PROD is written, an event queue with overflow, stream
// tables (linear and 2-level), STEs (abort, bypass, stage 1 through one CD, stage 2), and a DMA API
// that translates through the tables it is given with the independent VMSA walker and moves bytes
// in the test's memory or records the event the hardware would.
//
// It is strict where a driver can go wrong without QEMU noticing:
//  - STEs, L1 descriptors and CDs are cached once fetched and only refetched after a CFGI_*, and
//    translations sit in an IOTLB until a TLBI drops them: a missing invalidation shows as DMA
//    still reaching memory through the old configuration or mapping;
//  - commands the configuration makes illegal (unknown opcodes, EL2 TLBIs without IDR0.HYP, SYNC
//    CS=3) stop the queue with CERROR_ILL until GERRORN acknowledges it;
//  - register programming the architecture leaves UNPREDICTABLE (a base moved while its queue or
//    the SMMU is enabled, misaligned bases, sizes beyond the ID registers, page-0 aliases of the
//    page-1 registers, wrong access widths) is recorded in violations().
// Interrupts (connect_irq): wired and edge-triggered, as the architecture's wired interrupts and
// the Linux binding (IRQ_TYPE_EDGE_RISING) have them. The event queue line pulses each time a
// record is written to the queue, or the queue enters overflow, while IRQ_CTRL.EVENTQ_IRQEN is
// set; the global-error line pulses when a GERROR bit becomes active (GERROR != GERRORN) while
// IRQ_CTRL.GERROR_IRQEN is set. IRQ_CTRLACK follows IRQ_CTRL at once.
// Field positions are written here from the specification, not taken from the driver's header.
// Several threads may use one model at once (register accesses, DMA): one lock serialises them,
// as the hardware serialises its own register file. A DMA's table walk reads memory that other
// threads may be writing: concurrent DMA with table updates of the same domain is for the
// ordering tests (iopt_ordering_test), not for ThreadSanitizer runs. With interrupts connected,
// a handler runs inside the model's lock on the raising thread: keep TSan runs polling.
// Not modelled: nested (stage 1 + 2) STEs, substreams, ATS/PRI, stalls, MSIs, walk caches,
// the PRI and CMD_SYNC interrupts.
#pragma once
#include <array>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "arch/irq.hpp"
#include "arch/mmio.hpp"
#include "tests/models/vmsa_walker.hpp"

namespace moat::model {

class SmmuV3Model final : public mmio::Device {
public:
    static constexpr uint64_t kRegSize = 0x20000;

    // What the ID registers advertise.
    struct Features {
        bool stage1 = true;          // IDR0.S1P
        bool stage2 = false;         // IDR0.S2P
        bool aarch64_tables = true;  // IDR0.TTF bit 1
        bool two_level = true;       // IDR0.ST_LEVEL = 1
        bool coherent = true;        // IDR0.COHACC
        bool hyp = false;            // IDR0.HYP (EL2 TLBI commands legal)
        bool ril = true;             // IDR3.RIL
        bool gran4k = true;          // IDR5.GRAN4K
        unsigned sid_bits = 16;      // IDR1.SIDSIZE
        unsigned cmdq_log2 = 8;      // IDR1.CMDQS
        unsigned evtq_log2 = 7;      // IDR1.EVENTQS
        unsigned oas_enc = 4;        // IDR5.OAS (4: 44 bits, as QEMU)
        bool abort_when_disabled = false;  // GBPA.ABORT: SMMUEN = 0 aborts instead of bypassing
        size_t tlb_entries = 64;     // IOTLB capacity (oldest entry evicted)
    };

    // One event the SMMU produced, whether or not it reached the queue.
    struct Event {
        uint8_t type;
        uint32_t sid;
        uint64_t addr;     // input address
        bool write;
        bool stage2;       // a stage-2 fault (S2 bit)
        bool queued;       // written to the event queue (false: lost to overflow or queue disabled)
    };

    // What one DMA did. It stops at the first page that faults.
    struct Dma {
        bool ok = false;        // every byte moved
        size_t done = 0;        // bytes moved
        bool bypassed = false;  // no translation (bypass STE or SMMU disabled)
        uint8_t event = 0;      // event type of the failure (0: none recorded, e.g. an abort STE)
        uint64_t pa = 0;        // physical address of the first byte (when translated)
    };

    SmmuV3Model(PhysMem& mem, const Features& f);

    uint64_t read(uint64_t offset, unsigned bytes) override;
    void write(uint64_t offset, uint64_t value, unsigned bytes) override;

    Dma dma_write(uint32_t sid, uint64_t iova, const void* src, size_t len);
    Dma dma_read(uint32_t sid, uint64_t iova, void* dst, size_t len);

    // Wires the event queue and global-error outputs to lines of `c` (intid 0: not wired;
    // c nullptr: disconnects both).
    void connect_irq(arch::host::HostIrqController* c, unsigned eventq_intid, unsigned gerror_intid) {
        irqc_ = c;
        eventq_intid_ = eventq_intid;
        gerror_intid_ = gerror_intid;
    }
    // Pulses sent on each output (counted whether or not a controller is connected).
    uint64_t eventq_irqs() const { return eventq_irqs_; }
    uint64_t gerror_irqs() const { return gerror_irqs_; }
    uint32_t irq_ctrl() const { return irq_ctrl_; }

    // Test hooks.
    void freeze_cr0ack(bool on) { cr0ack_frozen_ = on; }  // CR0ACK keeps its value whatever CR0 says
    void set_cr0ack(uint32_t v) { cr0ack_ = v; }
    // A command queue that stops consuming (a hung SMMU); resuming consumes what is pending.
    void stall_commands(bool on) {
        cmdq_stalled_ = on;
        if (!on) consume_commands();
    }
    uint32_t cr0() const { return cr0_; }
    uint32_t gerror() const { return gerror_; }
    uint32_t gerrorn() const { return gerrorn_; }
    uint32_t cmdq_prod() const { return cmdq_prod_; }
    uint32_t cmdq_cons() const { return cmdq_cons_; }
    uint32_t eventq_prod() const { return evtq_prod_; }
    uint32_t eventq_cons() const { return evtq_cons_; }
    uint64_t strtab_base_cfg() const { return strtab_cfg_; }
    // Where the STE of `sid` is in memory, following the tables as they are now (not the caches);
    // false if the stream table does not reach it.
    bool ste_address(uint32_t sid, uint64_t& pa);
    // The walk attributes a translating stream's tables are read with, from its STE (stage 2:
    // S2IR0/S2OR0/S2SH0) or CD (stage 1: IR0/OR0/SH0) in memory now; false for any other stream.
    bool walk_codes(uint32_t sid, vmsa::WalkCodes& out);

    // Counters.
    uint64_t commands(uint8_t opcode) const { return cmd_count_[opcode]; }
    uint64_t commands_total() const;
    uint64_t register_accesses() const { return accesses_; }
    uint64_t tlb_hits() const { return tlb_hits_; }
    uint64_t walks() const { return walks_; }
    size_t tlb_size() const { return tlb_.size(); }
    uint64_t events_lost() const { return events_lost_; }
    const std::vector<Event>& events() const { return events_; }
    void forget_events() { events_.clear(); }  // for long runs (fuzzing) that never read them
    const std::vector<std::string>& violations() const { return violations_; }

private:
    struct TlbEntry {
        bool s2;
        uint16_t vmid, asid;
        bool global;
        uint64_t base, size;  // input range of the leaf
        uint64_t out;         // its output base
        vmsa::Perms perms;
    };
    // Where a stream's translation comes from, decoded from its STE (and CD).
    struct StreamCfg {
        enum Kind { bad_stream, bad_ste, bad_cd, abort, bypass, translate, fetch_abort } kind;
        uint8_t fetch_event = 0;   // F_STE_FETCH / F_CD_FETCH for fetch_abort
        vmsa::Regime regime;
        bool epd0 = false;         // stage 1: TTB0 walks disabled
        bool record = false;       // CD.R / STE.S2R
        uint16_t vmid = 0, asid = 0;
    };
    struct Xlate {
        bool ok = false;
        bool bypass = false;
        uint64_t pa = 0;
        uint8_t event = 0;
    };

    void violation(const std::string& what);
    uint32_t reg32(uint64_t off);
    void write32(uint64_t off, uint32_t v);
    bool queue_writable(uint32_t enable_bit, const char* name);
    void update_cr0(uint32_t v);

    // Command queue.
    void consume_commands();
    bool execute(const uint64_t (&cmd)[2]);  // false: CERROR_ILL
    void cfgi_stream(uint32_t sid, bool leaf);
    void tlbi(bool s2, bool any_stage, bool match_vmid, uint16_t vmid, bool match_asid, uint16_t asid, bool by_addr,
              const uint64_t (&cmd)[2]);

    // Interrupts.
    void set_gerror(uint32_t bit);  // makes `bit` active in GERROR and signals it
    void signal_eventq();
    void signal_gerror();

    // Event queue.
    void record(uint8_t type, uint32_t sid, uint64_t addr, bool write, bool stage2);

    // Translation.
    StreamCfg stream_config(uint32_t sid);
    bool locate_ste(uint32_t sid, bool use_cache, uint64_t& pa, uint8_t& event);
    bool fetch_ste(uint32_t sid, std::array<uint64_t, 8>& ste, uint8_t& event);
    Xlate translate(uint32_t sid, uint64_t iova, bool write);
    Dma dma(uint32_t sid, uint64_t iova, uint8_t* buf, size_t len, bool write);

    std::recursive_mutex m_;  // a handler the model raises may access its registers again
    PhysMem& mem_;
    Features f_;
    // Registers.
    uint32_t cr0_ = 0, cr0ack_ = 0, cr1_ = 0, cr2_ = 0, irq_ctrl_ = 0, gerror_ = 0, gerrorn_ = 0;
    uint64_t strtab_base_ = 0, cmdq_base_ = 0, evtq_base_ = 0;
    uint32_t strtab_cfg_ = 0;
    uint32_t cmdq_prod_ = 0, cmdq_cons_ = 0, evtq_prod_ = 0, evtq_cons_ = 0;
    bool cr0ack_frozen_ = false, cmdq_stalled_ = false;
    // Interrupt outputs.
    arch::host::HostIrqController* irqc_ = nullptr;
    unsigned eventq_intid_ = 0, gerror_intid_ = 0;
    uint64_t eventq_irqs_ = 0, gerror_irqs_ = 0;
    // Caches, each only refreshed by the invalidation the architecture asks for.
    std::map<uint32_t, std::array<uint64_t, 8>> ste_cache_;
    std::map<uint32_t, std::array<uint64_t, 8>> cd_cache_;  // by stream (one CD per STE)
    std::map<uint32_t, uint64_t> l1_cache_;                 // L1 descriptors by L1 index
    std::deque<TlbEntry> tlb_;
    // Counters.
    std::array<uint64_t, 256> cmd_count_{};
    uint64_t accesses_ = 0, tlb_hits_ = 0, walks_ = 0, events_lost_ = 0;
    std::vector<Event> events_;
    std::vector<std::string> violations_;
};

// Event types (IHI 0070 7.3).
namespace smmu_evt {
constexpr uint8_t kBadStreamId = 0x02, kSteFetch = 0x03, kBadSte = 0x04, kCdFetch = 0x09, kBadCd = 0x0a,
                  kWalkEabt = 0x0b, kTranslation = 0x10, kAddrSize = 0x11, kAccess = 0x12, kPermission = 0x13;
}

}  // namespace moat::model
