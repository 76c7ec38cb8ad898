// One guest at EL1: its stage-2 translation (the same page-table engine the IOMMUs use), its
// RAM from the page pool, the MMIO it is given, and the way in (ERET) and back (traps).
#pragma once
#include "common/iopt/memory.hpp"
#include "common/iopt/page_table.hpp"
#include "xen-compat/pv_iommu.hpp"

namespace moat::arch {

class Vm final : public xen::GuestMemory {
public:
    static constexpr unsigned kIpaBits = 40;  // stage 2 starts at level 1 with 2 concatenated tables
    static constexpr uint16_t kVmid = 1;

    explicit Vm(PagePool& pool);
    // Stage-2 root and `ram_size` bytes of RAM (2 MiB aligned, zeroed) at guest address ram_ipa.
    Status create(uint64_t ram_ipa, uint64_t ram_size);
    // Device memory the guest may access directly (a passed-through BAR, the console).
    Status map_mmio(uint64_t ipa, uint64_t pa, uint64_t size);
    // Host pointer to guest RAM at ipa, or nullptr outside RAM.
    void* ram(uint64_t ipa, uint64_t size) const;
    uint64_t ram_ipa() const { return ram_ipa_; }
    uint64_t ram_size() const { return ram_size_; }
    uint64_t ram_pa() const { return ram_pa_; }
    size_t stage2_pages() const;

    // GuestMemory: the guest's own RAM only, found through its stage-2 table.
    bool read(uint64_t gpa, void* dst, size_t n) override;
    bool write(uint64_t gpa, const void* src, size_t n) override;
    Status ram_frame(uint64_t gfn, uint64_t& mfn) override;

    // Programs HCR/VTCR/VTTBR and the EL1 state, then ERETs to `entry` at EL1h with x0 = arg.
    [[noreturn]] void enter(uint64_t entry, uint64_t arg);

private:
    bool copy(uint64_t gpa, void* buf, size_t n, bool to_guest);
    iopt::PoolMemory mem_;
    iopt::PageTable<iopt::Stage2, iopt::PoolMemory> p2m_;
    uint64_t ram_ipa_ = 0, ram_pa_ = 0, ram_size_ = 0;
};

}  // namespace moat::arch
