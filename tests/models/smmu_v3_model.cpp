#include "tests/models/smmu_v3_model.hpp"

#include <algorithm>

#include "tests/models/dma_pages.hpp"

namespace moat::model {

namespace {

constexpr uint64_t mask(unsigned hi, unsigned lo) {
    return (hi >= 63 ? ~uint64_t{0} : (uint64_t{1} << (hi + 1)) - 1) & ~((uint64_t{1} << lo) - 1);
}
constexpr uint64_t bit(unsigned n) { return uint64_t{1} << n; }
constexpr uint64_t get(uint64_t v, unsigned hi, unsigned lo) { return (v & mask(hi, lo)) >> lo; }

// Register offsets (IHI 0070 6.2). EVENTQ_PROD/CONS live in page 1 only.
enum : uint64_t {
    IDR0 = 0x00, IDR1 = 0x04, IDR2 = 0x08, IDR3 = 0x0c, IDR4 = 0x10, IDR5 = 0x14, IIDR = 0x18, AIDR = 0x1c,
    CR0 = 0x20, CR0ACK = 0x24, CR1 = 0x28, CR2 = 0x2c, STATUSR = 0x40, GBPA = 0x44,
    IRQ_CTRL = 0x50, IRQ_CTRLACK = 0x54, GERROR = 0x60, GERRORN = 0x64,
    STRTAB_BASE = 0x80, STRTAB_BASE_CFG = 0x88, CMDQ_BASE = 0x90, CMDQ_PROD = 0x98, CMDQ_CONS = 0x9c,
    EVENTQ_BASE = 0xa0, EVENTQ_PROD = 0x100a8, EVENTQ_CONS = 0x100ac,
};
bool is_reg64(uint64_t off) { return off == STRTAB_BASE || off == CMDQ_BASE || off == EVENTQ_BASE; }

constexpr uint32_t kSmmuEn = 1u << 0, kEventqEn = 1u << 2, kCmdqEn = 1u << 3;
constexpr uint32_t kGerrCmdq = 1u << 0, kGerrEventqAbt = 1u << 2;
constexpr uint32_t kGerrorIrqen = 1u << 0, kEventqIrqen = 1u << 2;  // IRQ_CTRL
constexpr uint32_t kRecInvSid = 1u << 1;                  // CR2
constexpr uint32_t kOvflg = 1u << 31;                     // EVENTQ_PROD.OVFLG / EVENTQ_CONS.OVACKFLG
constexpr uint32_t kConsErr = static_cast<uint32_t>(mask(30, 24));
constexpr uint32_t kCerrorIll = 1, kCerrorAbt = 2;

unsigned oas_bits(uint64_t enc) {
    static constexpr unsigned kBits[] = {32, 36, 40, 42, 44, 48, 52};
    return enc < 7 ? kBits[enc] : 0;
}

// A queue pointer: index in the low log2 bits, wrap flag just above.
uint32_t qmask(unsigned log2) { return (2u << log2) - 1; }

}  // namespace

SmmuV3Model::SmmuV3Model(PhysMem& mem, const Features& f) : mem_(mem), f_(f) {}

void SmmuV3Model::violation(const std::string& what) { violations_.push_back(what); }

uint64_t SmmuV3Model::commands_total() const {
    uint64_t n = 0;
    for (uint64_t c : cmd_count_) n += c;
    return n;
}

// ---------------------------------------------------------------- registers

uint32_t SmmuV3Model::reg32(uint64_t off) {
    switch (off) {
    case IDR0:
        return static_cast<uint32_t>((f_.stage2 ? bit(0) : 0) | (f_.stage1 ? bit(1) : 0) |
                                     (f_.aarch64_tables ? 2u << 2 : 1u << 2) | (f_.coherent ? bit(4) : 0) |
                                     (f_.hyp ? bit(9) : 0) | bit(12) /* ASID16 */ | bit(18) /* VMID16 */ |
                                     2u << 21 /* TTENDIAN: little */ | 1u << 24 /* no stalls */ | bit(26) |
                                     (f_.two_level ? 1u << 27 : 0));
    case IDR1: return f_.sid_bits | f_.evtq_log2 << 16 | f_.cmdq_log2 << 21;
    case IDR3: return f_.ril ? static_cast<uint32_t>(bit(10)) : 0;
    case IDR5: return static_cast<uint32_t>(f_.oas_enc | (f_.gran4k ? bit(4) : 0) | bit(6) /* 64K, never used */);
    case IDR2: case IDR4: case IIDR: case AIDR: case STATUSR: return 0;
    case GBPA: return f_.abort_when_disabled ? static_cast<uint32_t>(bit(20)) : 0;
    case CR0: return cr0_;
    case CR0ACK: return cr0ack_;
    case CR1: return cr1_;
    case CR2: return cr2_;
    case IRQ_CTRL: case IRQ_CTRLACK: return irq_ctrl_;
    case GERROR: return gerror_;
    case GERRORN: return gerrorn_;
    case STRTAB_BASE_CFG: return strtab_cfg_;
    case CMDQ_PROD: return cmdq_prod_;
    case CMDQ_CONS: return cmdq_cons_;
    case EVENTQ_PROD: return evtq_prod_;
    case EVENTQ_CONS: return evtq_cons_;
    default:
        violation("read of unmodelled or reserved register offset " + std::to_string(off));
        return 0;
    }
}

uint64_t SmmuV3Model::read(uint64_t off, unsigned bytes) {
    std::lock_guard<std::recursive_mutex> g(m_);
    accesses_++;
    uint64_t r64 = off & ~uint64_t{7};
    uint64_t* regs64[] = {&strtab_base_, &cmdq_base_, &evtq_base_};
    uint64_t offs64[] = {STRTAB_BASE, CMDQ_BASE, EVENTQ_BASE};
    for (unsigned i = 0; i < 3; i++)
        if (r64 == offs64[i]) {
            if (bytes == 8 && off == r64) return *regs64[i];
            if (bytes == 4) return (*regs64[i] >> (off == r64 ? 0 : 32)) & 0xffffffffu;
        }
    if (bytes != 4 || is_reg64(r64)) {
        violation("read of " + std::to_string(bytes) + " bytes at offset " + std::to_string(off));
        return 0;
    }
    return reg32(off);
}

bool SmmuV3Model::queue_writable(uint32_t enable_bit, const char* name) {
    if (!((cr0_ | cr0ack_) & enable_bit)) return true;
    violation(std::string(name) + " written while enabled");
    return false;
}

void SmmuV3Model::write(uint64_t off, uint64_t v, unsigned bytes) {
    std::lock_guard<std::recursive_mutex> g(m_);
    accesses_++;
    uint64_t r64 = off & ~uint64_t{7};
    if (is_reg64(r64)) {
        if (!(bytes == 8 && off == r64) && bytes != 4) {
            violation("bad access width to a 64-bit register");
            return;
        }
        uint32_t enable = r64 == STRTAB_BASE ? kSmmuEn : r64 == CMDQ_BASE ? kCmdqEn : kEventqEn;
        if (!queue_writable(enable, r64 == STRTAB_BASE ? "STRTAB_BASE" : r64 == CMDQ_BASE ? "CMDQ_BASE" : "EVENTQ_BASE"))
            return;
        uint64_t& reg = r64 == STRTAB_BASE ? strtab_base_ : r64 == CMDQ_BASE ? cmdq_base_ : evtq_base_;
        if (bytes == 8) reg = v;
        else if (off == r64) reg = (reg & mask(63, 32)) | (v & 0xffffffffu);
        else reg = (reg & 0xffffffffu) | (v << 32);
        return;
    }
    if (bytes != 4) {
        violation("write of " + std::to_string(bytes) + " bytes at offset " + std::to_string(off));
        return;
    }
    write32(off, static_cast<uint32_t>(v));
}

void SmmuV3Model::write32(uint64_t off, uint32_t v) {
    switch (off) {
    case CR0: update_cr0(v); break;
    case CR1: cr1_ = v; break;
    case CR2: cr2_ = v; break;
    case IRQ_CTRL: irq_ctrl_ = v; break;
    case GERRORN: {
        // Software may only toggle the bits that are active (GERROR != GERRORN).
        uint32_t active = gerror_ ^ gerrorn_;
        if ((v ^ gerrorn_) & ~active) violation("GERRORN toggled a bit that was not active");
        gerrorn_ = v;
        if (!((gerror_ ^ gerrorn_) & kGerrCmdq)) consume_commands();  // acknowledged: resume at CONS
        break;
    }
    case STRTAB_BASE_CFG:
        if (queue_writable(kSmmuEn, "STRTAB_BASE_CFG")) strtab_cfg_ = v;
        break;
    case CMDQ_PROD:
        cmdq_prod_ = v;
        consume_commands();
        break;
    case CMDQ_CONS:
        if (queue_writable(kCmdqEn, "CMDQ_CONS")) cmdq_cons_ = v;
        break;
    case EVENTQ_PROD:
        if (queue_writable(kEventqEn, "EVENTQ_PROD")) evtq_prod_ = v;
        break;
    case EVENTQ_CONS: evtq_cons_ = v; break;
    default: violation("write to unmodelled or read-only register offset " + std::to_string(off)); break;
    }
}

void SmmuV3Model::update_cr0(uint32_t v) {
    uint32_t rising = v & ~cr0_;
    cr0_ = v;
    if (!cr0ack_frozen_) cr0ack_ = v;
    auto check_queue = [&](uint64_t base, unsigned max_log2, unsigned entry, const char* name) {
        unsigned log2 = static_cast<unsigned>(base & 0x1f);
        if (log2 > max_log2) violation(std::string(name) + " LOG2SIZE above the ID register's maximum");
        uint64_t bytes = std::max<uint64_t>(32, uint64_t{entry} << std::min(log2, max_log2));
        if ((base & mask(51, 5)) & (bytes - 1)) violation(std::string(name) + " base not aligned to the queue size");
    };
    if (rising & kCmdqEn) check_queue(cmdq_base_, f_.cmdq_log2, 16, "CMDQ");
    if (rising & kEventqEn) check_queue(evtq_base_, f_.evtq_log2, 32, "EVENTQ");
    if (rising & kSmmuEn) {
        unsigned log2 = static_cast<unsigned>(get(strtab_cfg_, 5, 0)), split = static_cast<unsigned>(get(strtab_cfg_, 10, 6));
        uint64_t fmt = get(strtab_cfg_, 17, 16), base = strtab_base_ & mask(51, 6);
        if (log2 > f_.sid_bits) violation("STRTAB LOG2SIZE above SIDSIZE");
        uint64_t bytes = 64ull << log2;
        if (fmt == 1) {
            if (!f_.two_level) violation("2-level stream table on an SMMU without ST_LEVEL");
            if (split != 6 && split != 8 && split != 10) violation("STRTAB SPLIT not 6, 8 or 10");
            bytes = std::max<uint64_t>(64, 8ull << (log2 > split ? log2 - split : 0));
        } else if (fmt != 0) {
            violation("reserved stream table format");
        }
        if (base & (bytes - 1)) violation("stream table base not aligned to its size");
    }
    if (rising & kCmdqEn) consume_commands();
}

// ---------------------------------------------------------------- command queue

void SmmuV3Model::consume_commands() {
    if (!(cr0_ & kCmdqEn) || ((gerror_ ^ gerrorn_) & kGerrCmdq) || cmdq_stalled_) return;
    unsigned log2 = std::min(static_cast<unsigned>(cmdq_base_ & 0x1f), f_.cmdq_log2);
    uint32_t m = qmask(log2);
    uint64_t base = cmdq_base_ & mask(51, 5) & ~(std::max<uint64_t>(32, 16ull << log2) - 1);
    while ((cmdq_cons_ & m) != (cmdq_prod_ & m)) {
        uint64_t cmd[2];
        uint32_t err = 0;
        if (!mem_.read(base + (cmdq_cons_ & (m >> 1)) * 16, cmd, sizeof cmd)) err = kCerrorAbt;
        else if (!execute(cmd)) err = kCerrorIll;
        if (err) {
            // Stop at the offending command; CONS keeps pointing at it until GERRORN acknowledges.
            cmdq_cons_ = (cmdq_cons_ & ~kConsErr) | err << 24;
            set_gerror(kGerrCmdq);
            return;
        }
        cmdq_cons_ = (cmdq_cons_ & ~m) | ((cmdq_cons_ + 1) & m);
    }
}

bool SmmuV3Model::execute(const uint64_t (&cmd)[2]) {
    uint8_t op = static_cast<uint8_t>(cmd[0] & 0xff);
    cmd_count_[op]++;
    uint32_t sid = static_cast<uint32_t>(get(cmd[0], 63, 32));
    auto vmid = static_cast<uint16_t>(get(cmd[0], 47, 32));
    auto asid = static_cast<uint16_t>(get(cmd[0], 63, 48));
    switch (op) {
    case 0x01: case 0x02: return true;  // PREFETCH_CONFIG / PREFETCH_ADDR: hints
    case 0x03: cfgi_stream(sid, (cmd[1] & 1) != 0); return true;  // CFGI_STE
    case 0x04: {  // CFGI_STE_RANGE: 2^(Range + 1) streams from SID aligned down; Range 31 is all
        unsigned range = static_cast<unsigned>(cmd[1] & 0x1f);
        uint64_t n = uint64_t{2} << range, first = sid & ~(n - 1);
        for (auto* c : {&ste_cache_, &cd_cache_})
            for (auto it = c->begin(); it != c->end();) it = it->first >= first && it->first - first < n ? c->erase(it) : std::next(it);
        l1_cache_.clear();  // L1 descriptors covering the range: simplest to drop them all
        return true;
    }
    case 0x05: case 0x06: cd_cache_.erase(sid); return true;  // CFGI_CD (SSID 0) / CFGI_CD_ALL
    case 0x10: tlbi(false, false, true, vmid, false, 0, false, cmd); return true;  // TLBI_NH_ALL
    case 0x11: tlbi(false, false, true, vmid, true, asid, false, cmd); return true;  // TLBI_NH_ASID
    case 0x12: tlbi(false, false, true, vmid, true, asid, true, cmd); return true;   // TLBI_NH_VA
    case 0x13: tlbi(false, false, true, vmid, false, 0, true, cmd); return true;     // TLBI_NH_VAA
    case 0x20: case 0x21: case 0x22: case 0x23: return f_.hyp;  // TLBI_EL2_*: nothing cached for EL2 here
    case 0x28: tlbi(false, true, true, vmid, false, 0, false, cmd); return true;     // TLBI_S12_VMALL
    case 0x2a: tlbi(true, false, true, vmid, false, 0, true, cmd); return true;      // TLBI_S2_IPA
    case 0x30: tlb_.clear(); return true;                                            // TLBI_NSNH_ALL
    case 0x46: return get(cmd[0], 13, 12) != 3;  // CMD_SYNC; CS = 0b11 is reserved
    default: return false;
    }
}

// CFGI_STE: the STE and the CDs fetched through it (as QEMU and Linux's reattach path assume);
// Leaf = 0 also the L1 descriptor that locates it.
void SmmuV3Model::cfgi_stream(uint32_t sid, bool leaf) {
    ste_cache_.erase(sid);
    cd_cache_.erase(sid);
    if (!leaf) l1_cache_.erase(sid >> get(strtab_cfg_, 10, 6));
}

// Drops IOTLB entries: of stage 2 (s2) or stage 1, or of both stages (any_stage); of one VMID
// (ignored without stage 2); of one ASID (global entries stay unless it is a by-address command);
// of one address or, with range invalidation, of (NUM + 1) << SCALE granules.
void SmmuV3Model::tlbi(bool s2, bool any_stage, bool match_vmid, uint16_t vmid, bool match_asid, uint16_t asid,
                       bool by_addr, const uint64_t (&cmd)[2]) {
    uint64_t lo = 0, len = 1;
    if (by_addr) {
        lo = cmd[1] & (s2 ? mask(51, 12) : mask(63, 12));
        uint64_t tg = get(cmd[1], 11, 10);
        if (f_.ril && tg != 0) {
            uint64_t granule = uint64_t{1} << (12 + 2 * (tg - 1));  // 4K, 16K, 64K
            len = (get(cmd[0], 16, 12) + 1) << get(cmd[0], 24, 20);
            len *= granule;
        }
    }
    tlb_.erase(std::remove_if(tlb_.begin(), tlb_.end(),
                              [&](const TlbEntry& e) {
                                  if (!any_stage && e.s2 != s2) return false;
                                  if (match_vmid && f_.stage2 && e.vmid != vmid) return false;
                                  if (match_asid && !e.s2 && e.asid != asid && !(by_addr && e.global)) return false;
                                  if (match_asid && !by_addr && e.global) return false;
                                  if (by_addr && (e.base + e.size <= lo || lo + len <= e.base)) return false;
                                  return true;
                              }),
               tlb_.end());
}

// ---------------------------------------------------------------- event queue

void SmmuV3Model::record(uint8_t type, uint32_t sid, uint64_t addr, bool write, bool stage2) {
    Event e{type, sid, addr, write, stage2, false};
    unsigned log2 = std::min(static_cast<unsigned>(evtq_base_ & 0x1f), f_.evtq_log2);
    uint32_t m = qmask(log2), prod = evtq_prod_ & m, cons = evtq_cons_ & m;
    if (!(cr0_ & kEventqEn)) {
        events_lost_++;
    } else if ((prod ^ cons) == (1u << log2)) {
        // Full: the record is lost; enter the overflow condition unless already in it.
        bool entering = (evtq_prod_ & kOvflg) == (evtq_cons_ & kOvflg);
        if (entering) evtq_prod_ ^= kOvflg;
        events_lost_++;
        if (entering) {
            events_.push_back(e);
            signal_eventq();
            return;
        }
    } else {
        // Configuration errors (C_BAD_*, fetch aborts) carry the stream only; walk aborts and
        // translation faults the input address, direction, stage and class (IN: the input access).
        bool xlat = type >= smmu_evt::kWalkEabt;
        uint64_t rec[4] = {type | uint64_t{sid} << 32,
                           xlat ? (write ? 0 : bit(35)) | (stage2 ? bit(39) : 0) | uint64_t{2} << 40 : 0,
                           xlat ? addr : 0, xlat && stage2 ? addr & mask(51, 12) : 0};
        uint64_t base = evtq_base_ & mask(51, 5) & ~(std::max<uint64_t>(32, 32ull << log2) - 1);
        if (mem_.write(base + (prod & (m >> 1)) * 32, rec, sizeof rec)) {
            evtq_prod_ = (evtq_prod_ & kOvflg) | ((prod + 1) & m);
            e.queued = true;
        } else {
            events_lost_++;
            events_.push_back(e);
            set_gerror(kGerrEventqAbt);
            return;
        }
    }
    // Recorded before the interrupt: its handler may read events() and drain the queue at once.
    events_.push_back(e);
    if (e.queued) signal_eventq();
}

// ---------------------------------------------------------------- interrupts

// A GERROR bit is active while it differs from GERRORN; it only becomes active (and signals)
// when it was not already.
void SmmuV3Model::set_gerror(uint32_t bitv) {
    if ((gerror_ ^ gerrorn_) & bitv) return;
    gerror_ ^= bitv;
    signal_gerror();
}

void SmmuV3Model::signal_eventq() {
    if (!(irq_ctrl_ & kEventqIrqen)) return;
    eventq_irqs_++;
    if (irqc_ && eventq_intid_) irqc_->raise(eventq_intid_);
}

void SmmuV3Model::signal_gerror() {
    if (!(irq_ctrl_ & kGerrorIrqen)) return;
    gerror_irqs_++;
    if (irqc_ && gerror_intid_) irqc_->raise(gerror_intid_);
}

// ---------------------------------------------------------------- translation

// Follows STRTAB_BASE(_CFG) to the STE of `sid`; level-1 descriptors come from the cache when
// `use_cache` (invalid ones too: only a CFGI with Leaf = 0 makes the SMMU read them again).
bool SmmuV3Model::locate_ste(uint32_t sid, bool use_cache, uint64_t& pa, uint8_t& event) {
    event = smmu_evt::kBadStreamId;
    unsigned log2 = std::min(static_cast<unsigned>(get(strtab_cfg_, 5, 0)), f_.sid_bits);
    unsigned split = static_cast<unsigned>(get(strtab_cfg_, 10, 6));
    uint64_t fmt = get(strtab_cfg_, 17, 16), base = strtab_base_ & mask(51, 6);
    if (sid >> log2 || fmt > 1) return false;
    if (fmt == 0) {
        pa = base + uint64_t{sid} * 64;
        return true;
    }
    uint32_t l1i = sid >> split, l2i = sid & ((1u << split) - 1);
    uint64_t l1 = 0;
    auto it = l1_cache_.find(l1i);
    if (use_cache && it != l1_cache_.end()) {
        l1 = it->second;
    } else {
        if (!mem_.read64(base + uint64_t{l1i} * 8, l1)) {
            event = smmu_evt::kSteFetch;
            return false;
        }
        if (use_cache) l1_cache_[l1i] = l1;
    }
    // Span 0 (or one beyond SPLIT + 1) is an invalid descriptor; ids past the span have no STE.
    uint64_t span = get(l1, 4, 0);
    if (span == 0 || span > split + 1 || (l2i >> (span - 1))) return false;
    pa = (l1 & mask(51, 6)) + uint64_t{l2i} * 64;
    return true;
}

bool SmmuV3Model::fetch_ste(uint32_t sid, std::array<uint64_t, 8>& ste, uint8_t& event) {
    auto it = ste_cache_.find(sid);
    if (it != ste_cache_.end()) {
        ste = it->second;
        return true;
    }
    uint64_t pa = 0;
    if (!locate_ste(sid, true, pa, event)) return false;
    if (!mem_.read(pa, ste.data(), 64)) {
        event = smmu_evt::kSteFetch;
        return false;
    }
    ste_cache_[sid] = ste;  // invalid STEs too
    return true;
}

bool SmmuV3Model::ste_address(uint32_t sid, uint64_t& pa) {
    uint8_t ev = 0;
    return locate_ste(sid, false, pa, ev);
}

bool SmmuV3Model::walk_codes(uint32_t sid, vmsa::WalkCodes& out) {
    uint64_t pa = 0;
    std::array<uint64_t, 8> ste{}, cd{};
    if (!ste_address(sid, pa) || !mem_.read(pa, ste.data(), 64) || !(ste[0] & 1)) return false;
    uint64_t config = get(ste[0], 3, 1);
    if (config == 6) {
        out = vmsa::WalkCodes{static_cast<unsigned>(get(ste[2], 41, 40)), static_cast<unsigned>(get(ste[2], 43, 42)),
                              static_cast<unsigned>(get(ste[2], 45, 44))};
        return true;
    }
    if (config != 5 || !mem_.read(ste[0] & mask(51, 6), cd.data(), 64)) return false;
    out = vmsa::tcr0_walk(cd[0]);
    return true;
}

SmmuV3Model::StreamCfg SmmuV3Model::stream_config(uint32_t sid) {
    StreamCfg c{};
    std::array<uint64_t, 8> ste{};
    uint8_t ev = 0;
    if (!fetch_ste(sid, ste, ev)) {
        c.kind = ev == smmu_evt::kBadStreamId ? StreamCfg::bad_stream : StreamCfg::fetch_abort;
        c.fetch_event = ev;
        return c;
    }
    unsigned smmu_oas = oas_bits(f_.oas_enc);
    auto bad = [&](StreamCfg::Kind k, const char* why) {
        if (why) violation(std::string("stream ") + std::to_string(sid) + ": " + why);
        c.kind = k;
        return c;
    };
    if (!(ste[0] & 1)) return bad(StreamCfg::bad_ste, nullptr);
    uint64_t config = get(ste[0], 3, 1);
    if (config == 0) return c.kind = StreamCfg::abort, c;
    if (config == 4) return c.kind = StreamCfg::bypass, c;
    if (config == 7) return bad(StreamCfg::bad_ste, "nested STE (not modelled)");
    if ((config == 5 && !f_.stage1) || (config == 6 && !f_.stage2) || config < 4)
        return bad(StreamCfg::bad_ste, nullptr);  // a stage the SMMU does not have, or a reserved Config
    c.kind = StreamCfg::translate;
    if (config == 6) {
        uint64_t s2 = ste[2];
        c.vmid = static_cast<uint16_t>(get(s2, 15, 0));
        c.record = s2 & bit(58);  // S2R
        if (!(s2 & bit(51)) || get(s2, 47, 46) != 0 || (s2 & bit(52)) || get(s2, 50, 48) > 6)
            return bad(StreamCfg::bad_ste, "S2AA64/S2TG/S2ENDI/S2PS not AArch64, 4K, little-endian, valid");
        c.regime = vmsa::Regime{vmsa::Stage::s2, ste[3] & mask(51, 4), 64 - static_cast<unsigned>(get(s2, 37, 32)),
                                std::min(oas_bits(get(s2, 50, 48)), smmu_oas), vmsa::s2_level_from_sl0(static_cast<unsigned>(get(s2, 39, 38)))};
        if (const char* why = vmsa::check(c.regime)) return bad(StreamCfg::bad_ste, why);
        return c;
    }
    // Stage 1: one CD (S1Fmt linear, S1CDMax 0), fetched once and cached with the STE.
    if (get(ste[0], 5, 4) != 0 || get(ste[0], 63, 59) != 0) return bad(StreamCfg::bad_ste, "substreams (not modelled)");
    c.vmid = f_.stage2 ? static_cast<uint16_t>(get(ste[2], 15, 0)) : 0;
    std::array<uint64_t, 8> cd{};
    auto it = cd_cache_.find(sid);
    if (it != cd_cache_.end()) {
        cd = it->second;
    } else {
        if (!mem_.read(ste[0] & mask(51, 6), cd.data(), 64)) {
            c.kind = StreamCfg::fetch_abort;
            c.fetch_event = smmu_evt::kCdFetch;
            return c;
        }
        cd_cache_[sid] = cd;
    }
    uint64_t d = cd[0];
    if (!(d & bit(31))) return bad(StreamCfg::bad_cd, nullptr);
    if (!(d & bit(41)) || !f_.aarch64_tables) return bad(StreamCfg::bad_cd, "CD.AA64 clear (AArch32 tables not modelled)");
    if (get(d, 7, 6) != 0 || !f_.gran4k) return bad(StreamCfg::bad_cd, "CD.TG0 not a 4 KiB granule the SMMU has");
    if (d & bit(15)) return bad(StreamCfg::bad_cd, "CD.ENDI set on a little-endian SMMU");
    if (get(d, 34, 32) > 6) return bad(StreamCfg::bad_cd, "CD.IPS reserved");
    c.epd0 = d & bit(14);
    c.record = d & bit(45);
    c.asid = static_cast<uint16_t>(get(d, 63, 48));
    c.regime = vmsa::Regime{vmsa::Stage::s1, cd[1] & mask(51, 4), 64 - static_cast<unsigned>(get(d, 5, 0)),
                            std::min(oas_bits(get(d, 34, 32)), smmu_oas), -1};
    if (const char* why = vmsa::check(c.regime)) return bad(StreamCfg::bad_cd, why);
    return c;
}

SmmuV3Model::Xlate SmmuV3Model::translate(uint32_t sid, uint64_t iova, bool write) {
    Xlate x;
    if (!(cr0_ & kSmmuEn)) {
        x.ok = x.bypass = !f_.abort_when_disabled;
        x.pa = iova;
        return x;
    }
    StreamCfg c = stream_config(sid);
    auto fail = [&](uint8_t type, bool report, bool s2) {
        if (report) {
            record(type, sid, iova, write, s2);
            x.event = type;
        }
        return x;
    };
    switch (c.kind) {
    case StreamCfg::bad_stream: return fail(smmu_evt::kBadStreamId, (cr2_ & kRecInvSid) != 0, false);
    case StreamCfg::fetch_abort: return fail(c.fetch_event, true, false);
    case StreamCfg::bad_ste: return fail(smmu_evt::kBadSte, true, false);
    case StreamCfg::bad_cd: return fail(smmu_evt::kBadCd, true, false);
    case StreamCfg::abort: return x;  // silently: no event
    case StreamCfg::bypass:
        x.ok = x.bypass = true;
        x.pa = iova;
        return x;
    case StreamCfg::translate: break;
    }
    bool s2 = c.regime.stage == vmsa::Stage::s2;
    vmsa::Access acc{write, false, false};
    for (const TlbEntry& e : tlb_) {
        if (e.s2 != s2 || (f_.stage2 && e.vmid != c.vmid) || (!s2 && !e.global && e.asid != c.asid)) continue;
        if (iova < e.base || iova - e.base >= e.size) continue;
        tlb_hits_++;
        if (!vmsa::allows(c.regime.stage, e.perms, acc)) return fail(smmu_evt::kPermission, c.record, s2);
        x.ok = true;
        x.pa = e.out + (iova - e.base);
        return x;
    }
    if (c.epd0) return fail(smmu_evt::kTranslation, c.record, s2);
    walks_++;
    vmsa::Walk w = vmsa::walk(mem_, c.regime, iova);
    switch (w.fault) {
    case vmsa::Fault::none: break;
    case vmsa::Fault::translation: return fail(smmu_evt::kTranslation, c.record, s2);
    case vmsa::Fault::address_size: return fail(smmu_evt::kAddrSize, c.record, s2);
    case vmsa::Fault::access_flag: return fail(smmu_evt::kAccess, c.record, s2);
    case vmsa::Fault::permission: return fail(smmu_evt::kPermission, c.record, s2);
    case vmsa::Fault::external_abort: return fail(smmu_evt::kWalkEabt, true, s2);
    }
    // Translations are cached whatever the access turns out to be allowed.
    if (tlb_.size() >= std::max<size_t>(f_.tlb_entries, 1)) tlb_.pop_front();
    tlb_.push_back(TlbEntry{s2, c.vmid, c.asid, !s2 && !w.perms.not_global, w.base_in(iova), w.size, w.out - (iova - w.base_in(iova)), w.perms});
    if (!vmsa::allows(c.regime.stage, w.perms, acc)) return fail(smmu_evt::kPermission, c.record, s2);
    x.ok = true;
    x.pa = w.out;
    return x;
}

SmmuV3Model::Dma SmmuV3Model::dma(uint32_t sid, uint64_t iova, uint8_t* buf, size_t len, bool write) {
    std::lock_guard<std::recursive_mutex> g(m_);
    DmaRun<Xlate> r = dma_pages<Xlate>(mem_, iova, buf, len, write, [&](uint64_t a) { return translate(sid, a, write); });
    Dma d;
    d.done = r.done;
    d.ok = r.complete;
    if (r.first.ok) {
        d.pa = r.first.pa;
        d.bypassed = r.first.bypass;
    }
    if (r.faulted) d.event = r.failed.event;
    return d;
}

SmmuV3Model::Dma SmmuV3Model::dma_write(uint32_t sid, uint64_t iova, const void* src, size_t len) {
    return dma(sid, iova, static_cast<uint8_t*>(const_cast<void*>(src)), len, true);
}

SmmuV3Model::Dma SmmuV3Model::dma_read(uint32_t sid, uint64_t iova, void* dst, size_t len) {
    return dma(sid, iova, static_cast<uint8_t*>(dst), len, false);
}

}  // namespace moat::model
