#include "tests/models/mmu500_model.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "tests/models/dma_pages.hpp"

namespace moat::model {

namespace {

constexpr uint64_t mask(unsigned hi, unsigned lo) {
    return (hi >= 63 ? ~uint64_t{0} : (uint64_t{1} << (hi + 1)) - 1) & ~((uint64_t{1} << lo) - 1);
}
constexpr uint64_t bit(unsigned n) { return uint64_t{1} << n; }
constexpr uint64_t get(uint64_t v, unsigned hi, unsigned lo) { return (v & mask(hi, lo)) >> lo; }

std::string hex(uint64_t v) {
    char b[24];
    std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
    return b;
}

// Global space 0 (IHI 0062 chapter 10; UG1087 SMMU500 module).
enum : uint64_t {
    sCR0 = 0x00, sCR1 = 0x04, sACR = 0x10, ID0 = 0x20, ID7 = 0x3c, sGFAR = 0x40, sGFSR = 0x48, sGFSRRESTORE = 0x4c,
    sGFSYNR0 = 0x50, sGFSYNR1 = 0x54, sGFSYNR2 = 0x58, TLBIVMID = 0x64, TLBIALLNSNH = 0x68, TLBIALLH = 0x6c,
    sTLBGSYNC = 0x70, sTLBGSTATUS = 0x74, SMR0 = 0x800, S2CR0 = 0xc00,
};
// Global space 1.
enum : uint64_t { CBAR0 = 0x000, CBFRSYNRA0 = 0x400, CBA2R0 = 0x800 };
// Context bank.
enum : uint64_t {
    SCTLR = 0x00, ACTLR = 0x04, RESUME = 0x08, TCR2 = 0x10, TTBR0 = 0x20, TTBR1 = 0x28, TCR = 0x30, CONTEXTIDR = 0x34,
    MAIR0 = 0x38, MAIR1 = 0x3c, FSR = 0x58, FSRRESTORE = 0x5c, FAR = 0x60, FSYNR0 = 0x68, FSYNR1 = 0x6c,
    TLBIVA = 0x600, TLBIVAA = 0x608, TLBIASID = 0x610, TLBIALL = 0x618, TLBIVAL = 0x620, TLBIVAAL = 0x628,
    TLBIIPAS2 = 0x630, TLBIIPAS2L = 0x638, TLBSYNC = 0x7f0, TLBSTATUS = 0x7f4,
};

constexpr uint32_t kClientPd = 1u << 0, kGfie = 1u << 2, kGcfgfie = 1u << 5, kUsfcfg = 1u << 10;
constexpr uint32_t kSctlrCfie = 1u << 6;
constexpr uint32_t kGfsrConfigFaults = 0x3f;  // ICF USF SMCF UCBF UCIF CAF: reported by GCFGFIE
constexpr uint32_t kSmrValid = 1u << 31;
constexpr uint32_t kS2crTranslate = 0, kS2crBypass = 1, kS2crFault = 2;
constexpr uint32_t kSctlrM = 1u << 0, kSctlrE = 1u << 4, kSctlrCfcfg = 1u << 7, kSctlrAsidpne = 1u << 12;
constexpr uint32_t kCacheLock = 1u << 26, kCpre = 1u << 1;
constexpr uint32_t kTcrEpd0 = 1u << 7, kTcrEpd1 = 1u << 23, kVtcrRes1 = 1u << 31, kTcr2As = 1u << 4;
constexpr uint32_t kFsrFaults = 0x1fe | (1u << 30);  // TF..UUT, SS
constexpr uint32_t kGfsrFaults = 0x1ff;

// ID2.IAS/OAS and TCR PS: 0 means invalid here.
unsigned pa_bits(uint64_t enc) {
    static constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48};
    return enc < 6 ? kBits[enc] : 0;
}
unsigned ubs_bits(uint64_t enc) {
    static constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 49};
    return enc < 6 ? kBits[enc] : 64;
}

uint32_t smr_id(uint32_t v) { return v & 0xffff; }
uint32_t smr_mask(uint32_t v) { return (v >> 16) & 0x7fff; }

}  // namespace

Mmu500Model::Mmu500Model(PhysMem& mem, const Features& f) : mem_(mem), f_(f), banks_(f.numcb) {
    // Reset values (UG1087): client port disabled, every S2CR faulting, CACHE_LOCK set and the
    // next-page prefetcher on (the state the errata workaround has to undo).
    scr0_ = kClientPd;
    sacr_ = kCacheLock;
    for (uint32_t& s : s2cr_) s = kS2crFault << 16;
    for (Bank& b : banks_) b.actlr = kCpre;
    if (f.firmware_leftovers) {
        scr0_ = 0;
        for (uint32_t& s : s2cr_) s = kS2crBypass << 16;
        smr_[0] = kSmrValid | (f.leftover_stream & 0xffff);
    }
}

uint64_t Mmu500Model::size() const { return uint64_t{2} * numpage() * page_size(); }

void Mmu500Model::violation(const std::string& what) { violations_.push_back(what); }

unsigned Mmu500Model::valid_smrs() const {
    unsigned n = 0;
    for (unsigned i = 0; i < f_.numsmrg; i++) n += (smr_[i] & kSmrValid) != 0;
    return n;
}

unsigned Mmu500Model::enabled_banks() const {
    unsigned n = 0;
    for (const Bank& b : banks_) n += (b.sctlr & kSctlrM) != 0;
    return n;
}

size_t Mmu500Model::pending_invalidations() const {
    size_t n = gpending_.size();
    for (const Bank& b : banks_) n += b.pending.size();
    return n;
}

// ---------------------------------------------------------------- register decoding

uint64_t Mmu500Model::read(uint64_t off, unsigned bytes) {
    accesses_++;
    uint64_t page = page_size();
    if (off < page) return read_gr0(off, bytes);
    if (off < 2 * page) return read_gr1(off - page, bytes);
    if (off < numpage() * page) {
        violation("read in an unmodelled global page at " + hex(off));
        return 0;
    }
    uint64_t n = (off - numpage() * page) / page;
    if (n >= f_.numcb) {
        violation("read beyond the implemented context banks at " + hex(off));
        return 0;
    }
    return read_bank(static_cast<unsigned>(n), off % page, bytes);
}

void Mmu500Model::write(uint64_t off, uint64_t v, unsigned bytes) {
    accesses_++;
    uint64_t page = page_size();
    if (off < page) return write_gr0(off, v, bytes);
    if (off < 2 * page) return write_gr1(off - page, v, bytes);
    if (off < numpage() * page) return violation("write in an unmodelled global page at " + hex(off));
    uint64_t n = (off - numpage() * page) / page;
    if (n >= f_.numcb) return violation("write beyond the implemented context banks at " + hex(off));
    write_bank(static_cast<unsigned>(n), off % page, v, bytes);
}

uint32_t Mmu500Model::id_reg(uint64_t off) const {
    switch (off) {
    case 0x20:  // ID0
        return static_cast<uint32_t>(f_.numsmrg | f_.numsidb << 9 | (f_.coherent ? bit(14) : 0) | bit(13) /* BTM */ |
                                     1u << 16 /* NUMIRPT */ | bit(26) /* no ATOS for non-secure */ |
                                     (f_.stream_match ? bit(27) : 0) | (f_.stage1 && f_.stage2 ? bit(28) : 0) |
                                     (f_.stage2 ? bit(29) : 0) | (f_.stage1 ? bit(30) : 0));
    case 0x24:  // ID1
        return static_cast<uint32_t>(f_.numcb | 0xfu << 8 | f_.nums2cb << 16 | f_.numpagendxb << 28 |
                                     (f_.page64k ? bit(31) : 0));
    case 0x28:  // ID2
        return static_cast<uint32_t>(f_.ias_enc | f_.oas_enc << 4 | f_.ubs_enc << 8 | (f_.ptfs4k ? bit(12) : 0) |
                                     bit(14) /* 64K */ | bit(15) /* VMID16 */);
    case 0x3c: return f_.major << 4 | f_.minor;  // ID7
    default: return 0;                            // ID3..ID6: implementation defined, nothing here
    }
}

uint64_t Mmu500Model::read_gr0(uint64_t off, unsigned bytes) {
    if (off == sGFAR && bytes == 8) return gfar_;
    if ((off == sGFAR || off == sGFAR + 4) && bytes == 4) return (gfar_ >> (off == sGFAR ? 0 : 32)) & 0xffffffffu;
    if (bytes != 4) {
        violation("GR0 read of " + std::to_string(bytes) + " bytes at " + hex(off));
        return 0;
    }
    if (off >= SMR0 && off < SMR0 + 4 * f_.numsmrg) return smr_[(off - SMR0) / 4];
    if (off >= S2CR0 && off < S2CR0 + 4 * f_.numsmrg) return s2cr_[(off - S2CR0) / 4];
    if (off >= ID0 && off <= ID7) return id_reg(off);
    switch (off) {
    case sCR0: return scr0_;
    case sCR1: return 0;
    case sACR: return sacr_;
    case sGFSR: return gfsr_;
    case sGFSYNR0: return gfsynr0_;
    case sGFSYNR1: return gfsynr1_;
    case sGFSYNR2: return 0;
    case sTLBGSTATUS: return gsync_active_ ? 1 : 0;
    default: violation("GR0 read of an unmodelled or write-only register at " + hex(off)); return 0;
    }
}

void Mmu500Model::write_gr0(uint64_t off, uint64_t v64, unsigned bytes) {
    if (bytes != 4) return violation("GR0 write of " + std::to_string(bytes) + " bytes at " + hex(off));
    uint32_t v = static_cast<uint32_t>(v64);
    if (off >= SMR0 && off < SMR0 + 4 * f_.numsmrg) {
        unsigned i = static_cast<unsigned>((off - SMR0) / 4);
        if (!(scr0_ & kClientPd) && !(scr0_ & kUsfcfg) && (smr_[i] & kSmrValid) && v != smr_[i])
            violation("SMR " + std::to_string(i) + " changed while the SMMU is enabled with USFCFG clear: its stream bypasses");
        uint32_t limit = (1u << f_.numsidb) - 1;
        if ((v & kSmrValid) && ((smr_id(v) & ~limit) || (smr_mask(v) & ~limit)))
            violation("SMR " + std::to_string(i) + " = " + hex(v) + " has ID or MASK bits above NUMSIDB");
        smr_[i] = v;
        check_smrs();
        return;
    }
    if (off >= S2CR0 && off < S2CR0 + 4 * f_.numsmrg) {
        unsigned i = static_cast<unsigned>((off - S2CR0) / 4);
        if (get(v, 17, 16) == kS2crTranslate && get(v, 7, 0) >= f_.numcb)
            violation("S2CR " + std::to_string(i) + " routes to bank " + std::to_string(get(v, 7, 0)) + " of " +
                      std::to_string(f_.numcb));
        s2cr_[i] = v;
        return;
    }
    switch (off) {
    case sCR0: write_scr0(v); break;
    case sACR:
        sacr_ = v;
        if (f_.cache_locked) sacr_ |= kCacheLock;
        break;
    case sGFSR:  // write 1 to clear
        gfsr_ &= ~v;
        update_irqs();
        break;
    case sGFSYNR0: gfsynr0_ = v; break;
    case sGFSYNR1: gfsynr1_ = v; break;
    case TLBIVMID: queue(Tlbi{Op::vmid, static_cast<uint16_t>(v & 0xffff), 0, 0, -1}, true); break;
    case TLBIALLNSNH: queue(Tlbi{Op::all_nsnh, 0, 0, 0, -1}, true); break;
    case TLBIALLH: queue(Tlbi{Op::all_hyp, 0, 0, 0, -1}, true); break;
    case sTLBGSYNC:
        gsyncs_++;
        gsync_active_ = true;
        if (!syncs_stalled_) complete_global_sync();
        break;
    default: violation("GR0 write to an unmodelled or read-only register at " + hex(off)); break;
    }
}

void Mmu500Model::write_scr0(uint32_t v) {
    bool enabling = (scr0_ & kClientPd) && !(v & kClientPd);
    scr0_ = v;
    update_irqs();
    if (v & kClientPd) return;
    if (!(v & kUsfcfg)) violation("SMMU enabled with sCR0.USFCFG clear: unmatched streams bypass");
    if (!enabling) return;
    for (unsigned i = 0; i < f_.numsmrg; i++)
        if (!(smr_[i] & kSmrValid) && get(s2cr_[i], 17, 16) != kS2crFault)
            violation("SMMU enabled with S2CR " + std::to_string(i) + " unused but not set to fault");
}

// Two valid SMRs that can match one stream id: a stream match conflict waiting to happen.
void Mmu500Model::check_smrs() {
    for (unsigned a = 0; a < f_.numsmrg; a++)
        for (unsigned b = a + 1; b < f_.numsmrg; b++) {
            uint32_t x = smr_[a], y = smr_[b];
            if (!(x & kSmrValid) || !(y & kSmrValid)) continue;
            if (((smr_id(x) ^ smr_id(y)) & ~(smr_mask(x) | smr_mask(y)) & 0xffff) == 0)
                violation("SMRs " + std::to_string(a) + " (" + hex(x) + ") and " + std::to_string(b) + " (" + hex(y) +
                          ") match the same stream id");
        }
}

uint64_t Mmu500Model::read_gr1(uint64_t off, unsigned bytes) {
    if (bytes != 4) {
        violation("GR1 read of " + std::to_string(bytes) + " bytes at " + hex(off));
        return 0;
    }
    uint64_t n = (off & 0x3ff) / 4;
    if (n >= f_.numcb || off >= 0xc00) {
        violation("GR1 read of an unmodelled register at " + hex(off));
        return 0;
    }
    if (off < CBFRSYNRA0) return cbar_[n];
    if (off < CBA2R0) return cbfrsynra_[n];
    return cba2r_[n];
}

void Mmu500Model::write_gr1(uint64_t off, uint64_t v, unsigned bytes) {
    if (bytes != 4) return violation("GR1 write of " + std::to_string(bytes) + " bytes at " + hex(off));
    unsigned n = static_cast<unsigned>((off & 0x3ff) / 4);
    if (n >= f_.numcb || off >= 0xc00 || (off >= CBFRSYNRA0 && off < CBA2R0))
        return violation("GR1 write to an unmodelled or read-only register at " + hex(off));
    uint32_t x = static_cast<uint32_t>(v);
    if (off < CBFRSYNRA0) {
        live(n, "CBAR");
        uint64_t type = get(x, 17, 16);
        if (type != 0 && n < f_.nums2cb) violation("bank " + std::to_string(n) + " is stage-2 only but CBAR.TYPE is " + std::to_string(type));
        cbar_[n] = x;
    } else {
        live(n, "CBA2R");
        cba2r_[n] = x;
    }
}

bool Mmu500Model::live(unsigned n, const char* reg) {
    if (!(banks_[n].sctlr & kSctlrM)) return false;
    violation(std::string(reg) + " of bank " + std::to_string(n) + " written while the bank is enabled");
    return true;
}

uint64_t Mmu500Model::read_bank(unsigned n, uint64_t off, unsigned bytes) {
    Bank& b = banks_[n];
    // 64-bit registers: one 8-byte access, or either 4-byte half.
    for (auto [base, value] : {std::pair<uint64_t, uint64_t>{TTBR0, b.ttbr0}, {TTBR1, b.ttbr1}, {FAR, b.far}}) {
        if (bytes == 8 && off == base) return value;
        if (bytes == 4 && (off == base || off == base + 4)) return (value >> (off == base ? 0 : 32)) & 0xffffffffu;
    }
    if (bytes != 4) {
        violation("bank read of " + std::to_string(bytes) + " bytes at " + hex(off));
        return 0;
    }
    switch (off) {
    case SCTLR: return b.sctlr;
    case ACTLR: return b.actlr;
    case TCR2: return b.tcr2;
    case TCR: return b.tcr;
    case CONTEXTIDR: return 0;
    case MAIR0: return b.mair0;
    case MAIR1: return b.mair1;
    case FSR: return b.fsr;
    case FSYNR0: return b.fsynr0;
    case FSYNR1: return 0;
    case TLBSTATUS: return b.sync_active ? 1 : 0;
    default: violation("bank read of an unmodelled or write-only register at " + hex(off)); return 0;
    }
}

void Mmu500Model::write_bank(unsigned n, uint64_t off, uint64_t v, unsigned bytes) {
    Bank& b = banks_[n];
    uint16_t vmid = static_cast<uint16_t>(cbar_[n] & 0xff);
    auto set64 = [&](uint64_t base, uint64_t& reg) {
        if (bytes == 8 && off == base) reg = v;
        else if (bytes == 4 && off == base) reg = (reg & mask(63, 32)) | (v & 0xffffffffu);
        else if (bytes == 4) reg = (reg & 0xffffffffu) | (v << 32);
        else violation("bank write of " + std::to_string(bytes) + " bytes at " + hex(off));
    };
    if (off == TTBR0 || off == TTBR0 + 4) {
        live(n, "TTBR0");
        return set64(TTBR0, b.ttbr0);
    }
    if (off == TTBR1 || off == TTBR1 + 4) {
        live(n, "TTBR1");
        return set64(TTBR1, b.ttbr1);
    }
    // By-address invalidations are 64-bit registers in an AArch64 bank: one 8-byte write each.
    if (off == TLBIVA || off == TLBIVAA || off == TLBIVAL || off == TLBIVAAL || off == TLBIIPAS2 || off == TLBIIPAS2L) {
        if (bytes != 8) return violation("TLBI by address written with " + std::to_string(bytes) + " bytes");
        tlbi_writes_++;
        bool s2 = off == TLBIIPAS2 || off == TLBIIPAS2L;
        bool any_asid = off == TLBIVAA || off == TLBIVAAL;
        uint64_t addr = (v & (s2 ? mask(35, 0) : mask(43, 0))) << 12;
        uint16_t asid = static_cast<uint16_t>(get(v, 63, 48));
        Tlbi op{s2 ? Op::ipa : Op::va, vmid, any_asid ? uint16_t{0xffff} : asid, addr, static_cast<int>(n)};
        return queue(op, false);
    }
    if (bytes != 4) return violation("bank write of " + std::to_string(bytes) + " bytes at " + hex(off));
    uint32_t x = static_cast<uint32_t>(v);
    switch (off) {
    case SCTLR: write_sctlr(n, x); break;
    case ACTLR:
        if (!(sacr_ & kCacheLock) && !f_.cache_locked) b.actlr = x;  // ignored while CACHE_LOCK holds it
        break;
    case RESUME: break;
    case TCR2:
        live(n, "TCR2");
        b.tcr2 = x;
        break;
    case TCR:
        live(n, "TCR");
        b.tcr = x;
        break;
    case CONTEXTIDR: break;
    case MAIR0:
        live(n, "MAIR0");
        b.mair0 = x;
        break;
    case MAIR1:
        live(n, "MAIR1");
        b.mair1 = x;
        break;
    case FSR:  // write 1 to clear
        b.fsr &= ~x;
        update_irqs();
        break;
    case FSYNR0: b.fsynr0 = x; break;
    case TLBIASID:
        tlbi_writes_++;
        queue(Tlbi{Op::asid, vmid, static_cast<uint16_t>(x & 0xffff), 0, static_cast<int>(n)}, false);
        break;
    case TLBIALL:
        tlbi_writes_++;
        queue(Tlbi{Op::bank_all, vmid, 0, 0, static_cast<int>(n)}, false);
        break;
    case TLBSYNC:
        bsyncs_++;
        b.sync_active = true;
        if (!syncs_stalled_) complete_bank_sync(n);
        break;
    default: violation("bank write to an unmodelled or read-only register at " + hex(off)); break;
    }
}

void Mmu500Model::write_sctlr(unsigned n, uint32_t v) {
    Bank& b = banks_[n];
    bool enabling = !(b.sctlr & kSctlrM) && (v & kSctlrM);
    if (v & kSctlrCfcfg) violation("bank " + std::to_string(n) + ": SCTLR.CFCFG set (stall on fault; MMU-500 erratum 842869)");
    if (v & kSctlrE) violation("bank " + std::to_string(n) + ": SCTLR.E set (big-endian tables)");
    b.sctlr = v;
    update_irqs();
    if (enabling) {
        Regime r = regime(n);
        if (r.error) violation("bank " + std::to_string(n) + " enabled with an invalid configuration: " + r.error);
    }
}

// ---------------------------------------------------------------- TLB maintenance

void Mmu500Model::queue(Tlbi op, bool global) {
    if (global) {
        tlbi_writes_++;
        gpending_.push_back(op);
    } else {
        banks_[static_cast<size_t>(op.bank)].pending.push_back(op);
    }
}

void Mmu500Model::apply(const Tlbi& op) {
    auto covers = [&](const TlbEntry& e) { return op.addr >= e.base && op.addr - e.base < e.size; };
    auto same_bank = [&](const TlbEntry& e) { return e.bank < 0 || e.bank == op.bank; };
    tlb_.erase(std::remove_if(tlb_.begin(), tlb_.end(),
                              [&](const TlbEntry& e) {
                                  switch (op.op) {
                                  case Op::vmid: return e.vmid == op.vmid;
                                  case Op::all_nsnh: return true;
                                  case Op::all_hyp: return false;  // no hypervisor entries here
                                  case Op::bank_all: return e.vmid == op.vmid && same_bank(e);
                                  case Op::asid:
                                      return !e.s2 && !e.global && e.vmid == op.vmid && e.asid == op.asid && same_bank(e);
                                  case Op::va:
                                      return !e.s2 && e.vmid == op.vmid && covers(e) && same_bank(e) &&
                                             (e.global || op.asid == 0xffff || e.asid == op.asid);
                                  case Op::ipa: return e.s2 && e.vmid == op.vmid && covers(e);
                                  }
                                  return false;
                              }),
               tlb_.end());
}

void Mmu500Model::complete_global_sync() {
    for (const Tlbi& op : gpending_) apply(op);
    gpending_.clear();
    gsync_active_ = false;
}

void Mmu500Model::complete_bank_sync(unsigned n) {
    Bank& b = banks_[n];
    for (const Tlbi& op : b.pending) apply(op);
    b.pending.clear();
    b.sync_active = false;
}

void Mmu500Model::stall_syncs(bool on) {
    syncs_stalled_ = on;
    if (on) return;
    if (gsync_active_) complete_global_sync();
    for (unsigned n = 0; n < banks_.size(); n++)
        if (banks_[n].sync_active) complete_bank_sync(n);
}

// ---------------------------------------------------------------- translation

Mmu500Model::Regime Mmu500Model::regime(unsigned n) const {
    Regime g;
    const Bank& b = banks_[n];
    uint32_t type = static_cast<uint32_t>(get(cbar_[n], 17, 16));
    g.vmid = static_cast<uint16_t>(cbar_[n] & 0xff);
    unsigned smmu_oas = pa_bits(f_.oas_enc);
    auto bad = [&](const char* why) {
        g.error = why;
        return g;
    };
    if (!(cba2r_[n] & 1)) return bad("CBA2R.VA64 clear (AArch32 formats are not modelled)");
    if (get(b.tcr, 15, 14) != 0) return bad("TCR.TG0 is not the 4 KiB granule");
    unsigned ias = 64 - static_cast<unsigned>(get(b.tcr, 5, 0));
    if (type == 0) {
        if (!f_.stage2) return bad("stage-2 bank on an SMMU without stage 2");
        if (!(b.tcr & kVtcrRes1)) return bad("stage-2 TCR without its RES1 bit 31");
        if (ias > pa_bits(f_.ias_enc)) return bad("stage-2 input size beyond ID2.IAS");
        unsigned oas = pa_bits(get(b.tcr, 18, 16));
        if (!oas) return bad("TCR.PS reserved");
        g.r = vmsa::Regime{vmsa::Stage::s2, b.ttbr0 & mask(47, 4), ias, std::min(oas, smmu_oas),
                           vmsa::s2_level_from_sl0(static_cast<unsigned>(get(b.tcr, 7, 6)))};
    } else if (type == 1) {
        if (!f_.stage1 || n < f_.nums2cb) return bad("stage-1 bank where stage 1 is not implemented");
        if (ias > std::min(ubs_bits(f_.ubs_enc), 48u)) return bad("stage-1 input size beyond ID2.UBS");
        if (!(b.tcr & kTcrEpd1) && b.ttbr1 == 0) return bad("TCR.EPD1 clear with no TTBR1 table");
        unsigned oas = pa_bits(get(b.tcr2, 3, 0));
        if (!oas) return bad("TCR2.PASIZE reserved");
        g.epd0 = (b.tcr & kTcrEpd0) != 0;
        g.asid = static_cast<uint16_t>(get(b.ttbr0, 63, 48) & ((b.tcr2 & kTcr2As) ? 0xffff : 0xff));
        g.asid_private = (b.sctlr & kSctlrAsidpne) != 0;
        g.r = vmsa::Regime{vmsa::Stage::s1, b.ttbr0 & mask(47, 4), ias, std::min(oas, smmu_oas), -1};
    } else {
        return bad("CBAR.TYPE 2 or 3 (stage 1 with stage 2 fault, nested) is not modelled");
    }
    if (const char* why = vmsa::check(g.r)) return bad(why);
    return g;
}

void Mmu500Model::global_fault(uint32_t bitv, uint32_t sid, uint64_t addr, bool write) {
    bool recorded = !(gfsr_ & kGfsrFaults);
    if (recorded) {
        gfsr_ |= bitv;
        gfar_ = addr;
        gfsynr0_ = write ? 1u << 1 : 0;
        gfsynr1_ = sid & 0xffff;
    } else {
        gfsr_ |= mmu500::kGfsrMulti;
    }
    faults_.push_back(Fault{true, -1, bitv, sid, addr, write, recorded});
    update_irqs();
}

void Mmu500Model::context_fault(unsigned n, uint32_t bitv, unsigned level, uint32_t sid, uint64_t addr, bool write) {
    Bank& b = banks_[n];
    bool recorded = !(b.fsr & kFsrFaults);
    if (recorded) {
        b.fsr |= bitv;
        b.far = addr;
        b.fsynr0 = (write ? 1u << 4 : 0) | (level & 3);
        cbfrsynra_[n] = sid & 0xffff;
    } else {
        b.fsr |= mmu500::kFsrMulti;
    }
    faults_.push_back(Fault{false, static_cast<int>(n), bitv, sid, addr, write, recorded});
    update_irqs();
}

// ---------------------------------------------------------------- interrupts

void Mmu500Model::connect_irq(arch::host::HostIrqController* c, unsigned global_intid, std::vector<unsigned> context_intids) {
    for (Line& l : lines_)
        if (irqc_ && l.asserted) irqc_->lower(l.intid);
    irqc_ = c;
    global_intid_ = c ? global_intid : 0;
    context_intids_ = c ? std::move(context_intids) : std::vector<unsigned>{};
    lines_.clear();
    auto add = [&](unsigned intid) {
        if (!intid) return;
        for (const Line& l : lines_)
            if (l.intid == intid) return;
        lines_.push_back(Line{intid, false, 0});
    };
    add(global_intid_);
    for (unsigned i : context_intids_) add(i);
    update_irqs();
}

bool Mmu500Model::global_irq() const {
    return ((gfsr_ & kGfsrConfigFaults) && (scr0_ & kGcfgfie)) || ((gfsr_ & kGfsrFaults & ~kGfsrConfigFaults) && (scr0_ & kGfie));
}

bool Mmu500Model::context_irq(unsigned n) const {
    return n < banks_.size() && (banks_[n].fsr & kFsrFaults) && (banks_[n].sctlr & kSctlrCfie);
}

uint64_t Mmu500Model::irqs_raised(unsigned intid) const {
    for (const Line& l : lines_)
        if (l.intid == intid) return l.raised;
    return 0;
}

// Each line's state is worked out afresh when it is reached: raising one runs the driver's
// handler at once, which clears status (and comes back here) before the next line is looked at.
void Mmu500Model::update_irqs() {
    for (size_t i = 0; i < lines_.size(); i++) {
        unsigned intid = lines_[i].intid;
        bool on = intid == global_intid_ && global_irq();
        for (size_t n = 0; n < context_intids_.size() && !on; n++) on = context_intids_[n] == intid && context_irq(static_cast<unsigned>(n));
        if (on == lines_[i].asserted) continue;
        lines_[i].asserted = on;
        if (on) {
            lines_[i].raised++;
            irqc_->raise(intid);
        } else {
            irqc_->lower(intid);
        }
    }
}

Mmu500Model::Xlate Mmu500Model::translate(uint32_t sid, uint64_t iova, bool write) {
    Xlate x;
    auto bypass = [&] {
        x.ok = x.bypass = true;
        x.pa = iova;
        return x;
    };
    auto gfault = [&](uint32_t bitv) {
        global_fault(bitv, sid, iova, write);
        x.global = true;
        x.fault = bitv;
        return x;
    };
    if (scr0_ & kClientPd) return bypass();
    int match = -1;
    unsigned matches = 0;
    for (unsigned i = 0; i < f_.numsmrg; i++) {
        uint32_t s = smr_[i];
        if ((s & kSmrValid) && ((sid ^ smr_id(s)) & ~smr_mask(s) & 0xffff) == 0) {
            match = static_cast<int>(i);
            matches++;
        }
    }
    if (matches == 0) return (scr0_ & kUsfcfg) ? gfault(mmu500::kGfsrUsf) : bypass();
    if (matches > 1) return gfault(mmu500::kGfsrSmcf);
    uint32_t s2 = s2cr_[static_cast<unsigned>(match)];
    switch (get(s2, 17, 16)) {
    case kS2crBypass: return bypass();
    case kS2crTranslate: break;
    default: return gfault(mmu500::kGfsrUsf);
    }
    unsigned n = static_cast<unsigned>(get(s2, 7, 0));
    if (n >= f_.numcb) return gfault(mmu500::kGfsrIcf);
    x.bank = static_cast<int>(n);
    if (!(banks_[n].sctlr & kSctlrM)) {
        violation("stream " + hex(sid) + " routed to bank " + std::to_string(n) + ", which is disabled (it bypasses)");
        return bypass();
    }
    Regime g = regime(n);
    auto cfault = [&](uint32_t bitv, unsigned level) {
        context_fault(n, bitv, level, sid, iova, write);
        x.fault = bitv;
        return x;
    };
    if (g.error) {
        violation("DMA through bank " + std::to_string(n) + ": " + g.error);
        return cfault(mmu500::kFsrTf, 0);
    }
    bool s2stage = g.r.stage == vmsa::Stage::s2;
    vmsa::Access acc{write, false, false};
    for (const TlbEntry& e : tlb_) {
        if (e.s2 != s2stage || e.vmid != g.vmid) continue;
        if (!s2stage && ((!e.global && e.asid != g.asid) || (e.bank >= 0 && e.bank != static_cast<int>(n)))) continue;
        if (iova < e.base || iova - e.base >= e.size) continue;
        tlb_hits_++;
        if (!vmsa::allows(g.r.stage, e.perms, acc)) return cfault(mmu500::kFsrPf, 3);
        x.ok = true;
        x.pa = e.out + (iova - e.base);
        return x;
    }
    if (g.epd0) return cfault(mmu500::kFsrTf, 0);
    walks_++;
    vmsa::Walk w = vmsa::walk(mem_, g.r, iova);
    switch (w.fault) {
    case vmsa::Fault::none: break;
    case vmsa::Fault::translation: return cfault(mmu500::kFsrTf, w.level);
    case vmsa::Fault::access_flag: return cfault(mmu500::kFsrAff, w.level);
    case vmsa::Fault::permission: return cfault(mmu500::kFsrPf, w.level);
    case vmsa::Fault::address_size: return cfault(mmu500::kFsrAsf, w.level);
    case vmsa::Fault::external_abort: return cfault(mmu500::kFsrEf, w.level);
    }
    // Cached whatever the access turns out to be allowed, as the hardware does.
    if (tlb_.size() >= std::max<size_t>(f_.tlb_entries, 1)) tlb_.pop_front();
    bool global = !s2stage && !w.perms.not_global;
    tlb_.push_back(TlbEntry{s2stage, g.vmid, g.asid, global, g.asid_private && !s2stage ? static_cast<int>(n) : -1,
                            w.base_in(iova), w.size, w.out - (iova - w.base_in(iova)), w.perms});
    if (!vmsa::allows(g.r.stage, w.perms, acc)) return cfault(mmu500::kFsrPf, w.level);
    x.ok = true;
    x.pa = w.out;
    return x;
}

Mmu500Model::Dma Mmu500Model::dma(uint32_t sid, uint64_t iova, uint8_t* buf, size_t len, bool write) {
    DmaRun<Xlate> r = dma_pages<Xlate>(mem_, iova, buf, len, write, [&](uint64_t a) { return translate(sid, a, write); });
    Dma d;
    d.done = r.done;
    d.ok = r.complete;
    if (len) d.bank = r.first.bank;
    if (r.first.ok) {
        d.pa = r.first.pa;
        d.bypassed = r.first.bypass;
    }
    if (r.faulted) {
        d.fault = r.failed.fault;
        d.global = r.failed.global;
    }
    return d;
}

Mmu500Model::Dma Mmu500Model::dma_write(uint32_t sid, uint64_t iova, const void* src, size_t len) {
    return dma(sid, iova, static_cast<uint8_t*>(const_cast<void*>(src)), len, true);
}

Mmu500Model::Dma Mmu500Model::dma_read(uint32_t sid, uint64_t iova, void* dst, size_t len) {
    return dma(sid, iova, static_cast<uint8_t*>(dst), len, false);
}

}  // namespace moat::model
