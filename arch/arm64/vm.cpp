#include "arch/arm64/vm.hpp"

#include <string.h>

#include "arch/cpu.hpp"
#include "arch/stage2.hpp"

namespace moat::arch {

namespace {
constexpr uint64_t kHcrVm = 1ull << 0;      // stage 2 on
constexpr uint64_t kHcrSwio = 1ull << 1;    // set/way invalidation by clean+invalidate
constexpr uint64_t kHcrFmo = 1ull << 3, kHcrImo = 1ull << 4, kHcrAmo = 1ull << 5;  // interrupts stay with EL2
constexpr uint64_t kHcrTsc = 1ull << 19;    // SMC traps
constexpr uint64_t kHcrRw = 1ull << 31;     // EL1 is AArch64
constexpr uint64_t kSpsrEl1h = 0x5;
constexpr uint64_t kSpsrDaif = 0xfull << 6;
constexpr uint64_t kSctlrEl1Res1 = (1ull << 11) | (1ull << 20) | (3ull << 22) | (3ull << 28);
}  // namespace

iopt::Format Vm::cpu_format() { return iopt::vmsa_s2(kIpaBits, pa_bits() < 48 ? pa_bits() : 48, true); }

namespace {
Status cpu_flush(void*, const IoDomain& d, const iopt::Gather& g) { return stage2_invalidate(d.tag(), g); }
}  // namespace

Vm::Vm(PagePool& pool, const iopt::Format& format) : pool_(pool), format_(format), p2m_(pool, format) {
    p2m_.set_cpu_walker(IoDomain::CpuWalker{&cpu_flush, nullptr});
}

Status Vm::create(uint64_t ram_ipa, uint64_t ram_size) {
    if (!is_aligned(ram_ipa, 2 * MiB) || !is_aligned(ram_size, kPageSize) || ram_size == 0) return Status::invalid_argument;
    if (format_.id != iopt::FormatId::vmsa_s2 || format_.ias != kIpaBits) return Status::unsupported;
    Status st = p2m_.init();
    if (st != Status::ok) return st;
    Result<uint64_t> r = pool_.alloc(ram_size >> kPageShift, 512);
    if (!r.ok()) return r.status;
    ram_ipa_ = ram_ipa;
    ram_pa_ = r.value;
    ram_size_ = ram_size;
    iopt::Prot prot;
    prot.perm = iopt::kRead | iopt::kWrite | iopt::kExec;
    return p2m_.map(ram_ipa, ram_pa_, ram_size, prot).status;
}

Status Vm::destroy() {
    Status st = p2m_.destroy();
    if (st != Status::ok) return st;  // quarantined: the RAM stays out of the pool
    if (ram_size_) {
        st = pool_.free(ram_pa_, ram_size_ >> kPageShift);
        if (st != Status::ok) return st;
    }
    ram_ipa_ = ram_pa_ = ram_size_ = 0;
    return Status::ok;
}

Status Vm::map_mmio(uint64_t ipa, uint64_t pa, uint64_t size) {
    iopt::Prot prot;
    prot.perm = iopt::kRead | iopt::kWrite;
    prot.type = iopt::MemType::device;
    prot.share = iopt::Share::none;
    return p2m_.map(ipa, pa, align_up(size, kPageSize), prot).status;
}

void* Vm::ram(uint64_t ipa, uint64_t size) const {
    if (ipa < ram_ipa_ || ipa - ram_ipa_ > ram_size_ || size > ram_size_ - (ipa - ram_ipa_)) return nullptr;
    return pool_.virt(ram_pa_ + (ipa - ram_ipa_));
}

Status Vm::ram_frame(uint64_t gfn, uint64_t& mfn) {
    if (gfn >> (kIpaBits - kPageShift)) return Status::not_found;
    Result<iopt::Translation> t = p2m_.lookup(gfn << kPageShift);
    if (!t.ok()) return Status::not_found;
    if (t.value.prot.type != iopt::MemType::normal_wb) return Status::denied;  // MMIO is not RAM to map
    mfn = t.value.pa >> kPageShift;
    return Status::ok;
}

Status Vm::ram_run(uint64_t gfn, uint64_t frames, uint64_t& mfn) {
    return bank_run(ram_ipa_ >> kPageShift, ram_size_ >> kPageShift, ram_pa_ >> kPageShift, gfn, frames, mfn);
}

// Page by page through the guest's own stage 2, so a struct straddling into something that
// is not its RAM fails as a whole.
bool Vm::copy(uint64_t gpa, void* buf, size_t n, bool to_guest) {
    if (add_overflows(gpa, n)) return false;
    for (uint64_t a = align_down(gpa, kPageSize); a < gpa + n; a += kPageSize) {
        uint64_t mfn;
        if (ram_frame(a >> kPageShift, mfn) != Status::ok) return false;
    }
    auto* b = static_cast<uint8_t*>(buf);
    while (n) {
        uint64_t mfn;
        (void)ram_frame(gpa >> kPageShift, mfn);
        size_t chunk = static_cast<size_t>(min<uint64_t>(n, kPageSize - (gpa & (kPageSize - 1))));
        auto* host = static_cast<uint8_t*>(pool_.virt((mfn << kPageShift) | (gpa & (kPageSize - 1))));
        if (to_guest) memcpy(host, b, chunk);
        else memcpy(b, host, chunk);
        gpa += chunk;
        b += chunk;
        n -= chunk;
    }
    return true;
}

bool Vm::read(uint64_t gpa, void* dst, size_t n) { return copy(gpa, dst, n, false); }
bool Vm::write(uint64_t gpa, const void* src, size_t n) { return copy(gpa, const_cast<void*>(src), n, true); }

// The VMID is the P2M's tag: the one its CPU walker invalidates (unique among live domains).
uint64_t Vm::vttbr() const { return p2m_.root_pa() | (uint64_t{p2m_.tag()} << 48); }

[[noreturn]] void Vm::enter(uint64_t entry, uint64_t arg) {
    uint64_t vtcr = vtcr_el2(format_);
    uint64_t vttbr = this->vttbr();
    uint64_t hcr = kHcrVm | kHcrSwio | kHcrFmo | kHcrImo | kHcrAmo | kHcrTsc | kHcrRw;
    uint64_t midr, mpidr;
    asm volatile("mrs %0, midr_el1" : "=r"(midr));
    asm volatile("mrs %0, mpidr_el1" : "=r"(mpidr));
    asm volatile("msr vpidr_el2, %0" : : "r"(midr));
    asm volatile("msr vmpidr_el2, %0" : : "r"(mpidr));
    asm volatile("msr vtcr_el2, %0" : : "r"(vtcr));
    asm volatile("msr vttbr_el2, %0" : : "r"(vttbr));
    asm volatile("msr hcr_el2, %0" : : "r"(hcr));
    asm volatile("msr cnthctl_el2, %0" : : "r"(uint64_t{3}));     // EL1 may read the counter
    asm volatile("msr cntvoff_el2, xzr");
    asm volatile("msr sctlr_el1, %0" : : "r"(kSctlrEl1Res1));     // guest MMU and caches off
    asm volatile("msr cpacr_el1, %0" : : "r"(uint64_t{3} << 20)); // FP/SIMD usable at EL1
    asm volatile("msr mdcr_el2, xzr");
    asm volatile("isb; tlbi vmalls12e1is; dsb ish; isb" ::: "memory");
    asm volatile("msr elr_el2, %0" : : "r"(entry));
    asm volatile("msr spsr_el2, %0" : : "r"(kSpsrEl1h | kSpsrDaif));
    register uint64_t x0 asm("x0") = arg;
    asm volatile("eret" : : "r"(x0) : "memory");
    __builtin_unreachable();
}

}  // namespace moat::arch
