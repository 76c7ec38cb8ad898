// The dom0less guests on arm64: each built from its spec (RAM from the pool at its own
// guest-physical address, its Image and initrd copied in, its tree written by the Linux guest
// DT builder), then all their vCPUs run on this CPU, round robin: a vCPU gives the CPU up at
// WFI (until an interrupt is deliverable), at WFE (a spinning lock waits for another vCPU) and
// at moat's tick (a time slice). Every trap is decoded here: the vGIC's distributor and
// redistributors and the vPL011 emulated (hyp/vgic.hpp, hyp/vpl011.hpp), PSCI served
// (hyp/vpsci.hpp), ICC_SGI1R_EL1 turned into virtual SGIs, the guest's virtual timer injected
// when it fires at EL2, an SMC answered NOT_SUPPORTED, an access outside the guest given an
// external abort, an unknown system register an UNDEF. A guest ends with PSCI SYSTEM_OFF or
// SYSTEM_RESET (or is stopped on a fault moat cannot answer), with a report; moat ends when the
// last guest has, with status 0 when every guest powered off.
#include "arch/arm64/linux_guest.hpp"

#include <stdarg.h>
#include <string.h>

#include <new>

#include "arch/arm64/esr.hpp"
#include "arch/arm64/gic_v3.hpp"
#include "arch/arm64/timer.hpp"
#include "arch/arm64/trap.hpp"
#include "arch/arm64/vcpu.hpp"
#include "arch/arm64/vm.hpp"
#include "arch/cache.hpp"
#include "arch/cpu.hpp"
#include "arch/time.hpp"
#include "drivers/serial/serial.hpp"
#include "hyp/boot.hpp"
#include "hyp/guest_console.hpp"
#include "hyp/irq_forward.hpp"
#include "hyp/pci_intx.hpp"
#include "hyp/vgic.hpp"
#include "hyp/passthrough.hpp"
#include "hyp/platform_passthrough.hpp"
#include "hyp/vpci.hpp"
#include "hyp/vpl011.hpp"
#include "hyp/vpsci.hpp"
#include "xen-compat/pv_iommu_abi.hpp"

namespace moat {

namespace {

namespace gm = xen::guest_map;

constexpr unsigned kMaxGuests = 4;
constexpr unsigned kMaxVcpus = 16;
constexpr unsigned kVtimerIntid = gm::kTimerVirtIntid;  // PPI 11
constexpr unsigned kMaintenanceIntid = 25;              // PPI 9: the virtual CPU interface's maintenance interrupt
constexpr unsigned kWakeIntid = 30;                     // PPI 14: the EL1 physical timer, which guests cannot use (trapped)
constexpr unsigned kReportsPerGuest = 8;                // a misbehaving guest cannot flood the console
constexpr unsigned kConfigReportsPerGuest = 8;          // config-space refusals: their own budget, so a guest's
                                                        // PCI pokes never hide its DMA faults (and the reverse)
constexpr uint64_t kSmcccNotSupported = ~uint64_t{0};
// Xen's hypercalls (hvc #0xEA1): none is served to a dom0less guest yet (the PV-IOMMU comes with
// passthrough devices); -ENOSYS, Linux's number, as Xen answers an unknown one.
constexpr int64_t kEnosys = 38;

// The host's config space through drivers/pci, for the guests' vPCI. ECAM here is accessed in
// words, so a narrower write is a read-modify-write of its word; in the command/status word the
// status half (write 1 to clear) is written as zeroes when the command is meant, and the reverse.
class HostConfig final : public hyp::ConfigSpace {
public:
    uint32_t read(const xen::PciBdf& f, uint16_t off, unsigned bytes) override {
        pci::Device d{f.bus, f.dev, f.fn, 0, 0, 0, {}};
        uint32_t w = hyp::host_pci().host->read32(d, static_cast<uint16_t>(off & ~3u));
        uint32_t v = w >> (8 * (off & 3));
        return bytes == 4 ? v : v & ((1u << (8 * bytes)) - 1);
    }
    void write(const xen::PciBdf& f, uint16_t off, unsigned bytes, uint32_t v) override {
        pci::Device d{f.bus, f.dev, f.fn, 0, 0, 0, {}};
        uint16_t at = static_cast<uint16_t>(off & ~3u);
        unsigned shift = 8 * (off & 3);
        uint32_t mask = (bytes == 4 ? 0xffffffffu : (1u << (8 * bytes)) - 1) << shift;
        uint32_t old = bytes == 4 ? 0 : hyp::host_pci().host->read32(d, at);
        if (at == 0x04) old &= mask & 0xffff0000u ? 0x0000ffffu : 0;  // never write back status bits
        hyp::host_pci().host->write32(d, at, (old & ~mask) | ((v << shift) & mask));
    }
};
HostConfig g_host_config;

struct Guest {
    const xen::Dom0lessGuest* spec = nullptr;
    arch::Vm* vm = nullptr;
    hyp::VGic vgic;
    hyp::VPsci psci;
    hyp::GuestConsole* con = nullptr;
    hyp::VPl011* uart = nullptr;
    unsigned first = 0, nvcpus = 0;
    uint64_t cntvoff = 0;
    bool running = false, entered = false;
    int result = 0;
    uint64_t start_ns = 0;
    uint64_t exits = 0, mmio = 0, calls = 0, wfi = 0, sgis = 0, injected_faults = 0;
    unsigned reports = 0, config_reports = 0;
    // Passthrough: the trapped ECAM, the DMA domain, and the assigned functions.
    hyp::VPci* vpci = nullptr;
    GuestDmaDomain* dma = nullptr;
    GuestPci pci;
    hyp::IntxLine intx[xen::kDom0lessMaxPci] = {};  // each function's host INTx line (intid 0: none)
    size_t pool_before_dma = 0;
    // Platform devices from its partial tree (multiboot,device-tree): their MMIO mapped in its
    // stage 2, their streams in the DMA domain above.
    xen::PartialTree* pt = nullptr;
    GuestPlatform plat;
};

enum class VState : uint8_t { off, runnable, waiting };

struct Vcpu {
    Guest* g = nullptr;
    unsigned idx = 0;
    VState st = VState::off;
    arch::VcpuContext ctx;
};

Guest g_guest[kMaxGuests];
Vcpu g_vcpu[kMaxVcpus];
unsigned g_nguests = 0, g_nvcpus = 0, g_nlr = 0;
Vcpu* g_cur = nullptr;        // the vCPU on the hardware
volatile bool g_resched = false;
uint64_t g_switches = 0;
alignas(arch::Vm) unsigned char g_vm_storage[kMaxGuests][sizeof(arch::Vm)];
alignas(hyp::GuestConsole) unsigned char g_con_storage[kMaxGuests][sizeof(hyp::GuestConsole)];
alignas(hyp::VPl011) unsigned char g_uart_storage[kMaxGuests][sizeof(hyp::VPl011)];
alignas(hyp::VPci) unsigned char g_vpci_storage[kMaxGuests][sizeof(hyp::VPci)];
alignas(GuestDmaDomain) unsigned char g_dma_storage[kMaxGuests][sizeof(GuestDmaDomain)];
xen::PartialTree g_pt[kMaxGuests];
alignas(PlatformHost) unsigned char g_plat_storage[sizeof(PlatformHost)];
PlatformHost* g_plat = nullptr;
PagePool* g_pool = nullptr;
uint64_t g_faults_seen = 0;
// The physical lines of the guests' devices (their INTx), each delivered to its guest's vGIC.
hyp::IrqForwarder g_fwd;

// moat's own code, which no guest's device may reach: a checksum taken before the guests start
// and taken again when a guest's DMA faults at an address inside it (a device without moat's
// IOMMU would have written there).
extern "C" char _start_image[], __text_end[];
uint64_t g_text_sum = 0;
uint64_t text_sum() {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (const char* p = _start_image; p < __text_end; p++) h = (h ^ static_cast<uint8_t>(*p)) * 0x100000001b3ull;
    return h;
}
alignas(8) uint8_t g_dtb[64 * KiB];

uint64_t counter() {
    uint64_t v;
    asm volatile("isb; mrs %0, cntpct_el0" : "=r"(v) : : "memory");
    return v;
}

__attribute__((format(printf, 2, 3))) void report(Guest& g, const char* fmt, ...);

void flush_console(Guest& g) {
    if (g.con && g.con->pending()) g.con->flush();
}

// A line about a guest, at most kReportsPerGuest of them.
void report(Guest& g, const char* fmt, ...) {
    if (g.reports > kReportsPerGuest) return;
    flush_console(g);
    if (g.reports++ == kReportsPerGuest) {
        print("moat: guest %s: further reports suppressed\n", g.spec->name);
        return;
    }
    format(console(), "moat: guest %s: ", g.spec->name);
    va_list ap;
    va_start(ap, fmt);
    vformat(console(), fmt, ap);
    va_end(ap);
    print("\n");
}

// A config-space write moat refused or ignored, at most kConfigReportsPerGuest of them; the
// guest's end line gives the totals.
void report_config(Guest& g, const hyp::VPci::Refusal& r) {
    if (g.config_reports > kConfigReportsPerGuest) return;
    flush_console(g);
    if (g.config_reports++ == kConfigReportsPerGuest) {
        print("moat: guest %s: further PCI config-space refusals are counted, not reported\n", g.spec->name);
        return;
    }
    format(console(), "moat: guest %s: ", g.spec->name);
    hyp::VPci::describe(r, 0, 0, console());
    print("\n");
}

// The host's config space as it was when the guests were built: every function's BARs and
// expansion ROM, and the command register of each function no guest was given. Compared again
// when a guest ends: nothing a guest writes to its ECAM may have reached any of it.
struct HostConfigSnapshot {
    xen::PciBdf bdf;
    uint32_t bars[7];  // BAR0..5 and the ROM at 0x30
    uint32_t cmd;
    bool assigned;
};
HostConfigSnapshot g_host_snap[pci::kMaxDevices];
unsigned g_nsnap = 0;

uint16_t snap_offset(unsigned i) { return static_cast<uint16_t>(i < 6 ? 0x10 + 4 * i : 0x30); }

void check_host_config(Guest& g);

[[noreturn]] void all_guests_ended() {
    int status = 0;
    for (unsigned i = 0; i < g_nguests; i++)
        if (g_guest[i].result && !status) status = g_guest[i].result;
    print("moat: all %u guest(s) ended (%lu vCPU switches); exit %d\n", g_nguests, g_switches, status);
    arch::halt(status);
}

// The guest is over: its vCPUs off, its console's last line out, a line saying how and what it did.
void report_dma_faults();

void end_guest(Guest& g, const char* how, int result) {
    report_dma_faults();
    flush_console(g);
    if (unsigned n = g_fwd.lines(g.vgic)) {
        uint64_t arrivals = g_fwd.arrivals(g.vgic);
        print("moat: guest %s: %lu physical interrupts forwarded on %u line%s; ", g.spec->name, arrivals, n, n == 1 ? "" : "s");
        const char* sep = "";
        for (unsigned i = 0; i < g.pci.n; i++) {
            if (!g.intx[i].intid) continue;
            print("%s%02x:%02x.%u SPI %u: %lu", sep, g.pci.fn[i].bdf.bus, g.pci.fn[i].bdf.dev, g.pci.fn[i].bdf.fn,
                  g.intx[i].intid - 32, g_fwd.arrivals_on(g.intx[i].intid));
            sep = ", ";
        }
        for (unsigned i = 0; i < g.plat.n; i++)
            for (unsigned k = 0; k < g.plat.dev[i].pt->nirqs; k++) {
                print("%s%s SPI %u: %lu", sep, g.plat.dev[i].pt->host_path, g.plat.dev[i].pt->intids[k] - 32,
                      g_fwd.arrivals_on(g.plat.dev[i].pt->intids[k]));
                sep = ", ";
            }
        print("; masked and released: %u\n", g_fwd.unbind(g.vgic));
    }
    if (g_plat && g.plat.n) g_plat->release(g.spec->name);
    if (g.dma) {
        // The functions stop mastering first, then their streams abort and the tables go back.
        for (unsigned i = 0; i < g.pci.n; i++) {
            pci::Device d{g.pci.fn[i].bdf.bus, g.pci.fn[i].bdf.dev, g.pci.fn[i].bdf.fn, 0, 0, 0, {}};
            hyp::host_pci().host->disable_bus_master(d);
        }
        uint64_t pages = g.dma->pool_pages();
        Status st = g.dma->teardown(&console());
        print("moat: guest %s: DMA domain torn down (%s): %lu pool pages given back, pool %zu pages in use (%zu before it)\n",
              g.spec->name, to_string(st), pages, g_pool->used_pages(), g.pool_before_dma);
        g.dma = nullptr;
    }
    if (g.vpci) {
        const hyp::VPci& c = *g.vpci;
        print("moat: guest %s: PCI config space: %lu writes refused or filtered, %lu writes to functions it was not given "
              "ignored, %lu reads of those answered all ones\n",
              g.spec->name, c.refused_writes(), c.absent_writes(), c.absent_accesses() - c.absent_writes());
        check_host_config(g);
    }
    for (unsigned v = 0; v < g.nvcpus; v++) g_vcpu[g.first + v].st = VState::off;
    g.running = false;
    g.result = result;
    uint64_t ms = (arch::now_ns() - g.start_ns) / 1000000;
    print("moat: guest %s %s after %lu ms: %lu exits, %lu hypercalls, %lu MMIO accesses emulated, %lu WFI, %lu SGIs, "
          "%lu virtual interrupts injected, %lu console characters, %lu faults injected\n",
          g.spec->name, how, ms, g.exits, g.calls, g.mmio, g.wfi, g.sgis, g.vgic.injected(), g.uart ? g.uart->chars() : 0,
          g.injected_faults);
}

// ---------------------------------------------------------------- interrupts of the loaded vCPU

void sync_lrs(Vcpu& v) {
    uint64_t lrs[hyp::VGic::kMaxLrs];
    arch::ich_read_lrs(lrs, g_nlr);
    bool more = v.g->vgic.lr_sync(v.idx, lrs, g_nlr);
    arch::ich_write_lrs(lrs, g_nlr, more);
    g_fwd.resample(v.g->vgic);  // forwarded level lines the guest deactivated: unmasked, looked at again
}

void on_vtimer(void*) {
    // Masked at the source (the guest unmasks it when it programs its next event), then pending.
    if (g_cur && g_cur->g->running && arch::vtimer_fired_and_mask()) g_cur->g->vgic.pulse(g_cur->idx, kVtimerIntid);
    else (void)arch::vtimer_fired_and_mask();
    if (arch::GicV3* gic = arch::gic()) gic->eoi(kVtimerIntid);
}

void on_maintenance(void*) {
    // A list register emptied (underflow, or a level interrupt deactivated): refilled at once,
    // which also lowers the line.
    if (g_cur) sync_lrs(*g_cur);
    else arch::ich_write_lrs(nullptr, 0, false);
    if (arch::GicV3* gic = arch::gic()) gic->eoi(kMaintenanceIntid);
}

void on_tick() { g_resched = true; }

// The EL1 physical timer as moat's alarm while every vCPU waits: it fires at the earliest
// virtual-timer deadline of a vCPU that is not on the hardware (the loaded one's fires itself).
void wake_alarm_off() { asm volatile("msr cntp_ctl_el0, xzr\n\tisb"); }
void on_wake_alarm(void*) {
    wake_alarm_off();
    if (arch::GicV3* gic = arch::gic()) gic->eoi(kWakeIntid);
}
void wake_alarm_for_waiting() {
    uint64_t earliest = ~uint64_t{0};
    for (unsigned i = 0; i < g_nvcpus; i++) {
        Vcpu& v = g_vcpu[i];
        constexpr uint64_t kEnable = 1, kImask = 2;
        if (&v == g_cur || v.st != VState::waiting || !v.g->running || (v.ctx.cntv_ctl & (kEnable | kImask)) != kEnable) continue;
        uint64_t at = v.ctx.cntv_cval + v.g->cntvoff;  // virtual deadline on the physical count
        if (at < v.ctx.cntv_cval) at = ~uint64_t{0};
        earliest = min(earliest, at);
    }
    if (earliest == ~uint64_t{0}) return;
    asm volatile("msr cntp_cval_el0, %0\n\tmsr cntp_ctl_el0, %1\n\tisb" : : "r"(earliest), "r"(uint64_t{1}));
}

// ---------------------------------------------------------------- scheduling

bool wakes(Vcpu& v) {
    if (v.st != VState::waiting) return v.st == VState::runnable;
    Guest& g = *v.g;
    if (g.vgic.wants_vcpu(v.idx)) return true;
    return &v != g_cur && arch::vtimer_due(v.ctx, counter() - g.cntvoff);
}

Vcpu* pick() {
    unsigned start = g_cur ? static_cast<unsigned>(g_cur - g_vcpu) : 0;
    for (unsigned k = 1; k <= g_nvcpus; k++) {
        Vcpu& v = g_vcpu[(start + k) % g_nvcpus];
        if (v.st == VState::off || !v.g->running) continue;
        if (wakes(v)) {
            v.st = VState::runnable;
            return &v;
        }
    }
    return nullptr;
}

void switch_to(Vcpu& next, arch::TrapFrame& f) {
    if (&next == g_cur) return;
    if (g_cur) {
        arch::vcpu_save(g_cur->ctx, f);
        // What it left in its list registers, so a WFI of its own sees a pending one.
        (void)g_cur->g->vgic.lr_sync(g_cur->idx, g_cur->ctx.lr, g_nlr);
        g_fwd.resample(g_cur->g->vgic);
    }
    Guest& g = *next.g;
    if (!g_cur || g_cur->g != &g || !g.entered) arch::guest_traps_on(g.vm->vttbr(), g.vm->vtcr(), g.cntvoff, !g.entered);
    g.entered = true;
    arch::vcpu_load(next.ctx, f);
    g_cur = &next;
    g_switches++;
}

// Another vCPU if one may run, else the one that ran; when none may, EL2 waits for an
// interrupt (the loaded vCPU's vtimer, the wake alarm for the others' timers, a device).
void schedule(arch::TrapFrame& f) {
    for (;;) {
        bool any = false;
        for (unsigned i = 0; i < g_nguests; i++) any |= g_guest[i].running;
        if (!any) all_guests_ended();
        Vcpu* next = pick();
        if (next) {
            switch_to(*next, f);
            return;
        }
        wake_alarm_for_waiting();
        asm volatile("msr daifclr, #2\n\twfi\n\tmsr daifset, #2" ::: "memory");
        wake_alarm_off();
    }
}

// One fault of a device `who` (a PCI function or a platform device's host path) of guest g.
void report_dma_fault(Guest& g, const char* who, const FaultRecord& r) {
    report(g, "DMA fault from %s: stream 0x%x, %s at IOVA (guest-physical) 0x%lx: %s (%s), reported by %s's interrupt; "
              "nothing of the guest's is there, the access was aborted",
           who, r.stream, r.write ? "write" : "read", r.address, to_string(r.kind), r.detail ? r.detail : "", r.iommu);
}

// SMMU faults the IOMMUs' interrupts recorded since the last look, each said against the guest
// whose DMA domain holds the stream.
void report_dma_faults() {
    FaultLog* log = hyp::host_pci().faults;
    if (!log || log->total() == g_faults_seen) return;
    uint64_t first = log->total() - log->size();
    for (uint64_t k = g_faults_seen < first ? first : g_faults_seen; k < log->total(); k++) {
        const FaultRecord& r = log->at(static_cast<unsigned>(k - first));
        for (unsigned i = 0; i < g_nguests; i++) {
            Guest& g = g_guest[i];
            for (unsigned j = 0; g.dma && j < g.pci.n; j++)
                if (g.pci.fn[j].iommu && g.pci.fn[j].sid == r.stream && __builtin_strcmp(g.pci.fn[j].iommu->name(), r.iommu) == 0) {
                    char who[16];
                    format_to(who, sizeof who, "%04x:%02x:%02x.%u", g.pci.fn[j].bdf.seg, g.pci.fn[j].bdf.bus, g.pci.fn[j].bdf.dev,
                              g.pci.fn[j].bdf.fn);
                    report_dma_fault(g, who, r);
                }
            for (unsigned j = 0; g.dma && j < g.plat.n; j++)
                for (unsigned s = 0; s < g.plat.dev[j].nstreams; s++)
                    if (g.plat.dev[j].sid[s] == r.stream && __builtin_strcmp(g.plat.dev[j].iommu[s]->name(), r.iommu) == 0)
                        report_dma_fault(g, g.plat.dev[j].pt->host_path, r);
        }
        uint64_t lo = reinterpret_cast<uintptr_t>(_start_image), hi = reinterpret_cast<uintptr_t>(__text_end);
        if (r.address >= lo && r.address < hi) {
            uint64_t now = text_sum();
            print("moat: the faulting address 0x%lx is moat's own code (PA [0x%lx, 0x%lx)): %s (FNV-1a 0x%lx)\n", r.address, lo,
                  hi, now == g_text_sum ? "unchanged" : "CHANGED", now);
        }
    }
    g_faults_seen = log->total();
}

// Before any return to the guest: the vPL011's line (its FIFO moves with the guest's own
// accesses only, hyp/vpl011.hpp), then the list registers.
void resume(arch::TrapFrame& f) {
    if (g_resched || !g_cur || g_cur->st != VState::runnable || !g_cur->g->running) {
        g_resched = false;
        schedule(f);
    }
    Guest& g = *g_cur->g;
    report_dma_faults();
    if (g.uart) g.vgic.set_level(0, gm::kPl011Intid, g.uart->irq());
    sync_lrs(*g_cur);
}

void on_irq_exit(arch::TrapFrame& f) {
    if (!g_cur) return;
    g_cur->g->exits++;
    // A device's line forwarded meanwhile may be for a vCPU that waits: it runs at once rather
    // than at the next tick.
    static uint64_t seen = 0;
    if (g_fwd.total() != seen) {
        seen = g_fwd.total();
        for (unsigned i = 0; i < g_nvcpus; i++)
            if (&g_vcpu[i] != g_cur && g_vcpu[i].st == VState::waiting && g_vcpu[i].g->running &&
                g_vcpu[i].g->vgic.wants_vcpu(g_vcpu[i].idx))
                g_resched = true;
    }
    resume(f);
}

// ---------------------------------------------------------------- traps

uint64_t fault_ipa() {
    uint64_t far, hpfar;
    asm volatile("mrs %0, far_el2" : "=r"(far));
    asm volatile("mrs %0, hpfar_el2" : "=r"(hpfar));
    return ((hpfar >> 4) << 12) | (far & 0xfff);
}

uint64_t fault_va() {
    uint64_t far;
    asm volatile("mrs %0, far_el2" : "=r"(far));
    return far;
}

enum class Mmio : uint8_t { none, done, refused };

bool config_write(Guest& g, uint64_t off, unsigned bytes, uint32_t val) {
    uint64_t before = g.vpci->refusals();
    bool ok = g.vpci->write(off, bytes, val);
    if (g.vpci->refusals() != before) report_config(g, g.vpci->last_refusal());
    return ok;
}

void snapshot_host_config() {
    const hyp::HostPci& hp = hyp::host_pci();
    g_nsnap = 0;
    for (unsigned k = 0; hp.host && k < hp.host->count() && g_nsnap < pci::kMaxDevices; k++) {
        const pci::Device& d = hp.host->at(k);
        HostConfigSnapshot& s = g_host_snap[g_nsnap++];
        s.bdf = xen::PciBdf{0, d.bus, d.dev, d.fn};
        for (unsigned i = 0; i < 7; i++) s.bars[i] = g_host_config.read(s.bdf, snap_offset(i), 4);
        s.cmd = g_host_config.read(s.bdf, 0x04, 2);
        s.assigned = false;
        for (unsigned gi = 0; gi < g_nguests; gi++)
            for (unsigned j = 0; j < g_guest[gi].pci.n; j++) {
                const xen::PciBdf& f = g_guest[gi].pci.fn[j].bdf;
                s.assigned |= f.bus == d.bus && f.dev == d.dev && f.fn == d.fn;
            }
    }
}

void check_host_config(Guest& g) {
    unsigned bars = 0, cmds = 0, changed = 0;
    for (unsigned k = 0; k < g_nsnap; k++) {
        const HostConfigSnapshot& s = g_host_snap[k];
        for (unsigned i = 0; i < 7; i++) {
            uint32_t now = g_host_config.read(s.bdf, snap_offset(i), 4);
            if (now != s.bars[i]) {
                changed++;
                print("moat: guest %s: host config %02x:%02x.%u offset 0x%x CHANGED: 0x%x, was 0x%x\n", g.spec->name, s.bdf.bus,
                      s.bdf.dev, s.bdf.fn, snap_offset(i), now, s.bars[i]);
            }
        }
        bars++;
        if (s.assigned) continue;  // the guest's own functions' command is the guest's (filtered) to set
        uint32_t cmd = g_host_config.read(s.bdf, 0x04, 2);
        if (cmd != s.cmd) {
            changed++;
            print("moat: guest %s: host config %02x:%02x.%u command CHANGED: 0x%x, was 0x%x\n", g.spec->name, s.bdf.bus, s.bdf.dev,
                  s.bdf.fn, cmd, s.cmd);
        }
        cmds++;
    }
    print("moat: guest %s: host config space after it: BARs and ROM of %u functions, command of the %u no guest has: %s\n",
          g.spec->name, bars, cmds, changed ? "CHANGED" : "as before the guests ran");
}

// A load or store to one of the emulated devices.
Mmio emulate_mmio(Vcpu& v, arch::TrapFrame& f, uint64_t esr) {
    Guest& g = *v.g;
    uint64_t ipa = fault_ipa();
    enum { gicd, gicr, pl011, ecam } dev;
    uint64_t off;
    if (ipa >= gm::kGicdBase && ipa - gm::kGicdBase < gm::kGicdSize) dev = gicd, off = ipa - gm::kGicdBase;
    else if (ipa >= gm::kGicrBase && ipa - gm::kGicrBase < g.nvcpus * gm::kGicrStride) dev = gicr, off = ipa - gm::kGicrBase;
    else if (g.uart && ipa >= gm::kPl011Base && ipa - gm::kPl011Base < gm::kPl011Size) dev = pl011, off = ipa - gm::kPl011Base;
    else if (g.vpci && ipa >= gm::kPciEcamBase && ipa - gm::kPciEcamBase < gm::kPciEcamSize) dev = ecam, off = ipa - gm::kPciEcamBase;
    else return Mmio::none;
    static const char* const kNames[] = {"GICv3 distributor", "GICv3 redistributor", "vPL011", "PCI ECAM"};
    if (!arch::esr::syndrome_valid(esr)) {
        report(g, "%s access at IPA 0x%lx by an instruction without a syndrome (ELR 0x%lx); external abort injected",
               kNames[dev], ipa, f.elr);
        return Mmio::refused;
    }
    unsigned bytes = arch::esr::access_bytes(esr), rt = arch::esr::access_reg(esr);
    bool write = arch::esr::is_write(esr);
    bool ok;
    uint64_t val = 0;
    if (write) {
        val = rt == 31 ? 0 : f.x[rt];
        if (bytes < 8) val &= (uint64_t{1} << (8 * bytes)) - 1;
        ok = dev == gicd   ? g.vgic.dist_write(off, bytes, val)
             : dev == gicr ? g.vgic.redist_write(off, bytes, val)
             : dev == ecam ? config_write(g, off, bytes, static_cast<uint32_t>(val))
                           : g.uart->write(off, bytes, val);
    } else {
        uint32_t v32 = 0;
        ok = dev == gicd   ? g.vgic.dist_read(off, bytes, val)
             : dev == gicr ? g.vgic.redist_read(off, bytes, val)
             : dev == ecam ? (g.vpci->read(off, bytes, v32) ? (val = v32, true) : false)
                           : g.uart->read(off, bytes, val);
        if (ok && rt != 31) {
            if ((esr >> 21) & 1 && bytes < 8) {  // SSE: sign-extend the loaded value
                uint64_t sign = uint64_t{1} << (8 * bytes - 1);
                val = (val ^ sign) - sign;
            }
            if (!((esr >> 15) & 1)) val &= 0xffffffff;  // SF clear: a W register
            f.x[rt] = val;
        }
    }
    if (!ok) {
        report(g, "%u-byte %s of %s offset 0x%lx is not an access it takes (ELR 0x%lx); external abort injected", bytes,
               write ? "write" : "read", kNames[dev], off, f.elr);
        return Mmio::refused;
    }
    g.mmio++;
    f.elr += 4;
    return Mmio::done;
}

void do_psci(Vcpu& v, arch::TrapFrame& f) {
    Guest& g = *v.g;
    g.calls++;
    hyp::VPsci::Result r = g.psci.call(v.idx, f.x[0], f.x[1], f.x[2], f.x[3]);
    f.x[0] = r.x0;
    switch (r.action) {
    case hyp::VPsci::Action::resume: break;
    case hyp::VPsci::Action::start_vcpu: {
        Vcpu& t = g_vcpu[g.first + r.target];
        arch::vcpu_reset(t.ctx, r.entry, r.context, gm::vcpu_mpidr(r.target));
        t.st = VState::runnable;
        flush_console(g);
        print("moat: guest %s: vCPU %u on at 0x%lx (PSCI CPU_ON from vCPU %u)\n", g.spec->name, r.target, r.entry, v.idx);
        break;
    }
    case hyp::VPsci::Action::stop_caller:
        v.st = VState::off;
        if (!g.psci.vcpus_on()) end_guest(g, "turned its last vCPU off (PSCI CPU_OFF)", 0);
        break;
    case hyp::VPsci::Action::system_off: end_guest(g, "powered off (PSCI SYSTEM_OFF)", 0); break;
    case hyp::VPsci::Action::system_reset: end_guest(g, "asked for a reset (PSCI SYSTEM_RESET; moat does not restart guests)", 0); break;
    }
}

// ISS of a trapped MSR/MRS (EC 0x18): Op0, Op2, Op1, CRn, Rt, CRm, direction.
struct SysReg {
    unsigned op0, op1, crn, crm, op2, rt;
    bool read;
};
SysReg decode_sysreg(uint64_t esr) {
    return SysReg{static_cast<unsigned>((esr >> 20) & 3),  static_cast<unsigned>((esr >> 14) & 7),
                  static_cast<unsigned>((esr >> 10) & 15), static_cast<unsigned>((esr >> 1) & 15),
                  static_cast<unsigned>((esr >> 17) & 7),  static_cast<unsigned>((esr >> 5) & 31), (esr & 1) != 0};
}

void do_sysreg(Vcpu& v, arch::TrapFrame& f, uint64_t esr) {
    Guest& g = *v.g;
    SysReg r = decode_sysreg(esr);
    bool icc_sgi = r.op0 == 3 && r.op1 == 0 && r.crn == 12 && r.crm == 11 && (r.op2 == 5 || r.op2 == 6 || r.op2 == 7);
    if (icc_sgi && !r.read) {
        if (r.op2 == 5) {  // ICC_SGI1R_EL1; SGI0R (Group 0) and ASGI1R (the other security state) have no target here
            uint32_t targets = g.vgic.sgi1r(v.idx, r.rt == 31 ? 0 : f.x[r.rt]);
            g.sgis++;
            if (targets & ~(1u << v.idx)) g_resched = true;
        }
        f.elr += 4;
        return;
    }
    report(g, "%s of system register S%u_%u_C%u_C%u_%u at ELR 0x%lx is not served; UNDEF injected", r.read ? "read" : "write",
           r.op0, r.op1, r.crn, r.crm, r.op2, f.elr);
    g.injected_faults++;
    arch::inject_undef(f);
}

void on_guest_trap(arch::TrapFrame& f, uint64_t esr, unsigned vector) {
    Vcpu& v = *g_cur;
    Guest& g = *v.g;
    g.exits++;
    if (vector != 8) {
        // An SError, or a trap from AArch32 (never entered: HCR_EL2.RW): nothing moat can answer.
        char how[96];
        format_to(how, sizeof how, "was stopped: %s from EL1 (ESR 0x%lx) at ELR 0x%lx",
                  vector == 11 ? "SError" : "exception", esr, f.elr);
        end_guest(g, how, hyp::kExitGuestFault);
        return resume(f);
    }
    switch (arch::esr::ec(esr)) {
    case 0x01:  // WFI / WFE
        f.elr += 4;
        if (esr & 1) {  // WFE: another vCPU may hold what this one waits for
            g_resched = true;
            break;
        }
        g.wfi++;
        if (arch::vtimer_fired_and_mask()) g.vgic.pulse(v.idx, kVtimerIntid);
        sync_lrs(v);  // what it acknowledged since it last trapped, and what is still pending in its LRs
        if (g.uart) {
            g.uart->idle();
            g.vgic.set_level(0, gm::kPl011Intid, g.uart->irq());
        }
        if (!g.vgic.wants_vcpu(v.idx)) v.st = VState::waiting;
        break;
    case 0x16:  // HVC: PSCI and SMCCC through hvc #0; a Xen hypercall gets Xen's -ENOSYS
        if ((esr & 0xffff) == 0) do_psci(v, f);
        else if ((esr & 0xffff) == xen::kHvcXen) f.x[0] = static_cast<uint64_t>(-int64_t{kEnosys});
        else f.x[0] = kSmcccNotSupported;
        g.calls += (esr & 0xffff) != 0;
        break;
    case 0x17:  // SMC: there is no firmware behind moat for a guest; SMCCC's answer
        g.calls++;
        f.x[0] = kSmcccNotSupported;
        f.elr += 4;
        break;
    case 0x18: do_sysreg(v, f, esr); break;
    case 0x24: {
        Mmio m = emulate_mmio(v, f, esr);
        if (m == Mmio::done) break;
        if (m == Mmio::none) {
            uint64_t ipa = fault_ipa();
            if (g.vm->ram(ipa & ~(kPageSize - 1), kPageSize)) {
                char how[120];
                format_to(how, sizeof how, "was stopped: stage-2 fault in its own RAM at IPA 0x%lx (ESR 0x%lx, ELR 0x%lx)", ipa,
                          esr, f.elr);
                end_guest(g, how, hyp::kExitGuestFault);
                break;
            }
            report(g, "%s at IPA 0x%lx (VA 0x%lx, ELR 0x%lx): nothing of the guest's there; external abort injected",
                   arch::esr::is_write(esr) ? "write" : "read", ipa, fault_va(), f.elr);
        }
        g.injected_faults++;
        arch::inject_external_abort(f, true, fault_va(), arch::esr::is_write(esr));
        break;
    }
    case 0x20:
        report(g, "instruction fetch at IPA 0x%lx (ELR 0x%lx): nothing of the guest's there; external abort injected",
               fault_ipa(), f.elr);
        g.injected_faults++;
        arch::inject_external_abort(f, false, fault_va());
        break;
    default:
        report(g, "%s (ESR 0x%lx) at ELR 0x%lx; UNDEF injected", arch::esr::class_name(esr), esr, f.elr);
        g.injected_faults++;
        arch::inject_undef(f);
        break;
    }
    resume(f);
}

// ---------------------------------------------------------------- building

uint64_t le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

// The guest's DMA domain: its PCI functions' and its platform devices' streams, before it runs.
bool build_dma(Guest& g, const xen::Dom0lessGuest& spec, unsigned index, PagePool& pool) {
    g.pool_before_dma = pool.used_pages();
    g.dma = new (g_dma_storage[index]) GuestDmaDomain(pool, nullptr);
    if (g.dma->build(spec.name, g.pci, &g.plat, spec.ram_base, g.vm->ram_pa(), spec.memory, console()) != Status::ok) {
        print("moat: guest %s: its DMA domain could not be built; not started\n", spec.path);
        g.dma = nullptr;
        return false;
    }
    return true;
}

// The guest's platform devices, before anything is allocated for it: its partial tree (the
// module the loader put in host RAM) read, each device checked against the host node its
// xen,path names (hyp/platform_passthrough.hpp, which claims the nodes for the guest), its SPIs
// against what a virtual GIC can have (the guest's is sized to cover them, guest_spis()).
// false (reported) on any problem.
bool platform_resolve(Guest& g, const xen::Dom0lessGuest& spec, unsigned index) {
    xen::PartialTree& pt = g_pt[index];
    const void* blob = reinterpret_cast<const void*>(static_cast<uintptr_t>(spec.dtb.addr));
    if (xen::parse_partial_dt(spec, blob, spec.dtb.size, pt, console(), &console()) != Status::ok) return false;
    if (!g_plat) {
        print("moat: guest %s: its partial device tree names host devices, but moat has no host topology; not started\n", spec.path);
        return false;
    }
    for (unsigned i = 0; i < pt.ndevices; i++)
        for (unsigned k = 0; k < pt.dev[i].nirqs; k++)
            if (!hyp::VGic::spis_covering(pt.dev[i].intids[k])) {
                print("moat: guest %s: partial device tree: %s: interrupts: SPI %u is beyond the %u SPIs a guest's GIC can "
                      "have; not started\n", spec.path, pt.dev[i].name, pt.dev[i].intids[k] - 32, hyp::VGic::kMaxSpis);
                return false;
            }
    if (g_plat->resolve(spec, pt, g.plat, console()) != Status::ok) return false;
    g.pt = &pt;
    return true;
}

// Each platform device's MMIO mapped in the guest's stage 2 as device memory at the guest
// address xen,reg gives; the DMA domain follows (build_dma, with the PCI functions' streams).
bool platform_map(Guest& g, const xen::Dom0lessGuest& spec) {
    for (unsigned i = 0; i < g.plat.n; i++) {
        const PlatformAssignment& a = g.plat.dev[i];
        const xen::PtDevice& d = *a.pt;
        for (unsigned k = 0; k < d.nranges; k++) {
            const xen::PtRange& r = d.ranges[k];
            Status st = g.vm->map_mmio(r.guest, r.host, r.size);
            if (st != Status::ok) {
                print("moat: guest %s: %s: xen,reg: mapping [0x%lx, +0x%lx) at IPA 0x%lx in its stage 2: %s; not started\n",
                      spec.path, d.name, r.host, r.size, r.guest, to_string(st));
                return false;
            }
        }
        print("guest:    %s: %s passed through as %s", spec.name, d.host_path, d.name);
        for (unsigned k = 0; k < d.nranges; k++)
            print(", MMIO PA 0x%lx -> IPA 0x%lx (%lu KiB)", d.ranges[k].host, d.ranges[k].guest, d.ranges[k].size / KiB);
        for (unsigned k = 0; k < d.nirqs; k++) print(", SPI %u", d.intids[k] - 32);
        if (a.unconfined) print(", NO IOMMU: its DMA is unconfined\n");
        else {
            for (unsigned s = 0; s < a.nstreams; s++) print(", stream 0x%x on %s", a.sid[s], a.iommu[s]->name());
            print("\n");
        }
    }
    if (g.plat.unconfined)
        print("moat: guest %s: WARNING: its DMA is unconfined (xen,force-assign-without-iommu)\n", spec.name);
    return true;
}

// The guest's PCI functions: checked against the host, each function's BARs assigned (bus
// mastering off until the guest turns it on), added to the guest's trapped ECAM, mapped in its
// stage 2 as device memory (nothing else of the window), and its stream attached to the DMA
// domain mirroring the guest's RAM before the guest runs. false (reported) when any of it fails.
bool passthrough(Guest& g, const xen::Dom0lessGuest& spec, unsigned index, PagePool& pool, xen::GuestPciDt& dt) {
    const hyp::HostPci& hp = hyp::host_pci();
    if (!hp.host || !hp.view) {
        print("moat: guest %s: moat,pci names functions, but moat found no PCIe host bridge behind an IOMMU; not started\n",
              spec.path);
        return false;
    }
    if (resolve_pci_assignment(spec, *hp.view, g.pci, console()) != Status::ok) return false;
    if (g.pci.unconfined) print("moat: guest %s: WARNING: its DMA is unconfined (moat,pci-force-assign-without-iommu)\n", spec.name);
    g.vpci = new (g_vpci_storage[index]) hyp::VPci(g_host_config);
    uint64_t lo = ~uint64_t{0}, hi = 0;
    for (unsigned i = 0; i < g.pci.n; i++) {
        const xen::PciBdf& f = g.pci.fn[i].bdf;
        pci::Device* d = nullptr;
        for (unsigned k = 0; k < hp.host->count(); k++) {
            pci::Device& c = hp.host->at(k);
            if (c.bus == f.bus && c.dev == f.dev && c.fn == f.fn) d = &c;
        }
        // Enumeration sizes every BAR; enable() places them (once: the DMA selftest may have).
        bool placed = true;
        for (const pci::Bar& b : d->bars) placed &= b.io || !b.size || b.addr != 0;
        if (!placed && hp.host->enable(*d) != Status::ok) {
            print("moat: guest %s: %02x:%02x.%u: its BARs do not fit the host bridge's 32-bit window; not started\n", spec.path,
                  f.bus, f.dev, f.fn);
            return false;
        }
        hp.host->disable_bus_master(*d);
        if (g.vpci->add(f, d->bars, console()) != Status::ok) return false;
        print("guest:    %s: %04x:%02x:%02x.%u %04x:%04x passed through", spec.name, f.seg, f.bus, f.dev, f.fn, d->vendor, d->device);
        for (unsigned b = 0; b < 6; b++)
            if (d->bars[b].size && !d->bars[b].io) print(", BAR%u 0x%lx (%lu KiB)", b, d->bars[b].addr, d->bars[b].size / KiB);
        if (g.pci.fn[i].iommu) print(", stream 0x%x on %s\n", g.pci.fn[i].sid, g.pci.fn[i].iommu->name());
        else print(", NO IOMMU\n");
    }
    uint64_t a, sz;
    for (unsigned i = 0; g.vpci->bar_range(i, a, sz); i++) {
        Status st = g.vm->map_mmio(a, a, sz);
        if (st != Status::ok) {
            print("moat: guest %s: mapping BAR [0x%lx, +0x%lx) in its stage 2: %s; not started\n", spec.path, a, sz, to_string(st));
            return false;
        }
        lo = min(lo, a), hi = hi > a + sz ? hi : a + sz;
    }
    if (hi) dt.win_base = align_down(lo, MiB), dt.win_size = align_up(hi, MiB) - dt.win_base;
    else dt.win_base = hp.host->window_base(), dt.win_size = MiB;
    if (!build_dma(g, spec, index, pool)) return false;
    print("guest:    %s: PCI ECAM at 0x%lx (bus 0), window [0x%lx, 0x%lx), guest INTx on INTIDs %u..%u; DMA domain: %lu pool pages\n",
          spec.name, gm::kPciEcamBase, dt.win_base, dt.win_base + dt.win_size, gm::kPciIntxIntid, gm::kPciIntxIntid + 3,
          g.dma->pool_pages());
    return true;
}

// Each assigned function's INTx: the host SPI its pin reaches (the host bridge's interrupt-map)
// forwarded to the guest's line for the same pin, kPciIntxIntid + (device + pin - 1) % 4 as the
// guest's tree maps it. A line another guest's function or moat itself holds is refused; two
// of this guest's functions on one line share it. false (reported) when any is refused.
bool forward_intx(Guest& g, const xen::Dom0lessGuest& spec, const dt::Tree& t) {
    int bridge = hyp::host_pci().host->node();
    for (unsigned i = 0; i < g.pci.n; i++) {
        const xen::PciBdf& f = g.pci.fn[i].bdf;
        unsigned pin = g_host_config.read(f, 0x3d, 1);  // Interrupt Pin: 0 none, 1..4 INTA..INTD
        if (pin == 0) continue;
        Why why;
        hyp::IntxLine line;
        uint32_t vintid = gm::kPciIntxIntid + (f.dev + pin - 1) % 4;
        Status st = pin <= 4 ? hyp::pci_intx_line(t, bridge, f, pin, line, why)
                             : why.set(Status::bad_dt, "its Interrupt Pin register reads %u", pin);
        if (st == Status::ok) st = g_fwd.forward_spi(g.vgic, spec.name, line.intid, vintid, line.level, why);
        if (st != Status::ok) {
            print("moat: guest %s: %04x:%02x:%02x.%u INT%c: %s; not started\n", spec.path, f.seg, f.bus, f.dev, f.fn,
                  pin >= 1 && pin <= 4 ? static_cast<char>('A' + pin - 1) : '?', why.text());
            (void)g_fwd.unbind(g.vgic);
            return false;
        }
        g.intx[i] = line;
        print("guest:    %s: %04x:%02x:%02x.%u INT%c: host SPI %u (INTID %u, %s) forwarded as its INTID %u\n", spec.name, f.seg,
              f.bus, f.dev, f.fn, static_cast<char>('A' + pin - 1), line.intid - 32, line.intid, line.level ? "level" : "edge",
              vintid);
    }
    return true;
}

// Each platform device's SPIs, forwarded 1:1 (host SPI n is the guest's SPI n, as Xen maps them)
// with the trigger its partial tree gives. A line moat or another guest holds is refused.
bool forward_platform_irqs(Guest& g, const xen::Dom0lessGuest& spec) {
    for (unsigned i = 0; i < g.plat.n; i++) {
        const xen::PtDevice& d = *g.plat.dev[i].pt;
        for (unsigned k = 0; k < d.nirqs; k++) {
            bool level = (d.flags[k] & 3) == 0;  // GIC binding: 1 rising edge, 4 level-high
            Why why;
            if (g_fwd.forward_spi(g.vgic, spec.name, d.intids[k], d.intids[k], level, why) != Status::ok) {
                print("moat: guest %s: %s: interrupts: SPI %u: %s; not started\n", spec.path, d.name, d.intids[k] - 32, why.text());
                (void)g_fwd.unbind(g.vgic);
                return false;
            }
            print("guest:    %s: %s: host SPI %u (INTID %u, %s) forwarded as its INTID %u\n", spec.name, d.host_path,
                  d.intids[k] - 32, d.intids[k], level ? "level" : "edge", d.intids[k]);
        }
    }
    return true;
}

// The SPIs the guest's GIC needs: enough for the highest line any of its devices uses (its
// platform devices' SPIs, 1:1 with the host's; its PCI INTx lines; the vPL011's), as Xen sizes
// a domU's vGIC to cover its passthrough SPIs.
unsigned guest_spis(const Guest& g, const xen::Dom0lessGuest& spec) {
    uint32_t top = spec.vpl011 ? gm::kPl011Intid : 32;
    if (g.vpci) top = max(top, gm::kPciIntxIntid + 3);
    for (unsigned i = 0; i < g.plat.n; i++)
        for (unsigned k = 0; k < g.plat.dev[i].pt->nirqs; k++) top = max(top, g.plat.dev[i].pt->intids[k]);
    return hyp::VGic::spis_covering(top);  // platform_resolve() refused what no GIC has
}

// Guest i from its spec; false (reported, naming the guest) when it cannot be built.
bool build(Guest& g, const xen::Dom0lessGuest& spec, unsigned index, PagePool& pool, const dt::Tree& t) {
    g.spec = &spec;
    if (spec.vcpus > hyp::VPsci::kMaxVcpus || g_nvcpus + spec.vcpus > kMaxVcpus) {
        print("moat: guest %s: %u vCPUs, but this CPU runs at most %u in all; not started\n", spec.path, spec.vcpus, kMaxVcpus);
        return false;
    }
    const uint8_t* k = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(spec.kernel.addr));
    if (spec.kernel.size < 64 || __builtin_memcmp(k + 56, "ARM\x64", 4) != 0) {
        print("moat: guest %s: the multiboot,kernel module at 0x%lx is not an arm64 Image (no \"ARM\\x64\" magic at offset 56)"
              "; not started\n", spec.path, spec.kernel.addr);
        return false;
    }
    uint64_t text_offset = le64(k + 8), image_size = le64(k + 16);
    if (image_size == 0) text_offset = 0x80000;  // the boot protocol's rule for images before Linux 3.17
    xen::GuestPlacement place;
    if (xen::place_guest_modules(spec, text_offset, image_size, place, console()) != Status::ok) return false;

    if (spec.dtb.present && !platform_resolve(g, spec, index)) return false;
    g.vm = new (g_vm_storage[index]) arch::Vm(pool);
    size_t before = pool.used_pages();
    Status st = g.vm->create(spec.ram_base, spec.memory);
    if (st != Status::ok) {
        print("moat: guest %s: %lu KiB of RAM at IPA 0x%lx: %s; not started\n", spec.path, spec.memory / KiB, spec.ram_base,
              to_string(st));
        return false;
    }
    xen::GuestPciDt pcidt;
    if (g.pt && !platform_map(g, spec)) return false;
    if (spec.npci && !passthrough(g, spec, index, pool, pcidt)) return false;
    bool plat_streams = false;
    for (unsigned i = 0; i < g.plat.n; i++) plat_streams |= g.plat.dev[i].nstreams != 0;
    if (!spec.npci && plat_streams && !build_dma(g, spec, index, pool)) return false;
    size_t dtb_size = 0;
    if (xen::build_linux_guest_dt(spec, place, g_dtb, min<uint64_t>(sizeof g_dtb, place.dtb_max), dtb_size, console(),
                                  spec.npci ? &pcidt : nullptr, g.pt) != Status::ok)
        return false;
    memcpy(g.vm->ram(place.kernel, spec.kernel.size), k, spec.kernel.size);
    if (place.initrd_size)
        memcpy(g.vm->ram(place.initrd, place.initrd_size),
               reinterpret_cast<const void*>(static_cast<uintptr_t>(spec.ramdisk.addr)), place.initrd_size);
    memcpy(g.vm->ram(place.dtb, dtb_size), g_dtb, dtb_size);
    // The guest starts with its MMU off, so its accesses bypass the caches: every line of its RAM
    // (the zeroes, the Image, the initrd, the tree) goes to the point of coherency and out of
    // the cache, or a dirty line evicted later would overwrite what the guest wrote meanwhile.
    cache::sync_for_cpu(g.vm->ram(spec.ram_base, spec.memory), spec.memory);

    uint64_t mpidr[hyp::VPsci::kMaxVcpus];
    for (unsigned n = 0; n < spec.vcpus; n++) mpidr[n] = gm::vcpu_mpidr(n);
    g.vgic.reset(spec.vcpus, mpidr, guest_spis(g, spec));
    if (g.vgic.spis() > hyp::VGic::kMinSpis)
        print("guest:    %s: its GIC has %u SPIs (INTIDs 32..%u), to cover its devices' lines\n", spec.name, g.vgic.spis(),
              g.vgic.lines() - 1);
    g.psci.reset(spec.vcpus, mpidr, spec.ram_base, spec.memory);
    if ((g.vpci && !forward_intx(g, spec, t)) || (g.plat.n && !forward_platform_irqs(g, spec))) {
        (void)g_fwd.unbind(g.vgic);
        if (g.dma) (void)g.dma->teardown(&console());
        g.dma = nullptr;
        return false;
    }
    if (spec.vpl011) {
        g.con = new (g_con_storage[index]) hyp::GuestConsole(spec.name, console());
        g.uart = new (g_uart_storage[index]) hyp::VPl011(*g.con);
    }
    g.first = g_nvcpus;
    g.nvcpus = spec.vcpus;
    for (unsigned n = 0; n < spec.vcpus; n++) {
        Vcpu& v = g_vcpu[g_nvcpus++];
        v.g = &g;
        v.idx = n;
        v.st = n == 0 ? VState::runnable : VState::off;
        arch::vcpu_reset(v.ctx, place.kernel, place.dtb, mpidr[n]);
    }
    g.running = true;
    print("guest:    %s: %u vCPU%s, %lu MiB RAM at IPA 0x%lx (PA 0x%lx, %zu pages with its stage 2), VMID %u\n", spec.name,
          spec.vcpus, spec.vcpus == 1 ? "" : "s", spec.memory / MiB, spec.ram_base, g.vm->ram_pa(),
          pool.used_pages() - before, g.vm->vmid());
    print("guest:    %s: Image %lu KiB at 0x%lx (text_offset 0x%lx, image_size 0x%lx), initrd %lu KiB at 0x%lx, "
          "device tree %zu bytes at 0x%lx%s\n",
          spec.name, spec.kernel.size / KiB, place.kernel, text_offset, image_size, place.initrd_size / KiB, place.initrd,
          dtb_size, place.dtb, spec.vpl011 ? ", vpl011 at 0x22000000 (INTID 32)" : ", no console");
    if (spec.resv_size)
        print("guest:    %s: moat,reserved-memory [0x%lx, 0x%lx): guest RAM (stage 2 and DMA domain), no-map to its kernel\n",
              spec.name, spec.resv_base, spec.resv_base + spec.resv_size);
    return true;
}

}  // namespace

[[noreturn]] void run_dom0less_guests(const dt::Tree& tree, PagePool& pool, const xen::Dom0lessConfig& cfg) {
    arch::GicV3* gic = arch::gic();
    if (!gic) {
        print("moat: guests need the GICv3 moat drives (virtual interrupts); none started; exit %d\n", hyp::kExitCheckFailed);
        arch::halt(hyp::kExitCheckFailed);
    }
    g_fwd.set_controller(gic);
    // The console UART moat writes by polling: its line is moat's, never a guest's.
    int con = stdout_node(tree);
    dt::Irq con_irq[4];
    unsigned ncon = 0;
    static char con_path[dt::kPathMax];  // the forwarder keeps the name
    if (con >= 0 && tree.interrupts(con, con_irq, 4, ncon) == Status::ok) {
        tree.path(con, con_path, sizeof con_path);
        for (unsigned i = 0; i < ncon; i++)
            if (con_irq[i].kind == dt::IrqKind::spi) (void)g_fwd.reserve(con_irq[i].intid, con_path);
    }
    g_nlr = arch::ich_lrs();
    g_pool = &pool;
    g_text_sum = text_sum();
    if (hyp::host_pci().faults) g_faults_seen = hyp::host_pci().faults->total();
    const hyp::HostDevices& hd = hyp::host_devices();
    if (hd.topo) {
        // What no guest's platform device may be or map: moat's IOMMUs, GIC and console (the
        // constructor), and every byte of RAM (moat's image, the boot tree and modules among it).
        g_plat = new (g_plat_storage) PlatformHost(tree, *hd.topo, hd.iommus);
        for (unsigned i = 0; hd.plan && i < hd.plan->nram; i++) g_plat->own_range(hd.plan->ram[i].base, hd.plan->ram[i].size, "RAM");
        for (unsigned i = 0; hd.plan && i < hd.plan->nreserved; i++)
            g_plat->own_range(hd.plan->reserved[i].base, hd.plan->reserved[i].size,
                              hd.plan->reserved_why[i] ? hd.plan->reserved_why[i] : "a reserved range");
    }
    unsigned started = 0;
    for (unsigned i = 0; i < cfg.nguests && g_nguests < kMaxGuests; i++) {
        Guest& g = g_guest[g_nguests];
        size_t pool_before = pool.used_pages();
        if (build(g, cfg.guests[i], g_nguests, pool, tree)) {
            g_nguests++;
            started++;
        } else {
            // What it had is given back: its claims on host devices, its DMA domain's streams,
            // then its stage 2, VMID and RAM, so a refused guest costs the pool nothing.
            if (g_plat) g_plat->release(cfg.guests[i].name);
            if (g.dma) (void)g.dma->teardown(nullptr);
            if (g.vm) {
                size_t held = pool.used_pages();
                Status st = g.vm->destroy();
                print("moat: guest %s: not started; its VM torn down (%s): %zu pool pages given back, pool %zu pages in use "
                      "(%zu before it)\n",
                      cfg.guests[i].path, to_string(st), held - pool.used_pages(), pool.used_pages(), pool_before);
                g.vm->~Vm();
            }
            g = Guest{};
        }
    }
    snapshot_host_config();
    if (cfg.nguests > kMaxGuests) print("moat: only %u guests run at once on this CPU; the others are not started\n", kMaxGuests);
    if (!started) {
        print("moat: no guest could be started; exit %d\n", hyp::kExitCheckFailed);
        arch::halt(hyp::kExitCheckFailed);
    }
    Status st = gic->request(kVtimerIntid, Trigger::level_high, 0xa0, &on_vtimer, nullptr);
    if (st == Status::ok) st = gic->request(kMaintenanceIntid, Trigger::level_high, 0xa0, &on_maintenance, nullptr);
    if (st == Status::ok) st = gic->request(kWakeIntid, Trigger::level_high, 0xa0, &on_wake_alarm, nullptr);
    if (st != Status::ok) {
        print("moat: the virtual timer, maintenance and wake-up PPIs: %s; exit %d\n", to_string(st), hyp::kExitCheckFailed);
        arch::halt(hyp::kExitCheckFailed);
    }
    gic->enable(kVtimerIntid);
    gic->enable(kMaintenanceIntid);
    wake_alarm_off();
    gic->enable(kWakeIntid);
    arch::set_guest_trap_handler(on_guest_trap);
    arch::set_guest_irq_exit(on_irq_exit);
    arch::set_tick_hook(on_tick);
    print("guest:    %u guest(s), %u vCPU(s) on this CPU (round robin at WFI, WFE and the tick); %u list registers; "
          "entering EL1\n", started, g_nvcpus, g_nlr);
    uint64_t now = counter();
    for (unsigned i = 0; i < g_nguests; i++) {
        g_guest[i].cntvoff = now;  // each guest's virtual count starts at 0
        g_guest[i].start_ns = arch::now_ns();
    }
    Guest& g = g_guest[0];
    arch::guest_traps_on(g.vm->vttbr(), g.vm->vtcr(), g.cntvoff, true);
    g.entered = true;
    g_cur = &g_vcpu[g.first];
    arch::vcpu_first_entry(g_cur->ctx);
}

}  // namespace moat
