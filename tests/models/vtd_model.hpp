// A register-level model of one Intel VT-d remapping unit for host tests: VER/CAP/ECAP as the
// test configures them, GCMD/GSTS (TE, SRTP, QIE, WBF), RTADDR, CCMD and IOTLB/IVA registers,
// the invalidation queue (context, IOTLB, PASID-cache and wait descriptors, 128- or 256-bit),
// fault recording registers with overflow, and a DMA API that walks the tables it is given with
// its own walker (root, legacy context or scalable context + PASID directory + PASID entry,
// second-level tables of 3 or 4 levels with 2 MiB / 1 GiB superpages).
//
// Strict where a driver can go wrong without QEMU noticing:
//  - context entries (and PASID entries) are cached once fetched and translations sit in an
//    IOTLB, each dropped only by the invalidation the specification asks for; with caching mode
//    (CAP.CM) not-present context entries (tagged with domain id 0) and not-present leaves are
//    cached too, so a missing invalidation shows as DMA that still faults, or still lands;
//  - reserved bits (SNP without ECAP.SC, PS where SLLPS lacks the size or at the top of a
//    4-level walk, an AW the unit's SAGAW lacks, a TT other than 0) fault as hardware would;
//  - programming the specification calls undefined (an enable and a one-shot command in one
//    GCMD write, RTADDR or IQA changed while in use, a misaligned page-selective address, an
//    address mask above MAMV, IQT not on a descriptor boundary) is recorded in violations().
// Field positions are written here from the specification, not taken from the driver's header.
// Not modelled: interrupt remapping, device TLBs, first-stage and nested translation, PRQ, the
// fault interrupt (the driver polls), advanced fault logging.
#pragma once
#include <array>
#include <deque>
#include <map>
#include <string>
#include <vector>

#include "arch/mmio.hpp"
#include "tests/models/vmsa_walker.hpp"  // PhysMem

namespace moat::model {

class VtdModel final : public mmio::Device {
public:
    static constexpr uint64_t kRegSize = 0x1000;
    static constexpr uint32_t kIro = 0x0f;   // IOTLB registers at 0xf0 (as QEMU)
    static constexpr uint32_t kFro = 0x22;   // fault records at 0x220 (as QEMU)

    struct Features {
        unsigned sagaw = 0x2;     // bit 1: 3-level 39-bit, bit 2: 4-level 48-bit, bit 3: 5-level
        unsigned mgaw = 39;
        unsigned nd = 6;          // 2^(4 + 2 ND) domain ids
        unsigned haw = 39;        // host address width: address bits above it are reserved
        unsigned nfr = 4;         // fault recording registers
        unsigned mamv = 18;
        unsigned sllps = 0x3;     // 2 MiB, 1 GiB
        bool cm = false, psi = true, rwbf = false;
        bool coherent = true, qi = true, sc = false, pt = false;
        bool smts = false, slts = true, smpwc = true;
        size_t tlb_entries = 64;
    };

    struct Dma {
        bool ok = false;          // every byte moved
        size_t done = 0;
        bool bypassed = false;    // translation off: DMA went to the address as given
        uint8_t reason = 0;       // fault reason of the failing page (0: none)
        uint64_t pa = 0;          // physical address of the first byte (when translated)
    };

    VtdModel(PhysMem& mem, const Features& f);

    uint64_t read(uint64_t offset, unsigned bytes) override;
    void write(uint64_t offset, uint64_t value, unsigned bytes) override;

    Dma dma_write(uint16_t bdf, uint64_t iova, const void* src, size_t len);
    Dma dma_read(uint16_t bdf, uint64_t iova, void* dst, size_t len);

    // Test hooks.
    void freeze_gsts(bool on) { gsts_frozen_ = on; }       // GCMD no longer takes effect
    void stall_queue(bool on) { queue_stalled_ = on; if (!on) run_queue(); }
    void refuse_next_descriptor() { refuse_next_ = true; }  // the next one sets IQE, as a malformed one would
    bool translation_enabled() const { return gsts_ & (1u << 31); }
    bool scalable_root() const { return rtaddr_active_ & (1u << 10); }

    // Counters.
    struct Counts {
        uint64_t ctx_global = 0, ctx_domain = 0, ctx_device = 0;
        uint64_t iotlb_global = 0, iotlb_domain = 0, iotlb_page = 0;
        uint64_t pasid = 0, waits = 0, wbf = 0, register_invalidations = 0, queued = 0;
    };
    const Counts& counts() const { return counts_; }
    uint64_t faults_recorded() const { return recorded_; }
    uint64_t faults_lost() const { return lost_; }
    uint64_t tlb_hits() const { return tlb_hits_; }
    uint64_t walks() const { return walks_; }
    size_t tlb_size() const { return tlb_.size(); }
    uint32_t fsts() const { return fsts_; }
    const std::vector<std::string>& violations() const { return violations_; }

private:
    struct Ctx {                 // what a context (and PASID) lookup found
        uint8_t fault = 0;       // 0: usable
        uint16_t did = 0;
        uint64_t slpt = 0;
        unsigned levels = 0;
    };
    struct TlbEntry {
        uint16_t did;
        uint64_t base, size;     // input range of the leaf
        uint64_t out;
        bool r, w;
        bool present;            // false: a cached not-present leaf (caching mode only)
    };
    struct Xlate {
        bool ok = false;
        uint64_t pa = 0;
        uint8_t reason = 0;
    };

    void violation(const std::string& what);
    void gcmd(uint32_t v);
    void run_queue();
    bool execute(const uint64_t (&d)[4]);  // false: invalid descriptor (IQE)
    void inv_context(unsigned gran, uint16_t did, uint16_t sid);
    void inv_iotlb(unsigned gran, uint16_t did, uint64_t addr, unsigned am);
    Ctx context(uint16_t bdf);
    Ctx fetch_context(uint16_t bdf);
    Xlate translate(uint16_t bdf, uint64_t iova, bool write);
    void record_fault(uint16_t bdf, uint64_t iova, bool write, uint8_t reason);
    Dma dma(uint16_t bdf, uint64_t iova, uint8_t* buf, size_t len, bool write);
    bool rd64(uint64_t pa, uint64_t& v) { return mem_.read64(pa, v); }

    PhysMem& mem_;
    Features f_;
    uint64_t cap_ = 0, ecap_ = 0;
    uint32_t gsts_ = 0, fsts_ = 0, fectl_ = 0;
    uint64_t rtaddr_ = 0, rtaddr_active_ = 0, ccmd_ = 0, iva_ = 0, iotlb_ = 0;
    uint64_t iqh_ = 0, iqt_ = 0, iqa_ = 0;
    uint32_t ics_ = 0;
    bool gsts_frozen_ = false, queue_stalled_ = false, refuse_next_ = false;
    struct Frcd { uint64_t lo = 0, hi = 0; };
    std::vector<Frcd> frcd_;
    unsigned next_frcd_ = 0;
    std::map<uint16_t, Ctx> ctx_cache_;
    std::deque<TlbEntry> tlb_;
    Counts counts_;
    uint64_t recorded_ = 0, lost_ = 0, tlb_hits_ = 0, walks_ = 0;
    std::vector<std::string> violations_;
};

// Fault reasons (VT-d specification, non-recoverable fault reasons).
namespace vtd_fr {
constexpr uint8_t kRootNotPresent = 1, kContextNotPresent = 2, kContextInvalid = 3, kBeyondMgaw = 4, kWrite = 5, kRead = 6,
                  kPagingEntry = 7, kContextReserved = 0xb, kPagingReserved = 0xc, kTranslationType = 0xd, kPasidInvalid = 0x58;
}

}  // namespace moat::model
