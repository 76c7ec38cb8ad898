// PCI passthrough (hyp/passthrough.hpp): a guest's moat,pci functions checked against the host,
// and its DMA domain on the SMMUv3 register model, which walks the tables it is given: a DMA to
// a guest-physical address inside the guest's RAM lands at the host-physical address behind it,
// anything else (below, above, the host-physical address itself) faults, and teardown gives
// every page back and leaves the streams aborting.
#include <gtest/gtest.h>

#include <string.h>

#include <string>
#include <vector>

#include "arch/mmio.hpp"
#include "drivers/iommu/smmu_v3.hpp"
#include "hyp/passthrough.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/smmu_v3_model.hpp"

using namespace moat;
using model::SmmuV3Model;
using xen::PciBdf;
namespace ev = model::smmu_evt;

namespace {

constexpr uintptr_t kBase = 0x09050000;
constexpr uint64_t kPhysBase = 0x80000000;
constexpr uint64_t kRamIpa = 0x40000000;  // the guest's RAM: guest-physical != host-physical

struct StrSink : Sink {
    std::string text;
    void write(const char* s, size_t n) override { text.append(s, n); }
};

struct Rig {
    model::HostPool host{6144, kPhysBase};
    model::PoolPhysMem mem{*host.pool};
    SmmuV3Model model{mem, {}};
    SmmuV3 smmu{*host.pool};
    FaultLog log;
    Rig() {
        EXPECT_TRUE(host.ok);
        EXPECT_TRUE(mmio::attach(kBase, SmmuV3Model::kRegSize, &model));
        EXPECT_EQ(smmu.probe(SmmuV3::Config{kBase, SmmuV3Model::kRegSize, "smmuv3-model", 255, 48, false}), Status::ok);
    }
    ~Rig() {
        smmu.shutdown();
        mmio::detach(&model);
        for (const std::string& v : model.violations()) ADD_FAILURE() << "model: " << v;
    }
    PagePool& pool() { return *host.pool; }
    uint8_t* at(uint64_t pa) { return static_cast<uint8_t*>(pool().virt(pa)); }
    std::vector<FaultRecord> faults() {
        uint64_t from = log.total();
        smmu.poll_faults(log);
        std::vector<FaultRecord> v;
        for (uint64_t i = from; i < log.total(); i++) v.push_back(log.at(static_cast<unsigned>(i - (log.total() - log.size()))));
        return v;
    }
};

// The host: 00:02.0 (stream 0x10) and 00:03.0 (stream 0x18) behind `iommu`, 00:04.0 behind none.
struct Host final : PciHostView {
    Iommu* iommu;
    explicit Host(Iommu* m) : iommu(m) {}
    bool present(const PciBdf& f) const override { return f.seg == 0 && f.bus == 0 && f.fn == 0 && f.dev >= 2 && f.dev <= 4; }
    Status stream(const PciBdf& f, Iommu*& m, StreamId& sid, Why& why) const override {
        if (f.dev == 4) return why.set(Status::not_found, "host bridge /pcie@10000000 has no iommu-map");
        m = iommu, sid = f.rid();  // the identity iommu-map of QEMU's virt: 00:02.0 is 0x10, 00:03.0 is 0x18
        return Status::ok;
    }
};

xen::Dom0lessGuest guest(std::initializer_list<PciBdf> fns, bool force = false) {
    xen::Dom0lessGuest g;
    strcpy(g.name, "domU1");
    strcpy(g.path, "/chosen/domU1");
    for (const PciBdf& f : fns) g.pci[g.npci++] = f;
    g.pci_force_unconfined = force;
    return g;
}

TEST(PassthroughAssign, KnownFunctionsBehindAnIommuGetTheirStreams) {
    Rig r;
    Host h(&r.smmu);
    GuestPci pci;
    StrSink err;
    ASSERT_EQ(resolve_pci_assignment(guest({{0, 0, 2, 0}, {0, 0, 3, 0}}), h, pci, err), Status::ok) << err.text;
    EXPECT_EQ(err.text, "");
    ASSERT_EQ(pci.n, 2u);
    EXPECT_EQ(pci.fn[0].iommu, &r.smmu);
    EXPECT_EQ(pci.fn[0].sid, 0x10u);
    EXPECT_EQ(pci.fn[1].sid, 0x18u);
    EXPECT_FALSE(pci.unconfined);
}

TEST(PassthroughAssign, UnknownFunctionIsAnErrorNamingIt) {
    Rig r;
    Host h(&r.smmu);
    GuestPci pci;
    StrSink err;
    EXPECT_EQ(resolve_pci_assignment(guest({{0, 0, 2, 0}, {0, 1, 0, 0}}), h, pci, err), Status::invalid_argument);
    EXPECT_NE(err.text.find("passthrough: domU1: 0000:01:00.0: no such function on the host (moat,pci of /chosen/domU1)"),
              std::string::npos) << err.text;
    EXPECT_NE(err.text.find("passthrough: domU1: not started"), std::string::npos) << err.text;
    EXPECT_EQ(pci.n, 0u);  // nothing of a refused guest is kept
}

TEST(PassthroughAssign, NoIommuIsRefusedUnlessForcedAndThenSaysUnconfined) {
    Rig r;
    Host h(&r.smmu);
    GuestPci pci;
    StrSink err;
    EXPECT_EQ(resolve_pci_assignment(guest({{0, 0, 4, 0}}), h, pci, err), Status::denied);
    EXPECT_NE(err.text.find("0000:00:04.0: refused: host bridge /pcie@10000000 has no iommu-map; no IOMMU moat drives "
                            "would confine its DMA"), std::string::npos) << err.text;
    EXPECT_EQ(pci.n, 0u);

    StrSink forced;
    ASSERT_EQ(resolve_pci_assignment(guest({{0, 0, 4, 0}, {0, 0, 2, 0}}, true), h, pci, forced), Status::ok);
    ASSERT_EQ(pci.n, 2u);
    EXPECT_TRUE(pci.unconfined);
    EXPECT_EQ(pci.fn[0].iommu, nullptr);
    EXPECT_EQ(pci.fn[1].iommu, &r.smmu);
    EXPECT_NE(forced.text.find("0000:00:04.0: assigned WITHOUT an IOMMU (moat,pci-force-assign-without-iommu)"),
              std::string::npos) << forced.text;
    EXPECT_NE(forced.text.find("its DMA reaches all memory"), std::string::npos);
}

// 4 MiB + 12 KiB of guest RAM: two 2 MiB blocks where aligned and three pages.
constexpr uint64_t kRamSize = 4 * MiB + 3 * kPageSize;

TEST(PassthroughDma, IovasAreGuestPhysicalAndExactlyTheGuestsRam) {
    Rig r;
    Host h(&r.smmu);
    GuestPci pci;
    StrSink err, rep;
    ASSERT_EQ(resolve_pci_assignment(guest({{0, 0, 2, 0}, {0, 0, 3, 0}}), h, pci, err), Status::ok);
    Result<uint64_t> ram = r.pool().alloc(kRamSize / kPageSize);
    ASSERT_TRUE(ram.ok());
    ASSERT_NE(ram.value, kRamIpa);
    size_t before = r.pool().used_pages();
    uint64_t smmu_before = r.smmu.stats().pages;
    {
        GuestDmaDomain dma(r.pool(), nullptr);
        ASSERT_EQ(dma.build("domU1", pci, kRamIpa, ram.value, kRamSize, rep), Status::ok) << rep.text;
        ASSERT_EQ(dma.domains(), 1u);  // both functions sit behind the one SMMU: one domain
        IoDomain* d = dma.domain(0);
        EXPECT_TRUE(d->attached(r.smmu, 0x10));
        EXPECT_TRUE(d->attached(r.smmu, 0x18));
        EXPECT_EQ(IoDomain::owner(r.smmu, 0x10), d);
        EXPECT_EQ(dma.bytes_mapped(), kRamSize);
        EXPECT_EQ(dma.pool_pages(), r.pool().used_pages() - before);
        EXPECT_GT(dma.pool_pages(), 0u);
        EXPECT_NE(rep.text.find("IOVA = guest-physical [0x40000000, 0x40403000) -> PA 0x"), std::string::npos) << rep.text;
        EXPECT_NE(rep.text.find("1027 pages; streams 0x10 (0000:00:02.0) 0x18 (0000:00:03.0)"), std::string::npos) << rep.text;

        // The first byte, one inside a block, the last page: each lands behind its guest-physical address.
        const uint64_t offs[] = {0, 0x1234, 2 * MiB + 0x10, kRamSize - 16};
        unsigned k = 0;
        for (uint64_t off : offs) {
            uint8_t b[16];
            memset(b, static_cast<int>(off & 0xff) | 1, sizeof b);
            SmmuV3Model::Dma w = r.model.dma_write(k++ % 2 ? 0x18 : 0x10, kRamIpa + off, b, sizeof b);
            ASSERT_TRUE(w.ok) << std::hex << off;
            EXPECT_EQ(w.pa, ram.value + off);
            EXPECT_EQ(memcmp(r.at(ram.value + off), b, sizeof b), 0);
        }
        uint8_t rd[16];
        ASSERT_TRUE(r.model.dma_read(0x18, kRamIpa + 0x1234, rd, sizeof rd).ok);
        EXPECT_EQ(rd[0], 0x35);

        // Just below, just past, and the host-physical address itself: nothing there.
        uint8_t z[16] = {};
        EXPECT_EQ(r.model.dma_write(0x10, kRamIpa - 16, z, sizeof z).event, ev::kTranslation);
        EXPECT_EQ(r.model.dma_write(0x10, kRamIpa + kRamSize, z, sizeof z).event, ev::kTranslation);
        EXPECT_EQ(r.model.dma_write(0x18, ram.value, z, sizeof z).event, ev::kTranslation);
        std::vector<FaultRecord> f = r.faults();
        ASSERT_EQ(f.size(), 3u);
        EXPECT_EQ(f[0].stream, 0x10u);
        EXPECT_EQ(f[0].address, kRamIpa - 16);
        EXPECT_EQ(f[2].stream, 0x18u);
        EXPECT_EQ(f[2].address, ram.value);
        EXPECT_EQ(r.at(ram.value)[0], 1);  // the faulting write to its PA changed nothing there

        StrSink down;
        ASSERT_EQ(dma.teardown(&down), Status::ok);
        EXPECT_NE(down.text.find("2 streams detached to abort: ok"), std::string::npos) << down.text;
        EXPECT_EQ(r.pool().used_pages(), before);  // every table page back
        EXPECT_EQ(r.smmu.stats().pages, smmu_before);
        EXPECT_EQ(IoDomain::owner(r.smmu, 0x10), nullptr);
        SmmuV3Model::Dma x = r.model.dma_write(0x10, kRamIpa, z, sizeof z);
        EXPECT_FALSE(x.ok);  // aborted, silently
        EXPECT_EQ(x.event, 0);
        EXPECT_EQ(r.at(ram.value)[0], 1);
    }
    EXPECT_EQ(r.pool().used_pages(), before);
}

TEST(PassthroughDma, AStreamAlreadyAttachedElsewhereFailsTheWholeBuildAndLeavesNothing) {
    Rig r;
    Host h(&r.smmu);
    GuestPci pci;
    StrSink err, rep;
    ASSERT_EQ(resolve_pci_assignment(guest({{0, 0, 2, 0}, {0, 0, 3, 0}}), h, pci, err), Status::ok);
    Result<uint64_t> ram = r.pool().alloc(kRamSize / kPageSize);
    ASSERT_TRUE(ram.ok());
    IoDomain other(r.pool(), iopt::vmsa_s1(39, 44, true));
    ASSERT_EQ(other.init(), Status::ok);
    ASSERT_EQ(other.attach(r.smmu, 0x18), Status::ok);
    size_t before = r.pool().used_pages();
    GuestDmaDomain dma(r.pool(), nullptr);
    EXPECT_EQ(dma.build("domU1", pci, kRamIpa, ram.value, kRamSize, rep), Status::in_use);
    EXPECT_NE(rep.text.find("0x18 (0000:00:03.0) refused: in use"), std::string::npos) << rep.text;
    EXPECT_EQ(dma.domains(), 0u);
    EXPECT_EQ(IoDomain::owner(r.smmu, 0x10), nullptr);  // the first stream was detached again
    EXPECT_EQ(IoDomain::owner(r.smmu, 0x18), &other);
    EXPECT_EQ(r.pool().used_pages(), before);
}

TEST(PassthroughDma, OutOfPoolMidMapLeavesNothingBehind) {
    Rig r;
    Host h(&r.smmu);
    GuestPci pci;
    StrSink err, rep;
    ASSERT_EQ(resolve_pci_assignment(guest({{0, 0, 2, 0}}), h, pci, err), Status::ok);
    // A quota of 2 pages: the root and one table fit, the walk to a 4 KiB leaf does not.
    PageQuota quota(2);
    size_t before = r.pool().used_pages();
    GuestDmaDomain dma(r.pool(), &quota);
    Status st = dma.build("domU1", pci, kRamIpa + kPageSize, kPhysBase + kPageSize, kPageSize, rep);
    EXPECT_NE(st, Status::ok) << rep.text;
    EXPECT_NE(rep.text.find("mapping guest RAM stopped after 0x0 of 0x1000 bytes"), std::string::npos) << rep.text;
    EXPECT_EQ(dma.domains(), 0u);
    EXPECT_EQ(IoDomain::owner(r.smmu, 0x10), nullptr);
    EXPECT_EQ(r.pool().used_pages(), before);
    EXPECT_EQ(quota.used(), 0u);
}

}  // namespace
