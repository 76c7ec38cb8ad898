// The EL2 image: bring up the console and MMU, read the device tree the loader handed over,
// give the page pool its RAM, find the IOMMUs and their masters, report, and exit with a status.
//
// Exit status: 0 all well; 2 finished, but the tree had problems (devices left blocked);
// 3 the tree is unusable; 4 unexpected exception; 5 not at EL2.
#include <libfdt.h>

#include "arch/arm64/board.hpp"
#include "arch/arm64/console_select.hpp"
#include "arch/arm64/mmu.hpp"
#include "arch/cpu.hpp"
#include "common/boot_memory.hpp"
#include "common/discovery.hpp"
#include "common/format.hpp"

#ifndef MOAT_VERSION
#define MOAT_VERSION "unknown"
#endif

extern "C" char _start[], _end[];
extern "C" void moat_run_constructors();

namespace moat {

namespace {

constexpr size_t kMaxDtbSize = 2 * MiB;  // what Linux accepts too

PagePool g_pool;
Topology g_topo;
MemoryPlan g_plan;

bool has_bootarg(const dt::Tree& t, const char* arg) {
    int chosen = t.find_path("/chosen");
    int len;
    const char* args = chosen >= 0 ? static_cast<const char*>(t.prop(chosen, "bootargs", &len)) : nullptr;
    if (!args || len <= 0 || args[len - 1] != 0) return false;
    size_t n = __builtin_strlen(arg);
    for (const char* p = args; *p;) {
        while (*p == ' ') p++;
        const char* w = p;
        while (*p && *p != ' ') p++;
        if (static_cast<size_t>(p - w) == n && __builtin_memcmp(w, arg, n) == 0) return true;
    }
    return false;
}

constexpr uint64_t kBadAddress = uint64_t{0xdead} << 28;  // beyond the 40-bit map

[[noreturn]] void deliberate_fault() {
    print("selftest: reading unmapped address 0x%lx to exercise the exception report\n", kBadAddress);
    volatile uint64_t* bad = reinterpret_cast<volatile uint64_t*>(kBadAddress);  // beyond the 40-bit map
    uint64_t v = *bad;
    print("selftest: read returned 0x%lx, no exception\n", v);
    arch::halt(1);
}

}  // namespace

[[noreturn]] void image_main(uint64_t dtb_pa, uint64_t load_pa) {
    arch::mmu_enable_identity(board::kRamWindowBase, board::kRamWindowEnd);
    print("\nmoat %s (%s), an IOMMU-aware microhypervisor\n", MOAT_VERSION, board::kName);
    unsigned el = arch::current_el();
    print("cpu:      EL%u, MIDR 0x%08lx, %u-bit physical addresses\n", el, arch::midr(), arch::pa_bits());
    if (el != 2) {
        print("moat: entered at EL%u; moat needs EL2 (QEMU: -machine virtualization=on)\n", el);
        arch::halt(5);
    }
    uint64_t image_size = reinterpret_cast<uintptr_t>(_end) - reinterpret_cast<uintptr_t>(_start);
    print("image:    0x%010lx-0x%010lx (%lu KiB)\n", load_pa, load_pa + image_size - 1, image_size / KiB);

    dt::Tree tree;
    const void* blob = reinterpret_cast<const void*>(dtb_pa);
    size_t avail = kMaxDtbSize;
    if (dtb_pa && dtb_pa < board::kRamWindowEnd && board::kRamWindowEnd - dtb_pa < avail)
        avail = static_cast<size_t>(board::kRamWindowEnd - dtb_pa);
    if (dtb_pa < board::kRamWindowBase || dtb_pa >= board::kRamWindowEnd) {
        print("moat: device tree at 0x%lx is outside RAM; cannot continue\n", dtb_pa);
        arch::halt(3);
    }
    if (tree.open(blob, avail) != Status::ok) {
        print("moat: %s; cannot continue\n", tree.error());
        arch::halt(3);
    }
    print("dtb:      0x%010lx, %zu bytes\n", dtb_pa, tree.size());
    if (Serial* s = serial_from_dt(tree)) arch::set_console(s);

    if (plan_memory(tree, {load_pa, image_size}, {dtb_pa, tree.size()}, g_plan) != Status::ok) {
        print("moat: %s; cannot continue\n", tree.error());
        arch::halt(3);
    }
    for (unsigned i = 0; i < g_plan.nfree; i++) {
        MemRange& f = g_plan.free[i];
        if (f.base < board::kRamWindowBase || f.end() > board::kRamWindowEnd) {
            print("moat: RAM 0x%lx-0x%lx lies outside the %s RAM window; not used\n", f.base, f.end() - 1, board::kName);
            f.size = 0;
        }
    }
    Status pst = fill_pool(g_plan, g_pool);
    if (pst != Status::ok) print("moat: page pool: %s; continuing with what was added\n", to_string(pst));
    print_memory(g_plan, g_pool, console());

    if (has_bootarg(tree, "moat.selftest=fault")) deliberate_fault();

    Status st = discover(tree, g_topo, console());
    if (st != Status::ok) {
        print("moat: %s; cannot continue\n", tree.error());
        arch::halt(3);
    }
    print_topology(tree, g_topo, console());

    if (g_topo.problems) {
        print("moat: %u device-tree problem(s); affected devices left blocked; exit 2\n", g_topo.problems);
        arch::halt(2);
    }
    print("moat: all checks passed; exit 0\n");
    arch::halt(0);
}

}  // namespace moat

// Called from head.S with the MMU off: bad_reloc is non-zero if the image carries a relocation
// type the early code cannot apply.
extern "C" [[noreturn]] void moat_boot(uint64_t bad_reloc, uint64_t dtb_pa, uint64_t load_pa) {
    moat_run_constructors();
    moat::board::early_console_init();
    if (bad_reloc) {
        moat::print("moat: unsupported relocation type %lu in the image\n", bad_reloc);
        moat::arch::halt(4);
    }
    moat::image_main(dtb_pa, load_pa);
}
