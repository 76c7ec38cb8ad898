// VMSAv8-64 long descriptors (4 KiB granule) and the two formats the engine is instantiated with.
// A format turns a caller's Prot (prot.hpp, format-neutral) into the attribute bits of a leaf and
// reads them back; everything else (valid/table bits, output address) is the same at both stages.
#pragma once
#include "common/iopt/geometry.hpp"
#include "common/iopt/prot.hpp"

namespace moat::iopt {

// Bits common to every descriptor.
namespace desc {
constexpr uint64_t kValid = bit(0);
constexpr uint64_t kTableOrPage = bit(1);       // levels 0-2: next-level table; level 3: page
constexpr uint64_t kTypeMask = kValid | kTableOrPage;
constexpr uint64_t kAf = bit(10);               // access flag: preset, the walker never updates it
constexpr Field kSh{9, 8};
constexpr uint64_t kOa = bits(47, 12);          // output address / next-level table address

constexpr bool valid(uint64_t e) { return (e & kValid) != 0; }
constexpr bool is_table(uint64_t e, unsigned level) { return level < kLastLevel && (e & kTypeMask) == kTypeMask; }
constexpr bool is_leaf(uint64_t e, unsigned level) { return valid(e) && !is_table(e, level); }
constexpr uint64_t table(uint64_t pa) { return (pa & kOa) | kTypeMask; }
// A page at level 3 is 0b11, a block at levels 1-2 is 0b01.
constexpr uint64_t leaf_type(unsigned level) { return level == kLastLevel ? kTypeMask : kValid; }
constexpr uint64_t leaf(unsigned level, uint64_t pa, uint64_t attrs) { return pa | attrs | leaf_type(level); }
// Attributes of a leaf: everything but its type and address, to rebuild it at another level.
constexpr uint64_t attrs_of(uint64_t e) { return e & ~(kOa | kTypeMask); }
constexpr bool can_block(unsigned level) { return level == 1 || level == 2; }
}  // namespace desc

// The descriptor rules as the engine reads them: PageTable takes them from Format::Desc, so a
// format whose entries are not VMSA (VT-d second level, vtd_sl.hpp) brings its own.
struct VmsaDesc {
    static constexpr uint64_t kValid = desc::kValid;
    static constexpr uint64_t kOa = desc::kOa;
    static constexpr bool valid(uint64_t e) { return desc::valid(e); }
    static constexpr bool is_table(uint64_t e, unsigned level) { return desc::is_table(e, level); }
    static constexpr bool is_leaf(uint64_t e, unsigned level) { return desc::is_leaf(e, level); }
    static constexpr uint64_t table(uint64_t pa) { return desc::table(pa); }
    static constexpr uint64_t leaf(unsigned level, uint64_t pa, uint64_t attrs) { return desc::leaf(level, pa, attrs); }
    static constexpr uint64_t attrs_of(uint64_t e) { return desc::attrs_of(e); }
    static constexpr bool can_block(unsigned level) { return desc::can_block(level); }
};

// Stage 1 (SMMU context descriptors, IPMMU, the CPU at EL1&0): memory type via AttrIndx into MAIR.
struct Stage1 {
    static constexpr Stage kStage = Stage::s1;
    using Desc = VmsaDesc;
    static constexpr unsigned kIdxWb = 0, kIdxNc = 1, kIdxDevice = 2;
    // The MAIR every driver programs with this format (MAIR_ELx, SMMU CD.MAIR, SMMUv2 CB MAIR0,
    // IPMMU IMMAIR0): attr0 Normal WB RW-allocate, attr1 Normal NC, attr2 Device-nGnRE.
    static constexpr uint64_t kMair = uint64_t{0xff} << (8 * kIdxWb) | uint64_t{0x44} << (8 * kIdxNc) |
                                      uint64_t{0x04} << (8 * kIdxDevice);
    static constexpr Field kAttrIndx{4, 2};
    static constexpr uint64_t kApUnpriv = bit(6);  // AP[1]: unprivileged (EL0-like) access allowed
    static constexpr uint64_t kApRdonly = bit(7);  // AP[2]: read-only
    static constexpr uint64_t kNg = bit(11);
    static constexpr uint64_t kPxn = bit(53);
    static constexpr uint64_t kUxn = bit(54);

    static constexpr bool accepts(const Prot&) { return true; }
    // Stage 1 cannot express write-only: it becomes read/write (as in Linux), and lookup says so.
    static constexpr uint64_t encode(const Prot& p) {
        uint64_t idx = p.type == MemType::normal_wb ? kIdxWb : p.type == MemType::normal_nc ? kIdxNc : kIdxDevice;
        uint64_t e = kAttrIndx.make(idx) | desc::kSh.make(static_cast<uint64_t>(p.share)) | desc::kAf;
        if (!p.privileged) e |= kApUnpriv;  // device transactions are unprivileged unless the stream says otherwise
        if (!(p.perm & kWrite)) e |= kApRdonly;
        if (p.not_global) e |= kNg;
        if (!(p.perm & kExec)) e |= kPxn | kUxn;
        return e;
    }
    static constexpr Prot decode(uint64_t e) {
        Prot p;
        p.perm = static_cast<uint8_t>(kRead | ((e & kApRdonly) ? 0 : kWrite) | ((e & kUxn) ? 0 : kExec));
        uint64_t idx = kAttrIndx.get(e);
        p.type = idx == kIdxWb ? MemType::normal_wb : idx == kIdxNc ? MemType::normal_nc : MemType::device;
        p.share = static_cast<Share>(desc::kSh.get(e));
        p.privileged = !(e & kApUnpriv);
        p.not_global = (e & kNg) != 0;
        return p;
    }
};

// Stage 2 (the CPU's P2M, SMMU stage-2 contexts, a P2M shared with an IOMMU): memory type directly
// in MemAttr, permissions in S2AP; there are no ASIDs and no privilege levels.
struct Stage2 {
    static constexpr Stage kStage = Stage::s2;
    using Desc = VmsaDesc;
    static constexpr Field kMemAttr{5, 2};
    static constexpr uint64_t kMemAttrWb = 0xf;      // Normal, outer WB, inner WB
    static constexpr uint64_t kMemAttrNc = 0x5;      // Normal, outer NC, inner NC
    static constexpr uint64_t kMemAttrDevice = 0x1;  // Device-nGnRE
    static constexpr uint64_t kS2apRead = bit(6);
    static constexpr uint64_t kS2apWrite = bit(7);
    static constexpr uint64_t kXn = bit(54);

    static constexpr bool accepts(const Prot& p) { return !p.privileged && !p.not_global; }
    static constexpr uint64_t encode(const Prot& p) {
        uint64_t attr = p.type == MemType::normal_wb ? kMemAttrWb : p.type == MemType::normal_nc ? kMemAttrNc : kMemAttrDevice;
        uint64_t e = kMemAttr.make(attr) | desc::kSh.make(static_cast<uint64_t>(p.share)) | desc::kAf;
        if (p.perm & kRead) e |= kS2apRead;
        if (p.perm & kWrite) e |= kS2apWrite;
        if (!(p.perm & kExec)) e |= kXn;
        return e;
    }
    static constexpr Prot decode(uint64_t e) {
        Prot p;
        p.perm = static_cast<uint8_t>(((e & kS2apRead) ? kRead : 0) | ((e & kS2apWrite) ? kWrite : 0) | ((e & kXn) ? 0 : kExec));
        uint64_t attr = kMemAttr.get(e);
        p.type = attr == kMemAttrWb ? MemType::normal_wb : attr == kMemAttrNc ? MemType::normal_nc : MemType::device;
        p.share = static_cast<Share>(desc::kSh.get(e));
        return p;
    }
};

}  // namespace moat::iopt
