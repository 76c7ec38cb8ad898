#include "tests/models/vtd_model.hpp"

#include <string.h>

#include "tests/models/dma_pages.hpp"

namespace moat::model {

namespace {
constexpr uint32_t kTe = 1u << 31, kSrtp = 1u << 30, kSfl = 1u << 29, kWbf = 1u << 27, kQie = 1u << 26, kSirtp = 1u << 24;
constexpr uint32_t kEnables = kTe | kQie | (1u << 25) | (1u << 28) | (1u << 23);
constexpr uint32_t kOneShots = kSrtp | kSfl | kWbf | kSirtp;
constexpr uint32_t kPfo = 1u << 0, kPpf = 1u << 1, kIqe = 1u << 4, kW1c = 0x7d;
constexpr uint64_t kF = uint64_t{1} << 63, kT = uint64_t{1} << 62;
constexpr uint64_t kIcc = uint64_t{1} << 63, kIvt = uint64_t{1} << 63;
uint64_t mask_bits(unsigned hi, unsigned lo) { return ((hi == 63 ? ~uint64_t{0} : (uint64_t{1} << (hi + 1)) - 1) >> lo) << lo; }
}  // namespace

VtdModel::VtdModel(PhysMem& mem, const Features& f) : mem_(mem), f_(f), frcd_(f.nfr) {
    cap_ = uint64_t{f.nd & 7} | (f.rwbf ? 1u << 4 : 0) | (f.cm ? 1u << 7 : 0) | uint64_t{f.sagaw & 0x1f} << 8 |
           uint64_t{(f.mgaw - 1) & 0x3f} << 16 | uint64_t{kFro} << 24 | uint64_t{f.sllps & 0xf} << 34 |
           (f.psi ? uint64_t{1} << 39 : 0) | uint64_t{(f.nfr - 1) & 0xff} << 40 | uint64_t{f.mamv & 0x3f} << 48;
    ecap_ = (f.coherent ? 1u : 0) | (f.qi ? 2u : 0) | (f.pt ? 1u << 6 : 0) | (f.sc ? 1u << 7 : 0) | uint64_t{kIro} << 8 |
            (f.smts ? uint64_t{1} << 43 : 0) | (f.slts ? uint64_t{1} << 46 : 0) | (f.smpwc ? uint64_t{1} << 48 : 0);
}

void VtdModel::violation(const std::string& what) { violations_.push_back(what); }

uint64_t VtdModel::read(uint64_t off, unsigned bytes) {
    auto frcd_index = [&](uint64_t o) { return (o - kFro * 16) / 16; };
    uint64_t v = 0;
    const uint64_t base = off & ~uint64_t{7};
    if (base >= kFro * 16 && base < kFro * 16 + 16 * f_.nfr) {
        const Frcd& r = frcd_[frcd_index(base)];
        v = (base - kFro * 16) % 16 ? r.hi : r.lo;
    } else {
        switch (base) {
        case 0x00: v = 0x10; break;  // VER 1.0
        case 0x08: v = cap_; break;
        case 0x10: v = ecap_; break;
        case 0x18: v = uint64_t{gsts_} << 32; break;  // GCMD reads 0
        case 0x20: v = rtaddr_; break;
        case 0x28: v = ccmd_; break;
        case 0x30: {
            uint32_t fs = fsts_;
            unsigned first = 0;
            bool any = false;
            for (unsigned k = 0; k < f_.nfr && !any; k++) {
                unsigned i = (next_frcd_ + k) % f_.nfr;
                if (frcd_[i].hi & kF) any = true, first = i;
            }
            if (any) fs |= kPpf | first << 8;
            v = uint64_t{fs} << 32;
            break;
        }
        case 0x38: v = fectl_; break;
        case 0x80: v = iqh_; break;
        case 0x88: v = iqt_; break;
        case 0x90: v = iqa_; break;
        case 0x98: v = uint64_t{ics_} << 32; break;
        case kIro * 16: v = iva_; break;
        case kIro * 16 + 8: v = iotlb_; break;
        default: break;
        }
    }
    if (bytes == 4) return (v >> ((off & 4) * 8)) & 0xffffffffu;
    if (off & 7) violation("64-bit read at an offset that is not 8-aligned");
    return v;
}

void VtdModel::write(uint64_t off, uint64_t v, unsigned bytes) {
    auto need = [&](unsigned b, const char* reg) {
        if (bytes != b) violation(std::string(reg) + " written with the wrong width");
    };
    if (off >= kFro * 16 && off < kFro * 16 + 16 * f_.nfr) {
        Frcd& r = frcd_[(off - kFro * 16) / 16];
        const unsigned in = static_cast<unsigned>((off - kFro * 16) % 16);
        if ((in == 12 && bytes == 4 && (v & (1u << 31))) || (in == 8 && bytes == 8 && (v & kF))) r.hi &= ~kF;
        return;
    }
    switch (off) {
    case 0x18: need(4, "GCMD"); gcmd(static_cast<uint32_t>(v)); break;
    case 0x20:
        need(8, "RTADDR");
        if (gsts_ & kTe) violation("RTADDR changed while translation is enabled");
        rtaddr_ = v;
        break;
    case 0x28:
        need(8, "CCMD");
        ccmd_ = v;
        if (v & kIcc) {
            if (gsts_ & kQie) violation("CCMD used while queued invalidation is enabled");
            counts_.register_invalidations++;
            unsigned gran = static_cast<unsigned>((v >> 61) & 3);
            inv_context(gran, static_cast<uint16_t>(v & 0xffff), static_cast<uint16_t>((v >> 16) & 0xffff));
            ccmd_ = (v & ~kIcc & ~(uint64_t{3} << 59)) | uint64_t{gran} << 59;
        }
        break;
    case 0x34: need(4, "FSTS"); fsts_ &= ~(static_cast<uint32_t>(v) & kW1c); if (!(fsts_ & kIqe)) run_queue(); break;
    case 0x38: need(4, "FECTL"); fectl_ = static_cast<uint32_t>(v) & (1u << 31); break;
    case 0x88: {
        need(8, "IQT");
        const bool dw = iqa_ & (1u << 11);
        if (v & (dw ? 0x1f : 0xf)) violation("IQT not on a descriptor boundary");
        iqt_ = v & 0x7fff0;
        run_queue();
        break;
    }
    case 0x90:
        need(8, "IQA");
        if (gsts_ & kQie) violation("IQA changed while queued invalidation is enabled");
        if ((v & (1u << 11)) && !f_.smts) violation("IQA.DW set on a unit without scalable mode");
        iqa_ = v;
        break;
    case 0x9c: need(4, "ICS"); ics_ &= ~static_cast<uint32_t>(v & 1); break;
    case kIro * 16: need(8, "IVA"); iva_ = v; break;
    case kIro * 16 + 8: {
        need(8, "IOTLB");
        iotlb_ = v;
        if (v & kIvt) {
            if (gsts_ & kQie) violation("IOTLB register used while queued invalidation is enabled");
            counts_.register_invalidations++;
            unsigned gran = static_cast<unsigned>((v >> 60) & 3);
            inv_iotlb(gran, static_cast<uint16_t>((v >> 32) & 0xffff), iva_ & ~uint64_t{0xfff}, static_cast<unsigned>(iva_ & 0x3f));
            iotlb_ = (v & ~kIvt & ~(uint64_t{3} << 57)) | uint64_t{gran} << 57;
        }
        break;
    }
    default: violation("write to an unmodelled register offset " + std::to_string(off)); break;
    }
}

void VtdModel::gcmd(uint32_t v) {
    if (gsts_frozen_) return;
    const uint32_t changed = (v ^ gsts_) & kEnables;
    const unsigned commands = static_cast<unsigned>(__builtin_popcount(changed) + __builtin_popcount(v & kOneShots));
    if (commands > 1) violation("GCMD write carries more than one command");
    if (v & kSrtp) {
        rtaddr_active_ = rtaddr_;
        gsts_ |= kSrtp;  // RTPS
    }
    if (v & kWbf) counts_.wbf++;
    if (changed & kTe) {
        if ((v & kTe) && !(gsts_ & kSrtp)) violation("translation enabled before a root table pointer was set");
        gsts_ = (gsts_ & ~kTe) | (v & kTe);
    }
    if (changed & kQie) {
        if (v & kQie) {
            if (!f_.qi) violation("QIE set on a unit without queued invalidation");
            if (iqt_ != 0) violation("queued invalidation enabled with IQT not 0");
            iqh_ = 0;
        }
        gsts_ = (gsts_ & ~kQie) | (v & kQie);
    }
}

// ---------------------------------------------------------------- invalidation

void VtdModel::run_queue() {
    if (!(gsts_ & kQie) || queue_stalled_ || (fsts_ & kIqe)) return;
    const bool dw = iqa_ & (1u << 11);
    const uint64_t size = dw ? 32 : 16, qbytes = uint64_t{4096} << (iqa_ & 7), base = iqa_ & ~uint64_t{0xfff};
    if (scalable_root() && !dw) violation("128-bit descriptors with a scalable-mode root table");
    for (unsigned guard = 0; iqh_ != iqt_ && guard < qbytes / size; guard++) {
        uint64_t d[4] = {};
        for (unsigned i = 0; i < size / 8; i++) (void)rd64(base + iqh_ + 8 * i, d[i]);
        if (!execute(d)) {
            fsts_ |= kIqe;
            return;
        }
        counts_.queued++;
        iqh_ = (iqh_ + size) % qbytes;
    }
}

bool VtdModel::execute(const uint64_t (&d)[4]) {
    if (refuse_next_) return refuse_next_ = false;
    if (d[2] || d[3]) return false;
    const uint64_t lo = d[0], hi = d[1];
    const unsigned type = static_cast<unsigned>(lo & 0xf) | static_cast<unsigned>((lo >> 9) & 7) << 4;
    const unsigned gran = static_cast<unsigned>((lo >> 4) & 3);
    const uint16_t did = static_cast<uint16_t>((lo >> 16) & 0xffff);
    switch (type) {
    case 1:  // context-cache
        if ((lo & (mask_bits(15, 6) | mask_bits(63, 50))) || hi || gran == 0) return false;
        inv_context(gran, did, static_cast<uint16_t>((lo >> 32) & 0xffff));
        return true;
    case 2:  // IOTLB
        if ((lo & (mask_bits(15, 8) | mask_bits(63, 32))) || (hi & mask_bits(11, 7)) || gran == 0) return false;
        inv_iotlb(gran, did, hi & ~uint64_t{0xfff}, static_cast<unsigned>(hi & 0x3f));
        return true;
    case 5:  // wait
        if (lo & mask_bits(31, 7)) return false;
        counts_.waits++;
        if (lo & (1u << 5)) {
            uint32_t data = static_cast<uint32_t>(lo >> 32);
            (void)mem_.write(hi & ~uint64_t{3}, &data, 4);
        }
        if (lo & (1u << 4)) ics_ |= 1;
        return true;
    case 7:  // PASID-cache
        if (!scalable_root() || (lo & (mask_bits(15, 6) | mask_bits(63, 52))) || hi) return false;
        counts_.pasid++;
        for (auto it = ctx_cache_.begin(); it != ctx_cache_.end();)
            it = gran == 3 || it->second.did == did ? ctx_cache_.erase(it) : std::next(it);
        return true;
    default: return false;
    }
}

void VtdModel::inv_context(unsigned gran, uint16_t did, uint16_t sid) {
    if (gran == 1) counts_.ctx_global++, ctx_cache_.clear();
    else if (gran == 2) {
        counts_.ctx_domain++;
        for (auto it = ctx_cache_.begin(); it != ctx_cache_.end();) it = it->second.did == did ? ctx_cache_.erase(it) : std::next(it);
    } else if (gran == 3) {
        counts_.ctx_device++;
        auto it = ctx_cache_.find(sid);
        if (it != ctx_cache_.end() && it->second.did == did) ctx_cache_.erase(it);
    }
}

void VtdModel::inv_iotlb(unsigned gran, uint16_t did, uint64_t addr, unsigned am) {
    uint64_t lo = 0, hi = ~uint64_t{0};
    if (gran == 1) counts_.iotlb_global++;
    else if (gran == 2) counts_.iotlb_domain++;
    else if (gran == 3) {
        counts_.iotlb_page++;
        if (!f_.psi) violation("page-selective invalidation on a unit without CAP.PSI");
        if (am > f_.mamv) violation("address mask above CAP.MAMV");
        lo = addr;
        hi = addr + (uint64_t{4096} << am);
        if (addr & ((uint64_t{4096} << am) - 1)) violation("page-selective address not aligned to its mask");
    } else {
        return;
    }
    for (auto it = tlb_.begin(); it != tlb_.end();) {
        const bool match = gran == 1 || (it->did == did && it->base < hi && it->base + it->size > lo);
        it = match ? tlb_.erase(it) : std::next(it);
    }
}

// ---------------------------------------------------------------- translation

VtdModel::Ctx VtdModel::context(uint16_t bdf) {
    auto it = ctx_cache_.find(bdf);
    if (it != ctx_cache_.end()) return it->second;
    Ctx c = fetch_context(bdf);
    // Caching mode: not-present entries are cached too, tagged with domain id 0.
    if (c.fault == 0 || (f_.cm && (c.fault == vtd_fr::kRootNotPresent || c.fault == vtd_fr::kContextNotPresent))) {
        if (c.fault) c.did = 0;
        ctx_cache_[bdf] = c;
    }
    return c;
}

VtdModel::Ctx VtdModel::fetch_context(uint16_t bdf) {
    Ctx c;
    const uint64_t root = rtaddr_active_ & ~uint64_t{0xfff};
    const unsigned ttm = static_cast<unsigned>((rtaddr_active_ >> 10) & 3);
    const unsigned bus = bdf >> 8, devfn = bdf & 0xff;
    const uint64_t addr_mask = mask_bits(f_.haw - 1, 12);
    uint64_t rlo = 0, rhi = 0;
    if (ttm > 1 || (ttm == 1 && !f_.smts)) return c.fault = vtd_fr::kContextInvalid, c;
    if (!rd64(root + 16 * bus, rlo) || !rd64(root + 16 * bus + 8, rhi)) return c.fault = 8, c;
    if (ttm == 0) {
        if (!(rlo & 1)) return c.fault = vtd_fr::kRootNotPresent, c;
        if ((rlo & 0xffe) || rhi || (rlo & ~addr_mask & ~uint64_t{0xfff})) return c.fault = 0xa, c;
        uint64_t lo = 0, hi = 0;
        const uint64_t at = (rlo & addr_mask) + 16 * devfn;
        if (!rd64(at, lo) || !rd64(at + 8, hi)) return c.fault = 9, c;
        if (!(lo & 1)) return c.fault = vtd_fr::kContextNotPresent, c;
        if ((lo >> 2) & 3) return c.fault = vtd_fr::kTranslationType, c;
        if ((lo & mask_bits(11, 4)) || (lo & ~addr_mask & ~uint64_t{0xfff}) || (hi & (mask_bits(63, 24) | (1u << 7))))
            return c.fault = vtd_fr::kContextReserved, c;
        const unsigned aw = static_cast<unsigned>(hi & 7);
        if (!(f_.sagaw & (1u << aw))) return c.fault = vtd_fr::kContextInvalid, c;
        c.levels = aw + 2;
        c.did = static_cast<uint16_t>((hi >> 8) & 0xffff);
        c.slpt = lo & addr_mask;
    } else {
        const uint64_t q = devfn >> 7 ? rhi : rlo;
        if (!(q & 1)) return c.fault = vtd_fr::kRootNotPresent, c;
        const uint64_t at = (q & addr_mask) + 32 * (devfn & 0x7f);
        uint64_t ce[4] = {};
        for (unsigned i = 0; i < 4; i++)
            if (!rd64(at + 8 * i, ce[i])) return c.fault = 9, c;
        if (!(ce[0] & 1)) return c.fault = vtd_fr::kContextNotPresent, c;
        if ((ce[0] & mask_bits(8, 5)) || (ce[1] & mask_bits(63, 21)) || ce[2] || ce[3]) return c.fault = vtd_fr::kContextReserved, c;
        const unsigned pdts = static_cast<unsigned>((ce[0] >> 9) & 7);
        const uint32_t rid_pasid = static_cast<uint32_t>(ce[1] & 0xfffff);
        if ((rid_pasid >> 6) >= (1u << (pdts + 7))) return c.fault = vtd_fr::kPasidInvalid, c;
        uint64_t de = 0;
        if (!rd64((ce[0] & addr_mask) + 8 * (rid_pasid >> 6), de) || !(de & 1)) return c.fault = vtd_fr::kPasidInvalid, c;
        uint64_t pe0 = 0, pe1 = 0;
        const uint64_t pat = (de & addr_mask) + 64 * (rid_pasid & 63);
        if (!rd64(pat, pe0) || !rd64(pat + 8, pe1) || !(pe0 & 1)) return c.fault = vtd_fr::kPasidInvalid, c;
        if (((pe0 >> 6) & 7) != 2) return c.fault = vtd_fr::kPasidInvalid, c;  // second-stage only is all the model walks
        if ((pe1 & (uint64_t{1} << 23)) && !f_.smpwc) return c.fault = vtd_fr::kPasidInvalid, c;
        const unsigned aw = static_cast<unsigned>((pe0 >> 2) & 7);
        if (!(f_.sagaw & (1u << aw))) return c.fault = vtd_fr::kPasidInvalid, c;
        c.levels = aw + 2;
        c.did = static_cast<uint16_t>(pe1 & 0xffff);
        c.slpt = pe0 & addr_mask;
    }
    return c;
}

VtdModel::Xlate VtdModel::translate(uint16_t bdf, uint64_t iova, bool write) {
    Xlate x;
    const Ctx c = context(bdf);
    auto fault = [&](uint8_t r) {
        x.reason = r;
        record_fault(bdf, iova, write, r);
        return x;
    };
    if (c.fault) return fault(c.fault);
    const unsigned agaw = 12 + 9 * c.levels;
    const unsigned width = agaw < f_.mgaw ? agaw : f_.mgaw;
    if (width < 64 && (iova >> width)) return fault(vtd_fr::kBeyondMgaw);
    const uint8_t denied = write ? vtd_fr::kWrite : vtd_fr::kRead;
    for (const TlbEntry& t : tlb_)
        if (t.did == c.did && iova >= t.base && iova < t.base + t.size) {
            tlb_hits_++;
            if (!t.present || (write ? !t.w : !t.r)) return fault(denied);
            x.ok = true;
            x.pa = t.out + (iova - t.base);
            return x;
        }
    walks_++;
    const uint64_t addr_mask = mask_bits(f_.haw - 1, 12);
    uint64_t table = c.slpt;
    bool r = true, w = true;
    auto remember = [&](TlbEntry e) {
        tlb_.push_back(e);
        while (tlb_.size() > f_.tlb_entries) tlb_.pop_front();
    };
    for (unsigned level = c.levels; level >= 1; level--) {
        const unsigned shift = 12 + 9 * (level - 1);
        uint64_t e = 0;
        if (!rd64(table + 8 * ((iova >> shift) & 511), e)) return fault(vtd_fr::kPagingEntry);
        if (!(e & 3)) {
            if (f_.cm) remember(TlbEntry{c.did, iova & ~uint64_t{0xfff}, 4096, 0, false, false, false});
            return fault(denied);
        }
        if (((e & (1u << 11)) && !f_.sc) || (e & (uint64_t{1} << 62)) || (e & mask_bits(51, f_.haw))) return fault(vtd_fr::kPagingReserved);
        r = r && (e & 1);
        w = w && (e & 2);
        const bool ps = level > 1 && (e & (1u << 7));
        if (ps && (level > 3 || (level == 2 && !(f_.sllps & 1)) || (level == 3 && !(f_.sllps & 2)))) return fault(vtd_fr::kPagingReserved);
        if (level == 1 || ps) {
            const uint64_t size = uint64_t{1} << shift;
            const uint64_t out = e & addr_mask;
            if (out & (size - 1)) return fault(vtd_fr::kPagingReserved);
            remember(TlbEntry{c.did, iova & ~(size - 1), size, out, r, w, true});
            if (write ? !w : !r) return fault(denied);
            x.ok = true;
            x.pa = out + (iova & (size - 1));
            return x;
        }
        table = e & addr_mask;
    }
    return fault(vtd_fr::kPagingEntry);
}

void VtdModel::record_fault(uint16_t bdf, uint64_t iova, bool write, uint8_t reason) {
    recorded_++;
    Frcd& r = frcd_[next_frcd_];
    if (r.hi & kF) {  // every record full: the fault is lost and overflow says so
        fsts_ |= kPfo;
        lost_++;
        return;
    }
    r.lo = iova & ~uint64_t{0xfff};
    r.hi = kF | (write ? 0 : kT) | uint64_t{reason} << 32 | bdf;
    next_frcd_ = (next_frcd_ + 1) % f_.nfr;
}

VtdModel::Dma VtdModel::dma(uint16_t bdf, uint64_t iova, uint8_t* buf, size_t len, bool write) {
    Dma d;
    if (!translation_enabled()) {
        d.bypassed = true;
        d.ok = write ? mem_.write(iova, buf, len) : mem_.read(iova, buf, len);
        d.done = d.ok ? len : 0;
        d.pa = iova;
        return d;
    }
    DmaRun<Xlate> run = dma_pages<Xlate>(mem_, iova, buf, len, write, [&](uint64_t a) { return translate(bdf, a, write); });
    d.ok = run.complete;
    d.done = run.done;
    d.pa = run.first.pa;
    if (run.faulted) d.reason = run.failed.reason;
    return d;
}

VtdModel::Dma VtdModel::dma_write(uint16_t bdf, uint64_t iova, const void* src, size_t len) {
    std::vector<uint8_t> b(static_cast<const uint8_t*>(src), static_cast<const uint8_t*>(src) + len);
    return dma(bdf, iova, b.data(), len, true);
}

VtdModel::Dma VtdModel::dma_read(uint16_t bdf, uint64_t iova, void* dst, size_t len) {
    return dma(bdf, iova, static_cast<uint8_t*>(dst), len, false);
}

}  // namespace moat::model
