// Intel VT-d second-level (scalable mode: second-stage) tables as a format of the one engine
// (page_table.hpp). The walk is the x86 one the engine already builds for VMSA stage 1: 4 KiB
// tables of 512 eight-byte entries, 9 bits per level, the start level from the input size (3
// levels up to 39 bits, 4 up to 48: the AGAWs CAP.SAGAW bits 1 and 2 name). What differs is
// the entry:
//   bit 0 R, bit 1 W     present when either is set (a table entry sets both)
//   bit 7 PS             a leaf above the last level: 2 MiB at level 2, 1 GiB at level 1
//   bit 11 SNP           force snooping; reserved unless ECAP.SC
//   bits 51:12           address (next table, page or superpage)
// Everything else is left 0 (EMT, IPAT, X, TM are reserved or unused in the modes moat uses).
// A 5-level table (57 bits, SAGAW bit 3) would need a fifth engine level: the driver refuses a
// unit that offers only that, and uses 4 levels when it offers both.
#pragma once
#include "common/iopt/geometry.hpp"
#include "common/iopt/prot.hpp"
#include "common/iopt/table.hpp"

namespace moat::iopt {

struct VtdDesc {
    static constexpr uint64_t kR = bit(0);
    static constexpr uint64_t kW = bit(1);
    static constexpr uint64_t kPs = bit(7);
    static constexpr uint64_t kSnp = bit(11);
    // "Present": the engine's all_valid/any_valid fold entries with this mask. any_valid is exact;
    // all_valid may say "not all" for a mix of read-only and write-only entries, which only sends
    // the engine down its entry-by-entry path.
    static constexpr uint64_t kValid = kR | kW;
    static constexpr uint64_t kOa = bits(51, 12);

    static constexpr bool valid(uint64_t e) { return (e & kValid) != 0; }
    static constexpr bool is_table(uint64_t e, unsigned level) { return level < kLastLevel && valid(e) && !(e & kPs); }
    static constexpr bool is_leaf(uint64_t e, unsigned level) { return valid(e) && !is_table(e, level); }
    // A table entry grants both: the leaf below decides.
    static constexpr uint64_t table(uint64_t pa) { return (pa & kOa) | kR | kW; }
    static constexpr uint64_t leaf(unsigned level, uint64_t pa, uint64_t attrs) { return pa | attrs | (level < kLastLevel ? kPs : 0); }
    static constexpr uint64_t attrs_of(uint64_t e) { return e & ~(kOa | kPs); }
    // Superpages at both levels; VtdTable (vtd_sl.cpp) keeps those CAP.SLLPS lacks out of map().
    static constexpr bool can_block(unsigned level) { return level == 1 || level == 2; }
};

// A second-level leaf has no memory type and no shareability: SNP (force snooping, legal only
// with ECAP.SC) is all there is. The engine encodes a Prot without knowing the unit, so VtdTable
// (vtd_sl.cpp) says it through Prot::share before the engine sees it: inner = set SNP (a
// write-back mapping on a unit with snoop control), none = leave it clear (the device's own
// no-snoop attribute decides, which for a PCIe function's DMA to RAM is normally "snoop").
// Lookup reads back what the entry holds: write-back, inner with SNP and none without.
struct VtdSl {
    static constexpr Stage kStage = Stage::s1;  // geometry: start level from IAS, no concatenation
    using Desc = VtdDesc;

    // No privilege levels and no ASID tags in a second-level table.
    static constexpr bool accepts(const Prot& p) { return !p.privileged && !p.not_global; }
    // Execute is not a second-level permission here (devices do not fetch): dropped, as lookup says.
    static constexpr uint64_t encode(const Prot& p) {
        uint64_t e = 0;
        if (p.perm & kRead) e |= VtdDesc::kR;
        if (p.perm & kWrite) e |= VtdDesc::kW;
        if (p.share == Share::inner) e |= VtdDesc::kSnp;
        return e;
    }
    static constexpr Prot decode(uint64_t e) {
        Prot p;
        p.perm = static_cast<uint8_t>(((e & VtdDesc::kR) ? kRead : 0) | ((e & VtdDesc::kW) ? kWrite : 0));
        p.type = MemType::normal_wb;
        p.share = (e & VtdDesc::kSnp) ? Share::inner : Share::none;
        return p;
    }
};

// Page and superpage sizes a vtd_sl table of this format writes (4 KiB, and what options allow).
constexpr uint64_t vtd_pgsize_bitmap(const Format& f, unsigned start_level) {
    uint64_t m = level_size(3);
    if (f.options & vtd_opt::k2M) m |= level_size(2);
    if ((f.options & vtd_opt::k2M) && (f.options & vtd_opt::k1G) && start_level <= 1) m |= level_size(1);
    return m;
}

// The AW field of a legacy context entry or a scalable PASID entry: levels - 2 (1: 3 levels).
constexpr unsigned vtd_aw(const Format& f) { return make_geometry(Stage::s1, f.ias, f.oas).levels() - 2; }
constexpr unsigned vtd_levels(const Format& f) { return make_geometry(Stage::s1, f.ias, f.oas).levels(); }
static_assert(vtd_levels(vtd_sl(39, 36, true, 0)) == 3 && vtd_levels(vtd_sl(48, 48, true, 0)) == 4 &&
              vtd_levels(vtd_sl(40, 40, true, 0)) == 4);

// The factory entry formats.cpp lists for FormatId::vtd_sl.
Table* construct_vtd_sl(void* at, PagePool& pool, const Format& f, PageQuota* q);
void destruct_vtd_sl(Table* t);

}  // namespace moat::iopt
