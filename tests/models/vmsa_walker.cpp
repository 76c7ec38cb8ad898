#include "tests/models/vmsa_walker.hpp"

#include <string.h>

#include "common/page_pool.hpp"

namespace moat::model {

bool PoolPhysMem::contains(uint64_t pa, size_t n) const {
    for (size_t i = 0; i < pool_.region_count(); i++) {
        const PagePool::Region& r = pool_.region(i);
        uint64_t end = r.base + r.pages * kPageSize;
        if (pa >= r.base && pa < end && n <= end - pa) return true;
    }
    return false;
}

bool PoolPhysMem::read(uint64_t pa, void* dst, size_t n) {
    if (!contains(pa, n)) return false;
    memcpy(dst, pool_.virt(pa), n);
    return true;
}

bool PoolPhysMem::write(uint64_t pa, const void* src, size_t n) {
    if (!contains(pa, n)) return false;
    memcpy(pool_.virt(pa), src, n);
    return true;
}

namespace vmsa {

namespace {

constexpr uint64_t mask(unsigned hi, unsigned lo) {
    return (hi >= 63 ? ~uint64_t{0} : (uint64_t{1} << (hi + 1)) - 1) & ~((uint64_t{1} << lo) - 1);
}
constexpr uint64_t bit(unsigned n) { return uint64_t{1} << n; }

// Descriptor bits (Arm ARM D8.3, 4 KiB granule).
constexpr uint64_t kValid = bit(0), kTable = bit(1);   // bit 1: table (levels 0-2) or page (level 3)
constexpr uint64_t kAddr = mask(51, 12);               // next table / output address (bits above the PA size must be 0)
constexpr uint64_t kAf = bit(10);
// Stage-1 table descriptors: hierarchical controls for everything below.
constexpr uint64_t kPxnTable = bit(59), kXnTable = bit(60), kApTableNoEl0 = bit(61), kApTableRdonly = bit(62);
// Leaves.
constexpr uint64_t kS1Ap1 = bit(6), kS1Ap2 = bit(7), kS1Ng = bit(11), kS1Pxn = bit(53), kS1Uxn = bit(54);
constexpr uint64_t kS2apR = bit(6), kS2apW = bit(7), kS2Xn = bit(54);

bool valid_oas(unsigned oas) {
    return oas == 32 || oas == 36 || oas == 40 || oas == 42 || oas == 44 || oas == 48;
}

Walk fault(Fault f, unsigned level, unsigned reads, uint64_t desc_pa = 0) {
    Walk w;
    w.fault = f;
    w.level = level;
    w.reads = reads;
    w.desc_pa = desc_pa;
    return w;
}

}  // namespace

const char* to_string(Fault f) {
    switch (f) {
    case Fault::none: return "none";
    case Fault::translation: return "translation";
    case Fault::access_flag: return "access flag";
    case Fault::permission: return "permission";
    case Fault::address_size: return "address size";
    case Fault::external_abort: return "external abort on walk";
    }
    return "?";
}

int start_level(const Regime& r) {
    if (r.stage == Stage::s2) return r.start_level;
    // Each level resolves 9 bits above the 12-bit page offset.
    unsigned levels = (r.ias - kGranuleShift + kLevelBits - 1) / kLevelBits;
    return 4 - static_cast<int>(levels);
}

uint64_t root_entries(const Regime& r) {
    int sl = start_level(r);
    if (sl < 0 || sl > 3 || r.ias <= shift_of(static_cast<unsigned>(sl))) return 1;
    return uint64_t{1} << (r.ias - shift_of(static_cast<unsigned>(sl)));
}

const char* check(const Regime& r) {
    // T0SZ 16..39 with the 4 KiB granule (no 52-bit addresses, no TTST).
    if (r.ias < 25 || r.ias > 48) return "input size outside 25..48 bits";
    if (!valid_oas(r.oas)) return "output size not an architected PA size";
    int sl = start_level(r);
    if (sl < 0 || sl > 2) return "start level not 0..2";
    if (r.stage == Stage::s2) {
        // AArch64.S2InconsistentSL: the start level must leave between 1 and 16 concatenated tables.
        unsigned levels = 3 - static_cast<unsigned>(sl);
        unsigned min_ias = levels * kLevelBits + kGranuleShift + 1;
        unsigned max_ias = min_ias + (kLevelBits - 1) + 4;
        if (r.ias < min_ias || r.ias > max_ias) return "stage-2 start level inconsistent with the input size";
    }
    uint64_t bytes = root_entries(r) * 8;
    if (bytes < 64) bytes = 64;
    if (r.root & (bytes - 1)) return "root table not aligned to its size";
    return nullptr;
}

Walk walk(PhysMem& mem, const Regime& r, uint64_t ia) {
    int sl = start_level(r);
    unsigned level = sl < 0 ? 0 : static_cast<unsigned>(sl);
    if (check(r)) return fault(Fault::translation, level, 0);
    // An input address beyond the regime's input size translates nothing.
    if (ia >> r.ias) return fault(Fault::translation, level, 0);
    if (r.root >> r.oas) return fault(Fault::address_size, level, 0);

    bool s1 = r.stage == Stage::s1;
    bool no_el0 = false, rdonly = false, xn_t = false, pxn_t = false;
    uint64_t table = r.root;
    uint64_t entries = root_entries(r);
    unsigned reads = 0;
    for (;;) {
        unsigned shift = shift_of(level);
        uint64_t idx = (ia >> shift) & (entries - 1);
        uint64_t d = 0, at = table + idx * 8;
        if (!mem.read64(at, d)) return fault(Fault::external_abort, level, reads, at);
        reads++;
        if (!(d & kValid)) return fault(Fault::translation, level, reads, at);
        if (level < 3 && (d & kTable)) {
            uint64_t next = d & kAddr;
            if (next >> r.oas) return fault(Fault::address_size, level, reads, at);
            if (s1) {
                no_el0 |= (d & kApTableNoEl0) != 0;
                rdonly |= (d & kApTableRdonly) != 0;
                xn_t |= (d & kXnTable) != 0;
                pxn_t |= (d & kPxnTable) != 0;
            }
            table = next;
            entries = uint64_t{1} << kLevelBits;
            level++;
            continue;
        }
        // A leaf: 0b11 at level 3 (0b01 there is reserved), a block 0b01 at levels 1 and 2 only.
        if (level == 3 && !(d & kTable)) return fault(Fault::translation, level, reads, at);
        if (level == 0) return fault(Fault::translation, level, reads, at);
        uint64_t size = uint64_t{1} << shift;
        uint64_t base = d & kAddr & ~(size - 1);
        // Checked in the architecture's order: output size, access flag, then (caller) permission.
        if (base >> r.oas) return fault(Fault::address_size, level, reads, at);
        if (!(d & kAf)) return fault(Fault::access_flag, level, reads, at);
        Walk w;
        w.level = level;
        w.size = size;
        w.out = base | (ia & (size - 1));
        w.desc = d;
        w.desc_pa = at;
        w.reads = reads;
        Perms& p = w.perms;
        p.sh = static_cast<unsigned>((d >> 8) & 3);
        if (s1) {
            p.rdonly = (d & kS1Ap2) || rdonly;
            p.unpriv = (d & kS1Ap1) && !no_el0;
            p.pxn = (d & kS1Pxn) || pxn_t;
            p.uxn = (d & kS1Uxn) || xn_t;
            p.not_global = (d & kS1Ng) != 0;
            p.attr = static_cast<unsigned>((d >> 2) & 7);
        } else {
            p.s2_read = (d & kS2apR) != 0;
            p.s2_write = (d & kS2apW) != 0;
            p.xn = (d & kS2Xn) != 0;
            p.attr = static_cast<unsigned>((d >> 2) & 0xf);
        }
        return w;
    }
}

bool allows(Stage stage, const Perms& p, const Access& a) {
    if (stage == Stage::s1) {
        if (a.write && p.rdonly) return false;
        if (!a.privileged && !p.unpriv) return false;
        if (a.instruction && (a.privileged ? p.pxn : p.uxn)) return false;
        return true;
    }
    if (a.write ? !p.s2_write : !p.s2_read) return false;
    if (a.instruction && p.xn) return false;
    return true;
}

}  // namespace vmsa
}  // namespace moat::model
