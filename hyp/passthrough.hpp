// PCI passthrough for a dom0less guest: the functions its `moat,pci` names checked against the
// host's PCI (present, behind an IOMMU moat drives, or forced), and the guest's DMA domain.
//
// The DMA domain (what an assigned function's bus addresses mean): guest-physical addresses,
// mapped to exactly the guest's RAM and nothing else, so the guest's driver programs the device
// with the addresses its own DMA API hands out and a transfer outside its RAM faults. On an
// IOMMU without stage 2 (QEMU 7.2's SMMUv3) that is a table of its own mirroring the guest's
// stage 2 (ram_ipa -> ram_pa); one domain per distinct IOMMU the guest's functions sit behind.
// Every stream is attached before the guest runs, and detached (to abort) when it ends, with
// every table page back in the pool. Portable: the image and the host tests use it alike.
#pragma once
#include "common/io_domain.hpp"
#include "xen-compat/dom0less_partial.hpp"

namespace moat {

// The host's PCI as assignment sees it.
class PciHostView {
public:
    // The function exists on the host bridge of its segment.
    virtual bool present(const xen::PciBdf& f) const = 0;
    // The IOMMU instance and stream its requester id reaches: ok, or not_found (no IOMMU moat
    // drives stands in front of it; why says what there is instead), or another error (why).
    virtual Status stream(const xen::PciBdf& f, Iommu*& iommu, StreamId& sid, Why& why) const = 0;

protected:
    ~PciHostView() = default;
};

struct PciAssignment {
    xen::PciBdf bdf;
    Iommu* iommu = nullptr;  // nullptr: forced without an IOMMU, its DMA unconfined
    StreamId sid = 0;
};

struct GuestPci {
    unsigned n = 0;
    PciAssignment fn[xen::kDom0lessMaxPci];
    bool unconfined = false;  // some function reaches memory without an IOMMU (forced)
};

// Checks each of g's moat,pci functions against `host`: an unknown function is an error, one
// no IOMMU confines is refused unless moat,pci-force-assign-without-iommu (then reported as
// unconfined). One line per problem on `err`, naming the guest and the function; any problem
// fails the guest (invalid_argument / denied), `out` then holds nothing the caller may use.
Status resolve_pci_assignment(const xen::Dom0lessGuest& g, const PciHostView& host, GuestPci& out, Sink& err);

// A platform device of the guest's partial tree (hyp/platform_passthrough.hpp resolves it from
// its host node): the streams its `iommus` name, or none when forced without an IOMMU.
constexpr unsigned kPlatformMaxStreams = 16;
struct PlatformAssignment {
    const xen::PtDevice* pt = nullptr;  // its /passthrough node (in the guest's PartialTree)
    int host_node = -1;
    unsigned nstreams = 0;
    Iommu* iommu[kPlatformMaxStreams] = {};
    StreamId sid[kPlatformMaxStreams] = {};
    bool unconfined = false;             // xen,force-assign-without-iommu and no IOMMU moat drives
};

struct GuestPlatform {
    unsigned n = 0;
    PlatformAssignment dev[xen::kPtMaxDevices];
    bool unconfined = false;
};

class GuestDmaDomain {
public:
    static constexpr unsigned kMaxIommus = 4;
    // quota: the guest the tables are charged to.
    GuestDmaDomain(PagePool& pool, PageQuota* quota) : pool_(pool), quota_(quota) {}
    ~GuestDmaDomain() { (void)teardown(nullptr); }
    GuestDmaDomain(const GuestDmaDomain&) = delete;
    GuestDmaDomain& operator=(const GuestDmaDomain&) = delete;

    // One domain per distinct IOMMU of `pci`, each mapping [ram_ipa, ram_ipa + ram_size) ->
    // ram_pa (read/write, normal memory, blocks where aligned), then every stream attached.
    // On failure nothing is left attached or allocated. One report line per domain:
    // "<guest>: DMA domain on <iommu>: IOVA = guest-physical [a, b) -> PA c, <n> pages, streams 0x.."
    Status build(const char* guest, const GuestPci& pci, uint64_t ram_ipa, uint64_t ram_pa, uint64_t ram_size,
                 Sink& report) {
        return build(guest, pci, nullptr, ram_ipa, ram_pa, ram_size, report);
    }
    // The same with the guest's platform devices' streams too (plat may be nullptr); a platform
    // stream is reported with its host node: " 0x23 (/soc/mmc@ee160000)".
    Status build(const char* guest, const GuestPci& pci, const GuestPlatform* plat, uint64_t ram_ipa, uint64_t ram_pa,
                 uint64_t ram_size, Sink& report);
    // Detaches every stream (to abort) and frees every table page; the hardware's status when a
    // detach was not confirmed (that domain is quarantined, see IoDomain). report may be nullptr.
    Status teardown(Sink* report);

    unsigned domains() const { return n_; }
    IoDomain* domain(unsigned i) const { return i < n_ ? dom_[i] : nullptr; }
    // Pool pages build() took (tables, and the drivers' per-domain structures): what teardown gives back.
    uint64_t pool_pages() const { return pages_; }
    uint64_t bytes_mapped() const { return bytes_; }

private:
    Status build_one(const char* guest, const GuestPci& pci, const GuestPlatform* plat, Iommu& iommu, uint64_t ram_ipa,
                     uint64_t ram_pa, uint64_t ram_size, Sink& report);
    PagePool& pool_;
    PageQuota* quota_;
    alignas(IoDomain) unsigned char storage_[kMaxIommus][sizeof(IoDomain)];
    IoDomain* dom_[kMaxIommus] = {};
    unsigned n_ = 0;
    uint64_t pages_ = 0, bytes_ = 0;
};

}  // namespace moat
