// A tiny freestanding EL1 guest that drives its own IOMMU context through the PV-IOMMU
// hypercall, as a Linux PV-IOMMU driver would: it reads its device tree, finds the edu device
// it was given, maps its own buffer at a DMA address of its choosing, runs DMA both ways and
// checks the bytes, then tries every way of asking for what it does not own. It prints a
// result table and exits through moat's exit hypercall with the number of failed checks.
#include <libfdt.h>
#include <string.h>

#include "arch/console.hpp"
#include "arch/cpu.hpp"
#include "common/fdt.hpp"
#include "common/format.hpp"
#include "drivers/pci/edu.hpp"
#include "drivers/serial/serial.hpp"
#include "xen-compat/pv_iommu_abi.hpp"

using namespace moat;
using namespace moat::xen;

namespace {

Serial* g_console;
unsigned g_pass, g_fail;

long hypercall(uint64_t nr, uint64_t a0, uint64_t a1) {
    register uint64_t x0 asm("x0") = a0;
    register uint64_t x1 asm("x1") = a1;
    register uint64_t x16 asm("x16") = nr;
    asm volatile("hvc #0xEA1" : "+r"(x0) : "r"(x1), "r"(x16) : "memory");
    return static_cast<long>(x0);
}

// An SMCCC call that is not Xen's: PSCI_VERSION through `hvc #0` or `smc #0`.
long smccc(bool smc, uint64_t fn) {
    register uint64_t x0 asm("x0") = fn;
    if (smc) asm volatile("smc #0" : "+r"(x0) : : "memory");
    else asm volatile("hvc #0" : "+r"(x0) : : "memory");
    return static_cast<long>(x0);
}
constexpr uint64_t kPsciVersion = 0x84000000;

template <class T>
long iommu_op(IommuSubop op, T* arg) {
    return hypercall(kHypercallIommuOp, static_cast<uint64_t>(op), reinterpret_cast<uintptr_t>(arg));
}

bool check(bool ok, const char* what, long ret, const char* detail = "") {
    print("  %-44s %5ld  %-6s %s\n", what, ret, ok ? "ok" : "FAILED", detail);
    (ok ? g_pass : g_fail)++;
    return ok;
}

bool expect(const char* what, long ret, long want) {
    char d[48];
    format_to(d, sizeof d, "(expected %ld)", want);
    return check(ret == want, what, ret, d);
}

// Buffers the guest DMAs from and to: its own RAM, page aligned.
alignas(4096) uint8_t g_src[4096];
alignas(4096) uint8_t g_dst[4096];
alignas(8) PvIommuMapPages g_map;

uint64_t gfn_of(const void* p) { return reinterpret_cast<uintptr_t>(p) >> 12; }

constexpr uint64_t kDfn = 0x1000;  // IOVA 0x1000000: below edu's 28-bit DMA mask
constexpr uint32_t kXfer = 0x800;  // QEMU 7.2's edu refuses a transfer that ends at its buffer's end

}  // namespace

namespace moat::arch {
void console_write(const char* s, size_t n) {
    if (g_console) g_console->write(s, n);
}
[[noreturn]] void halt(int code) {
    hypercall(kHypercallMoatExit, static_cast<uint64_t>(code), 0);
    for (;;) asm volatile("wfi");
}
}  // namespace moat::arch

extern "C" {
uintptr_t __stack_chk_guard = 0x6775657374ull;
[[noreturn]] void __stack_chk_fail() { moat::arch::halt(90); }
[[noreturn]] void abort() { moat::arch::halt(91); }
void* __dso_handle = nullptr;

using InitFn = void (*)();
extern InitFn __init_array_start[], __init_array_end[];

[[noreturn]] void guest_main(uint64_t dtb) {
    for (InitFn* f = __init_array_start; f != __init_array_end; f++) (*f)();
    dt::Tree t;
    if (t.open(reinterpret_cast<const void*>(dtb), 64 * 1024) != Status::ok) arch::halt(92);
    g_console = serial_from_dt(t);
    print("guest: moat PV-IOMMU test guest at EL1, device tree at 0x%lx (%zu bytes)\n", dtb, t.size());

    // The passed-through edu: its registers and the PCI address the hypervisor knows it by.
    int node = fdt_node_offset_by_compatible(t.blob(), -1, "qemu,edu");
    dt::Reg reg;
    int len = 0;
    const void* sbdf = node >= 0 ? t.prop(node, "moat,pci-sbdf", &len) : nullptr;
    if (node < 0 || t.reg(node, 0, reg) != Status::ok || !sbdf || len != 12) {
        print("guest: no usable edu node in the device tree\n");
        arch::halt(93);
    }
    uint16_t seg = static_cast<uint16_t>(fdt32_ld(static_cast<const fdt32_t*>(sbdf)));
    uint8_t bus = static_cast<uint8_t>(fdt32_ld(static_cast<const fdt32_t*>(sbdf) + 1));
    uint8_t devfn = static_cast<uint8_t>(fdt32_ld(static_cast<const fdt32_t*>(sbdf) + 2));
    print("guest: edu at 0x%lx, PCI %04x:%02x:%02x.%u\n", reg.addr, seg, bus, devfn >> 3, devfn & 7);
    Edu edu(static_cast<uintptr_t>(reg.addr));
    check(edu.identify(), "edu answers", 0);

    // moat.selftest=guest-fault on moat's command line: touch an address the guest was never
    // given. moat must stop this guest with a report and end with its own status.
    int chosen = t.find_path("/chosen");
    const char* args = chosen >= 0 ? static_cast<const char*>(t.prop(chosen, "bootargs", &len)) : nullptr;
    if (args && len > 0 && args[len - 1] == 0 && __builtin_strstr(args, "selftest=stage2-fault")) {
        print("guest: reading IPA 0x30000000, which is not mine\n");
        uint32_t v = *reinterpret_cast<volatile uint32_t*>(uintptr_t{0x30000000});
        print("guest: read 0x%x: not stopped\n", v);
        arch::halt(94);
    }
    // Trap handling: an SMCCC call moat does not serve gets NOT_SUPPORTED, the guest carries on.
    expect("PSCI_VERSION through hvc #0", smccc(false, kPsciVersion), -1);
    expect("PSCI_VERSION through smc #0", smccc(true, kPsciVersion), -1);
    // moat prints the guest's lines as the guest's: this one cannot pass for moat's.
    print("moat: forged by the guest\n");

    PvIommuCapabilities caps{};
    long r = iommu_op(IommuSubop::query_capabilities, &caps);
    char d[96];
    format_to(d, sizeof d, "max_iova 0x%lx pgsizes 0x%x caps 0x%x", caps.max_iova_addr, caps.pgsize_mask, caps.cap_flags);
    check(r == 0 && caps.max_iova_addr > (kDfn << 12) && (caps.pgsize_mask & 0x1000), "query_capabilities", r, d);

    PvIommuInit init{4, 0};
    expect("init", iommu_op(IommuSubop::init, &init), 0);
    PvIommuAllocContext alloc{};
    r = iommu_op(IommuSubop::alloc_context, &alloc);
    format_to(d, sizeof d, "ctx %u", alloc.ctx_no);
    check(r == 0 && alloc.ctx_no != 0, "alloc_context", r, d);
    uint16_t ctx = alloc.ctx_no;

    PvIommuReattachDevice re{ctx, seg, bus, devfn, {}, 0, {}};
    expect("reattach_device edu -> new context", iommu_op(IommuSubop::reattach_device, &re), 0);

    // Map the source and destination pages at consecutive DMA frames.
    for (unsigned i = 0; i < sizeof g_src; i++) g_src[i] = static_cast<uint8_t>(i * 13 + 5);
    memset(g_dst, 0xee, sizeof g_dst);
    g_map = PvIommuMapPages{};
    g_map.ctx_no = ctx;
    g_map.gfn = gfn_of(g_src);
    g_map.dfn = kDfn;
    g_map.map_flags = mapf::kReadable | mapf::kWriteable;
    g_map.pgsize = 4096;
    g_map.nr_pages = 1;
    r = iommu_op(IommuSubop::map_pages, &g_map);
    format_to(d, sizeof d, "gfn 0x%lx -> dfn 0x%lx, mapped %lu", gfn_of(g_src), kDfn, g_map.mapped);
    check(r == 0 && g_map.mapped == 1, "map_pages source", r, d);
    PvIommuMapPages m2{};
    m2.ctx_no = ctx;
    m2.gfn = gfn_of(g_dst);
    m2.dfn = kDfn + 1;
    m2.map_flags = mapf::kReadable | mapf::kWriteable;
    m2.pgsize = 4096;
    m2.nr_pages = 1;
    r = iommu_op(IommuSubop::map_pages, &m2);
    format_to(d, sizeof d, "gfn 0x%lx -> dfn 0x%lx", gfn_of(g_dst), kDfn + 1);
    check(r == 0 && m2.mapped == 1, "map_pages destination", r, d);

    Status a = edu.to_device(kDfn << 12, Edu::kBufBase, kXfer);
    Status b = edu.to_ram(Edu::kBufBase, (kDfn + 1) << 12, kXfer);
    format_to(d, sizeof d, "%u bytes via DMA addresses 0x%lx, 0x%lx", kXfer, kDfn << 12, (kDfn + 1) << 12);
    check(a == Status::ok && b == Status::ok && memcmp(g_src, g_dst, kXfer) == 0, "DMA RAM -> edu -> RAM", 0, d);

    PvIommuMapPages dup = m2;
    dup.mapped = 0;
    dup.nr_pages = 1;
    dup.dfn = kDfn + 1;
    expect("map_pages over a live mapping", iommu_op(IommuSubop::map_pages, &dup), -98);

    PvIommuUnmapPages un{ctx, {}, kDfn + 1, 4096, 1, 0};
    r = iommu_op(IommuSubop::unmap_pages, &un);
    check(r == 0 && un.unmapped == 1, "unmap_pages destination", r);
    memset(g_dst, 0x5a, sizeof g_dst);
    (void)edu.to_ram(Edu::kBufBase, (kDfn + 1) << 12, 16);
    bool unchanged = true;
    for (unsigned i = 0; i < sizeof g_dst; i++) unchanged = unchanged && g_dst[i] == 0x5a;
    check(unchanged, "DMA to the unmapped address is blocked", 0, "memory unchanged; moat reports the fault");
    PvIommuUnmapPages un2{ctx, {}, kDfn + 1, 4096, 1, 0};
    expect("unmap_pages of an unmapped address", iommu_op(IommuSubop::unmap_pages, &un2), -2);

    // What the guest does not own.
    PvIommuMapPages foreign = m2;
    foreign.mapped = 0;
    foreign.nr_pages = 1;
    foreign.gfn = reg.addr >> 12;  // the edu's own registers: MMIO, not RAM
    foreign.dfn = kDfn + 8;
    expect("map_pages of an MMIO frame", iommu_op(IommuSubop::map_pages, &foreign), -1);
    foreign.gfn = 0x7f000;  // 2 GiB - 4 KiB: beyond the guest's RAM
    expect("map_pages of a frame beyond guest RAM", iommu_op(IommuSubop::map_pages, &foreign), -2);
    PvIommuMapPages badctx = m2;
    badctx.nr_pages = 1;
    badctx.ctx_no = 6;
    expect("map_pages in a context never allocated", iommu_op(IommuSubop::map_pages, &badctx), -22);
    badctx.ctx_no = 0;
    expect("map_pages in the default context", iommu_op(IommuSubop::map_pages, &badctx), -22);
    PvIommuReattachDevice other{ctx, 0, 0, 0x10, {}, 0, {}};
    expect("reattach_device of a device not ours", iommu_op(IommuSubop::reattach_device, &other), -19);
    expect("map_pages with the struct outside RAM",
           hypercall(kHypercallIommuOp, static_cast<uint64_t>(IommuSubop::map_pages), 0x7fff0000), -14);
    expect("unknown sub-op 77", hypercall(kHypercallIommuOp, 77, reinterpret_cast<uintptr_t>(&g_map)), -95);
    PvIommuRemoteCmd rc{0, 0, {}, 0};
    expect("remote_cmd from an unprivileged guest", iommu_op(IommuSubop::remote_cmd, &rc), -1);

    // A long call: 3000 pages (most of the guest's RAM) is more than moat does in one go, so the
    // hypervisor continues it; the struct comes back advanced and complete.
    PvIommuMapPages big{};
    big.ctx_no = ctx;
    big.gfn = 0x40000;
    big.dfn = 0x10000;
    big.map_flags = mapf::kReadable;
    big.pgsize = 4096;
    big.nr_pages = 3000;
    r = iommu_op(IommuSubop::map_pages, &big);
    format_to(d, sizeof d, "mapped %lu, left %lu, gfn now 0x%lx", big.mapped, big.nr_pages, big.gfn);
    check(r == 0 && big.mapped == 3000 && big.nr_pages == 0 && big.gfn == 0x40000 + 3000, "map_pages of 3000 pages", r, d);
    PvIommuUnmapPages bigun{ctx, {}, 0x10000, 4096, 3000, 0};
    r = iommu_op(IommuSubop::unmap_pages, &bigun);
    format_to(d, sizeof d, "unmapped %lu", bigun.unmapped);
    check(r == 0 && bigun.unmapped == 3000, "unmap_pages of 3000 pages", r, d);

    PvIommuFreeContext fr{ctx, {}, 0};
    expect("free_context while edu is attached", iommu_op(IommuSubop::free_context, &fr), -16);
    fr.free_flags = kFreeReattachDefault;
    expect("free_context, edu back to the default", iommu_op(IommuSubop::free_context, &fr), 0);

    print("guest: %u passed, %u failed\n", g_pass, g_fail);
    arch::halt(static_cast<int>(g_fail));
}
}
