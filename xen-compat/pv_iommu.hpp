// The PV-IOMMU hypercall served to guests: each guest drives its own DMA contexts, never
// anyone else's memory or devices. One small decoder per sub-op: the struct is copied in from
// the caller's RAM (through its P2M), every field is validated before anything changes, the
// action goes through IoDomain and the page-table engine, and progress is written back.
// Checks run in a fixed order: caller rights, object (context, device), range, then act.
#pragma once
#include "common/lock.hpp"
#include "common/io_domain.hpp"
#include "xen-compat/errno.hpp"
#include "xen-compat/pv_iommu_abi.hpp"

namespace moat::xen {

// A guest's memory as the hypervisor sees it.
class GuestMemory {
public:
    // Copy to/from guest physical addresses; false unless every byte is the guest's own RAM.
    virtual bool read(uint64_t gpa, void* dst, size_t n) = 0;
    virtual bool write(uint64_t gpa, const void* src, size_t n) = 0;
    // Machine frame behind a guest frame: ok for the guest's own RAM; not_found for a frame
    // with nothing behind it; denied for anything else (MMIO, another owner, the hypervisor).
    virtual Status ram_frame(uint64_t gfn, uint64_t& mfn) = 0;
    // The same for `frames` frames from gfn at once: ok when every one is the guest's RAM and
    // they are machine-contiguous from mfn; the first frame's status otherwise, or invalid_argument
    // when they are RAM but not contiguous. An implementation that knows its RAM layout answers
    // in O(1): a 1 GiB page costs one question, not 262,144 (the dispatcher's work per hypercall
    // stays bounded whatever the page size). This default asks frame by frame.
    virtual Status ram_run(uint64_t gfn, uint64_t frames, uint64_t& mfn) {
        for (uint64_t k = 0; k < frames; k++) {
            uint64_t m;
            Status st = ram_frame(gfn + k, m);
            if (st != Status::ok) return st;
            if (k == 0) mfn = m;
            else if (m != mfn + k) return Status::invalid_argument;
        }
        return Status::ok;
    }
protected:
    ~GuestMemory() = default;
    // ram_run for RAM that is one machine-contiguous bank of n frames from gfn `first` at `mfn0`:
    // a run inside it is answered at once; otherwise the first frame outside the bank decides
    // (not RAM, or RAM that is not this run's: invalid_argument).
    Status bank_run(uint64_t first, uint64_t n, uint64_t mfn0, uint64_t gfn, uint64_t frames, uint64_t& mfn) {
        if (!frames) return Status::invalid_argument;
        bool head_in = gfn >= first && gfn - first < n;
        if (head_in && frames <= n - (gfn - first)) {
            mfn = mfn0 + (gfn - first);
            return Status::ok;
        }
        uint64_t m;
        Status st = ram_frame(head_in ? first + n : gfn, m);
        return st == Status::ok ? Status::invalid_argument : st;
    }
};

struct PvIommuConfig {
    // The table format of every context, as the guest's IOMMU chose it for a DMA space of its own
    // (Iommu::domain_format): its ias is the DMA address size; coherent_walk means the IOMMU snoops,
    // so entries may be cacheable (cap `cache`).
    iopt::Format format = iopt::vmsa_s1(39, 44, true);
    uint64_t budget_pages = 2048;   // 4 KiB pages of work per call before a continuation
    // Pool pages the guest may cause moat to take for all its contexts (tables, split tables, the
    // SMMU's context descriptors); init's arena_order can only lower it (docs/hardware.md §5.4).
    uint64_t quota_pages = 4096;
};

struct PvDevice {
    uint16_t seg;
    uint8_t bus, devfn;
    Iommu* iommu;
    StreamId sid;
    uint16_t ctx;  // context the device is attached to
};

class PvIommuGuest {
public:
    static constexpr unsigned kMaxContexts = 8;  // context 0 (default) + 7 the guest may allocate
    static constexpr unsigned kMaxDevices = 8;

    PvIommuGuest(uint16_t domid, bool privileged, GuestMemory& mem, PagePool& pool, const PvIommuConfig& cfg);
    ~PvIommuGuest();
    PvIommuGuest(const PvIommuGuest&) = delete;
    PvIommuGuest& operator=(const PvIommuGuest&) = delete;

    // Context 0: the guest's own view of its RAM, DMA address == guest address, for `pages`
    // frames from `first_gfn` (identity for a direct-mapped dom0 as well).
    Status init_default(uint64_t first_gfn, uint64_t pages);
    // Context 0 is the guest's own P2M, shared with the IOMMU (its owner keeps it: a stage-2
    // IoDomain whose IPA is the DMA address), where the IOMMU walks the CPU's stage-2 format.
    // `pages` frames from `first_gfn` are the guest's RAM, for identity contexts.
    Status init_default_shared(IoDomain& p2m, uint64_t first_gfn, uint64_t pages);
    bool default_shared() const { return shared_default_; }
    // Takes `frames` guest frames from `gfn` out of the guest's P2M (`p2m`, the CPU's stage 2) and
    // out of every DMA context, in one step: a frame the guest no longer owns is reachable through
    // none of them. Context 0 is the P2M itself (shared: one flush for the CPU and the IOMMU) or its
    // mirror (DMA address = guest address: unmapped there too). The contexts the guest allocated are
    // composed tables with no reverse map, so while any exists the removal is refused (busy) and
    // nothing changes; Xen refuses to free a page an IOMMU mapping still references the same way.
    Status remove_ram(IoDomain& p2m, uint64_t gfn, uint64_t frames);
    // Assigns a device to this guest, attached to context 0.
    Status assign(uint16_t seg, uint8_t bus, uint8_t devfn, Iommu& iommu, StreamId sid);

    uint16_t domid() const { return domid_; }
    bool privileged() const { return privileged_; }
    GuestMemory& memory() const { return mem_; }
    const PvIommuConfig& config() const { return cfg_; }
    IoDomain* context(unsigned ctx);          // nullptr when not allocated
    PvDevice* device(uint16_t seg, uint8_t bus, uint8_t devfn);
    unsigned device_count() const { return ndev_; }
    PvDevice& device_at(unsigned i) { return dev_[i]; }
    unsigned contexts_in_use() const;
    PageQuota& quota() { return quota_; }

    // For the dispatcher. Several vCPUs of one guest may call at once: each call holds `lock`
    // (the guest's context table, devices, init state), one call at a time per guest, and each
    // call's work is bounded (budget_pages). Under it, the contexts' domain locks.
    Spinlock lock;
    bool initialised = false;
    unsigned max_ctx = 0;
    Result<unsigned> create_context(bool identity);
    Status destroy_context(unsigned ctx);
    Status map_identity(IoDomain& d);

private:
    uint16_t domid_;
    bool privileged_;
    GuestMemory& mem_;
    PagePool& pool_;
    PvIommuConfig cfg_;
    PageQuota quota_;
    uint64_t ram_first_gfn_ = 0, ram_pages_ = 0;
    alignas(IoDomain) unsigned char storage_[kMaxContexts][sizeof(IoDomain)];
    IoDomain* ctx_[kMaxContexts] = {};
    bool shared_default_ = false;  // ctx_[0] is the guest's P2M, not built in storage_
    PvDevice dev_[kMaxDevices] = {};
    unsigned ndev_ = 0;
};

// The guests a privileged caller may reach with remote_cmd.
class PvIommuHost {
public:
    static constexpr unsigned kMaxGuests = 8;
    Status add(PvIommuGuest& g);
    PvIommuGuest* find(uint16_t domid);
private:
    PvIommuGuest* guests_[kMaxGuests] = {};
};

struct CallResult {
    long ret;        // 0 or a negative Xen errno
    bool preempted;  // the struct was updated; issue the same call again to continue
};

// __HYPERVISOR_iommu_op(subop, arg): arg is the guest physical address of the sub-op's struct.
CallResult iommu_op(PvIommuHost& host, PvIommuGuest& caller, uint64_t subop, uint64_t arg);

const char* subop_name(uint64_t subop);

}  // namespace moat::xen
