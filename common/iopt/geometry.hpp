// Shape of a VMSAv8-64 translation table with the 4 KiB granule: levels, start level, root size,
// and the register encodings a driver programs from them. Stage is a VMSA notion: above the
// table seam a domain only has a Format (format.hpp), and Arm drivers get their geometry from it.
#pragma once
#include "common/iopt/format.hpp"

namespace moat::iopt {

enum class Stage : uint8_t { s1 = 1, s2 = 2 };

constexpr unsigned kGranuleShift = 12;
constexpr unsigned kLevelBits = 9;          // 512 eight-byte descriptors per 4 KiB table
constexpr unsigned kEntries = 1u << kLevelBits;
constexpr unsigned kLastLevel = 3;
constexpr unsigned kMaxConcat = 16;         // stage 2 may concatenate up to 16 start tables
constexpr unsigned kMinIas = 32, kMaxIas = 48;

constexpr unsigned level_shift(unsigned level) { return kGranuleShift + kLevelBits * (kLastLevel - level); }
constexpr uint64_t level_size(unsigned level) { return uint64_t{1} << level_shift(level); }

// Arm ARM, AArch64.S2InconsistentSL: a stage-2 walk that starts at `level` must have an input size in
// [min, max]; above one table's reach it concatenates up to 16 tables (4 more bits).
constexpr unsigned s2_min_ias(unsigned level) { return (kLastLevel - level) * kLevelBits + kGranuleShift + 1; }
constexpr unsigned s2_max_ias(unsigned level) { return s2_min_ias(level) + (kLevelBits - 1) + 4; }
constexpr bool s2_start_level_legal(unsigned ias, unsigned level) {
    return level <= 2 && ias >= s2_min_ias(level) && ias <= s2_max_ias(level);
}

// TCR.IPS / VTCR.PS / SMMU OAS encoding of an output size; only these sizes exist.
constexpr int ps_encoding(unsigned oas) {
    switch (oas) {
    case 32: return 0;
    case 36: return 1;
    case 40: return 2;
    case 42: return 3;
    case 44: return 4;
    case 48: return 5;
    default: return -1;
    }
}

struct Geometry {
    Stage stage = Stage::s1;
    unsigned ias = 0;          // input (IOVA or IPA) bits
    unsigned oas = 0;          // output (PA) bits
    unsigned start_level = 0;
    unsigned root_tables = 0;  // concatenated 4 KiB tables at the start level (stage 2 only > 1)

    constexpr bool valid() const {
        if (ias < kMinIas || ias > kMaxIas || ps_encoding(oas) < 0 || root_tables == 0) return false;
        return stage == Stage::s1 || s2_start_level_legal(ias, start_level);
    }
    // Entries of the whole root, across concatenated tables (a power of two, <= 512 * 16).
    constexpr unsigned root_entries() const { return 1u << (ias - level_shift(start_level)); }
    constexpr unsigned levels() const { return kLastLevel - start_level + 1; }
    constexpr uint64_t input_limit() const { return uint64_t{1} << ias; }
    constexpr uint64_t output_limit() const { return uint64_t{1} << oas; }

    // TCR.T0SZ, VTCR_EL2.T0SZ, SMMU CD.T0SZ / STE.S2T0SZ: the input size as 64 - IAS.
    constexpr unsigned t0sz() const { return 64 - ias; }
    // VTCR_EL2.SL0 / SMMU S2SL0 / SMMUv2 TCR.SL0 for the 4 KiB granule: 0 = level 2, 1 = level 1,
    // 2 = level 0. Stage 1 derives its start level from T0SZ and has no SL0.
    constexpr unsigned sl0() const { return 2 - start_level; }
    constexpr unsigned ps() const { return static_cast<unsigned>(ps_encoding(oas)); }
    // Page and block sizes this table can map: 4 KiB pages, 2 MiB and (from level 1) 1 GiB blocks.
    constexpr uint64_t pgsize_bitmap() const {
        return level_size(3) | level_size(2) | (start_level <= 1 ? level_size(1) : 0);
    }
};

// Start level from the input size. Stage 1: the fewest levels that resolve IAS (no concatenation).
// Stage 2: like Xen's P2M and Linux's io-pgtable, concatenate up to 16 tables at level 1 rather than
// start at level 0 (IAS 40 -> level 1 with 2 tables); never start at level 2, which would lose
// 1 GiB blocks for one walk step less.
constexpr Geometry make_geometry(Stage stage, unsigned ias, unsigned oas) {
    Geometry g;
    g.stage = stage;
    g.ias = ias;
    g.oas = oas;
    if (ias < kMinIas || ias > kMaxIas) return g;  // invalid: root_tables stays 0
    if (stage == Stage::s1)
        g.start_level = ias > level_shift(0) ? 0 : 1;
    else
        g.start_level = ias > s2_max_ias(1) ? 0 : 1;
    unsigned per_table_bits = kLevelBits;
    unsigned bits = ias - level_shift(g.start_level);
    g.root_tables = bits > per_table_bits ? 1u << (bits - per_table_bits) : 1;
    return g;
}

static_assert(make_geometry(Stage::s2, 40, 40).start_level == 1 && make_geometry(Stage::s2, 40, 40).root_tables == 2);
static_assert(make_geometry(Stage::s2, 43, 44).root_tables == 16 && make_geometry(Stage::s2, 44, 44).start_level == 0);
static_assert(make_geometry(Stage::s1, 40, 40).start_level == 0 && make_geometry(Stage::s1, 32, 40).root_entries() == 4);
static_assert(s2_min_ias(1) == 31 && s2_max_ias(1) == 43 && s2_min_ias(0) == 40 && s2_max_ias(2) == 34);

// The VMSA formats below the seam: the stage a format id walks, and its geometry. A format that is
// not VMSA gets an invalid geometry (root_tables 0): an Arm driver refuses it (is_vmsa first).
constexpr bool is_vmsa(FormatId id) { return id == FormatId::vmsa_s1 || id == FormatId::vmsa_s2; }
constexpr Stage vmsa_stage(FormatId id) { return id == FormatId::vmsa_s2 ? Stage::s2 : Stage::s1; }
constexpr Geometry vmsa_geometry(const Format& f) {
    return is_vmsa(f.id) ? make_geometry(vmsa_stage(f.id), f.ias, f.oas) : Geometry{};
}

// Walk attributes (walk_attrs) as every VMSA translation-control register encodes them: TCR_ELx
// and SMMUv2 TCR (IRGN0/ORGN0/SH0), VTCR_EL2 and SMMUv2 stage-2 TCR, SMMUv3 CD (IR0/OR0/SH0) and
// STE (S2IR0/S2OR0/S2SH0, and S1CIR/S1COR/S1CSH for the walker's CD fetches), IPMMU IMTTBCR.
// Each driver puts the codes in its own register's fields; the values come only from here.
struct VmsaWalkCodes {
    unsigned irgn, orgn, sh;  // RGN: 0 non-cacheable, 1 write-back read/write-allocate; SH: 0, 2 outer, 3 inner
    constexpr bool operator==(const VmsaWalkCodes&) const = default;
};
constexpr unsigned rgn_code(Cacheability c) { return c == Cacheability::write_back ? 1u : 0u; }
constexpr VmsaWalkCodes vmsa_walk_codes(const Format& f) {
    const WalkAttrs w = walk_attrs(f);
    return VmsaWalkCodes{rgn_code(w.inner), rgn_code(w.outer), static_cast<unsigned>(w.share)};
}
static_assert(vmsa_walk_codes(vmsa_s2(40, 40, true)) == VmsaWalkCodes{1, 1, 3});
static_assert(vmsa_walk_codes(vmsa_s1(39, 40, false)) == VmsaWalkCodes{0, 0, 2});

}  // namespace moat::iopt
