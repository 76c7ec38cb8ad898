#include "drivers/iommu/ipmmu_vmsa.hpp"

#include <string.h>

#include "arch/barrier.hpp"
#include "arch/cache.hpp"
#include "arch/mmio.hpp"
#include "common/wait.hpp"

namespace moat {

using namespace ipmmu;

namespace {

// The IPA sizes a stage-2 context takes: TSZ0 (64 - bits) has five bits, and the IPMMU-MM walks
// at most 40 bits (Xen caps its P2M there for the same reason).
constexpr unsigned kS2MinIas = 64 - 31, kS2MaxIas = 40;
// LPAE stage 1: the whole 32-bit input space, from level 1 (4 entries of 1 GiB).
constexpr unsigned kS1Ias = 32, kS1StartLevel = 1;
// The blocking context: the last one, so that domains keep getting contexts from 1 up. Its table
// spans everything a context of the format can walk (stage 2: two concatenated level-1 tables),
// walked like any other (never coherently).
constexpr uint8_t block_context(const Generation& g) { return static_cast<uint8_t>(g.contexts - 1); }
constexpr iopt::Format block_format(IpmmuVmsa::Format f) {
    return f == IpmmuVmsa::Format::stage2 ? iopt::vmsa_s2(kS2MaxIas, imttlbr::kPaBits, false)
                                          : iopt::vmsa_s1(kS1Ias, imttlbr::kPaBits, false);
}
constexpr iopt::Geometry block_geometry(IpmmuVmsa::Format f) { return iopt::vmsa_geometry(block_format(f)); }
static_assert(block_geometry(IpmmuVmsa::Format::stage2).root_tables == 2 &&
              block_geometry(IpmmuVmsa::Format::stage2).start_level == 1);
static_assert(block_geometry(IpmmuVmsa::Format::stage1).root_tables == 1 &&
              block_geometry(IpmmuVmsa::Format::stage1).start_level == kS1StartLevel);


const char* product_name(uint32_t product) {
    switch (product) {
    case prr::kH3: return "R-Car H3";
    case prr::kM3W: return "R-Car M3-W";
    case prr::kM3N: return "R-Car M3-N";
    case prr::kV3U: return "R-Car V3U";
    case prr::kS4: return "R-Car S4";
    default: return nullptr;
    }
}

}  // namespace

// ---------------------------------------------------------------- register access

uint32_t IpmmuVmsa::rd(Ctx r, unsigned ctx) const { return mmio::read32(cfg_.base + offset(*cfg_.gen, r, ctx)); }
void IpmmuVmsa::wr(Ctx r, unsigned ctx, uint32_t v) { mmio::write32(cfg_.base + offset(*cfg_.gen, r, ctx), v); }
uint32_t IpmmuVmsa::rd(Utlb r, unsigned utlb) const { return mmio::read32(cfg_.base + offset(*cfg_.gen, r, utlb)); }
void IpmmuVmsa::wr(Utlb r, unsigned utlb, uint32_t v) { mmio::write32(cfg_.base + offset(*cfg_.gen, r, utlb), v); }
uint32_t IpmmuVmsa::rd(Global r) const { return mmio::read32(cfg_.base + offset(*cfg_.gen, r)); }
void IpmmuVmsa::wr(Global r, uint32_t v) { mmio::write32(cfg_.base + offset(*cfg_.gen, r), v); }

Status IpmmuVmsa::refuse(Status st, const char* what) { return why_.set(st, "%s", what); }

// ---------------------------------------------------------------- supported SoCs

const char* IpmmuVmsa::soc_name(uint32_t prr_value) {
    const char* n = product_name(static_cast<uint32_t>(prr::kProduct.get(prr_value)));
    return n ? n : "unknown SoC";
}

const ipmmu::Soc* IpmmuVmsa::soc_of(const char* compatible) {
    // The SoC facts hang off the compatible's registry entry: the one table that names it.
    const DriverEntry* entry = find_driver(compatible);
    return entry && entry->ops == &kIpmmuOps ? static_cast<const ipmmu::Soc*>(entry->data) : nullptr;
}

Status IpmmuVmsa::check_soc(const char* compatible, uint32_t prr_value, char* why, size_t cap) {
    const ipmmu::Soc* soc = soc_of(compatible);
    if (!soc) {
        format_to(why, cap, "%s is not an R-Car IPMMU this driver supports (Gen3: H3, M3-W, M3-W+, M3-N; Gen4: S4, V3U)",
                  compatible ? compatible : "(no compatible)");
        return Status::unsupported;
    }
    const DriverEntry* entry = find_driver(compatible);
    uint32_t product = static_cast<uint32_t>(prr::kProduct.get(prr_value));
    uint32_t cut = static_cast<uint32_t>(prr::kCut.get(prr_value));
    unsigned major = (cut >> 4) + 1, minor = cut & 0xf;
    if (!product_name(product)) {
        format_to(why, cap, "product register 0x%08x names product 0x%02x, not an R-Car this driver supports",
                  prr_value, product);
        return Status::unsupported;
    }
    if (product != soc->product) {
        format_to(why, cap, "product register says %s (0x%02x) but the node is %s (%s)", product_name(product), product,
                  entry->compatible, soc->name);
        return Status::unsupported;
    }
    if (soc->needs_es3 && cut < prr::kCutEs30) {
        format_to(why, cap, "%s ES%u.%u: its IPMMU cannot share stage-2 tables before ES3.0", soc->name, major, minor);
        return Status::unsupported;
    }
    format_to(why, cap, "%s ES%u.%u", product_name(product), major, minor);
    return Status::ok;
}

// ---------------------------------------------------------------- probe

Status IpmmuVmsa::probe(const Config& cfg) {
    if (ready_) return refuse(Status::in_use, "already probed");
    if (!cfg.gen) return refuse(Status::invalid_argument, "no generation given");
    cfg_ = cfg;
    why_.clear();
    soc_[0] = 0;
    const Generation& gen = *cfg.gen;
    if (cfg.size < gen.reg_size)
        return why_.set(Status::invalid_argument, "register window smaller than 0x%lx (%s)", gen.reg_size, gen.name);

    if (!cfg.root) {
        // The root: faults can only be reported through its interrupt.
        if (cfg.nirqs == 0) return refuse(Status::invalid_argument, "root IPMMU without interrupts");
        if (check_soc(cfg.compatible, cfg.prr, soc_, sizeof soc_) != Status::ok) return refuse(Status::unsupported, soc_);
        const ipmmu::Soc* soc = soc_of(cfg.compatible);  // check_soc found it
        if (!soc) return refuse(Status::unsupported, "no SoC facts for the compatible");
        if (soc->gen != cfg.gen)
            return why_.set(Status::invalid_argument, "%s is an %s IPMMU, configured as %s", cfg.compatible, soc->gen->name, gen.name);
        if (cfg.format == Format::stage2 && !soc->stage2)
            return why_.set(Status::unsupported, "%s: stage-2 tables are not known to work on its IPMMU (32-bit stage-1 tables are)",
                            soc->name);
        // The blocking table before any register is written: without it, the root is refused.
        iopt::Geometry bg = block_geometry(cfg.format);
        Result<uint64_t> table{Status::no_memory};
        if (cfg.block_unattached) {
            if (!cfg.pool) return refuse(Status::invalid_argument, "block_unattached without a page pool for the blocking table");
            table = cfg.pool->alloc(bg.root_tables, bg.root_tables);  // zeroed: every entry invalid
            if (!table.ok()) return refuse(Status::no_memory, "no page for the blocking context's table");
        }
        root_ = this;
        block_ctx_ = kNoContext;
        for (Context& c : ctx_) c = Context{};
        ctx_[0].state = Context::reserved;  // Linux and Xen keep context 0 off limits
        for (unsigned n = 0; n < gen.contexts; n++) {
            wr(Ctx::IMCTR, n, 0);
            wr(Ctx::IMSTR, n, 0);
        }
        release_blocking_table();  // a previous probe's: its context is off now, nothing walks it
        wr(Global::IMSCTLR, rd(Global::IMSCTLR) & ~imsctlr::kUseSecGrp);
        uint32_t aux = rd(Global::IMSAUXCTLR) & ~imsauxctlr::kS2pte;
        wr(Global::IMSAUXCTLR, aux | (cfg.format == Format::stage2 ? imsauxctlr::kS2pte : 0));
        caps_ = IommuCaps{};
        caps_.stage1 = cfg.format == Format::stage1;
        caps_.stage2 = cfg.format == Format::stage2;
        caps_.ias = cfg.format == Format::stage2 ? kS2MaxIas : kS1Ias;
        caps_.oas = min(imttlbr::kPaBits, cfg.cpu_pa_bits);
        caps_.coherent_walk = false;
        caps_.range_invalidation = false;
        caps_.max_stream = gen.utlbs - 1;
        walker_ = cfg.format == Format::stage2 ? VmsaWalker{false, true, 0, 0, kS2MinIas, kS2MaxIas, caps_.oas, false}
                                               : VmsaWalker{true, false, kS1Ias, kS1Ias, 0, 0, caps_.oas, false};
        if (cfg.block_unattached) {
            block_pool_ = cfg.pool;
            block_pa_ = table.value;
            block_pages_ = bg.root_tables;
            Status st = enable_blocking();
            if (st != Status::ok) {
                release_blocking_table();
                root_ = nullptr;
                return refuse(st, "the blocking context's enabling flush did not complete");
            }
        }
        ready_ = true;
        // The root's lines report every context's faults (IMCTR.INTEN is set per context).
        if (cfg.irq && cfg.faults && cfg.irqs) {
            // A refused line leaves the root polling (describe() says why): it still translates.
            Why refused;
            if (irqs_.request(cfg.irq, cfg.irqs, cfg.nirqs, &IpmmuVmsa::on_irq, this, refused) == Status::ok) irqs_.enable();
        }
        return Status::ok;
    }

    // A cache: its root must be there first (probing retries it later, like EPROBE_DEFER).
    IpmmuVmsa& root = *cfg.root;
    if (&root == this) return refuse(Status::invalid_argument, "a cache cannot be its own root");
    if (!root.ready_) return refuse(Status::not_ready, "its root IPMMU has not probed yet");
    if (!root.is_root()) return refuse(Status::invalid_argument, "renesas,ipmmu-main names a cache IPMMU, not the root");
    if (root.cfg_.gen != cfg.gen)
        return why_.set(Status::invalid_argument, "an %s cache in front of an %s root", gen.name, root.cfg_.gen->name);
    if (cfg.main_bit >= 32) return refuse(Status::invalid_argument, "IMSSTR bit beyond 31");
    if (gen.utlbs < 64 && (cfg.masters >> gen.utlbs))
        return why_.set(Status::invalid_argument, "a master on a uTLB beyond %u", gen.utlbs - 1);
    IpmmuVmsa** slot = nullptr;
    for (IpmmuVmsa*& c : root.caches_) {
        if (c && c->cfg_.main_bit == cfg.main_bit) return refuse(Status::in_use, "another cache uses the same IMSSTR bit");
        if (!c && !slot) slot = &c;
    }
    if (!slot) return refuse(Status::no_space, "too many cache IPMMUs for one root");
    root_ = &root;
    for (unsigned& n : ctx_utlbs_) n = 0;
    // Our copy of the blocking context stays on for good (written on, never off and on again:
    // after a shutdown our uTLBs may still point at it); every other context starts off.
    uint8_t block = root.block_ctx_;
    for (unsigned n = 0; n < gen.contexts; n++)
        wr(Ctx::IMCTR, n, n == block ? (root.ctx_[n].imctr | imctr::kFlush) & imctr::kCacheMask : 0);
    // Masters the DT names are blocked from here on; the other uTLBs are disabled.
    for (unsigned u = 0; u < gen.utlbs; u++) {
        utlb_[u] = UtlbState{};
        utlb_[u].known = (cfg.masters >> u) & 1;
        park(u);
    }
    wr(Global::IMSCTLR, rd(Global::IMSCTLR) & ~imsctlr::kUseSecGrp);
    *slot = this;
    ready_ = true;
    return Status::ok;
}

void IpmmuVmsa::on_irq(void* self) {
    auto* u = static_cast<IpmmuVmsa*>(self);
    (void)u->poll_faults(*u->cfg_.faults);
}

void IpmmuVmsa::shutdown() {
    if (!ready_) return;
    irqs_.release();
    if (is_root()) {
        for (IpmmuVmsa* c : caches_)
            if (c) c->shutdown();
        for (unsigned n = 0; n < cfg_.gen->contexts; n++)
            if (ctx_[n].state == Context::used) wr(Ctx::IMCTR, n, imctr::kFlush);
    } else {
        for (unsigned u = 0; u < cfg_.gen->utlbs; u++)
            if (utlb_[u].refs) {
                uint8_t id = utlb_[u].ctx;
                utlb_[u] = UtlbState{};
                utlb_[u].known = true;
                park(u);
                root_->put_context(id);
            }
        for (unsigned n = 0; n < cfg_.gen->contexts; n++)
            if (ctx_utlbs_[n]) wr(Ctx::IMCTR, n, imctr::kFlush);
        for (IpmmuVmsa*& c : root_->caches_)
            if (c == this) c = nullptr;
    }
    ready_ = false;
    root_ = nullptr;
}

// ---------------------------------------------------------------- uTLBs (cache)

uint8_t IpmmuVmsa::utlb_context(unsigned utlb) const {
    const UtlbState& u = utlb_[utlb];
    if (u.refs) return u.ctx;
    return u.known && root_ ? root_->block_ctx_ : kNoContext;
}

bool IpmmuVmsa::utlb_blocked(unsigned utlb) const {
    return ready_ && utlb < cfg_.gen->utlbs && !utlb_[utlb].refs && utlb_[utlb].known && blocking_context() != kNoContext;
}

// Never MMUEN = 0 for a master we know of while the root blocks: that would let it bypass.
void IpmmuVmsa::park(unsigned utlb) {
    uint8_t block = root_->block_ctx_;
    if (utlb_[utlb].known && block != kNoContext) {
        wr(Utlb::IMUASID, utlb, 0);
        wr(Utlb::IMUCTR, utlb, static_cast<uint32_t>(cfg_.gen->ttsel.make(block)) | imuctr::kFlush | imuctr::kMmuEn);
    } else {
        wr(Utlb::IMUCTR, utlb, imuctr::kFlush);
    }
    root_->commands_++;
}

// ---------------------------------------------------------------- contexts (root)

Result<iopt::Format> IpmmuVmsa::domain_format(DomainUse use, unsigned ias) const {
    if (!ready_) return Status::invalid_argument;
    return root_->walker_.format_for(use, ias);
}

// The format's stage and sizes, and tables cleaned for us (walks are never coherent); then what
// the registers can hold: the start level the context encodes and a root below 40 bits.
Status IpmmuVmsa::check_domain(const IoDomain& d) const {
    Status st = walker_.check(d.format());
    if (st != Status::ok) return st;
    const iopt::Geometry g = iopt::vmsa_geometry(d.format());
    if (g.start_level != (cfg_.format == Format::stage2 ? 1u : kS1StartLevel)) return Status::out_of_range;
    if (d.root_pa() >> imttlbr::kPaBits) return Status::out_of_range;
    return Status::ok;
}

uint8_t IpmmuVmsa::find_context(const IoDomain& d) const {
    for (unsigned n = 0; n < cfg_.gen->contexts; n++)
        if (ctx_[n].state == Context::used && ctx_[n].domain_id == d.id()) return static_cast<uint8_t>(n);
    return kNoContext;
}

uint8_t IpmmuVmsa::context_of(const IoDomain& d) const { return root_ ? root_->find_context(d) : kNoContext; }

unsigned IpmmuVmsa::contexts_free() const {
    if (!root_) return 0;
    unsigned n = 0;
    for (unsigned i = 0; i < root_->cfg_.gen->contexts; i++) n += root_->ctx_[i].state == Context::free;
    return n;
}

// The domain's context with one more user: found, or allocated and programmed. On failure no
// register has been written, so no other domain's context can be disturbed.
Status IpmmuVmsa::get_context(IoDomain& d, uint8_t& id) {
    id = find_context(d);
    if (id != kNoContext) {
        ctx_[id].users++;
        return Status::ok;
    }
    for (unsigned n = 0; n < cfg_.gen->contexts && id == kNoContext; n++)
        if (ctx_[n].state == Context::free) id = static_cast<uint8_t>(n);
    if (id == kNoContext) return Status::no_space;

    uint32_t imctr_v = program_context(id, d.root_pa(), d.format());
    ctx_[id] = Context{Context::used, &d, 1, imctr_v, d.id()};
    // Enabled with a flush: a previous user's translations must be gone before any uTLB points here.
    wr(Ctx::IMCTR, id, imctr_v | imctr::kFlush);
    commands_++;
    Status st = wait_flush(id);
    if (st != Status::ok) {
        wr(Ctx::IMCTR, id, 0);
        ctx_[id] = Context{Context::broken, nullptr, 0, 0};  // never handed out again
        id = kNoContext;
    }
    return st;
}

// Table base, format and attributes of a disabled context; returns the IMCTR that enables it.
uint32_t IpmmuVmsa::program_context(uint8_t id, uint64_t ttb, const iopt::Format& f) {
    const iopt::Geometry g = iopt::vmsa_geometry(f);
    const iopt::VmsaWalkCodes w = iopt::vmsa_walk_codes(f);
    // Walk attributes: until the table seam, IRGN0/ORGN0/SH0 were left 0 here while the SMMUs set
    // theirs; non-cacheable was right for this non-coherent walker, SH0 now says outer as well.
    uint32_t ttbcr = static_cast<uint32_t>(imttbcr::kIrgn0.make(w.irgn) | imttbcr::kOrgn0.make(w.orgn) | imttbcr::kSh0.make(w.sh));
    uint32_t imctr_v;
    if (cfg_.format == Format::stage2) {
        // VTCR-style start level and 64-bit input size; PMB as Xen sets it for this mode.
        ttbcr |= imttbcr::kEae | imttbcr::kPmb | static_cast<uint32_t>(imttbcr::kSl0.make(g.sl0())) |
                 static_cast<uint32_t>(imttbcr::kTsz0.make(g.t0sz()));
        imctr_v = imctr::kVa64 | imctr::kIntEn | imctr::kMmuEn;
    } else {
        // LPAE: the whole 32-bit space (TSZ0 0), start level 1 in the two-bit encoding.
        ttbcr |= imttbcr::kEae | static_cast<uint32_t>(imttbcr::kSl0.make(3 - kS1StartLevel)) |
                 static_cast<uint32_t>(imttbcr::kTsz0.make(kS1Ias - g.ias));
        imctr_v = imctr::kIntEn | imctr::kMmuEn;
    }
    wr(Ctx::IMTTLBR0, id, static_cast<uint32_t>(ttb & imttlbr::kLow.mask));
    wr(Ctx::IMTTUBR0, id, static_cast<uint32_t>(imttlbr::kHigh.make(ttb >> 32)));
    wr(Ctx::IMTTBCR, id, ttbcr);
    if (cfg_.format == Format::stage1) {
        wr(Ctx::IMMAIR0, id, static_cast<uint32_t>(iopt::Stage1::kMair));
        wr(Ctx::IMMAIR1, id, static_cast<uint32_t>(iopt::Stage1::kMair >> 32));
    }
    wr(Ctx::IMSTR, id, 0);
    return imctr_v;
}

// Every entry of the table is invalid and the walker reads memory, not our caches: clean it
// first. Enabled with a flush like any context (firmware may have left translations in it),
// bounded like every other wait. It maps nothing, so it never needs a flush again.
Status IpmmuVmsa::enable_blocking() {
    cache::sync_for_device(block_pool_->virt(block_pa_), block_pages_ * kPageSize);
    const uint8_t id = block_context(*cfg_.gen);
    uint32_t v = program_context(id, block_pa_, block_format(cfg_.format));
    ctx_[id] = Context{Context::blocking, nullptr, 0, v};
    wr(Ctx::IMCTR, id, v | imctr::kFlush);
    commands_++;
    Status st = wait_flush(id);
    if (st != Status::ok) {
        wr(Ctx::IMCTR, id, 0);
        ctx_[id] = Context{};
        return st;
    }
    block_ctx_ = id;
    return Status::ok;
}

// Only once no context walks the table any more.
void IpmmuVmsa::release_blocking_table() {
    if (block_pa_) (void)block_pool_->free(block_pa_, block_pages_);
    block_pool_ = nullptr;
    block_pa_ = 0;
    block_pages_ = 0;
}

// One user fewer; the last one disables the context (with a flush, so that the next domain to
// get it starts clean) and frees it. A flush that never completes leaves the context unusable.
void IpmmuVmsa::put_context(uint8_t id) {
    Context& c = ctx_[id];
    if (c.state != Context::used || c.users == 0 || --c.users) return;
    wr(Ctx::IMCTR, id, imctr::kFlush);
    commands_++;
    bool done = wait_flush(id) == Status::ok;
    c = Context{done ? Context::free : Context::broken, nullptr, 0, 0};
}

Status IpmmuVmsa::wait_flush(uint8_t id) {
    barrier::complete_mmio();  // the FLUSH write has reached the IPMMU before we look for its completion
    syncs_++;
    Status st = wait_until(kFlushTimeoutNs, [&] { return (rd(Ctx::IMCTR, id) & imctr::kFlush) == 0; });
    if (st != Status::ok) flush_timeouts_++;
    return st;
}

// Caches first, then the root: a cache that misses after its flush refills from the root, which
// the page-table update already reached (the engine cleaned and fenced it before calling us).
Status IpmmuVmsa::flush_context(uint8_t id) {
    flushes_++;
    uint32_t v = ctx_[id].imctr | imctr::kFlush;
    for (IpmmuVmsa* c : caches_)
        if (c && c->ctx_utlbs_[id]) {
            c->wr(Ctx::IMCTR, id, v & imctr::kCacheMask);
            commands_++;
        }
    wr(Ctx::IMCTR, id, v);
    commands_++;
    return wait_flush(id);
}

// ---------------------------------------------------------------- Iommu

Status IpmmuVmsa::attach(IoDomain& d, StreamId utlb) {
    if (!ready_) return Status::invalid_argument;
    if (is_root()) return Status::unsupported;  // masters sit behind cache IPMMUs
    if (utlb >= cfg_.gen->utlbs) return Status::out_of_range;
    UtlbState& u = utlb_[utlb];
    if (u.refs) {
        // Several masters may share a uTLB, but only inside one domain: the uTLB names one context.
        if (u.domain_id != d.id()) return Status::in_use;
        u.refs++;
        return Status::ok;
    }
    // Enabled behind our back (firmware, another agent): not ours to take over. (A blocked uTLB
    // is enabled by us.)
    if (utlb_context(utlb) == kNoContext && (rd(Utlb::IMUCTR, utlb) & imuctr::kMmuEn)) return Status::in_use;
    uint8_t id = kNoContext;
    Status st = root_->check_domain(d);
    if (st == Status::ok) st = root_->get_context(d, id);
    if (st != Status::ok) {
        // A master sits there and did not get its domain: blocked (still, or from now on).
        if (!u.known && root_->block_ctx_ != kNoContext) {
            u.known = true;
            park(utlb);
        }
        return st;
    }
    if (ctx_utlbs_[id]++ == 0) {
        wr(Ctx::IMCTR, id, (root_->ctx_[id].imctr | imctr::kFlush) & imctr::kCacheMask);
        root_->commands_++;
    }
    // Straight from the blocking context (if it was there) to the domain's: never through bypass.
    wr(Utlb::IMUASID, utlb, 0);
    wr(Utlb::IMUCTR, utlb, static_cast<uint32_t>(cfg_.gen->ttsel.make(id)) | imuctr::kFlush | imuctr::kMmuEn);
    root_->commands_++;
    u = UtlbState{&d, id, 1, true, d.id()};
    return Status::ok;
}

Status IpmmuVmsa::detach(IoDomain& d, StreamId utlb) {
    if (!ready_) return Status::invalid_argument;
    if (is_root()) return Status::unsupported;
    if (utlb >= cfg_.gen->utlbs) return Status::out_of_range;
    UtlbState& u = utlb_[utlb];
    if (!u.refs || u.domain_id != d.id()) return Status::not_found;
    if (--u.refs) return Status::ok;
    // From here the master no longer walks the domain's tables: its DMA faults in the blocking
    // context (or, with block_unattached off, passes untranslated).
    uint8_t id = u.ctx;
    u = UtlbState{};
    u.known = true;
    park(utlb);
    if (--ctx_utlbs_[id] == 0) {
        wr(Ctx::IMCTR, id, imctr::kFlush);
        root_->commands_++;
    }
    root_->put_context(id);
    return Status::ok;
}

Status IpmmuVmsa::flush(IoDomain& d, const iopt::Gather& g) {
    if (!ready_) return Status::invalid_argument;
    if (g.empty()) return Status::ok;
    // A domain without a context (never attached, or its allocation failed) has nothing cached
    // anywhere: there is no context id to flush, and certainly not someone else's.
    uint8_t id = root_->find_context(d);
    return id == kNoContext ? Status::ok : root_->flush_context(id);
}

// ---------------------------------------------------------------- faults

IpmmuVmsa::FaultInfo IpmmuVmsa::decode(uint32_t imstr) {
    static constexpr const char* kDetail[4][4] = {
        {"TF (translation fault), level 0", "TF (translation fault), level 1", "TF (translation fault), level 2",
         "TF (translation fault), level 3"},
        {"PF (permission fault), level 0", "PF (permission fault), level 1", "PF (permission fault), level 2",
         "PF (permission fault), level 3"},
        {"ABORT (table walk aborted), level 0", "ABORT (table walk aborted), level 1",
         "ABORT (table walk aborted), level 2", "ABORT (table walk aborted), level 3"},
        {"MHIT (multiple TLB hits), level 0", "MHIT (multiple TLB hits), level 1", "MHIT (multiple TLB hits), level 2",
         "MHIT (multiple TLB hits), level 3"},
    };
    FaultInfo f{};
    f.errcode = static_cast<unsigned>(imstr::kErrCode.get(imstr));
    f.level = static_cast<unsigned>(imstr::kErrLvl.get(imstr));
    unsigned k;
    if (imstr & imstr::kTf) k = 0, f.kind = FaultKind::translation;
    else if (imstr & imstr::kPf) k = 1, f.kind = FaultKind::permission;
    else if (imstr & imstr::kAbort) k = 2, f.kind = FaultKind::walk_abort;
    else if (imstr & imstr::kMhit) k = 3, f.kind = FaultKind::tlb_conflict;
    else return FaultInfo{FaultKind::other, f.errcode, f.level, "no fault"};
    f.detail = kDetail[k][f.level];
    return f;
}

// The fault names a context, not a master: the uTLB is reported when exactly one uses the context.
void IpmmuVmsa::report(FaultLog& log, uint8_t id, uint32_t imstr, uint64_t addr) {
    FaultInfo f = decode(imstr);
    FaultRecord r{};
    r.iommu = cfg_.name;
    r.stream = kStreamUnknown;
    unsigned users = 0;
    for (IpmmuVmsa* c : caches_)
        if (c)
            for (unsigned u = 0; u < c->cfg_.gen->utlbs; u++)
                if (c->utlb_context(u) == id) {
                    users++;
                    r.iommu = c->cfg_.name;
                    r.stream = u;
                }
    if (users != 1) {
        r.iommu = cfg_.name;
        r.stream = kStreamUnknown;
    }
    r.address = addr;
    r.kind = f.kind;
    if (id == block_ctx_ && f.kind == FaultKind::translation) {
        // The hardware says TF; what happened is that a master without a domain did DMA.
        r.kind = FaultKind::stream_disabled;
        f.detail = "TF (translation fault) in the blocking context: the master has no domain";
    }
    r.write = false;  // IMSTR does not say
    r.raw = imstr;
    r.detail = f.detail;
    log.record(r);
}

unsigned IpmmuVmsa::poll_faults(FaultLog& log) {
    if (!ready_) return 0;
    if (!is_root()) return root_->poll_faults(log);
    unsigned n = 0;
    for (unsigned id = 0; id < cfg_.gen->contexts; id++) {
        Context::State st = ctx_[id].state;
        if (st != Context::used && st != Context::broken && st != Context::blocking) continue;
        uint32_t s = rd(Ctx::IMSTR, id);
        if (!(s & imstr::kErrors)) continue;
        // The address first: clearing IMSTR clears it too.
        uint64_t addr = rd(Ctx::IMELAR, id) | uint64_t{rd(Ctx::IMEUAR, id)} << 32;
        wr(Ctx::IMSTR, id, 0);
        report(log, static_cast<uint8_t>(id), s, addr);
        n++;
    }
    return n;
}

}  // namespace moat
