// The portable boot flow (hyp/boot.cpp) run on a second arch: the host. The same code the arm64
// image runs plans memory, fills the pool, discovers, probes the SMMUv3 (a register model here),
// checks the masters, wires the fault interrupts when the arch has a controller, and ends with the
// statuses tests/qemu asserts on QEMU. Each run is a death test: boot() ends the process.
#include <gtest/gtest.h>
#include <libfdt.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "arch/console.hpp"
#include "arch/irq.hpp"
#include "arch/mmio.hpp"
#include "dt_fixture.hpp"
#include "hyp/boot.hpp"
#include "tests/models/smmu_v3_model.hpp"

using namespace moat;

namespace {

constexpr uint64_t kRam = 0x40000000, kRamSize = 64 * MiB;
constexpr uint64_t kDtb = kRam + 32 * MiB;
constexpr uintptr_t kSmmu = 0x9050000;

// RAM where the tree says it is, so the flow's physical addresses are host addresses.
struct Ram {
    void* p = MAP_FAILED;
    Ram() { p = mmap(reinterpret_cast<void*>(kRam), kRamSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0); }
    ~Ram() {
        if (p != MAP_FAILED) munmap(p, kRamSize);
    }
    bool ok() const { return p == reinterpret_cast<void*>(kRam); }
};

// Runs the flow with `blob` as the tree; never returns. Console to stderr for the death test.
[[noreturn]] void run(const std::vector<uint64_t>& blob, size_t bytes, bool with_irq,
                      const hyp::ArchHooks& hooks = hyp::ArchHooks{nullptr, nullptr, nullptr}) {
    dup2(2, 1);
    arch::console_echo(true);
    static PagePool view(0);  // the model reads the tables through it: the same addresses
    (void)view.add_region(kRam, kRamSize);
    static model::PoolPhysMem mem(view);
    static model::SmmuV3Model smmu(mem, {});
    mmio::attach(kSmmu, model::SmmuV3Model::kRegSize, &smmu);
    static arch::host::HostIrqController gic;
    if (with_irq) arch::host::set_irq_controller(&gic);
    std::memcpy(reinterpret_cast<void*>(kDtb), blob.data(), bytes);
    hyp::BootInfo info{"host", kDtb, kRam, 1 * MiB, kRam, kRam + kRamSize};
    hyp::boot(info, hooks);
}

class BootFlow : public ::testing::Test {
protected:
    void SetUp() override {
        GTEST_FLAG_SET(death_test_style, "threadsafe");
        if (!ram.ok()) GTEST_SKIP() << "0x40000000 is taken in this process; the flow's RAM cannot be placed";
    }
    Ram ram;
};

TEST_F(BootFlow, ProbesTheSmmuPollingAndPassesWithoutPci) {
    auto blob = load_dtb("boot_flow");
    EXPECT_EXIT(run(blob, dtb_bytes(blob), false), ::testing::ExitedWithCode(hyp::kExitOk),
                "pool: +[0-9]+ pages.*"
                "iommu0 /iommu@9050000.*"
                "master /dma@9100000: stream id 0x20 .iommus.*"
                "smmu_v3: +iommu@9050000 enabled: stage 1 yes.*faults polled.*"
                "pci: +no PCIe host bridge behind an IOMMU moat drives; no DMA selftest.*"
                "moat: all checks passed; exit 0");
}

TEST_F(BootFlow, WiresTheFaultInterruptsWhenTheArchHasAController) {
    auto blob = load_dtb("boot_flow");
    EXPECT_EXIT(run(blob, dtb_bytes(blob), true), ::testing::ExitedWithCode(hyp::kExitOk),
                "smmu_v3: +iommu@9050000 enabled: .*faults by interrupt.*moat: all checks passed; exit 0");
}

TEST_F(BootFlow, AStreamTheSmmuCannotHoldIsAProblemAndExits2) {
    auto blob = load_dtb("boot_flow");
    dt::Tree t;
    ASSERT_EQ(t.open(blob.data(), dtb_bytes(blob)), Status::ok);
    // Enable the master whose stream id is beyond the SMMU's stream table.
    std::vector<uint64_t> patched(blob.size() + 512);
    ASSERT_EQ(fdt_open_into(blob.data(), patched.data(), static_cast<int>(patched.size() * 8)), 0);
    int n = fdt_path_offset(patched.data(), "/dma@9200000");
    ASSERT_GE(n, 0);
    ASSERT_EQ(fdt_setprop_string(patched.data(), n, "status", "okay"), 0);
    EXPECT_EXIT(run(patched, fdt_totalsize(patched.data()), false), ::testing::ExitedWithCode(hyp::kExitTreeProblems),
                "dt: /dma@9200000: iommus entry 0: stream id 0x10000 on iommu@9050000 is beyond its stream table.*"
                "device left blocked.*"
                "moat: 0 device-tree and 1 IOMMU problem.s.; affected devices left blocked; exit 2");
}

// The arch's guest hook sees the dom0less guests the flow read, with their modules kept out of
// the pool; the guest the flow refused is named and not handed over.
void show_guests(const dt::Tree&, PagePool& pool, const xen::Dom0lessConfig& c) {
    for (unsigned i = 0; i < c.nguests; i++) {
        const xen::Dom0lessGuest& g = c.guests[i];
        bool in_pool = false;
        for (size_t r = 0; r < pool.region_count(); r++) {
            const PagePool::Region& pr = pool.region(r);
            in_pool |= g.kernel.addr < pr.base + pr.pages * kPageSize && pr.base < g.kernel.end();
        }
        print("hook: %s, %u vCPUs, %lu KiB, kernel 0x%lx+0x%lx %s\n", g.name, g.vcpus, g.memory / KiB, g.kernel.addr,
              g.kernel.size, in_pool ? "IN THE POOL" : "kept out of the pool");
    }
    print("hook: %u guest(s), %u refused\n", c.nguests, c.nskipped);
}

TEST_F(BootFlow, Dom0lessGuestsReachTheArchWithTheirModulesOutOfThePool) {
    auto blob = load_dtb("boot_flow");
    std::vector<uint64_t> patched(blob.size() + 1024);
    void* fdt = patched.data();
    ASSERT_EQ(fdt_open_into(blob.data(), fdt, static_cast<int>(patched.size() * 8)), 0);
    int chosen = fdt_path_offset(fdt, "/chosen");
    ASSERT_GE(chosen, 0);
    for (const char* name : {"domU1", "nokernel"}) {
        int d = fdt_add_subnode(fdt, chosen, name);
        ASSERT_GE(d, 0);
        ASSERT_EQ(fdt_setprop_string(fdt, d, "compatible", "xen,domain"), 0);
        ASSERT_EQ(fdt_setprop_u32(fdt, d, "#address-cells", 2), 0);
        ASSERT_EQ(fdt_setprop_u32(fdt, d, "#size-cells", 2), 0);
        fdt32_t mem[2] = {cpu_to_fdt32(0), cpu_to_fdt32(8 * 1024)};
        ASSERT_EQ(fdt_setprop(fdt, d, "memory", mem, sizeof mem), 0);
        ASSERT_EQ(fdt_setprop_u32(fdt, d, "cpus", 2), 0);
        if (std::strcmp(name, "domU1") != 0) continue;
        int m = fdt_add_subnode(fdt, d, "module@42800000");
        ASSERT_GE(m, 0);
        const char compat[] = "multiboot,kernel\0multiboot,module";
        ASSERT_EQ(fdt_setprop(fdt, m, "compatible", compat, sizeof compat), 0);
        fdt32_t reg[4] = {cpu_to_fdt32(0), cpu_to_fdt32(0x42800000), cpu_to_fdt32(0), cpu_to_fdt32(0x100000)};
        ASSERT_EQ(fdt_setprop(fdt, m, "reg", reg, sizeof reg), 0);
    }
    hyp::ArchHooks hooks{nullptr, nullptr, nullptr, nullptr, &show_guests};
    EXPECT_EXIT(run(patched, fdt_totalsize(fdt), false, hooks), ::testing::ExitedWithCode(hyp::kExitOk),
                "dom0less: /chosen/nokernel: no module with compatible \"multiboot,kernel\".*"
                "reserved: 0x0042800000-0x00428fffff dom0less boot module.*"
                "hook: domU1, 2 vCPUs, 8192 KiB, kernel 0x42800000\\+0x100000 kept out of the pool.*"
                "hook: 1 guest.s., 1 refused.*"
                "moat: all checks passed; exit 0");
}

TEST_F(BootFlow, AnUnusableTreeExits3) {
    std::vector<uint64_t> junk(64, 0x1122334455667788ull);
    EXPECT_EXIT(run(junk, junk.size() * 8, false), ::testing::ExitedWithCode(hyp::kExitTreeUnusable),
                "device tree header invalid.*cannot continue");
}

}  // namespace
