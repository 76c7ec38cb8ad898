#include "hyp/boot.hpp"

#include "arch/cpu.hpp"
#include "arch/irq.hpp"
#include "common/boot_memory.hpp"
#include "common/discovery.hpp"
#include "common/format.hpp"
#include "common/iommu_set.hpp"
#include "drivers/pci/edu.hpp"
#include "hyp/dma_selftest.hpp"
#include "hyp/smp_selftest.hpp"
#include "hyp/p2m_selftest.hpp"

namespace moat::hyp {

namespace {

PagePool g_pool;
Topology g_topo;
MemoryPlan g_plan;
IommuSet g_iommus;
pci::Host g_pci;
FaultLog g_faults;
xen::Dom0lessConfig g_guests;

// The functions of the host bridge step 5 enumerated, and the stream each reaches.
class BridgeView final : public PciHostView {
public:
    void set(const dt::Tree* t, const MasterInfo* bridge) { t_ = t, bridge_ = bridge; }
    bool present(const xen::PciBdf& f) const override {
        if (!bridge_ || f.seg != 0) return false;
        for (unsigned i = 0; i < g_pci.count(); i++) {
            const pci::Device& d = g_pci.at(i);
            if (d.bus == f.bus && d.dev == f.dev && d.fn == f.fn) return true;
        }
        return false;
    }
    Status stream(const xen::PciBdf& f, Iommu*& iommu, StreamId& sid, Why& why) const override {
        if (!bridge_) return why.set(Status::not_found, "no host bridge behind an IOMMU moat drives");
        return g_iommus.stream_of_rid(*t_, *bridge_, f.rid(), iommu, sid, why);
    }
private:
    const dt::Tree* t_ = nullptr;
    const MasterInfo* bridge_ = nullptr;
};
BridgeView g_bridge_view;
HostPci g_host_pci;
HostDevices g_host_devices;

// The word of /chosen/bootargs equal to `arg` (or, with `prefix`, starting with it): a pointer
// just past `arg` inside that word; nullptr if there is none.
const char* bootarg(const dt::Tree& t, const char* arg, bool prefix) {
    int chosen = t.find_path("/chosen");
    int len;
    const char* args = chosen >= 0 ? static_cast<const char*>(t.prop(chosen, "bootargs", &len)) : nullptr;
    if (!args || len <= 0 || args[len - 1] != 0) return nullptr;
    size_t n = __builtin_strlen(arg);
    for (const char* p = args; *p;) {
        while (*p == ' ') p++;
        const char* w = p;
        while (*p && *p != ' ') p++;
        size_t wn = static_cast<size_t>(p - w);
        if ((wn == n || (prefix && wn > n)) && __builtin_memcmp(w, arg, n) == 0) return w + n;
    }
    return nullptr;
}

bool has_bootarg(const dt::Tree& t, const char* arg) { return bootarg(t, arg, false) != nullptr; }

// `arg` followed by a hex number ("moat.selftest=dtb@0x60000000").
bool bootarg_hex(const dt::Tree& t, const char* arg, uint64_t& out) {
    const char* p = bootarg(t, arg, true);
    if (!p) return false;
    if (p[0] == '0' && p[1] == 'x') p += 2;
    out = 0;
    unsigned digits = 0;
    for (; *p && *p != ' '; p++, digits++) {
        char c = *p;
        unsigned d = c >= '0' && c <= '9' ? unsigned(c - '0') : c >= 'a' && c <= 'f' ? unsigned(c - 'a' + 10) : 16;
        if (d == 16 || digits == 16) return false;
        out = out << 4 | d;
    }
    return digits > 0;
}

[[noreturn]] void unusable(const char* what) {
    print("moat: %s; cannot continue\n", what);
    arch::halt(kExitTreeUnusable);
}

// Step 1: the tree at `pa`, inside RAM and checked whole (our structure walk, then libfdt's),
// or the boot stops with kExitTreeUnusable.
void open_tree(dt::Tree& tree, uint64_t pa, const BootInfo& info) {
    if (pa < info.ram_base || pa >= info.ram_end) {
        print("moat: device tree at 0x%lx is outside RAM; cannot continue\n", pa);
        arch::halt(kExitTreeUnusable);
    }
    size_t avail = static_cast<size_t>(min(info.max_dtb, info.ram_end - pa));
    if (tree.open(reinterpret_cast<const void*>(pa), avail) != Status::ok) unusable(tree.error());
}

// The first host bridge (a master with iommu-map) whose IOMMU probed.
const MasterInfo* probed_bridge() {
    for (unsigned m = 0; m < g_topo.nmasters; m++)
        for (unsigned s = 0; s < g_topo.masters[m].nstreams; s++)
            if (g_topo.masters[m].streams[s].from_map && g_iommus.at(g_topo.masters[m].streams[s].iommu)) return &g_topo.masters[m];
    return nullptr;
}

struct Outcome {
    unsigned failures = 0;
    bool guest_ready = false;
    Iommu* iommu = nullptr;
    pci::Device* edu = nullptr;
    StreamId sid = 0;
};

// Steps 5 and 6: PCI behind the first bridge an IOMMU translates, and edu's DMA through it.
Outcome pci_and_selftest(const dt::Tree& t, bool runs_guests) {
    Outcome o;
    const MasterInfo* bridge = probed_bridge();
    if (!bridge) {
        print("pci:      no PCIe host bridge behind an IOMMU moat drives; no DMA selftest\n");
        return o;
    }
    if (g_pci.probe(t, bridge->node) != Status::ok || g_pci.enumerate() != Status::ok) {
        print("pci: %s\n", t.error());
        o.failures = 1;
        return o;
    }
    g_bridge_view.set(&t, bridge);
    g_host_pci = HostPci{&g_pci, &g_bridge_view, &g_faults};
    for (unsigned i = 0; i < g_pci.count(); i++) {
        pci::Device& d = g_pci.at(i);
        Iommu* iommu;
        StreamId sid;
        Why why;
        bool mapped = g_iommus.stream_of_rid(t, *bridge, d.rid(), iommu, sid, why) == Status::ok;
        print("pci:      %02x:%02x.%u %04x:%04x class %06x", d.bus, d.dev, d.fn, d.vendor, d.device, d.class_code);
        if (mapped) print(", requester id 0x%04x -> stream 0x%x", d.rid(), sid);
        else print(" (no stream id: %s)", why.text());
        if (d.bridge >= 0) {
            const pci::Bridge& b = g_pci.bridge(static_cast<unsigned>(d.bridge));
            if (!b.ok) print("; bridge not configured: %s: the devices behind it stay blocked", b.why);
            else if (b.size) print("; bridge to buses %u-%u, window 0x%lx-0x%lx", b.secondary, b.subordinate, b.base, b.base + b.size - 1);
            else print("; bridge to buses %u-%u, no window (nothing behind it decodes memory)", b.secondary, b.subordinate);
        } else if (d.blocked) {
            print("; blocked: behind a bridge moat could not configure");
        } else if (d.class_code == 0x060000 && d.vendor == 0x1b36 && d.device == 0x000b) {
            print("; a PCI expander bridge (pxb-pcie): the tree describes none of its buses, so moat does not walk them "
                  "and their devices stay blocked");
        }
        print("\n");
    }
    pci::Device* edu_dev = g_pci.find(Edu::kVendor, Edu::kDevice);
    for (unsigned i = 0; edu_dev && edu_dev->blocked && i < g_pci.count(); i++)  // a usable edu, if there is one
        if (g_pci.at(i).vendor == Edu::kVendor && g_pci.at(i).device == Edu::kDevice && !g_pci.at(i).blocked) edu_dev = &g_pci.at(i);
    if (!edu_dev) {
        print("pci: no edu device (QEMU: -device edu); no DMA selftest\n");
        return o;
    }
    Why why;
    if (g_iommus.stream_of_rid(t, *bridge, edu_dev->rid(), o.iommu, o.sid, why) != Status::ok) {
        print("pci: edu: %s; no DMA selftest\n", why.text());
        o.failures = 1;
        return o;
    }
    if (Status est = g_pci.enable(*edu_dev); est != Status::ok) {
        if (est == Status::denied) {
            print("pci: edu %02x:%02x.%u is behind a bridge moat could not configure: left blocked; no DMA selftest\n",
                  edu_dev->bus, edu_dev->dev, edu_dev->fn);
            return o;
        }
        print("pci: cannot assign edu's BARs in the 32-bit window\n");
        o.failures = 1;
        return o;
    }
    Edu edu(static_cast<uintptr_t>(edu_dev->bars[0].addr));
    SelftestResult r = dma_selftest(g_pool, *o.iommu, o.sid, edu, g_faults, console());
    IommuStats st = o.iommu->stats();
    print("dma selftest: %u passed, %u failed; %s issued %lu commands (%lu syncs)\n", r.passed, r.failed, o.iommu->name(),
          st.commands, st.syncs);
    // A guest's default DMA domain: its own stage 2 where the IOMMU has one, else a mirror. Only
    // where the arch runs guests: elsewhere there is no guest stage 2 to share or mirror.
    SelftestResult p;
    if (runs_guests) {
        p = p2m_selftest(g_pool, *o.iommu, o.sid, edu, g_faults, console());
        print("p2m selftest: %u passed, %u failed\n", p.passed, p.failed);
    } else {
        print("p2m selftest: skipped, this arch runs no guests (no guest stage 2 to share or mirror)\n");
    }
    o.failures = r.failed + p.failed;
    o.edu = edu_dev;
    o.guest_ready = o.failures == 0;
    return o;
}

// Step 6 on several CPUs: every edu behind the bridge (BARs assigned), all sharing one domain.
unsigned smp_dma(const dt::Tree& t, const Outcome& o, const ArchHooks& hooks) {
    const MasterInfo* bridge = probed_bridge();
    SmpEdu edus[arch::kMaxCpus];
    unsigned n = 0;
    for (unsigned i = 0; i < g_pci.count() && n < arch::kMaxCpus; i++) {
        pci::Device& d = g_pci.at(i);
        if (d.vendor != Edu::kVendor || d.device != Edu::kDevice) continue;
        Iommu* iommu;
        StreamId sid;
        Why why;
        if (g_iommus.stream_of_rid(t, *bridge, d.rid(), iommu, sid, why) != Status::ok || iommu != o.iommu) continue;
        if (&d != o.edu && g_pci.enable(d) != Status::ok) continue;
        edus[n++] = SmpEdu{static_cast<uintptr_t>(d.bars[0].addr), sid};
    }
    SmpResult r = smp_selftest(g_pool, *o.iommu, edus, n, g_faults, hooks.run_on_cpu);
    return r.failed;
}

}  // namespace

const HostPci& host_pci() { return g_host_pci; }
const HostDevices& host_devices() { return g_host_devices; }

[[noreturn]] void boot(const BootInfo& info, const ArchHooks& hooks) {
    // 1. The tree, checked whole before anything reads it.
    dt::Tree tree;
    open_tree(tree, info.dtb_pa, info);
    print("dtb:      0x%010lx, %zu bytes\n", info.dtb_pa, tree.size());
    if (hooks.console_from_dt) hooks.console_from_dt(tree);
    // A test hook: step 1 again on a tree a loader put at ADDR, as if it had been handed over
    // (QEMU's own libfdt hangs on some trees moat must refuse, so `-dtb` cannot carry them).
    if (uint64_t alt; bootarg_hex(tree, "moat.selftest=dtb@", alt)) {
        print("selftest: boot step 1 on the device tree at 0x%lx\n", alt);
        dt::Tree other;
        open_tree(other, alt, info);
        print("selftest: the device tree at 0x%lx was accepted (%zu bytes); exit 0\n", alt, other.size());
        arch::halt(kExitOk);
    }

    // 2. Memory: everything but the image, the tree and what the tree reserves goes to the pool.
    if (plan_memory(tree, {info.load_pa, info.image_size}, {info.dtb_pa, tree.size()}, g_plan) != Status::ok)
        unusable(tree.error());
    for (unsigned i = 0; i < g_plan.nfree; i++) {
        MemRange& f = g_plan.free[i];
        if (f.base < info.ram_base || f.end() > info.ram_end) {
            print("moat: RAM 0x%lx-0x%lx lies outside the %s RAM window; not used\n", f.base, f.end() - 1, info.board);
            f.size = 0;
        }
    }
    // The dom0less guests: read and checked now, so their boot modules stay out of the pool.
    // A guest whose config is wrong is reported and skipped; the others start in step 7.
    if (hooks.run_guests) {
        xen::Dom0lessLimits lim = xen::dom0less_limits(g_plan, g_plan.free_bytes(), xen::kDom0lessMaxVcpus);
        (void)xen::parse_dom0less(tree, lim, g_guests, console(), &console());
        MemRange mods[3 * xen::kDom0lessMaxGuests];
        unsigned n = xen::dom0less_module_ranges(g_guests, mods, 3 * xen::kDom0lessMaxGuests);
        for (unsigned i = 0; i < n; i++)
            if (reserve_range(tree, g_plan, mods[i], "dom0less boot module") != Status::ok) unusable(tree.error());
    }
    Status pst = fill_pool(g_plan, g_pool);
    if (pst != Status::ok) print("moat: page pool: %s; continuing with what was added\n", to_string(pst));
    print_memory(g_plan, g_pool, console());

    if (has_bootarg(tree, "moat.selftest=fault")) {
        if (!hooks.provoke_exception) unusable("moat.selftest=fault: this arch cannot take an exception on purpose");
        hooks.provoke_exception();
        print("selftest: no exception was taken\n");
        arch::halt(kExitCheckFailed);
    }

    // 3. Discovery.
    if (discover(tree, g_topo, console()) != Status::ok) unusable(tree.error());
    print_topology(tree, g_topo, console());

    // Interrupts: the controller the tree names, when the arch can drive it; else every IOMMU polls.
    IrqController* ic = hooks.interrupts_from_dt ? hooks.interrupts_from_dt(tree) : arch::irq_controller();
    // The other CPUs, once the controller is up (each brings up its own part of it).
    unsigned ncpus = hooks.start_cpus ? hooks.start_cpus(tree) : 1;

    // 4. Every IOMMU instance of every driver, then every master's references.
    ProbeEnv env{tree, g_topo, &g_pool, arch::pa_bits(), ic, &g_faults, console(), nullptr};
    unsigned hw_problems = g_iommus.probe_all(env);
    hw_problems += g_iommus.check_masters(tree, g_topo, console());

    // 5, 6. PCI and the DMA selftest.
    Outcome o = pci_and_selftest(tree, hooks.run_pv_guest != nullptr || hooks.run_guests != nullptr);
    if (!o.failures && o.guest_ready && ncpus > 1) o.failures += smp_dma(tree, o, hooks);
    if (o.failures) {
        print("moat: %u check(s) failed; exit 1\n", o.failures);
        arch::halt(kExitCheckFailed);
    }

    // 7. The guests run last and never return: only when nothing before them failed.
    g_host_devices = HostDevices{&g_topo, &g_iommus, &g_plan};
    if (g_guests.nguests && g_topo.problems == 0 && hw_problems == 0 && info.firmware_problems == 0) hooks.run_guests(tree, g_pool, g_guests);
    if (o.guest_ready && g_topo.problems == 0 && hw_problems == 0 && info.firmware_problems == 0) {
        if (hooks.run_pv_guest) hooks.run_pv_guest(tree, g_pool, *o.iommu, *o.edu, o.sid, g_faults);
        print("guest:    this arch runs no guests yet\n");
    }

    // 8. The verdict.
    if (info.firmware_problems)
        print("moat: %u problem(s) in the firmware's tables (named above); what they describe is left as it is\n",
              info.firmware_problems);
    if (g_topo.problems || hw_problems || info.firmware_problems) {
        print("moat: %u device-tree and %u IOMMU problem(s); affected devices left blocked; exit 2\n", g_topo.problems,
              hw_problems);
        arch::halt(kExitTreeProblems);
    }
    print("moat: all checks passed; exit 0\n");
    arch::halt(kExitOk);
}

}  // namespace moat::hyp
