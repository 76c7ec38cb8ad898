#include "arch/arm64/pv_guest.hpp"

#include <libfdt.h>
#include <string.h>

#include <new>

#include "arch/arm64/esr.hpp"
#include "arch/arm64/trap.hpp"
#include "arch/arm64/vm.hpp"
#include "arch/cpu.hpp"
#include "drivers/serial/serial.hpp"
#include "hyp/boot.hpp"
#include "hyp/guest_console.hpp"
#include "xen-compat/guest_dt.hpp"

extern "C" const char test_guest_start[], test_guest_end[];

namespace moat {

namespace {

constexpr uint64_t kGuestRam = 16 * MiB;
constexpr uint64_t kDtbOffset = kGuestRam - 64 * KiB;   // the guest's tree at the top of its RAM
constexpr unsigned kFaultLinesPerSecond = 4;            // a guest cannot flood the console
constexpr uint64_t kSmcccNotSupported = ~uint64_t{0};   // SMCCC's NOT_SUPPORTED, -1 (docs/hardware.md §4.7)

struct State {
    xen::PvIommuHost host;
    xen::PvIommuGuest* guest = nullptr;
    Iommu* iommu = nullptr;
    PagePool* pool = nullptr;
    FaultLog* faults = nullptr;
    uint64_t faults_before = 0;
    uint64_t calls = 0, preemptions = 0;
    size_t pool_before = 0;
};
State g;
alignas(8) uint8_t g_host_copy[128 * KiB];  // the host tree plus the edu node the guest is given
alignas(8) uint8_t g_guest_dtb[64 * KiB];
xen::GuestDesc g_desc;
hyp::GuestConsole* g_console;  // the guest's vPL011, emulated: its lines come out as "(d1) ..."

// What the interrupt did not already bring in; the log prints each record as it comes.
void report_faults() { g.iommu->poll_faults(*g.faults); }

// The guest is gone (it exited, or was stopped): its console's last line, its contexts torn down
// (streams detached, tables freed, or quarantined and reported), and whether every page is back.
bool tear_down(const char* how) {
    if (g_console->pending()) g_console->flush();
    report_faults();
    g.faults->flush_suppressed();
    g.faults->report_to(nullptr, nullptr);
    g.guest->~PvIommuGuest();
    print("moat: guest %s after %lu iommu_op calls (%lu continued); "
          "%lu DMA faults reported; page pool %zu pages in use (%zu before the guest's contexts)\n",
          how, g.calls, g.preemptions, g.faults->total() - g.faults_before, g.pool->used_pages(), g.pool_before);
    IoDomain::Quarantine q = IoDomain::quarantine();
    if (q.domains)
        print("moat: %lu DMA domain(s) quarantined: the IOMMU did not confirm their teardown; %lu table "
              "pages withheld from the pool, %lu stream(s) blocked for good\n",
              q.domains, q.pages, q.streams);
    bool clean = g.pool->used_pages() == g.pool_before;
    if (!clean && !q.domains) print("moat: the guest's IOMMU contexts leaked pages\n");
    return clean;
}

const char* const kGuestVectors[8] = {"sync", "irq", "fiq", "serror", "sync (AArch32)", "irq (AArch32)",
                                      "fiq (AArch32)", "serror (AArch32)"};

// A trap moat has no answer for: the guest is stopped with the syndrome decoded, its DMA
// contexts are torn down, and moat ends with its own status, not as an EL2 exception.
[[noreturn]] void stop_guest(const arch::TrapFrame& f, uint64_t esr, unsigned vector) {
    uint64_t far, hpfar;
    asm volatile("mrs %0, far_el2" : "=r"(far));
    asm volatile("mrs %0, hpfar_el2" : "=r"(hpfar));
    if (g_console->pending()) g_console->flush();
    print("moat: guest stopped: %s from EL1: %s (ESR 0x%lx) at ELR 0x%lx, FAR 0x%lx, IPA 0x%lx\n",
          kGuestVectors[(vector - 8) & 7], arch::esr::class_name(esr), esr, f.elr, far, ((hpfar >> 4) << 12) | (far & 0xfff));
    if (vector == 8 && arch::esr::is_abort(esr))
        print("moat: guest stopped: %s at level %u, %s\n", arch::esr::fault_status(esr), arch::esr::fault_level(esr),
              arch::esr::is_write(esr) ? "write" : "read");
    (void)tear_down("stopped");
    print("moat: the guest was stopped on a fault; exit %d\n", hyp::kExitGuestFault);
    arch::halt(hyp::kExitGuestFault);
}

// A load or store to the guest's vPL011 window, emulated; false for anything else.
bool emulate_console(arch::TrapFrame& f, uint64_t esr) {
    if (!arch::esr::syndrome_valid(esr)) return false;
    uint64_t far, hpfar;
    asm volatile("mrs %0, far_el2" : "=r"(far));
    asm volatile("mrs %0, hpfar_el2" : "=r"(hpfar));
    uint64_t ipa = ((hpfar >> 4) << 12) | (far & 0xfff);
    if (ipa < xen::layout::kPl011Base || ipa - xen::layout::kPl011Base >= hyp::GuestConsole::kSize) return false;
    if (arch::esr::access_bytes(esr) > 4) return false;
    uint64_t off = ipa - xen::layout::kPl011Base;
    unsigned rt = arch::esr::access_reg(esr);
    if (arch::esr::is_write(esr)) g_console->write(off, rt == 31 ? 0 : f.x[rt]);
    else if (rt != 31) f.x[rt] = g_console->read(off);
    f.elr += 4;
    return true;
}

void on_guest_trap(arch::TrapFrame& f, uint64_t esr, unsigned vector) {
    if (vector != 8) stop_guest(f, esr, vector);
    unsigned ec = arch::esr::ec(esr);
    if (ec == 0x16 && (esr & 0xffff) == xen::kHvcXen) {
        uint64_t nr = f.x[16];
        if (nr == xen::kHypercallIommuOp) {
            g.calls++;
            xen::CallResult r = xen::iommu_op(g.host, *g.guest, f.x[0], f.x[1]);
            if (r.preempted) {
                g.preemptions++;
                f.elr -= 4;  // the guest issues the same call again, with the struct it was given back
            } else {
                f.x[0] = static_cast<uint64_t>(r.ret);
            }
            report_faults();
            return;
        }
        if (nr == xen::kHypercallMoatExit) {
            uint64_t status = f.x[0];
            char how[40];
            format_to(how, sizeof how, "exited with status %lu", status);
            bool clean = tear_down(how);
            if (status == 0 && clean) {
                print("moat: all checks passed; exit 0\n");
                arch::halt(0);
            }
            print("moat: the guest's checks failed; exit 1\n");
            arch::halt(1);
        }
        f.x[0] = static_cast<uint64_t>(-38);  // -ENOSYS
        return;
    }
    // Other SMCCC calls (PSCI through `hvc #0`, or SMC): none is implemented, and SMCCC says so.
    if (ec == 0x16 || ec == 0x17) {
        f.x[0] = kSmcccNotSupported;
        if (ec == 0x17) f.elr += 4;  // a trapped SMC returns to itself
        return;
    }
    if (ec == 0x24 && emulate_console(f, esr)) return;
    stop_guest(f, esr, vector);
}

}  // namespace

[[noreturn]] void run_pv_guest(const dt::Tree& host, PagePool& pool, Iommu& smmu, const pci::Device& edu, StreamId sid,
                               FaultLog& faults) {
    // Where the SMMU walks the CPU's stage-2 format (stage 2: QEMU 10), the guest's P2M is built
    // in the format it asks for and is the default DMA context itself; else the CPU's own format
    // and a composed default context (DMA address = guest address, mapped to the machine frames).
    Result<iopt::Format> shared = smmu.domain_format(DomainUse::guest_p2m, arch::Vm::kIpaBits);
    static arch::Vm vm(pool, shared.ok() ? shared.value : arch::Vm::cpu_format());
    g.iommu = &smmu;
    g.faults = &faults;
    g.faults_before = faults.total();
    faults.report_to(&console(), "moat: ", ReportPolicy{kFaultLinesPerSecond, 1000 * 1000 * 1000});
    g.pool = &pool;
    uint64_t guest_bytes = static_cast<uint64_t>(test_guest_end - test_guest_start);
    Status st = vm.create(xen::layout::kRam0Base, kGuestRam);
    uint64_t bar = edu.bars[0].addr, bar_size = edu.bars[0].size;
    if (st == Status::ok) st = vm.map_mmio(bar, bar, bar_size);  // edu's BAR at the same address
    // The console: nothing at the guest's vPL011 window, so each access traps and is emulated
    // (hyp/guest_console.hpp); the guest never reaches the hypervisor's UART.
    static hyp::GuestConsole con(1, console());
    g_console = &con;
    if (st != Status::ok) {
        print("moat: guest: %s\n", to_string(st));
        arch::halt(1);
    }
    memcpy(vm.ram(xen::layout::kRam0Base, guest_bytes), test_guest_start, guest_bytes);

    // The guest's tree: built by the same code as moat-dt's `guest`, with edu passed through.
    // edu is a PCI function, not a DT node: give the host tree a node for it first.
    // Only the blocks in use are copied: QEMU pads its tree to 1 MiB, which fdt_open_into would move whole.
    const void* hb = host.blob();
    size_t used = max<size_t>(fdt_off_dt_struct(hb) + fdt_size_dt_struct(hb), fdt_off_dt_strings(hb) + fdt_size_dt_strings(hb));
    int err = used <= sizeof g_host_copy ? 0 : -FDT_ERR_NOSPACE;
    if (!err) {
        memcpy(g_host_copy, hb, used);
        fdt_set_totalsize(g_host_copy, static_cast<uint32_t>(used));
        err = fdt_open_into(g_host_copy, g_host_copy, sizeof g_host_copy);
    }
    int node = err ? err : fdt_add_subnode(g_host_copy, 0, "edu@10000000");
    const char compat[] = "qemu,edu\0pci1234,11e8";
    fdt32_t reg[4] = {cpu_to_fdt32(static_cast<uint32_t>(bar >> 32)), cpu_to_fdt32(static_cast<uint32_t>(bar)),
                      cpu_to_fdt32(static_cast<uint32_t>(bar_size >> 32)), cpu_to_fdt32(static_cast<uint32_t>(bar_size))};
    fdt32_t sbdf[3] = {cpu_to_fdt32(0), cpu_to_fdt32(edu.bus), cpu_to_fdt32(static_cast<uint32_t>(edu.dev << 3 | edu.fn))};
    if (node >= 0) err = fdt_setprop(g_host_copy, node, "compatible", compat, sizeof compat);
    if (node >= 0 && !err) err = fdt_setprop(g_host_copy, node, "reg", reg, sizeof reg);
    if (node >= 0 && !err) err = fdt_setprop(g_host_copy, node, "moat,pci-sbdf", sbdf, sizeof sbdf);
    dt::Tree host_copy;
    if (node < 0 || err || host_copy.open(g_host_copy, sizeof g_host_copy) != Status::ok) {
        print("moat: guest: cannot describe edu in the host tree (%s)\n", fdt_strerror(node < 0 ? node : err));
        arch::halt(1);
    }
    format_to(g_desc.name, sizeof g_desc.name, "pv-iommu-test");
    // moat.selftest=guest-fault: the guest touches an address it was not given (tests stop it).
    int chosen = host.find_path("/chosen");
    int alen = 0;
    const char* hargs = chosen >= 0 ? static_cast<const char*>(host.prop(chosen, "bootargs", &alen)) : nullptr;
    if (hargs && alen > 0 && hargs[alen - 1] == 0 && __builtin_strstr(hargs, "moat.selftest=guest-fault"))
        format_to(g_desc.bootargs, sizeof g_desc.bootargs, "selftest=stage2-fault");
    g_desc.console = xen::Console::pl011;
    (void)xen::set_guest_memory(g_desc, kGuestRam);
    g_desc.npassthrough = 1;
    format_to(g_desc.passthrough[0].host_path, dt::kPathMax, "/edu@10000000");
    size_t dtb_size = 0;
    if (xen::build_guest_dt(g_desc, &host_copy, g_guest_dtb, sizeof g_guest_dtb, dtb_size, console()) != Status::ok) {
        print("moat: guest: device tree not built\n");
        arch::halt(1);
    }
    memcpy(vm.ram(xen::layout::kRam0Base + kDtbOffset, dtb_size), g_guest_dtb, dtb_size);

    xen::PvIommuConfig cfg;
    Result<iopt::Format> fmt = smmu.domain_format(DomainUse::dma, 39);  // the guest's DMA contexts
    if (!fmt.ok()) {
        print("moat: guest: %s has no table format for DMA contexts: %s\n", smmu.name(), to_string(fmt.status));
        arch::halt(1);
    }
    cfg.format = fmt.value;
    alignas(xen::PvIommuGuest) static unsigned char storage[sizeof(xen::PvIommuGuest)];
    g.pool_before = pool.used_pages();
    g.guest = new (storage) xen::PvIommuGuest(1, false, vm, pool, cfg);
    st = shared.ok() ? g.guest->init_default_shared(vm.p2m(), xen::layout::kRam0Base >> kPageShift, kGuestRam >> kPageShift)
                     : g.guest->init_default(xen::layout::kRam0Base >> kPageShift, kGuestRam >> kPageShift);
    if (st == Status::ok) st = g.guest->assign(0, edu.bus, static_cast<uint8_t>(edu.dev << 3 | edu.fn), smmu, sid);
    if (st == Status::ok) st = g.host.add(*g.guest);
    if (st != Status::ok) {
        print("moat: guest: PV-IOMMU setup: %s\n", to_string(st));
        arch::halt(1);
    }
    print("guest:    domain 1, %lu MiB RAM at 0x%lx (PA 0x%lx), edu BAR 0x%lx passed through, stream 0x%x attached to "
          "its default DMA context (%zu table pages); device tree %zu bytes at 0x%lx; entering EL1\n",
          kGuestRam / MiB, vm.ram_ipa(), vm.ram_pa(), bar, sid, pool.used_pages() - g.pool_before, dtb_size,
          vm.ram_ipa() + kDtbOffset);
    // Which table edu's STE walks now, read back from the SMMU.
    Iommu::StreamConfig sc;
    if (smmu.stream_config(sid, sc) == Status::ok && sc.translating) {
        if (g.guest->default_shared())
            print("guest:    default DMA context = the guest's stage-2 P2M: STE stage 2, S2VMID %u, S2TTB 0x%lx %s VTTBR_EL2's "
                  "root 0x%lx (VMID %u)\n", sc.tag, sc.root, sc.root == vm.p2m().root_pa() ? "=" : "!=", vm.p2m().root_pa(),
                  vm.p2m().tag());
        else
            print("guest:    default DMA context = a composed stage-1 table (%s has no stage 2): STE stage 1, ASID %u, TTB0 0x%lx; "
                  "the P2M's root is 0x%lx\n", smmu.name(), sc.tag, sc.root, vm.p2m().root_pa());
    }
    arch::set_guest_trap_handler(on_guest_trap);
    vm.enter(xen::layout::kRam0Base, xen::layout::kRam0Base + kDtbOffset);
}

}  // namespace moat
