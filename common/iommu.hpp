// The contract between the portable core and an IOMMU driver. A driver never owns page tables:
// it points its hardware at an IoDomain's root and invalidates what the domain's Gather says.
#pragma once
#include "common/fault_log.hpp"
#include "common/iopt/format.hpp"
#include "common/iopt/gather.hpp"
#include "common/status.hpp"
#include "common/why.hpp"

namespace moat {

using StreamId = uint32_t;
class IoDomain;

struct IommuCaps {
    bool stage1 = false;
    bool stage2 = false;
    unsigned ias = 0;             // largest input size a context can use, bits
    unsigned oas = 0;             // output size, bits (already capped by the CPU's PARange)
    bool coherent_walk = false;   // the walker snoops CPU caches; otherwise tables are cleaned
    bool range_invalidation = false;
    uint32_t max_stream = 0;      // largest stream id the instance accepts
    // The walker may cache not-present entries (VT-d CAP.CM, caching mode): a map, which only
    // turns invalid entries valid, must be flushed too. The Arm IOMMUs never do.
    bool caches_invalid = false;
};

// What a domain's table is for; the driver picks the format its hardware walks for it.
enum class DomainUse : uint8_t {
    dma,        // a DMA space of its own (PV-IOMMU contexts, selftests): IOVA -> PA, any format will do
    guest_p2m,  // the guest's stage-2 P2M shared with the IOMMU (Xen's way): IPA -> PA, the CPU's format
};

// The input size a driver gives a domain that asks for `wanted` bits when its walker takes [lo, hi]:
// a DMA space may be smaller than asked (its IOVA allocator learns the size from the format), a
// shared P2M must cover the guest's addresses.
constexpr Result<unsigned> fit_ias(DomainUse use, unsigned wanted, unsigned lo, unsigned hi) {
    if (lo > hi || (use == DomainUse::guest_p2m && wanted > hi)) return Status::out_of_range;
    return wanted < lo ? lo : wanted > hi ? hi : wanted;
}

// Work an instance has asked of its hardware, for tests and benchmarks.
struct IommuStats {
    uint64_t commands = 0;  // every command or invalidation register write, syncs included
    uint64_t syncs = 0;     // completion waits
    uint64_t pages = 0;     // pool pages the instance holds for its own structures (stream tables, queues)
    uint64_t interrupts = 0;  // fault interrupts taken
};

class Iommu {
public:
    virtual IommuStats stats() const = 0;
    virtual const char* name() const = 0;
    virtual const IommuCaps& caps() const = 0;
    // Why the last probe, xlate or attach was refused: one line naming the register, stream or
    // field at fault (the image prints it after the instance's node path, for every driver alike).
    virtual const char* why() const = 0;
    // What probe found, in one line without the node (the image prints "<driver>: <name> <this>").
    virtual void describe(Sink& out) const = 0;
    // Faults arrive by interrupt (the platform has a controller and the lines were granted);
    // otherwise only poll_faults() finds them.
    virtual bool interrupt_driven() const { return false; }
    // One reference to this instance (the cells of an `iommus` entry, or the single stream id an
    // `iommu-map` entry gives a requester id) as the StreamId attach() takes, checked against what
    // this hardware has. Refusals go in `why`, naming the value at fault.
    virtual Status xlate(const uint32_t* args, unsigned nargs, StreamId& out, Why& why) const = 0;
    // The table format a domain for `use` must have to be walked here, wanting `ias` input bits
    // (see fit_ias), with this walker's coherency: callers build their IoDomain from it. unsupported
    // when this IOMMU cannot serve the use at all (a shared P2M on a stage-1-only SMMU).
    virtual Result<iopt::Format> domain_format(DomainUse use, unsigned ias) const = 0;
    // Points the stream at the domain's tables. The domain has checked that the stream is not
    // attached elsewhere; the driver checks its own limits (stream range, contexts, tags).
    virtual Status attach(IoDomain& d, StreamId sid) = 0;
    // Back to blocked: afterwards the stream's DMA faults.
    virtual Status detach(IoDomain& d, StreamId sid) = 0;
    // Invalidates what `g` gathered for `d` and waits for completion: the only invalidation entry,
    // for the end of a map/unmap as for a break-before-make in the middle of one.
    virtual Status flush(IoDomain& d, const iopt::Gather& g) = 0;
    // Moves pending fault reports into `log`; returns how many.
    virtual unsigned poll_faults(FaultLog& log) = 0;
    // What the hardware's configuration for `sid` points at, read back from it (SMMUv3: the STE
    // in memory): which stage, the tag, the table root. For tests and reports that must show which
    // table a device's DMA walks; unsupported where a driver cannot say.
    struct StreamConfig {
        bool translating = false;
        bool stage2 = false;   // the stream walks a stage-2 table (else stage 1)
        uint16_t tag = 0;      // VMID (stage 2) or ASID (stage 1)
        uint64_t root = 0;     // S2TTB, or the CD's TTB0
    };
    // Memory `sid` must keep reaching 1:1 whatever domain it is attached to (VT-d: the DMAR's
    // RMRRs that name its requester id). IoDomain::attach maps each identity, read/write, before
    // the driver's attach makes the stream live, and refuses the attach when a region collides
    // with a mapping the domain already has; detach removes them again (unless another stream
    // attached to the same domain needs the same region). Returns how many it wrote (at most max).
    struct ReservedRegion {
        uint64_t base = 0, size = 0;
    };
    virtual unsigned reserved_regions(StreamId sid, ReservedRegion* out, unsigned max) const {
        (void)sid, (void)out, (void)max;
        return 0;
    }
    virtual Status stream_config(StreamId sid, StreamConfig& out) const {
        (void)sid, (void)out;
        return Status::unsupported;
    }
protected:
    // Drops what the system holds for this instance (IoDomain::forget: its streams' owners and
    // quarantine), so an instance built later in the same storage starts clean.
    ~Iommu();
};

}  // namespace moat
