// The image's flow, portable: what moat does from the device tree to its exit status, in order,
// through declared seams only (the arch headers, the registry's drivers, the hooks below). An
// arch's entry does what only it can (its MMU, its privilege level, its board's early console)
// and calls boot(); a second arch reuses this flow as it is.
//
//   1. open the device tree (refused before use when libfdt's full check fails)
//   2. plan memory (RAM minus the image, the tree and reserved ranges) and fill the page pool
//   3. discover every IOMMU and DMA master (one walk of the tree); start the interrupt controller,
//      then the other CPUs
//   4. probe every IOMMU instance of every driver (common/iommu_set.hpp), check every master's
//      references against its instance
//   5. enumerate PCI behind the first host bridge whose IOMMU probed, print each function's stream
//   6. run the DMA selftest through that IOMMU with QEMU's edu, when there is one; with several
//      CPUs, every CPU maps, DMAs, checks and unmaps through one shared domain (hyp/smp_selftest)
//   7. run the dom0less guests /chosen names (parsed in step 2, their modules kept out of the
//      pool), else the PV-IOMMU test guest (neither returns), when the arch can run guests
//   8. report and exit with a status
#pragma once
#include "common/boot_memory.hpp"
#include "common/fault_log.hpp"
#include "common/iommu_set.hpp"
#include "common/fdt.hpp"
#include "common/irq.hpp"
#include "common/iommu.hpp"
#include "common/page_pool.hpp"
#include "drivers/pci/ecam.hpp"
#include "hyp/passthrough.hpp"
#include "xen-compat/dom0less.hpp"

namespace moat::hyp {

// Exit statuses: the same on every arch (tests decode them).
enum Exit : int {
    kExitOk = 0,
    kExitCheckFailed = 1,   // a selftest check failed
    kExitTreeProblems = 2,  // finished, but the tree had problems: the devices named are left blocked
    kExitTreeUnusable = 3,  // the tree (or the memory it describes) cannot be used
    kExitException = 4,     // an unexpected exception (decoded by the arch)
    kExitWrongLevel = 5,    // not entered at the hypervisor's privilege level
    kExitGuestFault = 6,    // the guest stopped on a fault
};

// The host's PCI as step 5 found it, for passing functions through to guests: the host bridge
// (nullptr: none behind an IOMMU moat drives), its functions as assignment sees them, and the
// fault log the IOMMUs report into.
struct HostPci {
    pci::Host* host = nullptr;
    const PciHostView* view = nullptr;
    FaultLog* faults = nullptr;
};
const HostPci& host_pci();

// What platform-device passthrough checks a guest's partial tree against (set before step 7):
// the IOMMUs and masters step 3 found and step 4 probed, and the memory step 2 planned (RAM,
// moat's image, the boot tree and reserved ranges: no guest maps any of it as a device).
struct HostDevices {
    const Topology* topo = nullptr;
    const IommuSet* iommus = nullptr;
    const MemoryPlan* plan = nullptr;
};
const HostDevices& host_devices();

struct BootInfo {
    const char* board;
    uint64_t dtb_pa;
    uint64_t load_pa, image_size;     // where the image runs
    uint64_t ram_base, ram_end;       // the window that may hold RAM (mapped as memory by the arch)
    uint64_t max_dtb = 2 * MiB;       // what Linux accepts too
    // Problems the arch found in what firmware handed over before there was a tree (a bad ACPI
    // table on x86, each already reported): counted in the verdict like the tree's own.
    unsigned firmware_problems = 0;
};

// What the flow asks of the arch beyond its headers. A hook left nullptr is something the arch
// cannot do; the flow says so and goes on.
struct ArchHooks {
    // Switch the console to the device the tree's stdout-path names.
    void (*console_from_dt)(const dt::Tree& t);
    // `moat.selftest=fault`: take an exception on purpose (the arch's report ends the run).
    void (*provoke_exception)();
    // Finds and starts the interrupt controller (and a tick) the tree names; nullptr when there
    // is none the arch can drive, and then the IOMMUs poll.
    IrqController* (*interrupts_from_dt)(const dt::Tree& t);
    // Run the PV-IOMMU test guest with `edu` passed through and attached, through `iommu`, to its
    // default context; ends the run with the guest's verdict.
    // Faults are recorded in `faults` (by interrupt when the IOMMU has one), which reports them.
    void (*run_pv_guest)(const dt::Tree& host, PagePool& pool, Iommu& iommu, const pci::Device& edu, StreamId sid,
                         FaultLog& faults);
    // Several CPUs (nullptr: the arch runs on its boot CPU only). start_cpus starts the CPUs the
    // tree names (each with its own stack, per-CPU data, MMU, vectors, interrupt controller and
    // tick; one that does not come up within a bound is reported and left out) and returns how
    // many are online, the boot CPU included; called once, after interrupts_from_dt. run_on_cpu
    // hands fn(arg) to an idle started CPU (logical id >= 1); false when it is not online or busy.
    unsigned (*start_cpus)(const dt::Tree& t) = nullptr;
    bool (*run_on_cpu)(unsigned cpu, void (*fn)(void*), void* arg) = nullptr;
    // Run the dom0less guests the tree's /chosen describes (already parsed and checked, their
    // boot modules kept out of the pool); ends the run when the last guest has ended.
    void (*run_guests)(const dt::Tree& host, PagePool& pool, const xen::Dom0lessConfig& guests) = nullptr;
};

[[noreturn]] void boot(const BootInfo& info, const ArchHooks& hooks);

}  // namespace moat::hyp
