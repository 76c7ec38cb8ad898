// Intel VT-d DMA remapping (one DRHD unit). Every requester is blocked until attached: the root
// table starts empty and translation is on, so a device without a context entry faults (reason
// 1 or 2) instead of reaching memory. A domain is a VT-d second-level table of the one engine
// (FormatId::vtd_sl), pointed at by a legacy context entry, or in scalable mode (ECAP.SMTS, with
// QI and SLTS) by the PASID-table entry of RID_PASID 0 with PGTT = second-stage only. Domain ids
// come from the instance's own allocator (CAP.ND; id 0 reserved, as caching mode needs).
// Invalidation goes through the invalidation queue (ECAP.QI: descriptors then a wait descriptor
// whose status write ends a bounded poll), else through CCMD and IOTLB registers. Caching mode
// (CAP.CM) caches not-present entries, so attaches and maps are invalidated too. Faults are
// polled from the fault recording registers (no x86 interrupt path yet: FECTL.IM stays set).
#pragma once
#include "common/io_domain.hpp"
#include "common/iommu.hpp"
#include "common/page_pool.hpp"
#include "common/registry.hpp"
#include "drivers/iommu/vtd_regs.hpp"

namespace moat {

class Vtd final : public Iommu {
public:
    static constexpr unsigned kMaxSlots = IoDomain::kMaxDomains;  // a slot for every domain there can be
    static constexpr unsigned kMaxDevices = 64;                   // requester ids attached at once
    static constexpr uint64_t kTimeoutNs = 100 * 1000 * 1000;

    struct Config {
        uintptr_t base = 0;          // DRHD register base
        const char* name = "dmar";
        unsigned haw = 48;           // DMAR host address width: caps the output size with cpu_pa_bits
        unsigned cpu_pa_bits = 48;
        uint16_t segment = 0;
        bool scalable = true;        // use scalable mode where the unit has it (ECAP.SMTS + SLTS + QI)
        bool queued = true;          // use the invalidation queue where the unit has one (ECAP.QI)
        // The DMAR's RMRRs, one entry per (region, requester id) pair: [base, limit] (page
        // aligned, limit inclusive) that requester `bdf` keeps reaching. Served as the stream's
        // reserved regions, so every domain it is attached to maps them 1:1 (IoDomain::attach).
        struct Rmrr {
            uint64_t base = 0, limit = 0;
            uint16_t bdf = 0;
        };
        static constexpr unsigned kMaxRmrr = 16;
        Rmrr rmrr[kMaxRmrr] = {};
        unsigned nrmrr = 0;
    };

    explicit Vtd(PagePool& pool) : pool_(pool) {}

    // Checks CAP/ECAP, builds the root table (and queue), enables translation with every device
    // blocked. On failure the unit is left with translation off and every page given back.
    Status probe(const Config& cfg);
    // Translation off and every page back (DMA then bypasses: only at teardown).
    void shutdown();

    const char* name() const override { return cfg_.name; }
    const IommuCaps& caps() const override { return caps_; }
    const char* why() const override { return why_.text(); }
    Status why_status() const { return why_.status(); }
    void describe(Sink& out) const override;
    Status xlate(const uint32_t* args, unsigned nargs, StreamId& out, Why& why) const override;
    Result<iopt::Format> domain_format(DomainUse use, unsigned ias) const override;
    Status attach(IoDomain& d, StreamId sid) override;
    Status detach(IoDomain& d, StreamId sid) override;
    Status flush(IoDomain& d, const iopt::Gather& g) override;
    unsigned reserved_regions(StreamId sid, ReservedRegion* out, unsigned max) const override;
    unsigned poll_faults(FaultLog& log) override;
    IommuStats stats() const override { return IommuStats{commands_, syncs_, pages_, 0}; }

    // What probe chose and counted, for tests and reports.
    bool scalable() const { return scalable_; }
    bool queued() const { return qi_; }
    bool caching_mode() const { return cm_; }
    unsigned domain_ids() const { return ndomains_; }
    uint64_t context_invalidations() const { return ctx_invs_; }
    uint64_t iotlb_invalidations() const { return iotlb_invs_; }
    uint64_t page_invalidations() const { return page_invs_; }
    uint64_t fault_overflows() const { return overflows_; }
    uint64_t queue_errors() const { return queue_errors_; }

private:
    struct Slot {
        uint64_t domain_id;  // IoDomain::id; 0: free
        uint16_t did;
        unsigned refs;
    };
    struct Dev {
        bool used;
        bool stuck;          // a detach the hardware did not confirm: its pages stay, for good
        uint16_t bdf;
        unsigned slot;
        IoDomain* domain;    // while attached: classifies faults (unmapped vs. read-only)
        uint64_t pasid_pa;   // scalable: PASID directory page + PASID table page
    };

    uint32_t rd32(vtd::Reg32 r) const;
    uint64_t rd64(vtd::Reg64 r) const;
    void wr32(vtd::Reg32 r, uint32_t v) const;
    void wr64(vtd::Reg64 r, uint64_t v) const;
    void clean(const void* p, size_t n) const;
    Result<uint64_t> alloc(size_t pages);
    void free_one(uint64_t pa, size_t pages);
    void free_all();
    uint64_t* table(uint64_t pa) const { return static_cast<uint64_t*>(pool_.virt(pa)); }

    Status set_enable(uint32_t bit, bool on);
    Status one_shot(uint32_t cmd, bool done_when_set);
    Status flush_write_buffer();

    // Invalidations: queued (until commit) with QI, performed at once through registers otherwise.
    Status inv_context(uint64_t gran, uint16_t did, uint16_t sid);
    Status inv_iotlb(uint64_t gran, uint16_t did, uint64_t addr = 0, unsigned am = 0, bool ih = false);
    Status inv_pasid(uint16_t did);
    Status commit();
    Status qi_push(uint64_t lo, uint64_t hi);
    Status qi_recover();

    Slot* slot_for(IoDomain& d, bool create, Status& st);
    Dev* dev_for(uint16_t bdf);
    Result<uint64_t*> context_entry(uint16_t bdf, bool allocate);
    Status check_format(const iopt::Format& f) const;

    PagePool& pool_;
    Config cfg_;
    IommuCaps caps_;
    Why why_;
    bool ready_ = false;
    uint64_t cap_ = 0, ecap_ = 0;
    uint32_t ver_ = 0;
    bool coherent_ = false, walk_coherent_ = false, qi_ = false, scalable_ = false, cm_ = false, psi_ = false, rwbf_ = false;
    bool has39_ = false, has48_ = false;
    unsigned lo_ = 0, hi_ = 0, oas_ = 0, mgaw_ = 0, mamv_ = 0, ndomains_ = 0, nfr_ = 0;
    uint32_t fro_ = 0, iro_ = 0;
    uint8_t opts_ = 0;
    uint64_t root_pa_ = 0;
    uint64_t ctx_pa_[256][2] = {};  // legacy: [bus][0]; scalable: lower (devfn 0-127) and upper halves
    uint64_t queue_pa_ = 0, status_pa_ = 0;
    unsigned q_entries_ = 0, q_shift_ = 0;  // descriptors in the queue, log2 of one's size
    unsigned q_tail_ = 0;                   // next descriptor to write
    uint32_t q_seq_ = 0;                    // wait-descriptor status data
    unsigned q_pending_ = 0;                // descriptors written since the last commit
    Slot slots_[kMaxSlots] = {};
    Dev devs_[kMaxDevices] = {};
    uint64_t pages_ = 0;
    uint64_t commands_ = 0, syncs_ = 0, ctx_invs_ = 0, iotlb_invs_ = 0, page_invs_ = 0, overflows_ = 0, queue_errors_ = 0;
};

// One instance per DRHD, from fixed storage. nullptr with `why` set on refusal (the unit is
// then left as firmware left it).
Vtd* vtd_probe(PagePool& pool, const Vtd::Config& cfg, Why& why);
void vtd_release(Vtd* v);

// Through the registry: the boot tree an ACPI platform's entry writes (one node per DRHD, its
// scope as the host bridge's iommu-map) names a unit with this compatible, `reg` = the DRHD
// register base (at least one 4 KiB page), `#iommu-cells = <1>` (the requester id), and
// optionally `moat,host-address-width` = the DMAR table's host address width in bits, and
// optionally `moat,rmrr` = the DMAR's RMRRs for the devices this unit translates, five cells per
// (region, device): <base-hi base-lo limit-hi limit-lo requester-id>, limit inclusive, the region
// 4 KiB aligned.
constexpr const char* kVtdCompatible = "intel,vtd";
constexpr const char* kVtdHawProperty = "moat,host-address-width";
constexpr const char* kVtdRmrrProperty = "moat,rmrr";
constexpr unsigned kVtdRmrrCells = 5;
extern const DriverOps kVtdOps;

}  // namespace moat
