// One guest at EL1: its stage-2 translation (a table built through the same seam, and by the same
// engine, as the IOMMUs' domains), its RAM from the page pool, the MMIO it is given, and the way
// in (ERET) and back (traps).
#pragma once
#include "common/io_domain.hpp"
#include "common/iopt/geometry.hpp"
#include "common/iopt/table.hpp"
#include "xen-compat/pv_iommu.hpp"

namespace moat::arch {

// VTCR_EL2 fields (4 KiB granule, TG0 = 0).
namespace vtcr {
constexpr Field kT0sz{5, 0}, kSl0{7, 6}, kIrgn0{9, 8}, kOrgn0{11, 10}, kSh0{13, 12}, kTg0{15, 14}, kPs{18, 16};
constexpr uint64_t kRes1 = uint64_t{1} << 31;
}  // namespace vtcr

// VTCR_EL2 for a guest's stage-2 format: its geometry, and walk attributes from the one place
// every IOMMU driver takes its own from (iopt::vmsa_walk_codes).
constexpr uint64_t vtcr_el2(const iopt::Format& f) {
    const iopt::Geometry g = iopt::vmsa_geometry(f);
    const iopt::VmsaWalkCodes w = iopt::vmsa_walk_codes(f);
    return vtcr::kT0sz.make(g.t0sz()) | vtcr::kSl0.make(g.sl0()) | vtcr::kIrgn0.make(w.irgn) | vtcr::kOrgn0.make(w.orgn) |
           vtcr::kSh0.make(w.sh) | vtcr::kTg0.make(0) | vtcr::kPs.make(g.ps()) | vtcr::kRes1;
}
// What it was before the seam, spelled out: T0SZ 24, SL0 1 (level 1), WBWA inner shareable, PS 40 bits.
static_assert(vtcr_el2(iopt::vmsa_s2(40, 40, true)) == (24u | 1u << 6 | 1u << 8 | 1u << 10 | 3u << 12 | 2u << 16 | 1ull << 31));

class Vm final : public xen::GuestMemory {
public:
    static constexpr unsigned kIpaBits = 40;  // stage 2 starts at level 1 with 2 concatenated tables

    // The CPU's own P2M format: VMSAv8-64 stage 2, kIpaBits, walked coherently.
    static iopt::Format cpu_format();
    // The P2M is an IoDomain of `format` (a stage-2 format this CPU walks: cpu_format(), or what an
    // IOMMU that shares it asked for, Iommu::domain_format(DomainUse::guest_p2m)), with the CPU as
    // a walker on its one invalidation path; its tag is the VMID in VTTBR_EL2.
    explicit Vm(PagePool& pool, const iopt::Format& format = cpu_format());
    ~Vm() { (void)destroy(); }
    Vm(const Vm&) = delete;
    Vm& operator=(const Vm&) = delete;
    // Gives everything create() took back: the stage-2 tables and the VMID (the P2M's destroy,
    // which detaches any stream sharing it), then the RAM. When the P2M could not be torn down
    // (a detach the IOMMU did not confirm: it is quarantined) the RAM is kept, since a device may
    // still reach it, and that status is returned. The guest must not run on any CPU.
    Status destroy();
    const iopt::Format& format() const { return format_; }
    // The guest's stage 2 as a DMA domain: attach a device's stream to it to share it (STE stage
    // 2, S2TTB = the VTTBR root). Removing from it (unmap) is one flush for the CPU and the IOMMUs.
    IoDomain& p2m() { return p2m_; }
    // Stage-2 root and `ram_size` bytes of RAM (whole pages, zeroed, from a 2 MiB-aligned block
    // of the pool) at the 2 MiB-aligned guest address ram_ipa.
    Status create(uint64_t ram_ipa, uint64_t ram_size);
    // Device memory the guest may access directly (a passed-through BAR, the console).
    Status map_mmio(uint64_t ipa, uint64_t pa, uint64_t size);
    // Host pointer to guest RAM at ipa, or nullptr outside RAM.
    void* ram(uint64_t ipa, uint64_t size) const;
    uint64_t ram_ipa() const { return ram_ipa_; }
    uint64_t ram_size() const { return ram_size_; }
    uint64_t ram_pa() const { return ram_pa_; }
    size_t stage2_pages() const;
    uint16_t vmid() const { return static_cast<uint16_t>(p2m_.tag()); }
    uint64_t vttbr() const;
    uint64_t vtcr() const { return vtcr_el2(format_); }

    // GuestMemory: the guest's own RAM only, found through its stage-2 table.
    bool read(uint64_t gpa, void* dst, size_t n) override;
    bool write(uint64_t gpa, const void* src, size_t n) override;
    Status ram_frame(uint64_t gfn, uint64_t& mfn) override;
    // The guest's RAM is one machine-contiguous bank (create()): a run inside it is answered at once.
    Status ram_run(uint64_t gfn, uint64_t frames, uint64_t& mfn) override;

    // Programs HCR/VTCR/VTTBR and the EL1 state, then ERETs to `entry` at EL1h with x0 = arg.
    [[noreturn]] void enter(uint64_t entry, uint64_t arg);

private:
    bool copy(uint64_t gpa, void* buf, size_t n, bool to_guest);
    PagePool& pool_;
    iopt::Format format_;
    IoDomain p2m_;
    uint64_t ram_ipa_ = 0, ram_pa_ = 0, ram_size_ = 0;
};

}  // namespace moat::arch
