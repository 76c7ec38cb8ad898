// Several host threads posing as CPUs against one SMMUv3 (driver + register model): mapping and
// unmapping disjoint and overlapping ranges of one domain, attaching and detaching streams of it,
// DMA that faults on purpose and a thread draining those faults, all at once. Built into the
// ThreadSanitizer binary (make tsan-unit, a tier of make test) as well as the ASan suite.
//
// What must hold afterwards: the domain's table is exactly what a reference model of the
// successful operations says (every page's translation checked with lookup() and by DMA through
// the model), every fault the model queued was recorded once, every sync succeeded, no command
// error, and every pool page is accounted for. Bounded: a fixed number of operations per thread;
// the seed is printed, and MOAT_STRESS_SEED=N replays one.
#include <gtest/gtest.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "arch/cpu.hpp"
#include "arch/mmio.hpp"
#include "common/io_domain.hpp"
#include "drivers/iommu/smmu_v3.hpp"
#include "tests/models/host_pool.hpp"
#include "tests/models/smmu_v3_model.hpp"

using namespace moat;
using model::SmmuV3Model;

namespace {

constexpr uintptr_t kBase = 0x09050000;
constexpr unsigned kMappers = 4;
constexpr unsigned kOps = 1500;                // per mapper
constexpr uint64_t kRegion = 4 * MiB;          // each mapper's own IOVA range
constexpr uint64_t kOwnBase = 0x10000000;      // mapper t owns [kOwnBase + t * kRegion, + kRegion)
constexpr uint64_t kSharedBase = 0x40000000;   // every mapper maps and unmaps these pages
constexpr unsigned kSharedPages = 32;
constexpr uint32_t kFaultSid = 1;              // attached to an empty domain: every DMA faults
constexpr uint32_t kCheckSid = 2;              // attached at the end to check by DMA
constexpr uint32_t kChurnSid = 8;              // kChurnSid.. attached and detached in a loop
constexpr unsigned kChurnStreams = 4;
constexpr unsigned kMaxRounds = 3000;          // attach/detach rounds and faulting DMAs, at most

uint64_t seed_from_env() {
    const char* s = getenv("MOAT_STRESS_SEED");
    return s ? strtoull(s, nullptr, 0) : 0x5eed0017;
}

// One mapper's view of its own range: page index -> physical address.
using Ref = std::map<uint64_t, uint64_t>;

// Successful operations on one shared page. The domain serialises them, so they alternate
// (map, unmap, map...): maps - unmaps is 1 exactly when the page ends mapped, and then by one of
// the mappers whose map succeeded there.
struct SharedTally {
    std::atomic<uint64_t> maps{0}, unmaps{0};
    std::atomic<uint64_t> by[kMappers] = {};
};

}  // namespace

TEST(SmpStress, MapUnmapAttachAndFaultsFromSeveralCpusLeaveTheReferenceState) {
    const uint64_t seed = seed_from_env();
    printf("smp stress: seed 0x%llx (MOAT_STRESS_SEED replays), %u mappers x %u operations\n",
           static_cast<unsigned long long>(seed), kMappers, kOps);

    model::HostPool host(8192);
    ASSERT_TRUE(host.ok);
    PagePool& pool = *host.pool;
    model::PoolPhysMem mem(pool);
    SmmuV3Model::Features f;
    f.evtq_log2 = 5;  // small: the drain thread races a queue that can overflow
    SmmuV3Model m(mem, f);
    ASSERT_TRUE(mmio::attach(kBase, SmmuV3Model::kRegSize, &m));
    size_t before = pool.used_pages();
    {
        SmmuV3 smmu(pool);
        ASSERT_EQ(smmu.probe(SmmuV3::Config{kBase, SmmuV3Model::kRegSize, "smmuv3-stress", 63, 48, false}), Status::ok);
        FaultLog log;

        // Data pages each mapper maps: its own, so that where a byte lands tells who mapped it.
        constexpr unsigned kDataPages = 64;
        std::vector<uint64_t> data[kMappers];
        for (unsigned t = 0; t < kMappers; t++)
            for (unsigned i = 0; i < kDataPages; i++) {
                Result<uint64_t> r = pool.alloc();
                ASSERT_TRUE(r.ok());
                data[t].push_back(r.value);
            }
        size_t buffers = pool.used_pages();

        IoDomain shared(pool, iopt::vmsa_s1(39, smmu.caps().oas, true)), empty(pool, iopt::vmsa_s1(39, smmu.caps().oas, true));
        ASSERT_EQ(shared.init(), Status::ok);
        ASSERT_EQ(empty.init(), Status::ok);
        ASSERT_EQ(empty.attach(smmu, kFaultSid), Status::ok);

        std::atomic<bool> stop{false};
        std::atomic<unsigned> bad{0};  // unexpected statuses, any thread
        Ref ref[kMappers];
        SharedTally tally[kSharedPages];

        auto mapper = [&](unsigned t) {
            arch::host::set_cpu_id(t + 1);
            std::mt19937_64 rng(seed + t);
            Ref& own = ref[t];
            uint64_t base = kOwnBase + t * kRegion;
            for (unsigned op = 0; op < kOps; op++) {
                unsigned what = static_cast<unsigned>(rng() % 8);
                if (what < 2) {  // a shared page: any outcome, but only the architected ones
                    unsigned p = static_cast<unsigned>(rng() % kSharedPages);
                    uint64_t iova = kSharedBase + p * kPageSize;
                    if (rng() & 1) {
                        Progress r = shared.map(iova, data[t][p % kDataPages], kPageSize, {});
                        if (r.ok()) tally[p].maps++, tally[p].by[t]++;
                        else if (r.status != Status::in_use) bad++;
                    } else {
                        Progress r = shared.unmap(iova, kPageSize);
                        if (r.ok()) tally[p].unmaps++;
                        else if (r.status != Status::not_found) bad++;
                    }
                    continue;
                }
                // Its own range: a run of 1..16 pages, mapped where free, unmapped where mapped.
                uint64_t first = rng() % (kRegion / kPageSize - 16), n = 1 + rng() % 16;
                bool all_free = true, all_mapped = true;
                for (uint64_t i = first; i < first + n; i++) (own.count(i) ? all_free : all_mapped) = false;
                if (all_free) {
                    uint64_t pa = data[t][rng() % (kDataPages - n)];
                    // Consecutive data pages are consecutive physically: the pool gave them in order.
                    bool contiguous = true;
                    uint64_t k0 = 0;
                    while (data[t][k0] != pa) k0++;
                    for (uint64_t i = 1; i < n; i++) contiguous = contiguous && data[t][k0 + i] == pa + i * kPageSize;
                    if (!contiguous) n = 1;
                    Progress r = shared.map(base + first * kPageSize, pa, n * kPageSize, {});
                    if (!r.ok()) bad++;
                    for (uint64_t i = 0; i < n; i++) own[first + i] = pa + i * kPageSize;
                } else if (all_mapped) {
                    Progress r = shared.unmap(base + first * kPageSize, n * kPageSize);
                    if (!r.ok()) bad++;
                    for (uint64_t i = first; i < first + n; i++) own.erase(i);
                } else if (!own.empty()) {
                    // Check one of its own pages while the others work.
                    auto it = own.lower_bound(first);
                    if (it == own.end()) it = own.begin();
                    Result<iopt::Translation> x = shared.lookup(base + it->first * kPageSize);
                    if (!x.ok() || x.value.pa != it->second) bad++;
                }
            }
        };

        std::atomic<uint64_t> churns{0};
        auto churner = [&] {
            arch::host::set_cpu_id(kMappers + 1);
            unsigned round = 0;
            while (!stop.load() && round < kMaxRounds) {
                StreamId sid = kChurnSid + round++ % kChurnStreams;
                if (shared.attach(smmu, sid) != Status::ok) bad++;
                if (shared.detach(smmu, sid) != Status::ok) bad++;
                churns++;
            }
        };

        std::atomic<uint64_t> dmas{0};
        auto faulter = [&] {
            arch::host::set_cpu_id(kMappers + 2);
            uint8_t b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
            // At least 64, at most kMaxRounds, one at a time so that the drainer keeps up mostly.
            for (unsigned i = 0; (!stop.load() || i < 64) && i < kMaxRounds; i++) {
                SmmuV3Model::Dma d = m.dma_write(kFaultSid, 0x1000 + (i % 64) * kPageSize, b, sizeof b);
                if (d.ok) bad++;
                dmas++;
                std::this_thread::yield();
            }
        };

        std::atomic<uint64_t> drained{0};
        auto drainer = [&] {
            arch::host::set_cpu_id(kMappers + 3);
            uint64_t from = 0, lost = 0;
            FaultRecord recs[16];
            while (!stop.load()) {
                smmu.poll_faults(log);
                while (unsigned n = log.copy(from, recs, 16, &lost)) {
                    for (unsigned i = 0; i < n; i++)
                        if (recs[i].stream != kFaultSid || recs[i].kind != FaultKind::translation) bad++;
                    drained += n;
                }
                std::this_thread::yield();
            }
            drained += lost;
        };

        std::thread others[3] = {std::thread(churner), std::thread(faulter), std::thread(drainer)};
        std::vector<std::thread> maps;
        for (unsigned t = 0; t < kMappers; t++) maps.emplace_back(mapper, t);
        for (std::thread& th : maps) th.join();
        stop = true;
        for (std::thread& th : others) th.join();
        smmu.poll_faults(log);  // what came in after the drainer's last look

        printf("smp stress: %llu attach/detach rounds, %llu faulting DMAs, %llu faults drained, %llu commands, "
               "%llu syncs\n",
               static_cast<unsigned long long>(churns.load()), static_cast<unsigned long long>(dmas.load()),
               static_cast<unsigned long long>(drained.load()), static_cast<unsigned long long>(smmu.commands_issued()),
               static_cast<unsigned long long>(smmu.syncs_issued()));
        EXPECT_EQ(bad.load(), 0u);
        EXPECT_GT(churns.load(), 0u);
        EXPECT_EQ(smmu.command_errors(), 0u);
        EXPECT_EQ(shared.quarantined_pages(), 0u);
        EXPECT_EQ(shared.attached_count(), 0u);

        // Every fault the model queued was recorded, once; the ones lost to overflow are its count.
        uint64_t queued = 0;
        for (const SmmuV3Model::Event& e : m.events()) queued += e.queued;
        EXPECT_EQ(log.total(), queued);
        EXPECT_EQ(m.events().size(), dmas.load());
        EXPECT_GT(queued, 0u);

        // The final table against the reference: lookups, then DMA through a stream attached now.
        ASSERT_EQ(shared.attach(smmu, kCheckSid), Status::ok);
        unsigned checked = 0;
        for (unsigned t = 0; t < kMappers; t++) {
            uint64_t base = kOwnBase + t * kRegion;
            for (uint64_t i = 0; i < kRegion / kPageSize; i++) {
                Result<iopt::Translation> x = shared.lookup(base + i * kPageSize);
                auto it = ref[t].find(i);
                if (it == ref[t].end()) {
                    EXPECT_FALSE(x.ok()) << "mapper " << t << " page " << i << " should be unmapped";
                    continue;
                }
                ASSERT_TRUE(x.ok()) << "mapper " << t << " page " << i << " should be mapped";
                EXPECT_EQ(x.value.pa, it->second);
                uint64_t stamp = (uint64_t{t} << 32) | i;
                ASSERT_TRUE(m.dma_write(kCheckSid, base + i * kPageSize + 8 * (i % 64), &stamp, sizeof stamp).ok);
                uint64_t got;
                memcpy(&got, static_cast<uint8_t*>(pool.virt(it->second)) + 8 * (i % 64), sizeof got);
                EXPECT_EQ(got, stamp);
                checked++;
            }
        }
        for (unsigned p = 0; p < kSharedPages; p++) {
            uint64_t net = tally[p].maps - tally[p].unmaps;
            ASSERT_LE(net, 1u) << "shared page " << p << ": more successful maps than unmaps allow";
            Result<iopt::Translation> x = shared.lookup(kSharedBase + p * kPageSize);
            EXPECT_EQ(x.ok(), net == 1) << "shared page " << p;
            if (!x.ok()) continue;
            bool known = false;
            for (unsigned t = 0; t < kMappers; t++) known = known || (tally[p].by[t] && x.value.pa == data[t][p % kDataPages]);
            EXPECT_TRUE(known) << "shared page " << p << " maps 0x" << std::hex << x.value.pa << ", which no successful map gave";
            checked++;
        }
        printf("smp stress: %u pages checked against the reference, %llu faults recorded (%llu lost to overflow)\n",
               checked, static_cast<unsigned long long>(log.total()), static_cast<unsigned long long>(m.events_lost()));
        EXPECT_GT(checked, 0u);
        EXPECT_EQ(shared.detach(smmu, kCheckSid), Status::ok);
        EXPECT_EQ(shared.destroy(), Status::ok);
        EXPECT_EQ(empty.destroy(), Status::ok);
        // Tables and CDs back: what is left is the data pages and the SMMU's own.
        EXPECT_EQ(pool.used_pages(), buffers);
        smmu.shutdown();
        for (unsigned t = 0; t < kMappers; t++)
            for (uint64_t pa : data[t]) EXPECT_EQ(pool.free(pa), Status::ok);
    }
    EXPECT_EQ(pool.used_pages(), before);
    for (const std::string& v : m.violations()) ADD_FAILURE() << "model: " << v;
    mmio::detach(&m);
}

// Two CPUs' batches interleaved in one queue: CPU 1 queues an illegal command and does not sync
// yet; CPU 2's sync runs into the error (the SMMU stops there), acknowledges it and still
// succeeds, since the bad command is not among its own; CPU 1's sync then fails for it, though
// someone else acknowledged it. Deterministic: one thread switches the CPU it poses as.
TEST(SmpCommandQueue, EachSyncAnswersForItsOwnBatchOnly) {
    model::HostPool host(512);
    ASSERT_TRUE(host.ok);
    model::PoolPhysMem mem(*host.pool);
    SmmuV3Model m(mem, SmmuV3Model::Features{});
    ASSERT_TRUE(mmio::attach(kBase, SmmuV3Model::kRegSize, &m));
    {
        SmmuV3 smmu(*host.pool);
        ASSERT_EQ(smmu.probe(SmmuV3::Config{kBase, SmmuV3Model::kRegSize, "smmuv3-cmdq", 63, 48, false}), Status::ok);
        constexpr uint64_t kIllegal = 0x7f, kTlbiNsnhAll = 0x30, kSync = 0x46;
        arch::host::set_cpu_id(1);
        EXPECT_EQ(smmu.submit_raw(kIllegal, 0, false), Status::ok);  // queued; the model stops on it
        EXPECT_NE(m.gerror(), m.gerrorn());
        arch::host::set_cpu_id(2);
        EXPECT_EQ(smmu.submit_raw(kTlbiNsnhAll, 0), Status::ok);  // past the error: not its own
        EXPECT_EQ(m.gerror(), m.gerrorn());                      // acknowledged by CPU 2's sync
        EXPECT_EQ(smmu.command_errors(), 1u);
        arch::host::set_cpu_id(1);
        EXPECT_EQ(smmu.submit_raw(kSync, 0), Status::hw_error);  // CPU 1's batch held the bad one
        EXPECT_EQ(smmu.submit_raw(kTlbiNsnhAll, 0), Status::ok);  // and its next batch is clean
        arch::host::set_cpu_id(0);
        EXPECT_EQ(smmu.submit_raw(kTlbiNsnhAll, 0), Status::ok);
        EXPECT_EQ(smmu.command_errors(), 1u);
        EXPECT_EQ(m.commands(0x7f), 1u);
        EXPECT_EQ(m.cmdq_cons() & 0x1ff, m.cmdq_prod() & 0x1ff);  // everything consumed
        smmu.shutdown();
    }
    for (const std::string& v : m.violations()) ADD_FAILURE() << "model: " << v;
    mmio::detach(&m);
}
