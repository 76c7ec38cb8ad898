// An independent VMSAv8-64 translation-table walker (4 KiB granule, stage 1 or stage 2) for the
// register models. It is written from the Arm ARM's rules (start level, concatenated stage-2
// roots, hierarchical stage-1 permissions, the order of address-size, access-flag and permission
// checks), NOT from common/iopt, so that a model walking the engine's tables is a second opinion
// on them rather than the engine agreeing with itself. Models of other IOMMUs reuse it.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace moat {
class PagePool;
}

namespace moat::model {

// Physical memory as a device sees it. false: nothing answers there (an external abort).
class PhysMem {
public:
    virtual bool read(uint64_t pa, void* dst, size_t n) = 0;
    virtual bool write(uint64_t pa, const void* src, size_t n) = 0;
    bool read64(uint64_t pa, uint64_t& v) { return read(pa, &v, sizeof v); }
    bool write64(uint64_t pa, uint64_t v) { return write(pa, &v, sizeof v); }

protected:
    ~PhysMem() = default;
};

// The memory of a PagePool (every region, allocated or not): what tests pose as physical memory.
class PoolPhysMem final : public PhysMem {
public:
    explicit PoolPhysMem(const PagePool& pool) : pool_(pool) {}
    bool read(uint64_t pa, void* dst, size_t n) override;
    bool write(uint64_t pa, const void* src, size_t n) override;
    bool contains(uint64_t pa, size_t n) const;

private:
    const PagePool& pool_;
};

namespace vmsa {

enum class Stage : uint8_t { s1 = 1, s2 = 2 };
enum class Fault : uint8_t { none, translation, access_flag, permission, address_size, external_abort };
const char* to_string(Fault f);

constexpr unsigned kGranuleShift = 12, kLevelBits = 9;
constexpr unsigned shift_of(unsigned level) { return kGranuleShift + kLevelBits * (3 - level); }

// One translation regime as a TCR/VTCR (or an SMMU CD/STE) describes it.
struct Regime {
    Stage stage = Stage::s1;
    uint64_t root = 0;     // TTB0 / VTTBR / S2TTB: the start table (stage 2: the first of the concatenated ones)
    unsigned ias = 0;      // input bits, 64 - T0SZ
    unsigned oas = 0;      // output bits: the effective IPS / PS (already capped to the implementation)
    int start_level = -1;  // stage 2: from SL0 (s2_level_from_sl0); stage 1: derived from ias
};

// The memory attributes of the walker's own table reads, as the registers hold them: IRGN and ORGN
// (0 non-cacheable, 1 write-back write-allocate, 2 write-through, 3 write-back no write-allocate)
// and SH (0 non, 2 outer, 3 inner shareable). Positions are the models' own, from the specs.
struct WalkCodes {
    unsigned irgn = 0, orgn = 0, sh = 0;
    bool operator==(const WalkCodes&) const = default;
};
// TCR_ELx (TTBR0 half), VTCR_EL2, SMMUv2 TCR in either layout, SMMUv3 CD dword 0, IPMMU IMTTBCR:
// IRGN0 [9:8], ORGN0 [11:10], SH0 [13:12].
inline WalkCodes tcr0_walk(uint64_t tcr) {
    return WalkCodes{static_cast<unsigned>((tcr >> 8) & 3), static_cast<unsigned>((tcr >> 10) & 3),
                     static_cast<unsigned>((tcr >> 12) & 3)};
}

// Stage 2, 4 KiB granule: SL0 0, 1, 2 start at levels 2, 1, 0; 3 is reserved (-1).
constexpr int s2_level_from_sl0(unsigned sl0) { return sl0 <= 2 ? 2 - static_cast<int>(sl0) : -1; }
// Level the walk starts at: stage 1 the fewest levels that resolve ias; stage 2 as configured.
int start_level(const Regime& r);
// Descriptors of the start level (several concatenated tables at stage 2).
uint64_t root_entries(const Regime& r);
// nullptr when the architecture allows the regime, else what is wrong with it (T0SZ out of range,
// a stage-2 start level inconsistent with the input size, a root not aligned to its size...).
const char* check(const Regime& r);

// What a leaf allows, with the stage-1 table attributes (APTable, XNTable, PXNTable) folded in.
struct Perms {
    bool rdonly = false;   // stage 1: AP[2]
    bool unpriv = false;   // stage 1: AP[1], unprivileged (EL0) access allowed
    bool pxn = false, uxn = false;
    bool not_global = false;
    bool s2_read = false, s2_write = false;  // stage 2: S2AP
    bool xn = false;                         // stage 2: XN
    unsigned attr = 0;     // stage 1 AttrIndx, stage 2 MemAttr
    unsigned sh = 0;
};

struct Access {
    bool write = false;
    bool privileged = false;
    bool instruction = false;
};

struct Walk {
    Fault fault = Fault::none;
    unsigned level = 0;     // of the leaf, or where the walk faulted
    uint64_t out = 0;       // output address of the input address
    uint64_t size = 0;      // of the leaf: 4 KiB, 2 MiB, 1 GiB
    uint64_t desc = 0;      // the leaf descriptor
    uint64_t desc_pa = 0;   // where it lives (or the descriptor that faulted)
    unsigned reads = 0;     // descriptors fetched
    Perms perms;
    bool ok() const { return fault == Fault::none; }
    uint64_t base_in(uint64_t ia) const { return ia & ~(size - 1); }
};

// Translates `ia`. A regime check() refuses gives a translation fault at its start level.
Walk walk(PhysMem& mem, const Regime& r, uint64_t ia);
// Whether a leaf's permissions allow the access (a permission fault otherwise).
bool allows(Stage stage, const Perms& p, const Access& a);

}  // namespace vmsa
}  // namespace moat::model
